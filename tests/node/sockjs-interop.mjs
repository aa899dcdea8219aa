// The official sockjs-client (1.6) in Node against an rtt-sockjs server. No rtt code on this
// side: what rtt sends must make sense to a bare SockJS client.
// Usage: node sockjs-interop.mjs http://127.0.0.1:PORT/sockjs
// The server echoes text, and on "bytes please" sends bytes and NUL-led text, on "broadcast
// please" broadcasts, on "close please" disconnects the sender. Prints one JSON line.
//
// Over WebSocket (with session_binding on, the only transport that works from Node:
// sockjs-client has no cookie jar here), two sockets A and B:
//   A: echo, bytes, broadcast (B receives it too), then B asks to be closed, then A closes.
// Then xhr-streaming: the session opens (a new session needs no cookie) but the first send
// comes without the cookie and is refused; sockjs-client must close, not hang.
// sockjs-client 1.6 is CommonJS (module.exports = SockJS): the default import is the class.
import SockJS from "sockjs-client";

const [url] = process.argv.slice(2);
const result = { a: [], b: [], closeB: null, closeA: null, xhr: { opened: false, close: null } };
const timer = setTimeout(() => finish("timed out"), 15000);

function finish(error) {
  clearTimeout(timer);
  console.log(JSON.stringify(error ? { ...result, error } : result));
  process.exit(error ? 1 : 0);
}

// Resolve with the socket once open; reject if it closes first.
function open(transports) {
  return new Promise((resolve, reject) => {
    const sock = new SockJS(url, null, { transports });
    sock.onopen = () => resolve(sock);
    sock.onclose = (event) => reject(new Error(`closed before opening: ${event.code} ${event.reason}`));
  });
}

// Resolve with the close event's code and reason.
function closed(sock) {
  return new Promise((resolve) => {
    sock.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  });
}

// Record what `sock` receives into `seen`; `until(n)` waits until `seen` holds n messages.
function recorder(sock, seen) {
  let waiting = null;
  sock.onmessage = (event) => {
    seen.push(event.data);
    if (waiting && seen.length >= waiting.count) waiting.resolve();
  };
  return (count) =>
    new Promise((resolve) => {
      if (seen.length >= count) resolve();
      else waiting = { count, resolve };
    });
}

async function main() {
  const a = await open(["websocket"]);
  const b = await open(["websocket"]);
  const untilA = recorder(a, result.a);
  const untilB = recorder(b, result.b);

  a.send("hello from sockjs-client");
  await untilA(1);
  a.send("bytes please");
  await untilA(3);
  a.send("broadcast please");
  await Promise.all([untilA(4), untilB(1)]);

  const bClosed = closed(b);
  b.send("close please");
  result.closeB = await bClosed;

  const aClosed = closed(a);
  a.close();
  result.closeA = await aClosed;

  // xhr-streaming: opens, then the cookie-less send is refused and sockjs-client closes.
  const xhr = await open(["xhr-streaming"]);
  result.xhr.opened = true;
  const xhrClosed = closed(xhr);
  xhr.send("over xhr-streaming");
  result.xhr.close = await xhrClosed;
  finish(null);
}

main().catch((error) => finish(String(error)));
