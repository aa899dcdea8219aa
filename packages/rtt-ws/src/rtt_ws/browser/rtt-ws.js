// @ts-check
/**
 * rtt-ws.js: the "ws" transport for rtt's browser client, over the native WebSocket.
 *
 * The wire is plain WebSocket, so the adapter is rtt-client.js's own plain WebSocket
 * adapter (SPEC.md 4.7): this file only registers it under "ws".
 *
 * As a classic script, load it after rtt-client.js:
 *
 *     <script src="http://host:port/rtt/rtt-client.js"></script>
 *     <script src="http://host:port/rtt/rtt-ws.js"></script>
 *
 * As a module, import rtt-ws.mjs, which imports both files.
 */
(() => {
  "use strict";

  const rtt = globalThis.rtt;
  if (!rtt || typeof rtt.registerWebSocketTransport !== "function") {
    throw new Error("rtt-ws.js needs rtt-client.js: load it first");
  }
  rtt.registerWebSocketTransport("ws");
})();
