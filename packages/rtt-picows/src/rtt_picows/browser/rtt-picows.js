// @ts-check
/**
 * rtt-picows.js: the "picows" transport for rtt's browser client, over the native WebSocket.
 *
 * The wire is plain WebSocket, the same as rtt-ws's, so the adapter is rtt-client.js's own
 * plain WebSocket adapter (SPEC.md 4.7): this file only registers it under "picows".
 *
 *     <script src="http://host:port/rtt/rtt-client.js"></script>
 *     <script src="http://host:port/rtt/rtt-picows.js"></script>
 *
 * As a module, import rtt-picows.mjs, which imports both files.
 */
(() => {
  "use strict";

  const rtt = globalThis.rtt;
  if (!rtt || typeof rtt.registerWebSocketTransport !== "function") {
    throw new Error("rtt-picows.js needs rtt-client.js: load it first");
  }
  rtt.registerWebSocketTransport("picows");
})();
