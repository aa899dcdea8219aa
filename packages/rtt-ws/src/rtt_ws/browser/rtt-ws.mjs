/**
 * rtt-ws.mjs: rtt's browser client with the "ws" transport, as an ES module.
 *
 *     import rtt from "http://host:port/rtt/rtt-ws.mjs";
 *     const client = rtt.client("ws", "ws://host:port/");
 *
 * or with named imports: `import { client, CloseReason } from ".../rtt-ws.mjs"`.
 *
 * The two scripts below are plain scripts that set up `globalThis.rtt`; importing them
 * runs them once, in order. (A module is fetched with CORS, so a page on another origin
 * needs the server to send Access-Control-Allow-Origin for these files.)
 */
import "./rtt-client.js";
import "./rtt-ws.js";

const rtt = globalThis.rtt;

export default rtt;

export const {
  version,
  registerTransport,
  client,
  Client,
  ReconnectPolicy,
  CloseReason,
  closeReasonFromWire,
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
