// sockjs-client in Node over one transport: open, echo one message, close.
// Usage: node sockjs-echo.mjs http://127.0.0.1:PORT/sockjs TRANSPORT — prints one JSON line with what it saw.
import SockJS from "sockjs-client";

const [url, transport] = process.argv.slice(2);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(1);
}, 15000);
const sock = new SockJS(url, null, { transports: [transport] });
const seen = [];
sock.onopen = () => sock.send("over " + transport);
sock.onmessage = (event) => { seen.push(event.data); sock.close(); };
sock.onclose = (event) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ seen, code: event.code }));
  process.exit(0);
};
