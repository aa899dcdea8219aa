// What the node --test files of tests/js share: a fresh copy of rtt-client.js per test,
// a scripted transport adapter, an event recorder and the figures Python computed.
//
// Run by tests/core/test_js_unit.py (`node --test tests/js/`), which writes the Python
// figures to a JSON file named by RTT_PYTHON_FIGURES.

import { readFileSync } from "node:fs";
import vm from "node:vm";

export const BROWSER = new URL("../../packages/rtt-core/src/rtt/browser/", import.meta.url);
const CORE = new URL("rtt-client.js", BROWSER);
// The script inside a function, so that its top-level `var rtt` does not become a global
// that `delete` cannot remove: each load() then builds a new copy, as a new page would.
const wrapped = vm.runInThisContext(`(function () {${readFileSync(CORE, "utf8")}\n})`, {
  filename: CORE.pathname,
});

/** A fresh copy of rtt-client.js's namespace, with no transport registered. */
export function load() {
  delete globalThis.rtt;
  wrapped();
  const rtt = globalThis.rtt;
  delete globalThis.rtt;
  return rtt;
}

/** Run rtt-client.js once more, as a second <script> tag would; returns globalThis.rtt. */
export function runAgain() {
  wrapped();
  return globalThis.rtt;
}

/** JSON-friendly: bytes as {bytes: [...]}, errors as {error, message}. */
export function plain(value) {
  if (value instanceof Uint8Array) return { bytes: Array.from(value) };
  if (value instanceof Error) return { error: value.name, message: value.message };
  return value;
}

/** What `fn` throws, as plain(), or null. */
export function thrown(fn) {
  try {
    fn();
    return null;
  } catch (error) {
    return plain(error);
  }
}

export const EVENTS = ["open", "message", "close", "reconnecting", "reconnected", "reconnect_failed", "error"];

/**
 * Record every event of `client` in `client.log` as [name, ...args]; `client.next(name)`
 * resolves with the arguments of the next `name` event.
 */
export function record(client) {
  client.log = [];
  const waiting = new Map(EVENTS.map((name) => [name, []]));
  for (const name of EVENTS) {
    client.on(name, (...args) => {
      client.log.push([name, ...args.map(plain)]);
      for (const resolve of waiting.get(name).splice(0)) resolve(args);
    });
  }
  client.next = (name) => new Promise((resolve) => waiting.get(name).push(resolve));
  return client;
}

/** The event names in order, with the close reason: "open close:shutdown ...". */
export function summary(log) {
  return log.map((event) => (event[0] === "close" ? `close:${event[1]}` : event[0])).join(" ");
}

/**
 * A transport the test drives by hand. `fake.plan` says how each attempt ends: "open",
 * "fail", "reject" (a RejectedError with `fake.status`), "close" (closed before opening)
 * or "hold" (never, until the test calls the sink); each step happens in a microtask
 * after open() returns. `fake.conns` keeps every connection; `fake.attempted` resolves
 * when the next attempt starts.
 */
export function fakeTransport(rtt, name = "fake") {
  const waiting = [];
  const fake = {
    plan: [],
    conns: [],
    status: 403,
    throwOnOpen: null,
    attempted: () => new Promise((resolve) => waiting.push(resolve)),
  };
  rtt.registerTransport(name, {
    open(url, options, sink) {
      if (fake.throwOnOpen) throw fake.throwOnOpen;
      const conn = {
        url,
        options,
        sink,
        sent: [],
        closedWith: null,
        broken: false,
        send(data) {
          if (this.broken) throw new Error("gone");
          this.sent.push(plain(data));
        },
        close(code, text) {
          this.closedWith = [code, text];
        },
      };
      fake.conns.push(conn);
      const step = fake.plan.shift() || "open";
      queueMicrotask(() => {
        if (step === "open") sink.opened();
        else if (step === "reject") sink.failed(new rtt.RejectedError(fake.status, "Forbidden"));
        else if (step === "fail") sink.failed(new Error("refused"));
        else if (step === "close") sink.closed("transport error");
        for (const resolve of waiting.splice(0)) resolve(conn);
      });
      return conn;
    },
  });
  return fake;
}

/** Let every pending microtask and promise callback run. */
export function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The figures tests/core/test_js_unit.py computed with Python's rtt. */
export function pythonFigures() {
  const path = process.env.RTT_PYTHON_FIGURES;
  if (!path) {
    throw new Error("RTT_PYTHON_FIGURES is not set: run these tests through tests/core/test_js_unit.py");
  }
  return JSON.parse(readFileSync(path, "utf8"));
}
