// Node's `ws` client against an rtt-ws server: plain text and binary frames, no rtt code.
// Usage: node ws-interop.mjs ws://127.0.0.1:PORT/  — prints one JSON line with what it saw.
import WebSocket from "ws";

const url = process.argv[2];
const socket = new WebSocket(url);
const seen = [];
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out", seen }));
  process.exit(2);
}, 10000);

socket.on("open", () => {
  socket.send("hello from node");
  socket.send(Buffer.from([0, 1, 2, 255]));
});
socket.on("message", (data, isBinary) => {
  seen.push(isBinary ? { binary: [...data] } : { text: data.toString("utf8") });
  if (seen.length === 2) socket.close(1000, "done");
});
socket.on("close", (code, reason) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ seen, code, reason: reason.toString("utf8") }));
});
socket.on("error", (err) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ error: String(err), seen }));
  process.exit(1);
});
