// @ts-check
/**
 * rtt-picows.mjs: rtt's browser client with the "picows" transport, as an ES module.
 *
 *     import rtt from "http://host:port/rtt/rtt-picows.mjs";
 *     const client = rtt.client("picows", "ws://host:port/");
 *
 * The names are rtt-client.mjs's, re-exported; the adapter is the plain script
 * rtt-picows.js, run once after the core.
 */
import "./rtt-client.mjs";
import "./rtt-picows.js";

export * from "./rtt-client.mjs";
export { default } from "./rtt-client.mjs";
