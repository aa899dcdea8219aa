// rtt-client.js against a scripted adapter, in Node: no browser, no network (SPEC.md 4, 5, 6, 7.2).

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fakeTransport, load, plain, record, runAgain, settle, summary, thrown } from "./harness.mjs";

const URL_ = "fake://server/";

/** A fresh namespace, its fake transport and a recorded client. */
function setup(options = {}) {
  const rtt = load();
  const fake = fakeTransport(rtt);
  const client = record(rtt.client("fake", URL_, options));
  return { rtt, fake, client };
}

describe("state machine", () => {
  test("idle, connecting, open, then closed for good by close()", async () => {
    const { fake, client } = setup();
    assert.equal(client.state, "idle");
    assert.equal(client.closeReason, null);
    const connected = client.connect();
    assert.equal(client.state, "connecting");
    await connected;
    assert.equal(client.state, "open");
    assert.deepEqual(client.log, [["open"]]);
    client.close();
    client.close(); // idempotent
    assert.equal(client.state, "closed");
    assert.equal(client.closeReason, "client closed");
    assert.equal(await client.waitClosed(), "client closed");
    assert.deepEqual(fake.conns[0].closedWith, [1000, "client closed"]);
    // What the connection reports after a deliberate close is ignored.
    fake.conns[0].sink.message("late");
    fake.conns[0].sink.closed("shutdown");
    await settle();
    assert.equal(summary(client.log), "open close:client closed");
  });

  test("operations refused in the wrong state", async () => {
    const { client } = setup();
    assert.deepEqual(thrown(() => client.send("early")), {
      error: "StateError",
      message: "cannot send in state idle",
    });
    await client.connect();
    assert.deepEqual(plain(await client.connect().catch((error) => error)), {
      error: "StateError",
      message: "cannot connect in state open",
    });
    client.close();
    assert.deepEqual(thrown(() => client.send("late")), {
      error: "StateError",
      message: "cannot send in state closed",
    });
  });

  test("close() while connecting abandons the attempt and fires no close event", async () => {
    const { fake, client } = setup();
    fake.plan = ["hold"];
    const connected = client.connect().then(() => null, plain);
    client.close();
    assert.deepEqual(await connected, {
      error: "ConnectError",
      message: "the client was closed before it connected to fake://server/",
    });
    assert.equal(client.closeReason, "client closed");
    assert.deepEqual(fake.conns[0].closedWith, [1000, "client closed"]);
    fake.conns[0].sink.opened(); // too late: ignored
    await settle();
    assert.deepEqual(client.log, []);
  });

  test("the first attempt is not retried: failure, rejection, a throwing open(), an early close", async () => {
    const cases = {
      fail: ["ConnectError", "cannot connect to fake://server/: refused", "transport error"],
      reject: ["RejectedError", "handshake rejected with HTTP 403: Forbidden", "rejected"],
      close: ["ConnectError", "connection to fake://server/ closed before opening (transport error)", "transport error"],
    };
    for (const [step, [name, message, reason]] of Object.entries(cases)) {
      const { fake, client } = setup();
      fake.plan = [step];
      const error = await client.connect().then(() => null, (e) => e);
      assert.deepEqual(plain(error), { error: name, message }, step);
      assert.equal(client.state, "closed", step);
      assert.equal(client.closeReason, reason, step);
      assert.equal(fake.conns.length, 1, step);
      assert.deepEqual(client.log, [], step);
    }
    const { rtt, fake, client } = setup();
    const cause = new Error("bad url");
    fake.throwOnOpen = cause;
    const error = await client.connect().then(() => null, (e) => e);
    assert.ok(error instanceof rtt.ConnectError);
    assert.equal(error.message, "cannot connect to fake://server/: bad url");
    assert.equal(error.cause, cause);
    assert.equal(client.closeReason, "transport error");
  });

  test("an adapter that calls the sink from inside open() is deferred, not lost", async () => {
    const rtt = load();
    rtt.registerTransport("eager", {
      open(url, options, sink) {
        sink.opened();
        return { send() {}, close() {} };
      },
    });
    const client = record(rtt.client("eager", URL_));
    await client.connect();
    assert.equal(client.state, "open");
  });

  test("connectTimeout bounds an attempt", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { fake, client } = setup({ connectTimeout: 2 });
    fake.plan = ["hold"];
    const connected = client.connect().then(() => null, plain);
    await settle();
    t.mock.timers.tick(1999);
    await settle();
    assert.equal(client.state, "connecting");
    t.mock.timers.tick(1);
    assert.deepEqual(await connected, {
      error: "ConnectError",
      message: "connecting to fake://server/ timed out after 2 s",
    });
    assert.deepEqual(fake.conns[0].closedWith, [1000, "client closed"]);
    assert.equal(client.closeReason, "transport error");
  });

  test("a deliberate close by the server, or a rejection, is final; other reasons reconnect", async () => {
    for (const [reason, final] of [
      ["server closed", true],
      ["rejected", true],
      ["shutdown", false],
      ["ping timeout", false],
      ["transport error", false],
      ["protocol error", false],
      ["slow consumer", false],
    ]) {
      const { fake, client } = setup({ reconnect: { minDelay: 0, maxDelay: 0, jitter: 0 } });
      await client.connect();
      fake.conns[0].sink.closed(reason);
      assert.equal(client.state, final ? "closed" : "reconnecting", reason);
      if (final) {
        assert.equal(client.closeReason, reason);
        assert.equal(await client.waitClosed(), reason);
      } else {
        await client.next("reconnected");
        assert.equal(summary(client.log), `open close:${reason} reconnecting open reconnected`);
        client.close();
      }
    }
  });

  test("an application close is final, keeps its code and text, and retryCodes reconnect", async () => {
    const { fake, client } = setup({ reconnect: { minDelay: 0, maxDelay: 0, jitter: 0, retryCodes: [4503] } });
    const seen = [];
    client.on("close", (reason) => seen.push([reason, client.closeCode, client.closeText]));
    await client.connect();
    fake.conns[0].sink.closed("application", 4503, "come back later");
    assert.equal(client.state, "reconnecting");
    await client.next("reconnected");
    fake.conns[1].sink.closed("shutdown");
    assert.equal(client.closeCode, null, "a close for rtt's own reason clears the code");
    assert.equal(client.closeText, null);
    await client.next("reconnected");
    fake.conns[2].sink.closed("application", 4001, "logged in elsewhere");
    assert.equal(client.state, "closed");
    assert.equal(client.closeReason, "application");
    assert.deepEqual(seen, [
      ["application", 4503, "come back later"],
      ["shutdown", null, null],
      ["application", 4001, "logged in elsewhere"],
    ]);
    assert.equal(await client.waitClosed(), "application");
  });

  test("without reconnection, a lost connection closes the client with its reason", async () => {
    const { fake, client } = setup({ reconnect: false });
    assert.equal(client.options.reconnect, null);
    await client.connect();
    fake.conns[0].sink.closed("shutdown");
    assert.equal(client.state, "closed");
    assert.equal(client.closeReason, "shutdown");
    assert.equal(summary(client.log), "open close:shutdown");
  });

  test("close() from a close handler stops reconnection", async () => {
    const { fake, client } = setup();
    await client.connect();
    client.on("close", () => client.close());
    fake.conns[0].sink.closed("shutdown");
    assert.equal(client.state, "closed");
    assert.equal(client.closeReason, "client closed");
    await settle();
    assert.equal(summary(client.log), "open close:shutdown");
    assert.equal(fake.conns.length, 1);
  });

  test("close() while waiting to reconnect stops for good", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { fake, client } = setup({ reconnect: { minDelay: 5, jitter: 0 } });
    await client.connect();
    fake.conns[0].sink.closed("shutdown");
    assert.deepEqual(client.log.at(-1), ["reconnecting", 1, 5]);
    client.close();
    t.mock.timers.tick(60_000);
    await settle();
    assert.equal(fake.conns.length, 1);
    assert.equal(client.closeReason, "client closed");
    assert.equal(summary(client.log), "open close:shutdown reconnecting");
  });
});

