// The official engine.io-client (v6) in Node against an rtt-engineio server: text and binary
// over one transport choice. No rtt code on this side.
// Usage: node engineio-interop.mjs http://127.0.0.1:PORT/ TRANSPORTS   (e.g. "polling,websocket")
// Prints one JSON line: what came back, the transport in use at the end, and how it closed.
import { Socket } from "engine.io-client";

const [url, transports] = process.argv.slice(2);
const socket = new Socket(url, { transports: transports.split(","), path: "/engine.io/" });
const seen = [];
const timer = setTimeout(() => finish({ error: "timed out" }), 10000);

function finish(extra) {
  clearTimeout(timer);
  console.log(JSON.stringify({ seen, transport: socket.transport && socket.transport.name, ...extra }));
  process.exit(extra.error ? 1 : 0);
}

socket.on("open", () => {
  // Wait for a possible upgrade so the messages travel over the final transport.
  setTimeout(() => {
    socket.send("hello from engine.io-client");
    socket.send(new Uint8Array([0, 1, 2, 255]));
  }, transports.includes(",") ? 500 : 0);
});
socket.on("message", (data) => {
  seen.push(typeof data === "string" ? { text: data } : { binary: [...new Uint8Array(data)] });
  if (seen.length === 2) {
    const transport = socket.transport.name;
    socket.close();
    setTimeout(() => finish({ closedOver: transport }), 100);
  }
});
socket.on("error", (err) => finish({ error: String(err) }));
