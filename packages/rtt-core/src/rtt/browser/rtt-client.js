// @ts-check
/**
 * rtt-client.js: the shared core of rtt's browser clients (SPEC.md sections 4, 5, 6, 7.2).
 *
 * The browser twin of the Python `rtt.Client`: the same events in the same order, the
 * same options (camelCase, delays in seconds), the same close reasons, backoff and
 * offline queue. Each transport plugin ships a small adapter file that calls
 * `rtt.registerTransport(name, adapter)`; the one adapter of plain-WebSocket transports is
 * here, and such a plugin's file only calls `rtt.registerWebSocketTransport(name)`
 * (rtt-ws.js for "ws").
 *
 * Plain ES2020 with no build step and no dependencies. It works as a classic script
 * (load it before the adapter) and as an imported module (rtt-client.mjs imports it and
 * holds the one list of named exports, which every plugin's .mjs entry re-exports);
 * either way it only adds `globalThis.rtt`.
 *
 *     <script src="http://host:port/rtt/rtt-client.js"></script>
 *     <script src="http://host:port/rtt/rtt-ws.js"></script>
 *     <script>
 *       const client = rtt.client("ws", "ws://host:port/", { reconnect: { maxAttempts: 10 } });
 *       client.on("message", (data) => console.log(data));
 *       client.connect().then(() => client.send("hello"));
 *     </script>
 *
 * Adapter contract (what a transport plugin writes; the core owns every policy):
 *
 *   adapter.open(url, options, sink) -> connection
 *       Start one connection attempt and return at once. `options` are the client's
 *       frozen options. Throwing fails the attempt. Do not call `sink` from inside
 *       `open()` itself.
 *   connection.send(data)
 *       Write one message: a string, or a Uint8Array for binary. Throw if the
 *       connection can no longer send (it is closing or closed): the client then keeps
 *       the message for the next connection instead of losing it silently.
 *   connection.close(code, reasonText)
 *       Close, or abandon an attempt, with a WebSocket close code and the CloseReason
 *       string. Must not throw; may be called more than once. The client ignores
 *       whatever the sink reports afterwards.
 *   sink.opened()        the attempt succeeded and the connection can send
 *   sink.message(data)   a message arrived: a string, or a Uint8Array for binary
 *   sink.closed(reason, code, text)
 *                        the open connection ended; `reason` is a CloseReason value;
 *                        for an application close ("application"), `code` and `text`
 *                        are the server application's (`closeFromWire`, `closeFromText`)
 *   sink.failed(error)   the attempt failed before opening; pass a RejectedError with
 *                        the HTTP status if the transport can tell the server refused it
 *
 * The core applies `connectTimeout`, checks message types and sizes in both
 * directions, queues while disconnected and decides whether to reconnect. It also
 * runs resume (SPEC.md 17) above the adapter: the URL `open` gets may carry an
 * `rtt_resume` query parameter, which the adapter passes on like any other.
 */