describe("backoff", () => {
  test("the waits follow the policy, and reconnect_failed ends them", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { fake, client } = setup({ reconnect: { minDelay: 1, maxDelay: 4, factor: 2, jitter: 0, maxAttempts: 4 } });
    await client.connect();
    fake.plan = ["fail", "fail", "fail", "fail"];
    fake.conns[0].sink.closed("transport error");
    const delays = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const [number, delay] = client.log.at(-1).slice(1);
      assert.equal(client.log.at(-1)[0], "reconnecting");
      assert.equal(number, attempt);
      delays.push(delay);
      t.mock.timers.tick(delay * 1000 - 1);
      await settle();
      assert.equal(fake.conns.length, attempt, "no attempt before the delay is over");
      t.mock.timers.tick(1);
      await settle();
      assert.equal(fake.conns.length, attempt + 1);
    }
    assert.deepEqual(delays, [1, 2, 4, 4]);
    assert.equal(client.state, "closed");
    assert.equal(client.closeReason, "transport error");
    assert.deepEqual(client.log.at(-1), ["reconnect_failed", 4]);
    assert.equal(
      summary(client.log),
      "open close:transport error" + " reconnecting error".repeat(4) + " reconnect_failed",
    );
  });

  // Issue 12, section 4: a connection that opens and dies at once must not reset the backoff.
  test("connections that die at once do not reset the backoff; maxAttempts still ends it", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const policy = { minDelay: 1, maxDelay: 4, factor: 2, jitter: 0, maxAttempts: 4, stableAfter: 10 };
    const { fake, client } = setup({ reconnect: policy });
    await client.connect();
    fake.conns[0].sink.closed("shutdown");
    for (let attempt = 1; attempt <= 4; attempt++) {
      const [name, number, delay] = client.log.at(-1);
      assert.deepEqual([name, number], ["reconnecting", attempt]);
      t.mock.timers.tick(delay * 1000);
      await settle();
      assert.deepEqual(client.log.at(-1), ["reconnected", attempt]);
      t.mock.timers.tick(1000); // up for a second only: less than stableAfter
      fake.conns.at(-1).sink.closed("shutdown"); // as a crash-looping server does
    }
    const waits = client.log.filter(([name]) => name === "reconnecting").map(([, , delay]) => delay);
    assert.deepEqual(waits, [1, 2, 4, 4]);
    assert.deepEqual(client.log.at(-1), ["reconnect_failed", 4]);
    assert.equal(client.state, "closed");
    assert.equal(client.closeReason, "transport error");
    assert.equal(fake.conns.length, 5);
  });

  test("a connection that stays up stableAfter seconds restarts the count at 1", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { fake, client } = setup({ reconnect: { minDelay: 1, jitter: 0, stableAfter: 3 } });
    await client.connect();
    const outage = async () => {
      fake.conns.at(-1).sink.closed("transport error");
      const [, attempt, delay] = client.log.at(-1);
      t.mock.timers.tick(delay * 1000);
      await settle();
      return attempt;
    };
    assert.equal(await outage(), 1);
    assert.equal(await outage(), 2); // died at once: the count goes on
    t.mock.timers.tick(2999);
    assert.equal(await outage(), 3); // not quite stable
    t.mock.timers.tick(3000);
    assert.equal(await outage(), 1); // stable: a new run of outages
    assert.deepEqual(
      client.log.filter(([name]) => name === "reconnecting").map(([, attempt, delay]) => [attempt, delay]),
      [
        [1, 1],
        [2, 2],
        [3, 4],
        [1, 1],
      ],
    );
    client.close();
  });

  test("stableAfter 0 restarts the count at every outage", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { fake, client } = setup({ reconnect: { minDelay: 1, jitter: 0, stableAfter: 0 } });
    await client.connect();
    for (let outage = 0; outage < 3; outage++) {
      fake.conns.at(-1).sink.closed("transport error");
      assert.deepEqual(client.log.at(-1), ["reconnecting", 1, 1]);
      t.mock.timers.tick(1000);
      await settle();
      assert.deepEqual(client.log.at(-1), ["reconnected", 1]);
    }
    client.close();
  });

  test("a refused reconnection (4xx) is final, a 5xx is retried", async () => {
    for (const [status, final] of [
      [403, true],
      [503, false],
    ]) {
      const { fake, client } = setup({ reconnect: { minDelay: 0, maxDelay: 0, jitter: 0 } });
      fake.status = status;
      await client.connect();
      fake.plan = ["reject", "open"];
      fake.conns[0].sink.closed("shutdown");
      if (final) {
        await client.next("reconnect_failed");
        assert.equal(client.closeReason, "rejected");
        assert.equal(summary(client.log), "open close:shutdown reconnecting error reconnect_failed");
      } else {
        await client.next("reconnected");
        assert.equal(summary(client.log), "open close:shutdown reconnecting error reconnecting open reconnected");
        client.close();
      }
    }
  });

  test("delays are jittered within the bounds and capped", () => {
    const rtt = load();
    const policy = new rtt.ReconnectPolicy({ minDelay: 1, maxDelay: 10, factor: 3, jitter: 0.25, maxAttempts: 6 });
    const bases = [1, 3, 9, 10, 10, 10];
    for (let run = 0; run < 100; run++) {
      const delays = Array.from(policy.delays());
      assert.equal(delays.length, 6);
      delays.forEach((delay, i) => assert.ok(bases[i] * 0.75 <= delay && delay <= Math.min(10, bases[i] * 1.25)));
    }
    const forever = new rtt.ReconnectPolicy({ jitter: 0 }).delays();
    const first = Array.from({ length: 8 }, () => forever.next().value);
    assert.deepEqual(first, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert.equal(new rtt.ReconnectPolicy({ minDelay: 0, jitter: 1 }).delays(() => 0).next().value, 0);
  });

  test("a delay too long for setTimeout means never, not at once", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { fake, client } = setup({ reconnect: { minDelay: 1e9, maxDelay: 1e9, jitter: 0 } });
    await client.connect();
    fake.conns[0].sink.closed("shutdown");
    t.mock.timers.tick(2147483647);
    await settle();
    assert.equal(fake.conns.length, 1);
    assert.equal(client.state, "reconnecting");
    client.close();
  });
});

