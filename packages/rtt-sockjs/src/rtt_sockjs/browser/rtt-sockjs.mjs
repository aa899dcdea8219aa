// @ts-check
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
 * The names are rtt-client.mjs's, re-exported, plus `sockjs`; the adapter is the plain
 * script rtt-sockjs.js, run once after the core. (A module is fetched with CORS, so a
 * page on another origin needs the server to send Access-Control-Allow-Origin for
 * these files.)
 */
import "./rtt-client.mjs";
import "./rtt-sockjs.js";

export * from "./rtt-client.mjs";
export { default } from "./rtt-client.mjs";

/** `rtt.sockjs`, which rtt-sockjs.js has just set. */
export const sockjs = /** @type {typeof globalThis.rtt & {sockjs: RttSockjs}} */ (globalThis.rtt).sockjs;
