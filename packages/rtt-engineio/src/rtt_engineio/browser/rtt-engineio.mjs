// @ts-check
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
 * The names are rtt-client.mjs's, re-exported, plus `engineio`; the adapter is the
 * plain script rtt-engineio.js, run once after the core. (A module is fetched with
 * CORS, so a page on another origin needs the server to send
 * Access-Control-Allow-Origin for these files.)
 */
import "./rtt-client.mjs";
import "./rtt-engineio.js";

export * from "./rtt-client.mjs";
export { default } from "./rtt-client.mjs";

/** `rtt.engineio`, which rtt-engineio.js has just set. */
export const engineio = /** @type {typeof globalThis.rtt & {engineio: RttEngineio}} */ (globalThis.rtt).engineio;
