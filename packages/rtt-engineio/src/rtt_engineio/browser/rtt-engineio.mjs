/**
 * rtt-engineio.mjs: rtt's browser client with the "engineio" transport, as an ES module.
 *
 *     import rtt from "http://host:port/rtt/rtt-engineio.mjs";
 *     const client = rtt.client("engineio", "http://host:port/engine.io/");
 *
 * or with named imports: `import { client, CloseReason } from ".../rtt-engineio.mjs"`.
 *
 * engine.io-client 6 is not imported here: load its UMD bundle first (it defines
 * `globalThis.eio`), or hand its Socket class over with
 * `rtt.engineio.register("engineio", { Socket })` (see rtt-engineio.js).
 *
 * The two scripts below are plain scripts that set up `globalThis.rtt`; importing them
 * runs them once, in order. (A module is fetched with CORS, so a page on another origin
 * needs the server to send Access-Control-Allow-Origin for these files.)
 */
import "./rtt-client.js";
import "./rtt-engineio.js";

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
  engineio,
} = rtt;