describe("offline queue", () => {
  test("messages sent while connecting go out in order, before anything sent after open", async () => {
    const { fake, client } = setup();
    const connected = client.connect();
    client.send("a");
    const bytes = new Uint8Array([1, 2, 3]);
    client.send(bytes);
    bytes[0] = 9; // the caller reuses its buffer: the queued copy is unchanged
    client.send(new Uint16Array([0x0201]).buffer);
    assert.deepEqual(client.unsent.map(plain), ["a", { bytes: [1, 2, 3] }, { bytes: [1, 2] }]);
    client.on("open", () => client.send("from open"));
    await connected;
    client.send("after");
    assert.deepEqual(fake.conns[0].sent, ["a", { bytes: [1, 2, 3] }, { bytes: [1, 2] }, "from open", "after"]);
    assert.deepEqual(client.unsent, []);
  });

  test("the queue is bounded by offlineQueueSize and a refused message is not queued", async () => {
    const { fake, client } = setup({ offlineQueueSize: 2 });
    fake.plan = ["hold"];
    client.connect();
    client.send("a");
    client.send(new Uint8Array([7]));
    assert.deepEqual(thrown(() => client.send("c")), {
      error: "OfflineQueueFullError",
      message: "client is not connected and its offline queue is full (2 messages); the message was not queued",
    });
    assert.deepEqual(client.unsent.map(plain), ["a", { bytes: [7] }]);
    const opened = client.next("open");
    fake.conns[0].sink.opened();
    await opened;
    assert.deepEqual(fake.conns[0].sent, ["a", { bytes: [7] }]);
    client.send("d");
    assert.deepEqual(fake.conns[0].sent, ["a", { bytes: [7] }, "d"]);

    const { client: none } = setup({ offlineQueueSize: 0 });
    none.connect();
    assert.equal(thrown(() => none.send("x")).error, "OfflineQueueFullError");
  });

  test("the queue survives an outage and is flushed on reconnection", async () => {
    const { fake, client } = setup({ reconnect: { minDelay: 0, maxDelay: 0, jitter: 0 } });
    await client.connect();
    fake.plan = ["hold"];
    fake.conns[0].sink.closed("shutdown");
    client.send("while away");
    const conn = await fake.attempted();
    client.send("still away");
    const reconnected = client.next("reconnected");
    conn.sink.opened();
    await reconnected;
    assert.deepEqual(conn.sent, ["while away", "still away"]);
  });

  test("a flush that fails on the first connection rejects connect() and keeps what was not sent", async () => {
    const rtt = load();
    rtt.registerTransport("flaky", {
      open(url, options, sink) {
        const conn = {
          sent: 0,
          send() {
            if (++conn.sent > 1) throw new Error("gone");
          },
          close() {},
        };
        queueMicrotask(() => sink.opened());
        return conn;
      },
    });
    const client = record(rtt.client("flaky", URL_));
    const connected = client.connect().then(() => null, plain);
    client.send("one");
    client.send("two");
    assert.deepEqual(await connected, {
      error: "ConnectError",
      message: "connection to fake://server/ ended while sending the offline queue",
    });
    assert.equal(client.closeReason, "transport error");
    assert.deepEqual(client.unsent, ["two"]);
    assert.deepEqual(client.log, []);
  });

  test("what is still queued when the client closes stays in unsent", async () => {
    const { fake, client } = setup();
    fake.plan = ["hold"];
    client.connect().catch(() => {});
    client.send("never sent");
    client.close();
    assert.deepEqual(client.unsent, ["never sent"]);
  });
});

