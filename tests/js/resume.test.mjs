// rtt-client.js's resume layer against a scripted adapter (SPEC.md 17; design of issue 17,
// sections 1.3, 1.4, 2.1-2.6): the wire on the vectors rtt/resume.py wrote
// (resume-vectors.json, by make_resume_vectors.py), then the client's state machine.
// Timers are Node's mock timers, so acks and timeouts happen exactly when told.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { fakeTransport, load, plain, record, settle, summary } from "./harness.mjs";

const vectors = JSON.parse(readFileSync(new URL("resume-vectors.json", import.meta.url), "utf8"));
const { ACK_EVERY, ACK_BYTES, ACK_DELAY, QUERY } = vectors.constants;
const [NEW, , RESUMED, RESUMED_BROKER] = vectors.welcomes;
const { id: ID, token: TOKEN, nonce: NONCE } = NEW.fields;
const HELLO = new Map(vectors.hellos).get(NONCE);
const ACK = new Map(vectors.acks);
const OTHER_ID = "other-session-id-00000";
const OTHER_TOKEN = "other-token-0000000000";
const URL_ = "fake://server/";

/** A welcome as rtt/resume.py writes it (Welcome.to_text), from its JSON fields. */
function welcome({ s = "new", why, id = ID, k = TOKEN, n = NONCE, r = 0, o, g }) {
  const fields = { v: 1, s, ...(why ? { why } : {}), id, k, n, r, ...(o !== undefined ? { o } : {}), w: 30 };
  return "\0W" + JSON.stringify(g ? { ...fields, g } : fields);
}

/** A recorded client (with session_lost in its log) on a fake transport, under mock timers. */
function setup(t, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const rtt = load();
  const fake = fakeTransport(rtt);
  const { url = URL_, ...rest } = options;
  const reconnect = { minDelay: 0, maxDelay: 0, jitter: 0, ...rest.reconnect };
  const client = record(rtt.client("fake", url, { ...rest, reconnect }));
  client.on("session_lost", (detail) => client.log.push(["session_lost", detail]));
  return { rtt, fake, client };
}

/** Connect, and welcome the client into a new session; returns the connection. */
async function welcomed(fake, client, text = NEW.text) {
  await client.connect();
  const conn = fake.conns.at(-1);
  conn.sink.message(text);
  return conn;
}

/** End the open connection; returns the next attempt's connection, opened. */
async function drop(t, fake, reason = "transport error") {
  const attempted = fake.attempted();
  fake.conns.at(-1).sink.closed(reason);
  t.mock.timers.tick(0); // the reconnection delay (0 s)
  return attempted;
}

/** The events since `from`, as summary() writes them, with session_lost's detail. */
function events(client, from = 0) {
  return client.log
    .slice(from)
    .map((event) => (event[0] === "session_lost" ? `session_lost:${event[1]}` : summary([event])))
    .join(" ");
}

const received = (client) => client.log.filter((event) => event[0] === "message").map((event) => event[1]);

/** A session in which the client wrote `written` messages (c0, c1, ...) and got `got`, then dropped. */
async function away(t, { written = 0, got = 0, options = {} } = {}) {
  const { rtt, fake, client } = setup(t, options);
  const first = await welcomed(fake, client);
  for (let i = 0; i < written; i++) client.send(`c${i}`);
  for (let i = 0; i < got; i++) first.sink.message(`s${i}`);
  const conn = await drop(t, fake);
  return { rtt, fake, client, first, conn };
}

