// @ts-check
/**
 * rtt-ws.mjs: rtt's browser client with the "ws" transport, as an ES module.
 *
 *     import rtt from "http://host:port/rtt/rtt-ws.mjs";
 *     const client = rtt.client("ws", "ws://host:port/");
 *
 * or with named imports: `import { client, CloseReason } from ".../rtt-ws.mjs"`.
 *
 * The names are rtt-client.mjs's, re-exported; the adapter is the plain script
 * rtt-ws.js, run once after the core. (A module is fetched with CORS, so a page on
 * another origin needs the server to send Access-Control-Allow-Origin for these files.)
 */
import "./rtt-client.mjs";
import "./rtt-ws.js";

export * from "./rtt-client.mjs";
export { default } from "./rtt-client.mjs";