describe("messages and limits", () => {
  test("every binary view is sent as its bytes; strings stay strings", async () => {
    const { fake, client } = setup();
    await client.connect();
    const buffer = new Uint8Array([0, 1, 2, 3, 4, 5]).buffer;
    client.send("text");
    client.send(buffer);
    client.send(new Uint8Array(buffer, 2, 2));
    client.send(new DataView(buffer, 4));
    client.send(new Uint16Array([0x0102]));
    assert.deepEqual(fake.conns[0].sent, [
      "text",
      { bytes: [0, 1, 2, 3, 4, 5] },
      { bytes: [2, 3] },
      { bytes: [4, 5] },
      { bytes: Array.from(new Uint8Array(new Uint16Array([0x0102]).buffer)) },
    ]);
    for (const bad of [{}, 1, null, undefined, [1], new Blob(["x"])]) {
      assert.equal(thrown(() => client.send(bad)).error, "InvalidMessageError");
    }
    assert.match(thrown(() => client.send(new Blob(["x"]))).message, /await blob.arrayBuffer\(\)/);
  });

  test("maxMessageSize counts UTF-8 bytes of strings and bytes of binary", async () => {
    const { rtt, fake, client } = setup({ maxMessageSize: 4 });
    await client.connect();
    for (const fits of ["abcd", "éé", "€a", "😀", "\ud800a", new Uint8Array(4)]) {
      assert.equal(thrown(() => client.send(fits)), null, JSON.stringify(fits));
    }
    for (const [big, size] of [
      ["abcde", 5],
      ["ééa", 5],
      ["€€", 6],
      ["😀a", 5],
      ["\ud800\ud800", 6],
      [new Uint8Array(5), 5],
    ]) {
      let error = null;
      try {
        client.send(big);
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof rtt.MessageTooBigError, JSON.stringify(big));
      assert.equal(error.size, size, JSON.stringify(big));
      assert.equal(error.limit, 4);
      assert.equal(error.message, `message of ${size} bytes exceeds maxMessageSize=4`);
    }
    assert.equal(fake.conns[0].sent.length, 6);
  });

  test("a received message over the limit is not delivered and closes with message too big", async () => {
    const { fake, client } = setup({ maxMessageSize: 3, reconnect: false });
    await client.connect();
    fake.conns[0].sink.message("abc");
    fake.conns[0].sink.message(new Uint8Array([1]));
    fake.conns[0].sink.message("abcd");
    assert.deepEqual(fake.conns[0].closedWith, [1009, "message too big"]);
    assert.deepEqual(client.log, [["open"], ["message", "abc"], ["message", { bytes: [1] }], ["close", "message too big"]]);
    assert.equal(client.closeReason, "message too big");
  });

  test("messages with no message handler are dropped with one warning", async (t) => {
    const warn = t.mock.method(console, "warn", () => {});
    const rtt = load();
    const fake = fakeTransport(rtt);
    const client = rtt.client("fake", URL_);
    await client.connect();
    fake.conns[0].sink.message("one");
    fake.conns[0].sink.message("two");
    assert.deepEqual(
      warn.mock.calls.map((call) => call.arguments),
      [["rtt: a message arrived with no 'message' handler registered; it was dropped"]],
    );
  });

  test("handlers run in order with the client as this, and off() removes one", async () => {
    const { fake, client } = setup();
    const seen = [];
    const first = function (data) {
      seen.push(["first", data, this === client]);
    };
    client.on("message", first).on("message", (data) => seen.push(["second", data]));
    await client.connect();
    fake.conns[0].sink.message("a");
    assert.equal(client.off("message", first), client);
    client.off("message", () => {}); // unknown: ignored
    fake.conns[0].sink.message("b");
    assert.deepEqual(seen, [["first", "a", true], ["second", "a"], ["second", "b"]]);
  });
});