// `var` so that TypeScript sees the namespace's type as a global; as a classic script it
// is the same object as `globalThis.rtt`, as a module a local name for it.
var rtt = (() => {
  "use strict";

  // Until this script has run, the global may be missing or hold only what a page put there.
  const global = /** @type {{rtt?: {Client?: unknown}}} */ (/** @type {unknown} */ (globalThis));
  const existing = global.rtt;
  if (existing && existing.Client) {
    // Loaded twice (a script tag and a module import, say): keep the first copy, whose
    // transport registry the adapters already wrote to.
    return /** @type {typeof api} */ (existing);
  }
  const namespace = existing || (global.rtt = {});

  /**
   * A message as the client hands it over: a string, or a Uint8Array for binary.
   * @typedef {string | Uint8Array} Message
   */
  /**
   * What the core tells an adapter's connection attempt (see the contract above).
   * @typedef {{opened: () => void, message: (data: Message) => void,
   *            closed: (reason: string, code?: number | null, text?: string | null) => void,
   *            failed: (error: unknown) => void}} Sink
   */
  /**
   * One connection made by an adapter.
   * @typedef {{send: (data: Message) => void, close: (code: number, reasonText: string) => void}} Connection
   */
  /**
   * A transport plugin's adapter.
   * @typedef {{open: (url: string, options: ClientOptions, sink: Sink) => Connection}} Adapter
   */
  /**
   * The client's validated, frozen options.
   * @typedef {{readonly reconnect: ReconnectPolicy | null, readonly offlineQueueSize: number,
   *            readonly maxMessageSize: number, readonly connectTimeout: number,
   *            readonly resume: boolean, readonly [name: string]: unknown}} ClientOptions
   */

  // -- Close reasons (SPEC.md 6) ------------------------------------------------------

  /**
   * Why a connection ended: one vocabulary for every transport. Each value is also the
   * WebSocket close reason text rtt sends, so a peer recovers it exactly.
   * @readonly
   * @enum {string}
   */
  const CloseReason = Object.freeze({
    CLIENT_CLOSED: "client closed",
    SERVER_CLOSED: "server closed",
    SHUTDOWN: "shutdown",
    PING_TIMEOUT: "ping timeout",
    MESSAGE_TOO_BIG: "message too big",
    SLOW_CONSUMER: "slow consumer",
    REJECTED: "rejected",
    PROTOCOL_ERROR: "protocol error",
    TRANSPORT_ERROR: "transport error",
    APPLICATION: "application",
    SESSION_LOST: "session lost",
  });

  /** @type {Set<string>} */
  const REASONS = new Set(Object.values(CloseReason));

  // The WebSocket close code (RFC 6455 7.4) rtt sends with each reason, as in Python.
  /** @type {Map<string, number>} */
  const CODES = new Map([
    [CloseReason.CLIENT_CLOSED, 1000],
    [CloseReason.SERVER_CLOSED, 1000],
    [CloseReason.SHUTDOWN, 1001],
    [CloseReason.PING_TIMEOUT, 1011],
    [CloseReason.MESSAGE_TOO_BIG, 1009],
    [CloseReason.SLOW_CONSUMER, 1008],
    [CloseReason.REJECTED, 1008],
    [CloseReason.PROTOCOL_ERROR, 1002],
    [CloseReason.TRANSPORT_ERROR, 1006],
    [CloseReason.APPLICATION, 4000],
    [CloseReason.SESSION_LOST, 1000],
  ]);

  // Codes received without rtt's reason text (a plain WebSocket server); 1000 from a
  // server means it closed this socket on purpose.
  /** @type {Map<number, string>} */
  const FROM_CODE = new Map([
    [1000, CloseReason.SERVER_CLOSED],
    [1001, CloseReason.SHUTDOWN],
    [1002, CloseReason.PROTOCOL_ERROR],
    [1003, CloseReason.PROTOCOL_ERROR],
    [1007, CloseReason.PROTOCOL_ERROR],
    [1009, CloseReason.MESSAGE_TOO_BIG],
    [1011, CloseReason.TRANSPORT_ERROR],
    [1012, CloseReason.SHUTDOWN],
    [1013, CloseReason.SHUTDOWN],
  ]);

  // Deliberate closes by either side and rejections are final; the rest reconnect.
  /** @type {Set<string>} */
  const FINAL = new Set([
    CloseReason.CLIENT_CLOSED,
    CloseReason.SERVER_CLOSED,
    CloseReason.REJECTED,
    CloseReason.APPLICATION,
    CloseReason.SESSION_LOST,
  ]);

  /** @param {unknown} code */
  function isApplicationCode(code) {
    return typeof code === "number" && Number.isInteger(code) && code >= 3000 && code <= 4999;
  }

  /**
   * Map a received WebSocket close code and reason text to a CloseReason, exactly as
   * Python's `CloseReason.from_wire`: an application code (3000-4999) is "application";
   * otherwise the text wins when it is one of ours, then the code; no code at all (no
   * close frame) counts as 1006.
   * @param {number | null | undefined} code
   * @param {string} [text]
   * @returns {string} a CloseReason value
   */
  function closeReasonFromWire(code, text = "") {
    if (isApplicationCode(code)) return CloseReason.APPLICATION;
    if (REASONS.has(text)) return text;
    return FROM_CODE.get(code ?? 1006) ?? CloseReason.TRANSPORT_ERROR;
  }

  /**
   * The close a received WebSocket close code and text stand for: what an adapter passes
   * to `sink.closed(...)`. An application close keeps its code and text.
   * @param {number | null | undefined} code
   * @param {string} [text]
   * @returns {{reason: string, code: number | null, text: string | null}}
   */
  function closeFromWire(code, text = "") {
    const reason = closeReasonFromWire(code, text);
    return reason === CloseReason.APPLICATION
      ? { reason, code: /** @type {number} */ (code), text }
      : { reason, code: null, text: null };
  }

  /**
   * Read a close written as text (Python's `Close.from_text`, for protocols whose close
   * carries only text): rtt's reason (`"server closed"`), or an application code, a space
   * and its text (`"4001 logged in elsewhere"`). Null for anything else.
   * @param {string} text
   * @returns {{reason: string, code: number | null, text: string | null} | null}
   */
  function closeFromText(text) {
    if (REASONS.has(text) && text !== CloseReason.APPLICATION) return { reason: text, code: null, text: null };
    const match = /^([34][0-9]{3})(?: ([^]*))?$/.exec(text);
    if (match === null) return null;
    const code = Number(match[1]);
    const rest = match[2] ?? "";
    // What Python's Close.application accepts: at most 123 UTF-8 bytes, no control characters.
    if (!isApplicationCode(code) || /\p{Cc}/u.test(rest) || new TextEncoder().encode(rest).length > 123) return null;
    return { reason: CloseReason.APPLICATION, code, text: rest };
  }

  /**
   * The WebSocket close code that carries `reason` (Python's `CloseReason.code`).
   * @param {string} reason a CloseReason value
   * @returns {number}
   */
  function closeCode(reason) {
    const code = CODES.get(reason);
    if (code === undefined) throw new TypeError(`not a CloseReason: ${describe(reason)}`);
    return code;
  }

  // -- Errors (SPEC.md 9) ---------------------------------------------------------------

  /** Base class of every error rtt throws on purpose. */
  class RttError extends Error {
    /** @param {string} message */
    constructor(message) {
      super(message);
      this.name = new.target.name;
    }
  }

  /** The operation is not allowed in the client's current state. */
  class StateError extends RttError {}

  /** A message is neither a string nor binary data. */
  class InvalidMessageError extends RttError {}

  /** A message is larger than `maxMessageSize` (UTF-8 bytes for strings). */
  class MessageTooBigError extends RttError {
    /** @param {number} size @param {number} limit */
    constructor(size, limit) {
      super(`message of ${size} bytes exceeds maxMessageSize=${limit}`);
      /** @type {number} */ this.size = size;
      /** @type {number} */ this.limit = limit;
    }
  }

  /** The client is disconnected and its offline queue is full; nothing was queued. */
  class OfflineQueueFullError extends RttError {
    /** @param {number} size */
    constructor(size) {
      super(
        `client is not connected and its offline queue is full (${size} messages); ` +
          "the message was not queued",
      );
      /** @type {number} */ this.size = size;
    }
  }

  /** A connection attempt failed (refused, timed out, closed before opening). */
  class ConnectError extends RttError {
    /** @param {string} message @param {unknown} [cause] the underlying error, if any */
    constructor(message, cause) {
      super(message);
      if (cause !== undefined) this.cause = cause;
    }
  }

  /**
   * The server refused the handshake with an HTTP status. A native WebSocket cannot see
   * the status, so the plain WebSocket adapter reports a plain ConnectError instead; transports over
   * HTTP can tell.
   */
  class RejectedError extends ConnectError {
    /** @param {number} status @param {string} [reason] */
    constructor(status, reason = "") {
      super(`handshake rejected with HTTP ${status}` + (reason ? `: ${reason}` : ""));
      /** @type {number} */ this.status = status;
      /** @type {string} */ this.reason = reason;
    }
  }

  /** A message could not be written because the connection had just ended. */
  class ConnectionClosed extends RttError {
    /** @param {string | null} reason a CloseReason value, or null while not yet known */
    constructor(reason) {
      super("connection closed" + (reason ? `: ${reason}` : ""));
      /** @type {string | null} */ this.reason = reason;
    }
  }

  // -- Options (SPEC.md 7.2) ------------------------------------------------------------

  /**
   * A short description of a value for error messages (never a function's source).
   * @param {unknown} value
   * @returns {string}
   */
  function describe(value) {
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
    if (value === null || typeof value !== "object") return String(value);
    return (value.constructor && value.constructor.name) || "object";
  }

  /**
   * Fill in defaults, refusing names that are not options (a typo must not pass silently).
   * @template {object} T
   * @param {string} context
   * @param {T} defaults
   * @param {unknown} given
   * @returns {{-readonly [K in keyof T]: unknown}}
   */
  function withDefaults(context, defaults, given) {
    if (given === null || typeof given !== "object" || Array.isArray(given)) {
      throw new TypeError(`${context} options must be an object, got ${describe(given)}`);
    }
    const unknown = Object.keys(given).filter((name) => !(name in defaults));
    if (unknown.length > 0) {
      throw new TypeError(
        `unknown option${unknown.length > 1 ? "s" : ""} ${unknown.map(describe).join(", ")} ` +
          `for ${context}; valid options: ${Object.keys(defaults).join(", ")}`,
      );
    }
    const options = /** @type {Record<string, unknown>} */ ({ ...defaults });
    for (const [name, value] of Object.entries(given)) {
      if (value !== undefined) options[name] = value;
    }
    return /** @type {{-readonly [K in keyof T]: unknown}} */ (options);
  }

  /**
   * @param {string} context
   * @param {string} name
   * @param {unknown} value
   * @param {{min: number, minExclusive?: boolean}} bound
   * @returns {asserts value is number}
   */
  function checkNumber(context, name, value, { min, minExclusive = false }) {
    if (typeof value !== "number" || Number.isNaN(value)) {
      throw new TypeError(`${context} ${name} must be a number, got ${describe(value)}`);
    }
    if (value < min || (minExclusive && value === min)) {
      throw new TypeError(`${context} ${name} must be ${minExclusive ? ">" : ">="} ${min}, got ${value}`);
    }
  }

  /**
   * @param {string} context
   * @param {string} name
   * @param {unknown} value
   * @param {number} min
   * @returns {asserts value is number}
   */
  function checkInteger(context, name, value, min) {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(`${context} ${name} must be an integer, got ${describe(value)}`);
    }
    checkNumber(context, name, value, { min });
  }

  const POLICY_DEFAULTS = Object.freeze({
    minDelay: 1,
    maxDelay: 30,
    factor: 2,
    jitter: 0.5,
    maxAttempts: null,
    stableAfter: 5,
    retryCodes: [],
  });

  /**
   * How a client waits between reconnection attempts (Python's `rtt.ReconnectPolicy`).
   *
   * Attempt n (from 1) waits `min(maxDelay, minDelay * factor ** (n - 1))` seconds, moved
   * uniformly at random within ±`jitter` times itself, then capped at `maxDelay` (and at
   * least 0). `maxAttempts: null` retries forever. A subclass may override `delays()`.
   *
   * Only a connection that stays open `stableAfter` seconds makes the next outage start
   * again at attempt 1; one that ends sooner (a refusal after open, a crash-looping
   * server) goes on with the same delays and attempt count, so such a server is retried
   * ever more slowly and `maxAttempts` still ends it. 0 restarts at every outage.
   */
  class ReconnectPolicy {
    /**
     * @param {{minDelay?: number, maxDelay?: number, factor?: number, jitter?: number,
     *          maxAttempts?: number | null, stableAfter?: number,
     *          retryCodes?: number[]}} [fields] delays in seconds
     */
    constructor(fields = {}) {
      const o = withDefaults("reconnect", POLICY_DEFAULTS, fields);
      checkNumber("reconnect", "minDelay", o.minDelay, { min: 0 });
      checkNumber("reconnect", "maxDelay", o.maxDelay, { min: o.minDelay });
      checkNumber("reconnect", "factor", o.factor, { min: 1 });
      checkNumber("reconnect", "jitter", o.jitter, { min: 0 });
      if (o.jitter > 1) throw new TypeError(`reconnect jitter must be between 0 and 1, got ${o.jitter}`);
      if (o.maxAttempts !== null) checkInteger("reconnect", "maxAttempts", o.maxAttempts, 1);
      checkNumber("reconnect", "stableAfter", o.stableAfter, { min: 0 });
      const codes = o.retryCodes;
      if (!Array.isArray(codes) && !(codes instanceof Set)) {
        throw new TypeError(`reconnect retryCodes must be an array of close codes, got ${describe(codes)}`);
      }
      for (const code of codes) {
        if (!isApplicationCode(code)) {
          throw new TypeError(`reconnect retryCodes must be application codes (3000-4999), got ${describe(code)}`);
        }
      }
      /** @type {number} */ this.minDelay = o.minDelay;
      /** @type {number} */ this.maxDelay = o.maxDelay;
      /** @type {number} */ this.factor = o.factor;
      /** @type {number} */ this.jitter = o.jitter;
      /** @type {number | null} */ this.maxAttempts = o.maxAttempts;
      /** @type {number} */ this.stableAfter = o.stableAfter;
      /** Application close codes after which the client reconnects (SPEC.md 6.3). @type {readonly number[]} */
      this.retryCodes = Object.freeze([...new Set(/** @type {Iterable<number>} */ (codes))]);
    }

    /**
     * Yield the delay in seconds before each attempt; the generator ends when attempts
     * run out. A client takes a fresh generator for an outage that follows a connection
     * which stayed open `stableAfter` seconds, and goes on with the last one otherwise.
     * @param {() => number} [random] uniform in [0, 1), for tests
     * @returns {Generator<number, void, void>}
     */
    *delays(random = Math.random) {
      let base = this.minDelay;
      for (let attempt = 1; this.maxAttempts === null || attempt <= this.maxAttempts; attempt++) {
        const spread = base * this.jitter;
        yield Math.max(0, Math.min(this.maxDelay, base - spread + 2 * spread * random()));
        base = Math.min(this.maxDelay, base * this.factor);
      }
    }
  }

  const CLIENT_DEFAULTS = Object.freeze({
    reconnect: true,
    offlineQueueSize: 1000,
    maxMessageSize: 1048576,
    connectTimeout: 10,
    resume: true,
  });

  /**
   * @param {unknown} given
   * @returns {ClientOptions}
   */
  function clientOptions(given) {
    const o = withDefaults("rtt client", CLIENT_DEFAULTS, given);
    const reconnect = o.reconnect;
    if (reconnect === false || reconnect === null) o.reconnect = null;
    else if (reconnect === true) o.reconnect = new ReconnectPolicy();
    else if (reconnect instanceof ReconnectPolicy) o.reconnect = reconnect;
    else if (typeof reconnect === "object" && !Array.isArray(reconnect)) o.reconnect = new ReconnectPolicy(reconnect);
    else {
      throw new TypeError(
        `option reconnect must be a ReconnectPolicy, an object of its fields, true or false; got ${describe(reconnect)}`,
      );
    }
    checkInteger("option", "offlineQueueSize", o.offlineQueueSize, 0);
    checkInteger("option", "maxMessageSize", o.maxMessageSize, 1);
    checkNumber("option", "connectTimeout", o.connectTimeout, { min: 0, minExclusive: true });
    if (typeof o.resume !== "boolean") throw new TypeError(`option resume must be true or false, got ${describe(o.resume)}`);
    return /** @type {ClientOptions} */ (Object.freeze(o));
  }

  // -- Messages (SPEC.md 5) -------------------------------------------------------------

  /**
   * Strings stay strings; all binary becomes a Uint8Array view (no copy yet).
   * @param {unknown} data
   * @returns {Message}
   */
  function toMessage(data) {
    if (typeof data === "string") return data;
    // toString also recognises an ArrayBuffer from another realm (an iframe).
    if (Object.prototype.toString.call(data) === "[object ArrayBuffer]") {
      return new Uint8Array(/** @type {ArrayBuffer} */ (data));
    }
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const hint =
      typeof Blob !== "undefined" && data instanceof Blob ? "; read a Blob first: await blob.arrayBuffer()" : "";
    throw new InvalidMessageError(
      `message must be a string, ArrayBuffer, TypedArray or DataView, got ${describe(data)}${hint}`,
    );
  }

  // UTF-8 length without encoding: one byte per UTF-16 unit, plus the extra bytes.
  // A surrogate pair (two units) is four bytes; a lone surrogate goes out as U+FFFD,
  // three bytes, like any other unit from U+0800 up.
  /** @param {string} text @returns {number} */
  function utf8Length(text) {
    let size = text.length;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit < 0x80) continue;
      if (unit < 0x800) {
        size += 1;
        continue;
      }
      size += 2;
      const next = unit <= 0xdbff && unit >= 0xd800 ? text.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) i++; // the pair's second unit is counted already
    }
    return size;
  }

  // The size of a message if it exceeds `limit`, else 0. UTF-8 never takes more than
  // three bytes per UTF-16 unit, so most strings need no counting at all.
  /** @param {Message} message @param {number} limit @returns {number} */
  function oversize(message, limit) {
    if (typeof message !== "string") return message.byteLength > limit ? message.byteLength : 0;
    if (message.length * 3 <= limit) return 0;
    const size = utf8Length(message);
    return size > limit ? size : 0;
  }

  // -- Resume: the wire (SPEC.md 17.2; rtt/resume.py is the reference) -----------------
  //
  // A client holding a session comes back with `rtt_resume=<id>.<token>.<received>` and
  // the server answers with a welcome: the session goes on with nothing lost or
  // repeated. Both sides count a session's data messages per direction; controls (text
  // starting with U+0000 and a letter) carry the welcome, the hello, acks and losses,
  // and application text starting with U+0000 gets one more. Bytes are never touched.

  const RESUME_QUERY = "rtt_resume";
  // A receiver acknowledges at whichever comes first (the values of rtt.resume).
  const ACK_EVERY = 256; // unacknowledged messages
  const ACK_BYTES = 64 * 1024; // unacknowledged bytes
  const ACK_DELAY = 1.0; // seconds after the first unacknowledged message
  const CONTROL_LIMIT = 512;
  const CONTROL_LETTERS = new Set(["W", "H", "A", "L"]);
  const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;
  const NONCE = /^[A-Za-z0-9_-]{11}$/;
  const COUNT = /^(?:0|[1-9][0-9]{0,18})$/;
  const CONTROL_PAYLOAD = { A: COUNT, H: NONCE, L: /^[a-z]{1,32}$/, W: /^\{/ };

  /**
   * A welcome's fields (Python's `rtt.resume.Welcome`).
   * @typedef {{status: string, id: string, token: string, nonce: string, window: number,
   *            handled: number, received: number | null, why: string | null, loss: string | null}} Welcome
   */
  /**
   * What a resume attempt got first: the welcome, or null and the message that came instead.
   * @typedef {{welcome: Welcome | null, first?: Message}} Answer
   */

  /** @param {string} text @returns {Error} */
  function violation(text) {
    return new Error(`resume protocol error: ${text}`);
  }

  /** @param {Message} message @returns {Message} the wire form on a resume connection */
  function escape(message) {
    return typeof message === "string" && message.charCodeAt(0) === 0 ? "\0" + message : message;
  }

  /**
   * Tell a message on a resume connection apart: data (unescaped) or a control.
   * @param {string} text a text starting with U+0000
   * @returns {{data: string} | {letter: "W" | "H" | "A" | "L", payload: string}}
   */
  function classify(text) {
    if (text.charCodeAt(1) === 0) return { data: text.slice(1) };
    const letter = /** @type {"W" | "H" | "A" | "L"} */ (text.charAt(1));
    if (!CONTROL_LETTERS.has(letter)) throw violation("U+0000 followed by neither U+0000 nor a known letter");
    const payload = text.slice(2);
    if (text.length > CONTROL_LIMIT || !/^[\x00-\x1d\x1f-\x7f]*$/.test(payload) || !CONTROL_PAYLOAD[letter].test(payload)) {
      throw violation(`malformed ${letter} control`);
    }
    return { letter, payload };
  }

  // JSON.parse reads 1.0 as 1, where Python's json (the reference) reads a float, which is
  // not a count: only a broken server writes one, but both sides must refuse it alike.
  /** @param {string} text @param {string} key */
  function isFloat(text, key) {
    return new RegExp(`"${key}"\\s*:\\s*-?[0-9]+[.eE]`).test(text);
  }

  /** @param {RegExp} pattern @param {unknown} value */
  function matches(pattern, value) {
    return typeof value === "string" && pattern.test(value);
  }

  /** @param {unknown} value */
  function isCount(value) {
    return Number.isSafeInteger(value) && /** @type {number} */ (value) >= 0;
  }

  /**
   * Read a resume connection's first message: the welcome, or null when it is none (the
   * server does not offer resume). Throws for a version 1 welcome that breaks the rules.
   * @param {Message} message
   * @returns {Welcome | null}
   */
  function parseWelcome(message) {
    if (typeof message !== "string" || !message.startsWith("\0W{")) return null;
    /** @type {Record<string, any>} */
    let f;
    try {
      f = JSON.parse(message.slice(2));
    } catch {
      return null;
    }
    if (f.v !== 1 || isFloat(message, "v")) return null;
    if (message.length > CONTROL_LIMIT || !/^[\x00-\x7f]*$/.test(message)) throw violation("welcome too long or not ASCII");
    const keys = { new: "id k n r s v w", resumed: "id k n o r s v w", lost: "id k n r s v w why" }[
      typeof f.s === "string" ? f.s : ""
    ];
    if (keys === undefined || Object.keys(f).filter((key) => key !== "g").sort().join(" ") !== keys) {
      throw violation(`welcome with fields ${Object.keys(f).sort()}`);
    }
    const welcome = {
      status: f.s,
      id: f.id,
      token: f.k,
      nonce: f.n,
      window: f.w,
      handled: f.r,
      received: f.o ?? null,
      why: f.why ?? null,
      loss: f.g ?? null,
    };
    const resumed = f.s === "resumed";
    if (
      !matches(SESSION_ID, welcome.id) ||
      !matches(SESSION_ID, welcome.token) ||
      !matches(NONCE, welcome.nonce) ||
      typeof welcome.window !== "number" ||
      !(welcome.window > 0 && welcome.window < Infinity) ||
      !isCount(welcome.handled) ||
      (!resumed && welcome.handled !== 0) ||
      isFloat(message, "r") ||
      isFloat(message, "o") ||
      resumed !== isCount(welcome.received) ||
      (f.s === "lost") !== (welcome.why === "unknown" || welcome.why === "identity") ||
      !(welcome.loss === null || (resumed && welcome.loss === "broker"))
    ) {
      throw violation("malformed welcome");
    }
    return welcome;
  }

  /**
   * `url` with this attempt's resume parameter, before any fragment.
   * @param {string} url @param {string} value
   */
  function withResume(url, value) {
    const hash = url.indexOf("#");
    const base = hash < 0 ? url : url.slice(0, hash);
    const separator = !base.includes("?") ? "?" : /[?&]$/.test(base) ? "" : "&";
    return `${base}${separator}${RESUME_QUERY}=${value}${hash < 0 ? "" : url.slice(hash)}`;
  }

  // setTimeout fires at once for delays it cannot represent (over ~24.8 days, or
  // Infinity); such a wait means "never", so no timer is set.
  const MAX_TIMER_MS = 2147483647;

  /**
   * @param {() => void} fn
   * @param {number} seconds
   * @returns {ReturnType<typeof setTimeout> | undefined}
   */
  function later(fn, seconds) {
    const ms = seconds * 1000;
    return ms <= MAX_TIMER_MS ? setTimeout(fn, Math.max(0, ms)) : undefined;
  }

  /** @param {Connection} conn @param {string} reason a CloseReason value */
  function closeQuietly(conn, reason) {
    try {
      conn.close(closeCode(reason), reason);
    } catch (error) {
      console.error("rtt: closing a connection failed", error);
    }
  }

  // -- The client (SPEC.md 4) -----------------------------------------------------------

  /** @type {Map<string, Adapter>} */
  const transports = new Map();

  /**
   * Register a transport adapter under `name` (see the contract at the top of this file).
   * Registering the same name again replaces the adapter.
   * @param {string} name
   * @param {Adapter} adapter
   */
  function registerTransport(name, adapter) {
    if (typeof name !== "string" || name === "") throw new TypeError("transport name must be a non-empty string");
    if (!adapter || typeof adapter.open !== "function") {
      throw new TypeError(`adapter for ${describe(name)} must have an open(url, options, sink) method`);
    }
    transports.set(name, adapter);
  }

  // -- The plain WebSocket adapter (SPEC.md 4.7) --------------------------------------

  // Browsers may only send close code 1000 or 3000-4999 (anything else throws), so the
  // other rtt codes go out as 4000 + (code - 1000), e.g. 1009 as 4009. rtt's reason text
  // travels with them, and the server recovers the reason from the text.
  /** @param {number} code @returns {number} */
  function sendableCode(code) {
    return code === 1000 || (code >= 3000 && code <= 4999) ? code : 4000 + (code % 1000);
  }

  /**
   * The adapter of every transport whose wire is a plain WebSocket (SPEC.md 6, 6.3), over
   * the native `WebSocket`: text frames carry strings, binary frames bytes, close frames
   * rtt's close code and reason text or the server application's.
   * @type {Adapter}
   */
  const webSocketAdapter = Object.freeze({
    open(url, options, sink) {
      if (typeof WebSocket !== "function") throw new Error("this JavaScript environment has no WebSocket");
      const ws = new WebSocket(url); // a malformed URL throws here: a failed attempt
      ws.binaryType = "arraybuffer";
      let opened = false;
      ws.onopen = () => {
        opened = true;
        sink.opened();
      };
      ws.onmessage = (event) => {
        sink.message(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      };
      // An error event carries no detail (browsers hide it on purpose) and a close event
      // always follows it, so everything is decided in onclose.
      ws.onclose = (event) => {
        if (opened) {
          // An application close (3000-4999) keeps the server's code and text.
          const close = closeFromWire(event.code, event.reason);
          sink.closed(close.reason, close.code, close.text);
        } else {
          sink.failed(new ConnectError(`cannot connect to ${url}: the WebSocket closed with code ${event.code}`));
        }
      };
      return {
        send(data) {
          // A WebSocket that is closing drops sent data silently; throw instead, so the
          // client keeps the message for the next connection.
          if (ws.readyState !== WebSocket.OPEN) throw new ConnectionClosed(null);
          ws.send(data);
        },
        close(code, reasonText) {
          if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
          ws.close(sendableCode(code), reasonText);
        },
      };
    },
  });

  /**
   * Register the plain WebSocket adapter under `name`: the whole browser client of a
   * transport whose wire is a plain WebSocket (rtt-ws.js is `registerWebSocketTransport("ws")`).
   * What a browser cannot do over it: set handshake headers, or see the HTTP status of a
   * refused handshake (a 403 looks like any other failed attempt, so it is retried like one).
   * @param {string} name
   */
  function registerWebSocketTransport(name) {
    registerTransport(name, webSocketAdapter);
  }

  const EVENTS = Object.freeze([
    "open",
    "message",
    "close",
    "reconnecting",
    "reconnected",
    "reconnect_failed",
    "error",
    "session_lost",
  ]);

  /**
   * A client that reconnects by itself, with the events, options and states of the
   * Python `rtt.Client`.
   *
   * Events and their arguments: `open()`, `message(data)` (a string, or a Uint8Array for
   * binary), `close(reason)`, `reconnecting(attempt, delaySeconds)`,
   * `reconnected(attempt)`, `reconnect_failed(attempts)`, `error(error)`,
   * `session_lost(detail)`.
   *
   * Resume (SPEC.md 17.4): with `resume` on (the default) and a server that offers it
   * (`resume_window`), a reconnection continues the session: the messages each side sent
   * meanwhile arrive once, in order, and `socketId` stays. When it cannot,
   * `session_lost(detail)` fires between `open` and `reconnected`: messages may be
   * missing, so re-sync the application's state. `detail` is "unknown" (the server no
   * longer has the session), "identity" (authorize returned another identity),
   * "overflow" (this client forgot a message the server still needed: past
   * `offlineQueueSize` unconfirmed messages `send` forgets the oldest, as it cannot wait),
   * "unsupported" (the server stopped offering resume) or "broker" (the server may have
   * missed messages from its other processes; it also fires while open).
   *
   * States: "idle" → "connecting" → "open" ⇄ "reconnecting"; any → "closed" (final).
   *
   * Messages that arrive with no `message` handler registered are dropped, with a
   * console warning (once per client): unlike the Python client there is no `recv()`
   * buffer.
   */
  class Client {
    /**
     * @param {string} transport a registered transport name, e.g. "ws"
     * @param {string | URL} url the server's URL
     * @param {{reconnect?: boolean | ReconnectPolicy | object, offlineQueueSize?: number,
     *          maxMessageSize?: number, connectTimeout?: number, resume?: boolean}} [options]
     */
    constructor(transport, url, options = {}) {
      const adapter = transports.get(transport);
      if (adapter === undefined) {
        const known = [...transports.keys()].join(", ") || "none";
        throw new TypeError(
          `unknown transport ${describe(transport)}; registered transports: ${known}. ` +
            `Load its adapter first, e.g. <script src="/rtt/rtt-${transport}.js">`,
        );
      }
      if (typeof url !== "string" && !(typeof URL !== "undefined" && url instanceof URL)) {
        throw new TypeError(`url must be a string or a URL, got ${describe(url)}`);
      }
      /** The transport name. @type {string} */
      this.transport = transport;
      /** @type {string} */
      this.url = String(url);
      /** The validated options; `reconnect` is a ReconnectPolicy or null. */
      this.options = clientOptions(options);

      // Private state: the underscore names are not part of the API.
      /** @internal */
      this._adapter = adapter;
      /** @internal @type {string} */
      this._state = "idle";
      /** @internal @type {string | null} */
      this._closeReason = null;
      /** @internal @type {number | null} */
      this._closeCode = null;
      /** @internal @type {string | null} */
      this._closeText = null;
      /** @internal @type {Connection | null} the open connection, only while "open" */
      this._conn = null;
      /** @internal @type {((error: ConnectError) => void) | null} stops the attempt or reconnect wait in progress */
      this._cancel = null;
      /** @internal @type {Iterator<number, void> | null} the backoff of the current run of outages */
      this._delays = null;
      /** @internal attempts made in the current run of outages */
      this._attempts = 0;
      /** @internal @type {ReturnType<typeof later>} ends the run of outages once a connection is stable */
      this._stable = undefined;
      /** @internal @type {Message[]} the offline queue, oldest first */
      this._queue = [];
      /** @internal @type {Map<string, Function[]>} */
      this._handlers = new Map(EVENTS.map((event) => [event, []]));
      /** @internal */
      this._warnedUnhandled = false;

      // Resume (SPEC.md 17.4): the session this client holds, and its counts.
      /** @internal @type {{id: string, token: string, nonce: string} | null} */
      this._session = null;
      /** @internal how the current connection frames messages: "plain", "resume", or "first" (a first connection whose first message may be a welcome) */
      this._mode = "plain";
      /** @internal messages of the session received (handed to the handlers) */
      this._inCount = 0;
      /** @internal @type {Message[]} written in the session and not yet confirmed, oldest first */
      this._sent = [];
      /** @internal the session's count of `_sent[0]`; forgotten messages are below it */
      this._sentBase = 0;
      /** @internal whether messages below `_sentBase` were forgotten, not confirmed */
      this._forgot = false;
      /** @internal the count last acknowledged, the bytes received since, and the timer of the next ack */
      this._acked = 0;
      /** @internal */
      this._ackBytes = 0;
      /** @internal @type {ReturnType<typeof later>} */
      this._ackTimer = undefined;
      /** @internal @type {string | null} a loss that `session_lost` has yet to report */
      this._pendingLoss = null;
      /** @internal whether `session_lost` fired for the current connection (once at most) */
      this._signalled = false;
      /** @internal */
      this._resumed = false;
      /** @internal @type {Message[]} */
      this._unconfirmed = [];
      /** @type {(reason: string) => void} */
      let resolveClosed = () => {};
      /** @internal @type {Promise<string>} */
      this._closed = new Promise((resolve) => {
        resolveClosed = resolve;
      });
      /** @internal */
      this._resolveClosed = resolveClosed;
    }

    /** "idle", "connecting", "open", "reconnecting" or "closed". @type {string} */
    get state() {
      return this._state;
    }

    /** Why the client ended up "closed" (a CloseReason value); null before. @type {string | null} */
    get closeReason() {
      return this._closeReason;
    }

    /**
     * The server application's close code when the last connection ended with an
     * application close ("application"); set before the "close" event fires, null after a
     * close for one of rtt's own reasons. @type {number | null}
     */
    get closeCode() {
      return this._closeCode;
    }

    /** The application's close text, alongside `closeCode`; null when that is. @type {string | null} */
    get closeText() {
      return this._closeText;
    }

    /** A copy of the offline queue, oldest first; once "closed", the messages never sent. */
    get unsent() {
      return this._queue.map((message) => (typeof message === "string" ? message : message.slice()));
    }

    /**
     * The session's socket id (the server's `socket.id`) once a server that offers resume
     * has welcomed this client; null before, and with a server that does not.
     * @type {string | null}
     */
    get socketId() {
      return this._session === null ? null : this._session.id;
    }

    /** Whether the current connection continues the previous connection's session. @type {boolean} */
    get resumed() {
      return this._resumed;
    }

    /**
     * A copy of the messages written before the last loss of a session whose fate is
     * unknown: the server may or may not have handled them, and they were not sent again.
     * Set when `session_lost` reports a lost session ("unknown", "identity", "unsupported"),
     * and when the client ends "closed" holding a session; kept until the next loss.
     */
    get unconfirmed() {
      return this._unconfirmed.map((message) => (typeof message === "string" ? message : message.slice()));
    }

    /**
     * Register a handler. Handlers run in registration order with the client as `this`;
     * one that throws (or returns a rejected promise) is reported with console.error and
     * the `error` event, and the others still run.
     * @param {string} event one of the eight event names
     * @param {Function} handler
     * @returns {Client} this, for chaining
     */
    on(event, handler) {
      const handlers = this._handlers.get(event);
      if (handlers === undefined) {
        throw new TypeError(`unknown client event ${describe(event)}; valid events: ${EVENTS.join(", ")}`);
      }
      if (typeof handler !== "function") {
        throw new TypeError(`handler for ${describe(event)} must be a function, got ${describe(handler)}`);
      }
      handlers.push(handler);
      return this;
    }

    /**
     * Remove a handler registered with `on`; unknown handlers are ignored.
     * @param {string} event
     * @param {Function} handler
     * @returns {Client} this
     */
    off(event, handler) {
      const handlers = this._handlers.get(event) || [];
      const index = handlers.indexOf(handler);
      if (index >= 0) handlers.splice(index, 1);
      return this;
    }

    /**
     * Make the first connection attempt, bounded by `connectTimeout`. Resolves once
     * `open` has fired. The first attempt is not retried, so a wrong URL is reported at
     * once: it rejects with a ConnectError and leaves the client "closed". Allowed once.
     * @returns {Promise<void>}
     */
    connect() {
      if (this._state !== "idle") {
        return Promise.reject(new StateError(`cannot connect in state ${this._state}`));
      }
      this._state = "connecting";
      return new Promise((resolve, reject) => {
        this._attempt(
          (conn) => {
            const error = this._adopt(conn, 0);
            if (error === null) {
              resolve();
              return;
            }
            this._finalise(CloseReason.TRANSPORT_ERROR);
            reject(new ConnectError(`connection to ${this.url} ended while sending the offline queue`, error));
          },
          (error) => {
            if (this._state === "connecting") {
              this._finalise(error instanceof RejectedError ? CloseReason.REJECTED : CloseReason.TRANSPORT_ERROR);
            }
            reject(error);
          },
        );
      });
    }

    /**
     * Send a message: a string, ArrayBuffer, TypedArray or DataView. While "open" it is
     * written at once; while "connecting" or "reconnecting" it joins the offline queue
     * and is sent, in order, when the connection opens. With resume, a message written is
     * also kept until the server confirms it, and the unconfirmed messages and the queue
     * hold at most `offlineQueueSize` together: past it, while "open", the oldest
     * unconfirmed message is forgotten (a later resume that needs it reports
     * `session_lost("overflow")`), and while disconnected the queue is full.
     * @param {string | ArrayBuffer | ArrayBufferView} data
     * @throws {InvalidMessageError} data is of another type
     * @throws {MessageTooBigError} data is larger than maxMessageSize
     * @throws {OfflineQueueFullError} disconnected and the queue is full
     * @throws {StateError} before connect() or once "closed"
     * @throws {ConnectionClosed} the connection just ended and reconnection is off
     */
    send(data) {
      const message = toMessage(data);
      const size = oversize(message, this.options.maxMessageSize);
      if (size > 0) throw new MessageTooBigError(size, this.options.maxMessageSize);
      const state = this._state;
      if (state === "open" && this._conn !== null) {
        try {
          this._write(this._conn, message);
          return;
        } catch (error) {
          // Not written: the connection ended and its close is on the way. Keep the
          // message for the next connection, as the Python client does.
          if (this.options.reconnect === null) throw new ConnectionClosed(null);
        }
      } else if (state === "idle" || state === "closed") {
        throw new StateError(`cannot send in state ${state}`);
      }
      // The bound counts the messages of a session kept for a resend too (SPEC.md 17.4).
      const limit = this.options.offlineQueueSize;
      if (this._queue.length + this._sent.length >= limit) throw new OfflineQueueFullError(limit);
      // Copy binary data: the caller may reuse its buffer before the queue is sent.
      this._queue.push(typeof message === "string" ? message : message.slice());
    }

    /**
     * Close deliberately: never reconnects. Fires `close("client closed")` if the client
     * was open, and nothing after it. Queued messages stay in `unsent`. Idempotent.
     */
    close() {
      if (this._state === "closed") return;
      const conn = this._conn;
      const cancel = this._cancel;
      // Finalise first, so the callbacks the cancellation triggers see "closed" and stop.
      this._finalise(CloseReason.CLIENT_CLOSED);
      if (cancel !== null) cancel(new ConnectError(`the client was closed before it connected to ${this.url}`));
      if (conn !== null) {
        closeQuietly(conn, CloseReason.CLIENT_CLOSED);
        this._emit("close", CloseReason.CLIENT_CLOSED);
      }
    }

    /**
     * Wait until the client is "closed" for good.
     * @returns {Promise<string>} the close reason
     */
    waitClosed() {
      return this._closed;
    }

    // -- Internals ------------------------------------------------------------------

    /**
     * One connection attempt. Exactly one of onOpen(conn, answer) / onFail(error) is
     * called, except when the server closes for good in answer to a resume: then the
     * client goes on as if its last connection had closed so (`_lost`).
     * `this._cancel` fails the attempt early (close() uses it).
     *
     * Holding a session (or owing the report of a lost one), the attempt lasts until the
     * server's first message, within the same `connectTimeout`: `answer` is the welcome,
     * or null (then `first` is the message, if one came) when the server no longer offers
     * resume. Otherwise `answer` is null and a first welcome arrives as a message.
     * @internal
     * @param {(conn: Connection, answer?: Answer) => void} onOpen
     * @param {(error: ConnectError) => void} onFail
     */
    _attempt(onOpen, onFail) {
      let settled = false;
      /** @type {Connection | null} */
      let conn = null;
      /** @type {ReturnType<typeof later>} */
      let timer = undefined;
      const session = this._session;
      const resume = this.options.resume;
      const awaiting = resume && (session !== null || this._pendingLoss !== null);
      let waiting = false; // opened, and waiting for the welcome
      const value = session === null ? "1" : `${session.id}.${session.token}.${this._inCount}`;
      const url = resume ? withResume(this.url, value) : this.url;
      const settle = () => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        return true;
      };
      /** @param {unknown} error @param {string} [reason] how to close the connection */
      const fail = (error, reason = CloseReason.CLIENT_CLOSED) => {
        if (!settle()) return;
        if (conn !== null) closeQuietly(conn, reason);
        // The resume token never reaches an error text (logs): they name the client's URL.
        if (error instanceof Error && url !== this.url) error.message = error.message.split(url).join(this.url);
        onFail(
          error instanceof ConnectError
            ? error
            : new ConnectError(`cannot connect to ${this.url}: ${errorText(error)}`, error),
        );
      };
      /** @param {Welcome | null} welcome @param {Message} [first] */
      const answer = (welcome, first) => {
        const problem = welcome === null ? null : this._welcomeProblem(welcome);
        if (problem === null) {
          if (settle()) onOpen(/** @type {Connection} */ (conn), { welcome, first });
          return;
        }
        // The counts disagree: start over without the session (design 2.6).
        if (this._session !== null) this._dropSession("unknown");
        fail(violation(problem), CloseReason.PROTOCOL_ERROR);
      };
      /** @type {Sink} */
      const sink = Object.freeze({
        opened: () => {
          if (settled) return;
          if (conn === null) {
            queueMicrotask(sink.opened); // the adapter called back from inside open()
            return;
          }
          if (awaiting) waiting = true;
          else if (settle()) onOpen(conn);
        },
        failed: (error) => fail(error),
        message: (data) => {
          if (waiting && !settled) {
            /** @type {Welcome | null} */
            let welcome;
            try {
              welcome = parseWelcome(data);
            } catch (error) {
              fail(error, CloseReason.PROTOCOL_ERROR);
              return;
            }
            answer(welcome, welcome === null ? data : undefined);
          } else if (conn !== null && this._conn === conn) this._received(data);
        },
        closed: (reason, code = null, text = null) => {
          if (settled) {
            if (conn !== null && this._conn === conn) this._lost(reason, code, text);
          } else if (waiting && FINAL.has(reason)) {
            // The server ended the session while this client was away (design 2.5).
            settle();
            this._dropSession("unknown");
            this._lost(reason, code, text);
          } else {
            fail(new ConnectError(`connection to ${this.url} closed before opening (${reason})`));
          }
        },
      });
      const seconds = this.options.connectTimeout;
      timer = later(() => {
        if (waiting) answer(null);
        else fail(new ConnectError(`connecting to ${this.url} timed out after ${seconds} s`));
      }, seconds);
      // Set before open(): if it throws, onFail may already start the next wait.
      this._cancel = fail;
      try {
        conn = this._adapter.open(url, this.options, sink);
      } catch (error) {
        fail(error);
      }
    }

    /**
     * Take a new connection: apply a resume attempt's answer, flush the queue, then open.
     * Returns null, or the error that ended the connection meanwhile (it is then closed).
     * @internal
     * @param {Connection} conn
     * @param {number} attempt
     * @param {Answer} [answer]
     * @returns {unknown}
     */
    _adopt(conn, attempt, answer) {
      // Flush while the state is still "connecting"/"reconnecting" (SPEC.md 4.4): the
      // queue goes out in order and before anything sent after `open`. A message leaves
      // the queue only once written, so a failed flush loses nothing still queued.
      try {
        if (answer === undefined) this._mode = this.options.resume ? "first" : "plain";
        else this._resume(conn, answer.welcome);
        while (this._queue.length > 0) {
          const message = /** @type {Message} */ (this._queue.shift());
          try {
            this._write(conn, message);
          } catch (error) {
            this._queue.unshift(message);
            throw error;
          }
        }
      } catch (error) {
        closeQuietly(conn, CloseReason.TRANSPORT_ERROR);
        return error;
      }
      this._conn = conn;
      this._cancel = null;
      this._state = "open";
      const policy = this.options.reconnect;
      if (policy !== null) {
        // Stayed up long enough: the next outage starts again at attempt 1 (SPEC.md 4.4).
        this._stable = later(() => {
          this._stable = undefined;
          this._delays = null;
        }, policy.stableAfter);
      }
      this._emit("open");
      const loss = this._pendingLoss;
      this._pendingLoss = null;
      this._signalled = false;
      if (loss !== null && this._state === "open") this._signal(loss);
      if (attempt > 0 && this._state === "open") this._emit("reconnected", attempt);
      // A first message that was not a welcome is data, delivered once the client is open.
      if (answer !== undefined && answer.first !== undefined && this._state === "open") this._received(answer.first);
      return null;
    }

    /**
     * Write an application message, and keep it until the server confirms it.
     * @internal
     * @param {Connection} conn
     * @param {Message} message
     */
    _write(conn, message) {
      if (this._mode === "plain") {
        conn.send(message);
        return;
      }
      // Before the welcome the server reads raw messages (and counts them); after it, escaped.
      conn.send(this._mode === "resume" ? escape(message) : message);
      this._sent.push(typeof message === "string" ? message : message.slice());
      if (this._sent.length + this._queue.length > this.options.offlineQueueSize) {
        // `send` cannot wait for a confirmation, so the oldest is forgotten (design 1.4).
        this._sent.shift();
        this._sentBase++;
        this._forgot = true;
      }
    }

    // -- Resume (SPEC.md 17.4; design 2.5) -----------------------------------------

    /**
     * The welcome of a resume attempt, before `open`: sets the loss to report, sends the
     * hello, then what the server has not handled. Null: the server no longer offers
     * resume, and the messages it may not have had go to `unconfirmed`.
     * @internal
     * @param {Connection} conn
     * @param {Welcome | null} welcome
     */
    _resume(conn, welcome) {
      this._resumed = welcome !== null && welcome.status === "resumed";
      if (welcome === null) {
        this._dropSession("unsupported");
        // Read the first message as a first connection's: a welcome after all (a server
        // slower than connectTimeout) is refused, anything else is data.
        this._mode = "first";
        return;
      }
      if (welcome.status === "resumed") {
        // The server had `handled` of our messages. If it needs some this client forgot,
        // they are lost, and the messages kept go on from its count.
        if (welcome.handled < this._sentBase) this._pendingLoss = "overflow";
        this._sent.splice(0, welcome.handled - this._sentBase);
        this._sentBase = welcome.handled;
        this._forgot = false;
        if (welcome.loss !== null) this._pendingLoss = welcome.loss;
      } else if (welcome.why !== null) {
        this._dropSession(welcome.why);
      }
      this._welcome(conn, welcome);
      for (const message of this._sent) conn.send(escape(message));
    }

    /**
     * Why a resume attempt's welcome cannot be right, or null (design 2.6).
     * @internal
     * @param {Welcome} welcome
     * @returns {string | null}
     */
    _welcomeProblem(welcome) {
      const session = this._session;
      const status = welcome.status;
      if ((session === null) !== (status === "new")) return `a "${status}" welcome to this request`;
      if (session === null || status !== "resumed") return null;
      const out = this._sentBase + this._sent.length;
      if (welcome.id !== session.id) return "another session resumed";
      if (welcome.received !== this._inCount) return `a replay from ${welcome.received}, not ${this._inCount}`;
      if (welcome.handled > out) return `${welcome.handled} messages handled of ${out} written`;
      if (welcome.handled < this._sentBase && !this._forgot) return `${welcome.handled} handled, below the acked ${this._sentBase}`;
      return null;
    }

    /**
     * Take the session a welcome names, and switch this connection to resume framing.
     * @internal
     * @param {Connection} conn
     * @param {Welcome} welcome
     */
    _welcome(conn, welcome) {
      this._session = { id: welcome.id, token: welcome.token, nonce: welcome.nonce };
      this._acked = this._inCount; // the resume request told the server
      this._mode = "resume";
      conn.send("\0H" + welcome.nonce);
    }

    /** @internal The session is gone: its unconfirmed messages are not sent again. @param {string} detail */
    _dropSession(detail) {
      this._pendingLoss = detail;
      this._unconfirmed = this._sent;
      this._session = null;
      this._forgetSent();
      this._inCount = 0;
    }

    /** @internal Start counting what is written from 0 again. */
    _forgetSent() {
      this._sent = [];
      this._sentBase = 0;
      this._forgot = false;
    }

    /**
     * A first message on a first connection: the welcome of a server that offers resume,
     * or data from one that does not. Returns whether it is data to deliver.
     * @internal
     * @param {Message} data
     * @returns {boolean}
     */
    _first(data) {
      /** @type {Welcome | null} */
      let welcome;
      try {
        welcome = parseWelcome(data);
        if (welcome !== null && welcome.status !== "new") throw violation(`a "${welcome.status}" welcome to a new session`);
      } catch {
        this._broken();
        return false;
      }
      if (welcome === null) {
        this._mode = "plain";
        this._forgetSent();
        return true;
      }
      try {
        this._welcome(/** @type {Connection} */ (this._conn), welcome);
      } catch {
        // Ended meanwhile: its close is on the way, and the next attempt resumes.
      }
      return false;
    }

    /**
     * A control message while open: an ack, or a loss (design 2.3).
     * @internal
     * @param {string} letter
     * @param {string} payload
     */
    _control(letter, payload) {
      if (letter === "L") {
        this._signal(payload);
        return;
      }
      const count = Number(payload);
      if (letter !== "A" || count > this._sentBase + this._sent.length) {
        this._broken(); // a welcome or a hello now, or an ack of messages never written
        return;
      }
      if (count > this._sentBase) {
        this._sent.splice(0, count - this._sentBase);
        this._sentBase = count;
        this._forgot = false; // what was forgotten is confirmed now
      }
    }

    /** @internal Fire `session_lost(detail)`, at most once per connection. @param {string} detail */
    _signal(detail) {
      if (this._signalled) return;
      this._signalled = true;
      this._emit("session_lost", detail);
    }

    /**
     * Count a message received in the session; acknowledge at a threshold or after a delay.
     * @internal
     * @param {Message} message
     */
    _count(message) {
      this._inCount++;
      this._ackBytes += typeof message === "string" ? utf8Length(message) : message.byteLength;
      if (this._inCount - this._acked >= ACK_EVERY || this._ackBytes >= ACK_BYTES) this._ack();
      else if (this._ackTimer === undefined) this._ackTimer = later(() => this._ack(), ACK_DELAY);
    }

    /** @internal */
    _ack() {
      clearTimeout(this._ackTimer);
      this._ackTimer = undefined;
      this._ackBytes = 0;
      this._acked = this._inCount;
      try {
        if (this._conn !== null) this._conn.send(`\0A${this._inCount}`);
      } catch {
        // Ended meanwhile: the next resume request carries the count.
      }
    }

    /** @internal The server broke the resume wire rules. */
    _broken() {
      if (this._conn !== null) closeQuietly(this._conn, CloseReason.PROTOCOL_ERROR);
      this._lost(CloseReason.PROTOCOL_ERROR);
    }

    /** @internal @param {Message} data */
    _received(data) {
      const mode = this._mode;
      if (mode === "first" && !this._first(data)) return;
      let message = data;
      if (mode === "resume" && typeof data === "string" && data.charCodeAt(0) === 0) {
        /** @type {ReturnType<typeof classify>} */
        let kind;
        try {
          kind = classify(data);
        } catch {
          this._broken();
          return;
        }
        if ("letter" in kind) {
          this._control(kind.letter, kind.payload);
          return;
        }
        message = kind.data;
      }
      // The same limit as the Python client's (SPEC.md 5.2): an oversized message is not
      // delivered and the connection is closed with "message too big".
      if (oversize(message, this.options.maxMessageSize) > 0) {
        if (this._conn !== null) closeQuietly(this._conn, CloseReason.MESSAGE_TOO_BIG);
        this._lost(CloseReason.MESSAGE_TOO_BIG);
        return;
      }
      if (mode === "resume") this._count(message);
      if (this._listeners("message").length === 0 && !this._warnedUnhandled) {
        // Never lose a message without a word: say so once, not once per message.
        this._warnedUnhandled = true;
        console.warn("rtt: a message arrived with no 'message' handler registered; it was dropped");
      }
      this._emit("message", message);
    }

    /**
     * The open connection ended: close for good, or reconnect (SPEC.md 4.4, 6).
     * @internal
     * @param {string} reason a CloseReason value
     * @param {number | null} [code] an application close's code
     * @param {string | null} [text] an application close's text
     */
    _lost(reason, code = null, text = null) {
      this._conn = null;
      clearTimeout(this._stable);
      this._stopAcks();
      // Before any welcome, what was written keeps today's at-most-once (design 1.4).
      if (this._session === null) this._forgetSent();
      const application = reason === CloseReason.APPLICATION;
      this._closeCode = application ? (code ?? CODES.get(reason) ?? null) : null;
      this._closeText = application ? (text ?? "") : null;
      const policy = this.options.reconnect;
      const retry = application && policy !== null && policy.retryCodes.includes(/** @type {number} */ (this._closeCode));
      if (policy === null || (FINAL.has(reason) && !retry)) {
        this._finalise(reason);
        this._emit("close", reason);
        return;
      }
      this._state = "reconnecting";
      this._emit("close", reason);
      if (this._state !== "reconnecting") return; // a handler closed the client
      if (this._delays === null || policy.stableAfter === 0) {
        this._delays = policy.delays();
        this._attempts = 0;
      }
      this._reconnect(this._delays, this._attempts);
    }

    /**
     * Wait for the next delay, then try; `attempts` is how many were made already.
     * @internal
     * @param {Iterator<number, void>} delays
     * @param {number} attempts
     */
    _reconnect(delays, attempts) {
      const next = delays.next();
      if (next.done) {
        this._finalise(CloseReason.TRANSPORT_ERROR);
        this._emit("reconnect_failed", attempts);
        return;
      }
      const attempt = attempts + 1;
      this._attempts = attempt;
      const delay = next.value;
      this._emit("reconnecting", attempt, delay);
      if (this._state !== "reconnecting") return; // a handler closed the client
      /** @param {unknown} error */
      const retry = (error) => {
        if (this._state !== "reconnecting") return; // close() cancelled the attempt
        this._emit("error", error);
        if (error instanceof RejectedError && error.status < 500) {
          // Refused outright (4xx): asking again will not help.
          this._finalise(CloseReason.REJECTED);
          this._emit("reconnect_failed", attempt);
        } else if (this._state === "reconnecting") {
          this._reconnect(delays, attempt);
        }
      };
      const timer = later(() => {
        this._attempt((conn, answer) => {
          const error = this._adopt(conn, attempt, answer);
          if (error !== null) retry(error);
        }, retry);
      }, delay);
      this._cancel = () => clearTimeout(timer);
    }

    /** @internal The connection ended: the next resume request carries the count instead. */
    _stopAcks() {
      clearTimeout(this._ackTimer);
      this._ackTimer = undefined;
      this._ackBytes = 0;
    }

    /** @internal @param {string} reason a CloseReason value */
    _finalise(reason) {
      clearTimeout(this._stable);
      this._stopAcks();
      if (this._session !== null && this._sent.length > 0) this._unconfirmed = this._sent.slice();
      this._state = "closed";
      this._closeReason = reason;
      this._conn = null;
      this._cancel = null;
      this._resolveClosed(reason);
    }

    /**
     * Call every handler, then report each one that threw (as the Python client does,
     * `error` fires after the event's other handlers ran, and never recursively).
     * @internal
     * @param {string} event
     * @param {...unknown} args
     */
    _emit(event, ...args) {
      /** @type {unknown[]} */
      const failures = [];
      for (const handler of this._listeners(event).slice()) {
        try {
          const result = handler.apply(this, args);
          if (result && typeof result.then === "function") {
            result.then(undefined, (/** @type {unknown} */ error) => this._handlerFailed(event, error));
          }
        } catch (error) {
          failures.push(error);
        }
      }
      for (const error of failures) this._handlerFailed(event, error);
    }

    /**
     * The handlers of one of the eight events.
     * @internal
     * @param {string} event
     * @returns {Function[]}
     */
    _listeners(event) {
      return this._handlers.get(event) || [];
    }

    /** @internal @param {string} event @param {unknown} error */
    _handlerFailed(event, error) {
      console.error(`rtt: a handler for "${event}" threw`, error);
      if (event !== "error") this._emit("error", error);
    }
  }

  /**
   * Make an unconnected client: `rtt.client("ws", "ws://host:port/", options)`.
   * @param {string} transport
   * @param {string | URL} url
   * @param {ConstructorParameters<typeof Client>[2]} [options]
   * @returns {Client}
   */
  function client(transport, url, options) {
    return new Client(transport, url, options);
  }

  /**
   * The message of an error, or the value itself.
   * @param {unknown} error
   * @returns {string}
   */
  function errorText(error) {
    const message = error ? /** @type {{message?: unknown}} */ (error).message : undefined;
    return String(message || error);
  }

  // The one list of what rtt exports; rtt-client.mjs re-exports exactly these names.
  const api = {
    version: "0.1.0",
    registerTransport,
    registerWebSocketTransport,
    client,
    Client,
    ReconnectPolicy,
    CloseReason,
    closeReasonFromWire,
    closeFromWire,
    closeFromText,
    closeCode,
    RttError,
    StateError,
    InvalidMessageError,
    MessageTooBigError,
    OfflineQueueFullError,
    ConnectError,
    RejectedError,
    ConnectionClosed,
  };
  return Object.assign(namespace, api);
})();
