// rtt-client.js's plain WebSocket adapter (registerWebSocketTransport) over real sockets: Node's
// native WebSocket (the WHATWG one browsers have) against a `ws` server on 127.0.0.1 (SPEC.md 4.7, 6, 6.3).
// Node 20 needs --experimental-websocket, which tests/core/test_js_unit.py passes. A failed
// attempt is left to the browser tests (tests/ws/test_ws_browser.py): Node 20's WebSocket fires
// `error` but never `close` when it cannot connect, which browsers always do.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";

import { load, plain, record } from "./harness.mjs";

const { WebSocketServer } = createRequire(new URL("../node/package.json", import.meta.url))("ws");

/** Every wait in these tests is bounded by this many milliseconds. */
const WAIT_MS = 10000;

/** `promise`, or a rejection naming `what` once WAIT_MS has passed. */
function bounded(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A `ws` server on a free loopback port. `server.script` is what it does with each new
 * connection (by default: echo every message with its type); `server.ended()` resolves with
 * the [code, reason] that the next connection made ends with.
 */
function startServer() {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  const waiting = [];
  const server = {
    wss,
    url: "",
    script: echo,
    ended: () => new Promise((resolve) => waiting.push(resolve)),
  };
  wss.on("connection", (socket) => {
    const resolvers = waiting.splice(0);
    socket.on("close", (code, reason) => {
      for (const resolve of resolvers) resolve([code, reason.toString("utf8")]);
    });
    server.script(socket);
  });
  return new Promise((resolve, reject) => {
    wss.once("error", reject);
    wss.once("listening", () => {
      server.url = `ws://127.0.0.1:${wss.address().port}/`;
      resolve(server);
    });
  });
}

/** Echo every message with its type. */
function echo(socket) {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
}

/** A fresh rtt with the adapter registered under `name`, and a recorded client of it. */
function webSocketClient(url, name = "plain", options = { reconnect: false }) {
  const rtt = load();
  rtt.registerWebSocketTransport(name);
  return { rtt, client: record(rtt.client(name, url, options)) };
}

describe("the plain WebSocket adapter", () => {
  let server;
  before(async () => {
    assert.equal(typeof WebSocket, "function", "Node 20 needs --experimental-websocket");
    server = await startServer();
  });
  after(() => new Promise((resolve) => server.wss.close(resolve)));

  test("registers under any name; strings and bytes go both ways; close() sends 1000", async () => {
    for (const name of ["ws", "picows"]) {
      server.script = echo;
      const { client } = webSocketClient(server.url, name);
      assert.equal(client.transport, name);
      const closed = server.ended();
      await bounded(client.connect(), "open");
      const echoes = [];
      const two = new Promise((resolve) =>
        client.on("message", (data) => {
          echoes.push(plain(data));
          if (echoes.length === 2) resolve();
        }),
      );
      client.send("héllo");
      client.send(new Uint8Array([0, 1, 255]));
      await bounded(two, "two echoes");
      assert.deepEqual(echoes, ["héllo", { bytes: [0, 1, 255] }], name);
      client.close();
      assert.deepEqual(await bounded(closed, "the server's close"), [1000, "client closed"], name);
    }
  });

  test("an application close keeps the server's code and text", async () => {
    server.script = (socket) => socket.close(4001, "logged in elsewhere");
    const { client } = webSocketClient(server.url);
    const closed = client.next("close");
    await bounded(client.connect(), "open");
    assert.deepEqual(await bounded(closed, "close"), ["application"]);
    assert.equal(client.closeReason, "application");
    assert.equal(client.closeCode, 4001);
    assert.equal(client.closeText, "logged in elsewhere");
  });

  test("rtt's own close from the server is read from its code and text", async () => {
    server.script = (socket) => socket.close(1001, "shutdown");
    const { client } = webSocketClient(server.url);
    const closed = client.next("close");
    await bounded(client.connect(), "open");
    assert.deepEqual(await bounded(closed, "close"), ["shutdown"]);
    assert.equal(client.closeCode, null);
    assert.equal(client.closeText, null);
  });

  test("a code a page may not send (1009) goes out as 4009 with rtt's reason text", async () => {
    server.script = (socket) => socket.send("x".repeat(100));
    const { client } = webSocketClient(server.url, "plain", { reconnect: false, maxMessageSize: 10 });
    const closed = server.ended();
    await bounded(client.connect(), "open");
    assert.deepEqual(await bounded(closed, "the server's close"), [4009, "message too big"]);
    assert.equal(client.closeReason, "message too big");
  });

  test("without a WebSocket in the environment, the attempt fails with a clear ConnectError", async () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
    delete globalThis.WebSocket;
    try {
      const { client } = webSocketClient(server.url);
      const error = await client.connect().then(() => null, (e) => e);
      assert.deepEqual(plain(error), {
        error: "ConnectError",
        message: `cannot connect to ${server.url}: this JavaScript environment has no WebSocket`,
      });
    } finally {
      Object.defineProperty(globalThis, "WebSocket", saved);
    }
  });
});