describe("errors and options", () => {
  // Moved from tests/ws/test_ws_browser.py: the same checks, without a browser.
  test("options are validated", () => {
    const rtt = load();
    fakeTransport(rtt, "ws");
    const url = "ws://127.0.0.1:1/";
    const make = (options) => () => rtt.client("ws", url, options);
    const errors = {
      unknown: thrown(make({ maxQueue: 5 })),
      negativeDelay: thrown(make({ reconnect: { minDelay: -1 } })),
      unknownPolicyField: thrown(make({ reconnect: { retries: 3 } })),
      jitter: thrown(make({ reconnect: { jitter: 2 } })),
      maxAttempts: thrown(make({ reconnect: { maxAttempts: 0 } })),
      stableAfter: thrown(make({ reconnect: { stableAfter: -1 } })),
      stableAfterType: thrown(make({ reconnect: { stableAfter: "5" } })),
      retryCodesType: thrown(make({ reconnect: { retryCodes: 4503 } })),
      retryCode: thrown(make({ reconnect: { retryCodes: [1001] } })),
      queueSize: thrown(make({ offlineQueueSize: 1.5 })),
      timeout: thrown(make({ connectTimeout: 0 })),
      reconnectType: thrown(make({ reconnect: "yes" })),
      transport: thrown(() => rtt.client("nope", url)),
      event: thrown(() => rtt.client("ws", url).on("opened", () => {})),
      message: thrown(() => rtt.client("ws", url).send({})),
      fine: thrown(make({ reconnect: false, offlineQueueSize: 0, maxMessageSize: 1, connectTimeout: 1 })),
    };
    assert.equal(errors.fine, null);
    delete errors.fine;
    assert.equal(errors.message.error, "InvalidMessageError");
    delete errors.message;
    assert.deepEqual(new Set(Object.values(errors).map((error) => error.error)), new Set(["TypeError"]), errors);
    assert.equal(
      errors.unknown.message,
      'unknown option "maxQueue" for rtt client; ' +
        "valid options: reconnect, offlineQueueSize, maxMessageSize, connectTimeout, resume",
    );
    assert.ok(
      errors.unknownPolicyField.message.includes(
        "valid options: minDelay, maxDelay, factor, jitter, maxAttempts, stableAfter, retryCodes",
      ),
    );
    assert.equal(errors.stableAfter.message, "reconnect stableAfter must be >= 0, got -1");
    assert.equal(errors.stableAfterType.message, 'reconnect stableAfter must be a number, got "5"');
    assert.equal(errors.retryCode.message, "reconnect retryCodes must be application codes (3000-4999), got 1001");
    assert.ok(errors.transport.message.includes("registered transports: ws"));
    assert.ok(
      errors.event.message.includes(
        "valid events: open, message, close, reconnecting, reconnected, reconnect_failed, error",
      ),
    );
  });

  test("more option and argument errors", () => {
    const { rtt, client } = setup();
    const cases = {
      notAnObject: () => rtt.client("fake", URL_, 5),
      array: () => rtt.client("fake", URL_, []),
      nanTimeout: () => rtt.client("fake", URL_, { connectTimeout: NaN }),
      maxBelowMin: () => new rtt.ReconnectPolicy({ minDelay: 5, maxDelay: 1 }),
      factor: () => new rtt.ReconnectPolicy({ factor: 0.5 }),
      maxMessageSize: () => rtt.client("fake", URL_, { maxMessageSize: 0 }),
      url: () => rtt.client("fake", 42),
      handler: () => client.on("open", "not a function"),
      closeCode: () => rtt.closeCode("bogus"),
      name: () => rtt.registerTransport("", { open() {} }),
      adapter: () => rtt.registerTransport("x", {}),
    };
    const errors = Object.fromEntries(Object.entries(cases).map(([name, fn]) => [name, thrown(fn)]));
    for (const [name, error] of Object.entries(errors)) assert.equal(error && error.error, "TypeError", name);
    assert.equal(errors.notAnObject.message, "rtt client options must be an object, got 5");
    assert.equal(errors.maxBelowMin.message, "reconnect maxDelay must be >= 5, got 1");
    assert.equal(errors.url.message, "url must be a string or a URL, got 42");
    assert.equal(errors.closeCode.message, 'not a CloseReason: "bogus"');
    // undefined means "the default"; a URL object is accepted.
    const client2 = rtt.client("fake", new URL("fake://other/"), { connectTimeout: undefined });
    assert.equal(client2.options.connectTimeout, 10);
    assert.equal(client2.url, "fake://other/");
    assert.ok(Object.isFrozen(client2.options));
    const policy = new rtt.ReconnectPolicy({ maxAttempts: 3 });
    assert.equal(rtt.client("fake", URL_, { reconnect: policy }).options.reconnect, policy);
  });

  test("the error classes form one hierarchy with their names", () => {
    const rtt = load();
    const classes = ["StateError", "InvalidMessageError", "MessageTooBigError", "OfflineQueueFullError", "ConnectError", "ConnectionClosed"];
    for (const name of classes) assert.ok(rtt[name].prototype instanceof rtt.RttError, name);
    assert.ok(rtt.RejectedError.prototype instanceof rtt.ConnectError);
    assert.ok(rtt.RttError.prototype instanceof Error);
    const rejected = new rtt.RejectedError(401);
    assert.deepEqual([rejected.name, rejected.status, rejected.reason, rejected.message], ["RejectedError", 401, "", "handshake rejected with HTTP 401"]);
    assert.equal(new rtt.ConnectionClosed("shutdown").message, "connection closed: shutdown");
    assert.equal(new rtt.ConnectionClosed(null).reason, null);
  });

  // Moved from tests/ws/test_ws_browser.py.
  test("a raising handler is reported", async (t) => {
    const errors = t.mock.method(console, "error", () => {});
    const warnings = t.mock.method(console, "warn", () => {});
    const { client } = setup();
    client.on("open", () => {
      throw new Error("boom");
    });
    client.on("error", () => {
      throw new Error("not recursive");
    });
    await client.connect();
    assert.deepEqual(client.log, [["open"], ["error", { error: "Error", message: "boom" }]]);
    assert.deepEqual(
      errors.mock.calls.map(({ arguments: [text, error] }) => `${text} ${error}`),
      ['rtt: a handler for "open" threw Error: boom', 'rtt: a handler for "error" threw Error: not recursive'],
    );
    assert.equal(warnings.mock.callCount(), 0);
  });

  test("a handler's rejected promise is reported too", async (t) => {
    const errors = t.mock.method(console, "error", () => {});
    const { client } = setup();
    client.on("open", async () => {
      throw new Error("later");
    });
    const reported = client.next("error");
    await client.connect();
    const [error] = await reported;
    assert.equal(error.message, "later");
    assert.equal(errors.mock.callCount(), 1);
  });
});

