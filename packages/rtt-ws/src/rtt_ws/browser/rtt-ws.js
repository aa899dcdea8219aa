// @ts-check
/**
 * rtt-ws.js: the "ws" transport for rtt's browser client, over the native WebSocket.
 *
 * The wire is plain WebSocket: text frames carry strings, binary frames carry bytes, and
 * close frames carry rtt's close code and reason text, or the server application's
 * (SPEC.md 6, 6.3). Everything else (events, backoff, offline queue, limits) is in
 * rtt-client.js; this file follows the adapter contract described at the top of that file.
 *
 * As a classic script, load it after rtt-client.js:
 *
 *     <script src="http://host:port/rtt/rtt-client.js"></script>
 *     <script src="http://host:port/rtt/rtt-ws.js"></script>
 *
 * As a module, import rtt-ws.mjs, which imports both files.
 *
 * What a browser cannot do: set handshake headers, or see the HTTP status of a refused
 * handshake (a 403 looks like any other failed attempt, so it is retried like one).
 */
(() => {
  "use strict";

  const rtt = globalThis.rtt;
  if (!rtt || typeof rtt.registerTransport !== "function") {
    throw new Error("rtt-ws.js needs rtt-client.js: load it first");
  }
  const { ConnectError, ConnectionClosed, closeFromWire } = rtt;

  /** @typedef {Parameters<typeof rtt.registerTransport>[1]} Adapter */

  // Browsers may only send close code 1000 or 3000-4999 (anything else throws), so the
  // other rtt codes go out as 4000 + (code - 1000), e.g. 1009 as 4009. rtt's reason text
  // travels with them, and the server recovers the reason from the text.
  /** @param {number} code @returns {number} */
  function sendableCode(code) {
    return code === 1000 || (code >= 3000 && code <= 4999) ? code : 4000 + (code % 1000);
  }

  rtt.registerTransport("ws", {
    /**
     * @param {string} url a ws:// or wss:// URL
     * @param {Parameters<Adapter["open"]>[1]} options the client's options (the browser WebSocket has none to set)
     * @param {Parameters<Adapter["open"]>[2]} sink
     */
    open(url, options, sink) {
      const ws = new WebSocket(url); // a malformed URL throws here: a failed attempt
      ws.binaryType = "arraybuffer";
      let opened = false;
      ws.onopen = () => {
        opened = true;
        sink.opened();
      };
      ws.onmessage = (event) => {
        sink.message(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      };
      // An error event carries no detail (browsers hide it on purpose) and a close event
      // always follows it, so everything is decided in onclose.
      ws.onclose = (event) => {
        if (opened) {
          // An application close (3000-4999) keeps the server's code and text.
          const close = closeFromWire(event.code, event.reason);
          sink.closed(close.reason, close.code, close.text);
        } else {
          sink.failed(new ConnectError(`cannot connect to ${url}: the WebSocket closed with code ${event.code}`));
        }
      };
      return {
        send(data) {
          // A WebSocket that is closing drops sent data silently; throw instead, so the
          // client keeps the message for the next connection.
          if (ws.readyState !== WebSocket.OPEN) throw new ConnectionClosed(null);
          ws.send(data);
        },
        close(code, reasonText) {
          if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
          ws.close(sendableCode(code), reasonText);
        },
      };
    },
  });
})();
