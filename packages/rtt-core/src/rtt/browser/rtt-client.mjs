// @ts-check
/**
 * rtt-client.mjs: rtt's browser client core as an ES module, and the one list of its
 * named exports.
 *
 * Importing it runs rtt-client.js once (a plain script that sets up `globalThis.rtt`)
 * and exports what that script put there, so a page that also loads the classic script
 * gets the same objects either way. It registers no transport: import a plugin's entry
 * (rtt-ws.mjs, rtt-engineio.mjs, rtt-sockjs.mjs), which re-exports everything here with
 * `export *`, or, from the npm package, this module and an adapter script.
 *
 *     import { client } from "rtt-client";      // npm install <repo>/packages/rtt-core/src/rtt/browser
 *     import "rtt-client-ws";                    // npm install <repo>/packages/rtt-ws/src/rtt_ws/browser
 *     const c = client("ws", "ws://host:port/");
 *
 * (A module is fetched with CORS, so a page on another origin needs the server to send
 * Access-Control-Allow-Origin for these files; rtt's servers do.)
 */
import "./rtt-client.js";

const rtt = globalThis.rtt;

export default rtt;

export const {
  version,
  registerTransport,
  registerWebSocketTransport,
  client,
  Client,
  ReconnectPolicy,
  CloseReason,
  closeReasonFromWire,
  closeFromWire,
  closeFromText,
  closeCode,
  RttError,
  StateError,
  InvalidMessageError,
  MessageTooBigError,
  OfflineQueueFullError,
  ConnectError,
  RejectedError,
  ConnectionClosed,
} = rtt;