describe("the adapter contract", () => {
  // Moved from tests/ws/test_ws_browser.py (test_adapter_contract).
  test("failed writes, reconnection, stale connections, rejections", async () => {
    // stableAfter 0: each outage below counts its attempts from 1.
    const reconnect = { minDelay: 0, maxDelay: 0, jitter: 0, stableAfter: 0 };
    const { rtt, fake, client } = setup({ reconnect });
    const steps = {};
    await client.connect();

    // A write that fails because the connection just ended is kept, not lost.
    fake.conns[0].broken = true;
    steps.keptWhileOpen = thrown(() => client.send("kept"));
    steps.stateAfterFailedWrite = client.state;

    // The connection ends; attempt 1 fails, attempt 2 opens and gets the queue.
    fake.plan = ["fail", "open"];
    fake.conns[0].sink.closed("shutdown");
    await client.next("reconnected");
    steps.flushed = fake.conns[2].sent;
    fake.conns[0].sink.message("stale"); // an old connection is ignored

    // A 4xx rejection of a reconnection is final.
    fake.plan = ["reject"];
    fake.conns[2].sink.closed("protocol error");
    await client.waitClosed();
    steps.closeReason = client.closeReason;

    // Without reconnection, a failed write raises at once.
    const once = rtt.client("fake", URL_, { reconnect: false });
    await once.connect();
    fake.conns.at(-1).broken = true;
    steps.failedWriteWithoutReconnect = thrown(() => once.send("lost"));
    once.close();
    steps.closedWith = fake.conns.at(-1).closedWith;

    // A rejected first attempt leaves the client closed with "rejected".
    fake.plan = ["reject"];
    const refused = rtt.client("fake", URL_);
    steps.refused = await refused.connect().then(() => null, plain);
    steps.refusedReason = refused.closeReason;

    assert.equal(steps.keptWhileOpen, null);
    assert.equal(steps.stateAfterFailedWrite, "open");
    assert.deepEqual(steps.flushed, ["kept"]);
    assert.equal(steps.closeReason, "rejected");
    assert.equal(steps.failedWriteWithoutReconnect.error, "ConnectionClosed");
    assert.deepEqual(steps.closedWith, [1000, "client closed"]);
    assert.deepEqual(steps.refused, {
      error: "RejectedError",
      message: "handshake rejected with HTTP 403: Forbidden",
    });
    assert.equal(steps.refusedReason, "rejected");
    const log = client.log;
    assert.equal(
      summary(log),
      "open close:shutdown reconnecting error reconnecting open reconnected" +
        " close:protocol error reconnecting error reconnect_failed",
    );
    assert.deepEqual(log[2], ["reconnecting", 1, 0]);
    assert.deepEqual(log[3], ["error", { error: "ConnectError", message: "cannot connect to fake://server/: refused" }]);
    assert.deepEqual(log[6], ["reconnected", 2]);
    assert.deepEqual(log.at(-1), ["reconnect_failed", 1]);
  });

  test("loading the core twice keeps the first copy and its registered transports", () => {
    const rtt = load();
    fakeTransport(rtt);
    globalThis.rtt = rtt;
    try {
      const again = runAgain();
      assert.equal(again, rtt);
      assert.equal(rtt.client("fake", URL_).transport, "fake");
    } finally {
      delete globalThis.rtt;
    }
  });
});
