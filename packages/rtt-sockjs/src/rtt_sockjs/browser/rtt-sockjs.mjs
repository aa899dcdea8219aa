/**
 * rtt-sockjs.mjs: rtt's browser client with the "sockjs" transport, as an ES module.
 *
 *     import rtt from "http://host:port/rtt/rtt-sockjs.mjs";
 *     const client = rtt.client("sockjs", "http://host:port/sockjs");
 *
 * or with named imports: `import { client, CloseReason } from ".../rtt-sockjs.mjs"`.
 *
 * sockjs-client 1.6 is not imported here: load its UMD bundle first (it defines
 * `globalThis.SockJS`), or hand its class over with
 * `rtt.sockjs.register("sockjs", { SockJS })` (see rtt-sockjs.js).
 *
 * The two scripts below are plain scripts that set up `globalThis.rtt`; importing them
 * runs them once, in order. (A module is fetched with CORS, so a page on another origin
 * needs the server to send Access-Control-Allow-Origin for these files.)
 */
import "./rtt-client.js";
import "./rtt-sockjs.js";

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
  sockjs,
} = rtt;
