// Node's `ws` client: connects, says hello, and prints how the server closed it.
// Usage: node ws-close-watcher.mjs ws://127.0.0.1:PORT/PATH  — prints one JSON line: {code, reason}.
import WebSocket from "ws";

const socket = new WebSocket(process.argv[2]);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 10000);
socket.on("open", () => socket.send("hello"));
socket.on("close", (code, reason) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ code, reason: reason.toString("utf8") }));
});
socket.on("error", (err) => {
  console.log(JSON.stringify({ error: String(err) }));
  process.exit(1);
});