describe("the wire, on rtt/resume.py's vectors", () => {
  test("the client asks with rtt_resume=1, reads the welcome, answers with the hello", async (t) => {
    for (const { text, fields } of vectors.welcomes.filter((w) => w.fields.status === "new")) {
      const { fake, client } = setup(t);
      const conn = await welcomed(fake, client, text);
      assert.equal(conn.url, `${URL_}?${QUERY}=${vectors.requests[0].value}`);
      assert.equal(client.socketId, fields.id);
      assert.equal(client.resumed, false);
      assert.deepEqual(conn.sent, [new Map(vectors.hellos).get(fields.nonce)]);
      assert.equal(events(client), "open");
      t.mock.timers.reset();
    }
  });

  test("text is escaped and unescaped as in Python; bytes are untouched", async (t) => {
    const { fake, client } = setup(t);
    const conn = await welcomed(fake, client);
    for (const [text, wire] of vectors.escape) {
      client.send(text);
      assert.equal(conn.sent.at(-1), wire, JSON.stringify(text));
    }
    client.send(new Uint8Array([0, 65]));
    assert.deepEqual(conn.sent.at(-1), { bytes: [0, 65] });
    const data = vectors.classify.filter((entry) => "data" in entry);
    for (const { wire } of data) conn.sink.message(wire);
    conn.sink.message(new Uint8Array([0, 0]));
    assert.deepEqual(received(client), [...data.map((entry) => entry.data), { bytes: [0, 0] }]);
  });

  test("controls: an ack trims, a loss is reported, a welcome or hello while open is a protocol error", async (t) => {
    const controls = vectors.classify.filter((entry) => "control" in entry);
    for (const { wire, control } of controls) {
      const { fake, client } = setup(t);
      const conn = await welcomed(fake, client);
      for (let i = 0; i < 5; i++) client.send(`c${i}`);
      conn.sink.message(wire);
      const [letter, payload] = control;
      if (letter === "A" || letter === "L") {
        assert.equal(client.state, "open", JSON.stringify(wire));
        assert.equal(conn.closedWith, null);
        assert.equal(events(client), letter === "L" ? `open session_lost:${payload}` : "open");
      } else {
        assert.deepEqual(conn.closedWith, [1002, "protocol error"], JSON.stringify(wire));
        assert.equal(events(client), "open close:protocol error reconnecting");
      }
      t.mock.timers.reset();
    }
  });

  test("every malformed control closes with protocol error, and nothing is delivered", async (t) => {
    for (const wire of vectors.invalid) {
      const { fake, client } = setup(t);
      const conn = await welcomed(fake, client);
      conn.sink.message(wire);
      assert.deepEqual(conn.closedWith, [1002, "protocol error"], JSON.stringify(wire));
      assert.equal(events(client), "open close:protocol error reconnecting", JSON.stringify(wire));
      t.mock.timers.reset();
    }
  });

  test("a first message that is not a welcome is data, and the connection stays plain", async (t) => {
    for (const text of vectors.not_welcomes) {
      const { fake, client } = setup(t);
      await client.connect();
      const conn = fake.conns[0];
      conn.sink.message(text);
      conn.sink.message("\0\0raw");
      client.send("\0raw");
      assert.deepEqual(received(client), [text, "\0\0raw"], JSON.stringify(text));
      assert.deepEqual(conn.sent, ["\0raw"]);
      assert.equal(client.socketId, null);
      t.mock.timers.reset();
    }
  });

  test("a version 1 welcome that breaks the rules is a protocol error", async (t) => {
    for (const text of vectors.bad_welcomes) {
      const { fake, client } = setup(t);
      const conn = await welcomed(fake, client, text);
      assert.deepEqual(conn.closedWith, [1002, "protocol error"], JSON.stringify(text));
      assert.deepEqual(received(client), []);
      assert.equal(client.socketId, null);
      t.mock.timers.reset();
    }
  });

  test("the resume request names the session, its token and the count received", async (t) => {
    const request = vectors.requests.find((r) => r.kind === "resume");
    const { conn } = await away(t, { got: request.received });
    assert.deepEqual([request.id, request.token], [ID, TOKEN]);
    assert.equal(conn.url, `${URL_}?${QUERY}=${request.value}`);
  });

  test("resumed and lost welcomes from the vectors", async (t) => {
    for (const { text, fields } of vectors.welcomes.filter((w) => w.fields.status !== "new")) {
      const written = fields.status === "resumed" ? fields.handled + 2 : 3;
      const { fake, client, conn } = await away(t, { written, got: fields.received ?? 0 });
      const before = client.log.length;
      assert.deepEqual(conn.sent, []); // nothing before the welcome
      conn.sink.message(text);
      const rest = Array.from({ length: written }, (_, i) => `c${i}`);
      if (fields.status === "resumed") {
        assert.deepEqual(conn.sent, [HELLO, ...rest.slice(fields.handled)]);
        assert.equal(client.resumed, true);
        const lost = fields.loss ? ` session_lost:${fields.loss}` : "";
        assert.equal(events(client, before), `open${lost} reconnected`);
      } else {
        assert.deepEqual(conn.sent, [HELLO]);
        assert.equal(client.resumed, false);
        assert.deepEqual(client.unconfirmed, rest);
        assert.equal(events(client, before), `open session_lost:${fields.why} reconnected`);
      }
      assert.equal(client.socketId, fields.id);
      assert.equal(fake.conns.length, 2);
      t.mock.timers.reset();
    }
  });
});

describe("the client's resume state machine", () => {
  test("resume is asked for only when on; the parameter goes before a fragment", async (t) => {
    for (const [url, resume, expected] of [
      ["fake://server/?a=1#top", true, `fake://server/?a=1&${QUERY}=1#top`],
      ["fake://server/?", true, `fake://server/?${QUERY}=1`],
      ["fake://server/?a=1&", true, `fake://server/?a=1&${QUERY}=1`],
      ["fake://server/?a=1", false, "fake://server/?a=1"],
    ]) {
      const { fake, client } = setup(t, { url, resume });
      await client.connect();
      assert.equal(fake.conns[0].url, expected);
      assert.equal(client.options.resume, resume);
      t.mock.timers.reset();
    }
    const { fake, client } = setup(t, { resume: false });
    await client.connect();
    fake.conns[0].sink.message(NEW.text); // not asked for: data
    client.send("\0x");
    assert.deepEqual(received(client), [NEW.text]);
    assert.deepEqual(fake.conns[0].sent, ["\0x"]);
    const rtt = load();
    fakeTransport(rtt);
    assert.throws(() => rtt.client("fake", URL_, { resume: 1 }), {
      name: "TypeError",
      message: "option resume must be true or false, got 1",
    });
  });

  test("messages written before the welcome count, and a resume resends from the server's count", async (t) => {
    const { fake, client } = setup(t);
    await client.connect();
    const first = fake.conns[0];
    client.send("\0early"); // raw: the server reads raw messages until the hello
    first.sink.message(NEW.text);
    client.send("\0late");
    client.send("last");
    assert.deepEqual(first.sent, ["\0early", HELLO, "\0\0late", "last"]);
    const conn = await drop(t, fake);
    client.send("queued");
    conn.sink.message(welcome({ s: "resumed", k: OTHER_TOKEN, r: 1, o: 0 }));
    assert.deepEqual(conn.sent, [HELLO, "\0\0late", "last", "queued"]);
    assert.equal(events(client), "open close:transport error reconnecting open reconnected");
    // The next request carries the token the last welcome issued.
    const next = await drop(t, fake);
    assert.equal(next.url, `${URL_}?${QUERY}=${ID}.${OTHER_TOKEN}.0`);
  });

  test("the server's acks trim what would be resent; one above the count written is a protocol error", async (t) => {
    const { fake, client } = setup(t);
    const first = await welcomed(fake, client);
    ["a", "b", "c"].forEach((message) => client.send(message));
    first.sink.message(ACK.get(1));
    first.sink.message("\0A0"); // late: ignored
    const conn = await drop(t, fake);
    conn.sink.message(welcome({ s: "resumed", r: 1, o: 0 }));
    assert.deepEqual(conn.sent, [HELLO, "b", "c"]);
    conn.sink.message("\0A4");
    assert.deepEqual(conn.closedWith, [1002, "protocol error"]);
  });

  test("the client acks every ACK_EVERY messages, at ACK_BYTES, or ACK_DELAY after the first", async (t) => {
    const { fake, client } = setup(t);
    const conn = await welcomed(fake, client);
    const acks = () => conn.sent.filter((message) => message.startsWith("\0A"));
    for (let i = 1; i < ACK_EVERY; i++) conn.sink.message(`m${i}`);
    assert.deepEqual(acks(), []);
    conn.sink.message("the last of them");
    assert.deepEqual(acks(), [ACK.get(ACK_EVERY)]);
    conn.sink.message(new Uint8Array(ACK_BYTES - 1));
    conn.sink.message("é"); // two bytes in UTF-8 reach the threshold
    assert.deepEqual(acks().at(-1), `\0A${ACK_EVERY + 2}`);
    conn.sink.message("one");
    t.mock.timers.tick(ACK_DELAY * 1000 - 1);
    assert.equal(acks().length, 2);
    t.mock.timers.tick(1);
    assert.deepEqual(acks().at(-1), `\0A${ACK_EVERY + 3}`);
    // After a resume the request told the server the count: the next ack is ACK_EVERY later.
    conn.sink.message("unacked");
    const next = await drop(t, fake);
    assert.equal(next.url.split(".").at(-1), String(ACK_EVERY + 4));
    next.sink.message(welcome({ s: "resumed", o: ACK_EVERY + 4 }));
    for (let i = 0; i < ACK_EVERY; i++) next.sink.message(`n${i}`);
    assert.deepEqual(
      next.sent.filter((message) => message.startsWith("\0A")),
      [`\0A${2 * ACK_EVERY + 4}`],
    );
    t.mock.timers.tick(1000);
    assert.equal(next.sent.length, 2); // the hello and that ack: no timer left behind
  });

  test("a drop before any welcome keeps at-most-once; the next attempt starts a session", async (t) => {
    const { fake, client } = setup(t);
    await client.connect();
    client.send("lost with the connection");
    const conn = await drop(t, fake);
    assert.equal(conn.url, `${URL_}?${QUERY}=1`);
    assert.equal(events(client), "open close:transport error reconnecting open reconnected");
    conn.sink.message(NEW.text);
    assert.deepEqual(conn.sent, [HELLO]);
  });

  test("lost: new socket id, unconfirmed kept and not resent, queue flushed; open, session_lost, reconnected", async (t) => {
    const { fake, client } = await away(t, { written: 2, got: 3 });
    const conn = fake.conns.at(-1);
    client.send(new Uint8Array([1, 2]));
    conn.sink.message(welcome({ s: "lost", why: "unknown", id: OTHER_ID, k: OTHER_TOKEN }));
    assert.deepEqual(conn.sent, [HELLO, { bytes: [1, 2] }]);
    assert.equal(client.socketId, OTHER_ID);
    assert.deepEqual(client.unconfirmed, ["c0", "c1"]);
    assert.equal(events(client, 4), "close:transport error reconnecting open session_lost:unknown reconnected");
    // Counts start again with the new session.
    const next = await drop(t, fake);
    assert.equal(next.url, `${URL_}?${QUERY}=${OTHER_ID}.${OTHER_TOKEN}.0`);
    next.sink.message(welcome({ s: "resumed", id: OTHER_ID, r: 1, o: 0 }));
    assert.deepEqual(next.sent, [HELLO]);
    assert.deepEqual(client.unconfirmed, ["c0", "c1"]); // kept until the next loss
  });

  test("no welcome within connectTimeout: unsupported, and the connection is plain", async (t) => {
    const { fake, client, conn } = await away(t, { written: 1, options: { connectTimeout: 2 } });
    client.send("queued");
    await settle();
    t.mock.timers.tick(1999);
    assert.equal(client.state, "reconnecting");
    t.mock.timers.tick(1);
    assert.equal(events(client), "open close:transport error reconnecting open session_lost:unsupported reconnected");
    assert.deepEqual(conn.sent, ["queued"]);
    assert.deepEqual(client.unconfirmed, ["c0"]);
    assert.equal(client.socketId, null);
    conn.sink.message("\0\0raw");
    assert.deepEqual(received(client), ["\0\0raw"]);
    assert.equal(fake.conns.length, 2);
  });

  test("a welcome later than connectTimeout is refused", async (t) => {
    const { client, conn } = await away(t, { options: { connectTimeout: 2 } });
    await settle();
    t.mock.timers.tick(2000);
    conn.sink.message(RESUMED_BROKER.text);
    assert.deepEqual(conn.closedWith, [1002, "protocol error"]);
    assert.deepEqual(received(client), []);
    assert.equal(client.socketId, null);
  });

  test("a client that ends closed holding a session keeps what was unconfirmed", async (t) => {
    const { fake, client } = setup(t);
    const conn = await welcomed(fake, client);
    client.send("a");
    client.send(new Uint8Array([1]));
    conn.sink.message("\0A1");
    conn.sink.closed("server closed");
    assert.deepEqual(client.unconfirmed, [new Uint8Array([1])]);
  });

  test("a first message that is not a welcome: unsupported, and it is delivered after reconnected", async (t) => {
    const { client, conn } = await away(t);
    conn.sink.message("hello");
    assert.equal(events(client), "open close:transport error reconnecting open session_lost:unsupported reconnected message");
    assert.deepEqual(received(client), ["hello"]);
  });

  test("a broken welcome to a resume, or one that disagrees with the counts, is a protocol error", async (t) => {
    // Broken: the attempt fails and the next one asks again with the same token.
    let { fake, conn } = await away(t, { got: 2 });
    conn.sink.message(vectors.bad_welcomes[0]);
    assert.deepEqual(conn.closedWith, [1002, "protocol error"]);
    t.mock.timers.tick(0);
    await settle();
    assert.equal(fake.conns.at(-1).url, `${URL_}?${QUERY}=${ID}.${TOKEN}.2`);
    t.mock.timers.reset();
    // Disagreeing: the client starts over without the session and reports it lost.
    for (const text of [
      welcome({ s: "resumed", r: 2, o: 0 }), // handled more than was written
      welcome({ s: "resumed", r: 0, o: 1 }), // replays from another count
      welcome({ s: "resumed", id: OTHER_ID, o: 0 }),
      welcome({ s: "new" }), // to a resume request
    ]) {
      let client;
      ({ fake, client, conn } = await away(t, { written: 1 }));
      conn.sink.message(text);
      assert.deepEqual(conn.closedWith, [1002, "protocol error"], text);
      t.mock.timers.tick(0);
      await settle();
      const next = fake.conns.at(-1);
      assert.equal(next.url, `${URL_}?${QUERY}=1`);
      assert.deepEqual(client.unconfirmed, ["c0"]);
      next.sink.message(welcome({ s: "lost", why: "unknown" })); // only "new" answers a new request
      assert.deepEqual(next.closedWith, [1002, "protocol error"]);
      t.mock.timers.tick(0);
      await settle();
      fake.conns.at(-1).sink.message(NEW.text);
      assert.equal(client.socketId, ID);
      assert.ok(events(client).endsWith("open session_lost:unknown reconnected"), events(client));
      t.mock.timers.reset();
    }
  });

  test("overflow: past offlineQueueSize the oldest unconfirmed is forgotten; a resume that needs it reports it", async (t) => {
    const { fake, client, conn } = await away(t, { written: 5, options: { offlineQueueSize: 3 } });
    conn.sink.message(welcome({ s: "resumed", r: 1, o: 0 }));
    assert.deepEqual(conn.sent, [HELLO, "c2", "c3", "c4"]);
    assert.deepEqual(client.unconfirmed, []);
    assert.ok(events(client).endsWith("open session_lost:overflow reconnected"));
    // The kept messages now count from the server's 1: an ack of 4 confirms them all.
    conn.sink.message("\0A4");
    assert.equal(client.state, "open");
    // Not needed: the server had handled what was forgotten.
    const next = await drop(t, fake);
    next.sink.message(welcome({ s: "resumed", r: 4, o: 0 }));
    assert.ok(events(client).endsWith("open reconnected"));
  });

  test("while away, unconfirmed messages count against the offline queue's bound", async (t) => {
    const { rtt, client, conn } = await away(t, { written: 2, options: { offlineQueueSize: 3 } });
    // The attempt waits for its welcome: the client is still reconnecting.
    client.send("x");
    assert.throws(() => client.send("y"), rtt.OfflineQueueFullError);
    assert.deepEqual(client.unsent, ["x"]);
    conn.sink.message(welcome({ s: "resumed", o: 0 }));
    assert.deepEqual(conn.sent, [HELLO, "c0", "c1", "x"]);
  });

  test("a resumed welcome below what the server acknowledged is a protocol error, unless the client forgot", async (t) => {
    const { fake, client } = setup(t);
    const first = await welcomed(fake, client);
    ["a", "b"].forEach((message) => client.send(message));
    first.sink.message("\0A2");
    const conn = await drop(t, fake);
    conn.sink.message(welcome({ s: "resumed", r: 1, o: 0 }));
    assert.deepEqual(conn.closedWith, [1002, "protocol error"]);
    assert.equal(client.socketId, null);
  });

  test("session_lost fires at most once per connection", async (t) => {
    const { client, conn } = await away(t);
    conn.sink.message(RESUMED_BROKER.text);
    conn.sink.message(new Map(vectors.losses).get("broker"));
    assert.equal(events(client), "open close:transport error reconnecting open session_lost:broker reconnected");
  });

  test("an L control while open reports the loss and keeps the session", async (t) => {
    const { fake, client } = setup(t);
    const conn = await welcomed(fake, client);
    conn.sink.message(new Map(vectors.losses).get("broker"));
    assert.equal(events(client), "open session_lost:broker");
    assert.equal(client.socketId, ID);
    assert.equal(client.state, "open");
  });

  test("a final close while awaiting the welcome ends the client; a retried application close starts over", async (t) => {
    let { fake, client, conn } = await away(t, { written: 1 });
    conn.sink.closed("server closed");
    assert.equal(events(client), "open close:transport error reconnecting close:server closed");
    assert.equal(client.state, "closed");
    assert.equal(client.closeReason, "server closed");
    assert.deepEqual(client.unconfirmed, ["c0"]);
    await settle();
    t.mock.timers.tick(1000);
    assert.equal(fake.conns.length, 2);
    t.mock.timers.reset();

    ({ fake, client, conn } = await away(t, { written: 1, options: { reconnect: { retryCodes: [4001] } } }));
    const attempted = fake.attempted();
    conn.sink.closed("application", 4001, "again");
    t.mock.timers.tick(0);
    const next = await attempted;
    assert.equal(next.url, `${URL_}?${QUERY}=1`);
    next.sink.message(NEW.text);
    assert.equal(
      events(client),
      "open close:transport error reconnecting close:application reconnecting open session_lost:unknown reconnected",
    );
  });

  test("close() while awaiting the welcome abandons the attempt", async (t) => {
    const { fake, client, conn } = await away(t, { written: 1 });
    client.close();
    assert.deepEqual(conn.closedWith, [1000, "client closed"]);
    conn.sink.message(NEW.text); // too late: ignored
    t.mock.timers.tick(60_000);
    assert.equal(events(client), "open close:transport error reconnecting");
    assert.equal(client.closeReason, "client closed");
    assert.equal(fake.conns.length, 2);
  });

  test("the resume token never appears in an error text", async (t) => {
    const { client, conn } = await away(t);
    conn.sink.failed(new Error(`cannot reach ${conn.url}`));
    const errors = client.log.filter((event) => event[0] === "error").map((event) => event[1].message);
    assert.deepEqual(errors, [`cannot connect to ${URL_}: cannot reach ${URL_}`]);
  });

  test("the size limit applies to the message, not its escaped form", async (t) => {
    const { fake, client } = setup(t, { maxMessageSize: 3 });
    const conn = await welcomed(fake, client);
    conn.sink.message("\0\0ab");
    assert.deepEqual(received(client), ["\0ab"]);
    conn.sink.message("\0\0abc");
    assert.deepEqual(conn.closedWith, [1009, "message too big"]);
    assert.deepEqual(plain(client.log.at(-2)), ["close", "message too big"]);
  });
});
