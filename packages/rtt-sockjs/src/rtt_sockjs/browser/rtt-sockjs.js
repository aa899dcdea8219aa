// @ts-check
/**
 * rtt-sockjs.js: the "sockjs" transport for rtt's browser client, over the official
 * sockjs-client (npm package "sockjs-client", version 1.6).
 *
 * The wire is plain SockJS (SPEC.md 12.4), which carries text only. Strings and bytes
 * travel as rtt's text encoding (SPEC.md 5.5, rtt/codec.py): a Uint8Array `b` is sent as
 * "\u0000b" + base64(b) (standard alphabet, padded), a string that starts with U+0000
 * gets one more U+0000 in front, any other string goes unchanged; received text is
 * decoded the same way back (text that starts with U+0000 in neither form, which only a
 * peer other than rtt sends, arrives unchanged as a string). Everything else (events,
 * backoff, offline queue, limits, connectTimeout) is in rtt-client.js; this file follows
 * the adapter contract described at the top of that file. sockjs-client does not
 * reconnect by itself, so each rtt attempt is one fresh SockJS object.
 *
 * sockjs-client is not bundled: the page loads it first. As classic scripts:
 *
 *     <script src="https://cdn.jsdelivr.net/npm/sockjs-client@1.6/dist/sockjs.min.js"></script>
 *     <script src="http://host:port/rtt/rtt-client.js"></script>
 *     <script src="http://host:port/rtt/rtt-sockjs.js"></script>
 *     <script>
 *       const client = rtt.client("sockjs", "http://host:port/sockjs");
 *     </script>
 *
 * (sockjs-client's UMD bundle, dist/sockjs.min.js or dist/sockjs.js from
 * `npm install sockjs-client@1.6`, defines `globalThis.SockJS`; serve it from anywhere.)
 * As a module, import rtt-sockjs.mjs, and tell it the SockJS class if it is not a
 * global:
 *
 *     import SockJS from "sockjs-client";                  // through a bundler or import map
 *     import rtt from "http://host:port/rtt/rtt-sockjs.mjs";
 *     rtt.sockjs.register("sockjs", { SockJS });
 *
 * The URL is the server's endpoint, http(s)://HOST:PORT/sockjs (the `sockjs_prefix`
 * server option); sockjs-client adds /info and the session paths itself.
 *
 * SockJS transports: by default sockjs-client picks the best one it can (WebSocket, then
 * the HTTP fallbacks: xhr-streaming, eventsource, xhr-polling, ...). The client options
 * are the same as every rtt browser client's, so the transports are chosen per
 * registered name instead, with sockjs-client's own transport names:
 *
 *     rtt.sockjs.register("sockjs-xhr", { transports: ["xhr-polling"] });
 *     rtt.client("sockjs-xhr", "http://host:port/sockjs");
 *
 * `rtt.sockjs.register(name, { transports, SockJS })`: `transports` is a non-empty list
 * of sockjs-client transport names ("websocket", "xhr-streaming", "xdr-streaming",
 * "eventsource", "iframe-eventsource", "htmlfile", "iframe-htmlfile", "xhr-polling",
 * "xdr-polling", "iframe-xhr-polling", "jsonp-polling"), tried in sockjs-client's order;
 * leave it out to let sockjs-client choose among all of them. `SockJS` is
 * sockjs-client's class (default: `globalThis.SockJS`, looked up at each connection
 * attempt, so load order does not matter). The iframe transports load sockjs-client
 * again inside an iframe, from the server's `sockjs_client_url` (a CDN by default).
 *
 * rtt's text encoding is also available as `rtt.sockjs.encodeText(data)` and
 * `rtt.sockjs.decodeText(text)`, for code that talks to an rtt server with a bare
 * sockjs-client.
 *
 * Sessions over HTTP are bound to a cookie the server sets (SPEC.md 12.4); the browser
 * keeps it by itself (sockjs-client sends its XHRs with credentials and rtt's server
 * allows that for the origins it accepts).
 *
 * Close reasons: rtt's server closes with a SockJS close frame c[code, "reason"] whose
 * reason is rtt's CloseReason text, or the application's code and text
 * (`server.disconnect(id, code=4001, reason="logged in elsewhere")`), which sockjs-client
 * hands over as the close event's code and reason. As in rtt's Python client, a code of
 * 3000-4999 (SockJS's own 3000 "Go away!" included) is an application close: the
 * client's `closeReason` is "application", and `closeCode`/`closeText` are the code and
 * text. Otherwise rtt's text wins when it is one of rtt's; then SockJS's own codes count
 * as 2010 ("Another connection still open") -> "protocol error", 1002 -> "transport
 * error", and any other code as a WebSocket close code (`rtt.closeFromWire`: 1001 ->
 * "shutdown", sockjs-client's 1006 for a lost connection or a lost session -> "transport
 * error", ...).
 *
 * A deliberate close by the page first sends rtt's closing notice (the text "\u0000c",
 * which the encoding never produces) so the server reports "client closed" on every
 * transport: SockJS has no close frame from a client, and over HTTP a closed client
 * would otherwise look like a lost one. Over WebSocket the notice and the close go out
 * at once, in order. Over HTTP, sockjs-client's own close() would abort the POST that
 * carries the notice, so the adapter keeps the transport's requests going (ignoring what
 * arrives) until the server has answered that POST, at most NOTICE_TIMEOUT_MS (5 s),
 * then lets sockjs-client close. That reaches into sockjs-client 1.x's HTTP transports
 * (`sock._transport`: its `sender`, `sendBuffer` and `poll.pollIsClosing`); where they
 * are not there (the iframe transports, another version) it closes at once, and the
 * server may then report "transport error".
 *
 * What cannot be told or done: a refused connection (an origin the server does not
 * allow, `authorize` saying no) is a plain ConnectError, never a RejectedError, because
 * sockjs-client never exposes the HTTP status (it reports 1002 "Cannot connect to
 * server" or 2000 "All transports failed"), so such a client keeps retrying; the close
 * reason the page gives does not travel (the server sees "client closed"); no handshake
 * headers (use the URL's query, which sockjs-client keeps on every request).
 */

/**
 * What this script adds to the namespace as `rtt.sockjs`.
 * @typedef {Readonly<{register: (name: string, settings?: SockjsSettings) => void,
 *   encodeText: (data: string | ArrayBuffer | ArrayBufferView) => string,
 *   decodeText: (text: string) => string | Uint8Array}>} RttSockjs
 */
/**
 * `transports`: sockjs-client transport names; `SockJS`: sockjs-client's SockJS class.
 * @typedef {{transports?: readonly string[], SockJS?: Function}} SockjsSettings
 */

(() => {
  "use strict";

  /**
   * The parts of sockjs-client 1.x this adapter uses: a SockJS and, inside it, one of
   * its HTTP transports.
   * @typedef {{sender: (url: string, payload: string, callback: (error: unknown) => void) => void,
   *            sendBuffer: unknown[], poll: {pollIsClosing: boolean}}} SockjsHttpTransport
   * @typedef {{readyState: number, _transport?: unknown,
   *            onopen: (() => void) | null, onmessage: ((event: {data: unknown}) => void) | null,
   *            onclose: ((event: {code: number, reason: string}) => void) | null,
   *            send: (data: string) => void, close: (code: number, reason: string) => void}} SockjsSocket
   * @typedef {new (url: string, reserved: null, options: object) => SockjsSocket} SockjsClass
   * @typedef {Parameters<typeof globalThis.rtt.registerTransport>[1]} Adapter
   */

  const rtt = /** @type {typeof globalThis.rtt & {sockjs?: RttSockjs}} */ (globalThis.rtt);
  if (!rtt || typeof rtt.registerTransport !== "function") {
    throw new Error("rtt-sockjs.js needs rtt-client.js: load it first");
  }
  const { CloseReason, ConnectError, ConnectionClosed, closeFromWire } = rtt;
  /** @type {Set<string>} */
  const REASONS = new Set(Object.values(CloseReason));

  // sockjs-client 1.6's transport names, in the order it tries them.
  const TRANSPORTS = Object.freeze([
    "websocket",
    "xhr-streaming",
    "xdr-streaming",
    "eventsource",
    "iframe-eventsource",
    "htmlfile",
    "iframe-htmlfile",
    "xhr-polling",
    "xdr-polling",
    "iframe-xhr-polling",
    "jsonp-polling",
  ]);

  // SockJS readyState values (the same as WebSocket's).
  const OPEN = 1;
  const CLOSING = 2;

  // How long a closing HTTP transport waits for the server to take the closing notice.
  const NOTICE_TIMEOUT_MS = 5000;

  // -- rtt's text encoding of messages (SPEC.md 5.5, rtt/codec.py) ------------------------

  const ESCAPE = "\u0000";
  const BYTES_PREFIX = "\u0000b";
  // rtt's notice that the client closes on purpose; encodeText never produces it.
  const CLIENT_CLOSING = "\u0000c";
  // Canonical base64: standard alphabet, padded. (atob alone would also take text
  // without padding or with spaces, which an rtt peer never sends.)
  const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const CHUNK = 0x8000; // bytes per String.fromCharCode call (argument count limits)

  /** @param {Uint8Array} bytes @returns {string} */
  function toBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += CHUNK) {
      binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
    }
    return btoa(binary);
  }

  /** @param {string} text @returns {Uint8Array} */
  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  /**
   * A message as text for the SockJS wire.
   * @param {string | ArrayBuffer | ArrayBufferView} data a string, or binary data
   * @returns {string}
   */
  function encodeText(data) {
    if (typeof data === "string") return data.startsWith(ESCAPE) ? ESCAPE + data : data;
    if (data instanceof Uint8Array) return BYTES_PREFIX + toBase64(data);
    if (ArrayBuffer.isView(data)) return encodeText(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    if (Object.prototype.toString.call(data) === "[object ArrayBuffer]") return encodeText(new Uint8Array(data));
    throw new TypeError("encodeText takes a string, an ArrayBuffer, a TypedArray or a DataView");
  }

  /**
   * A message received as text from the SockJS wire.
   * @param {string} text
   * @returns {string | Uint8Array} a string, or a Uint8Array for binary
   */
  function decodeText(text) {
    if (!text.startsWith(ESCAPE)) return text;
    if (text.startsWith(ESCAPE, 1)) return text.slice(1);
    if (text.startsWith(BYTES_PREFIX) && BASE64.test(text.slice(2))) return fromBase64(text.slice(2));
    return text; // not rtt's encoding: delivered as it came
  }

  // -- The adapter ------------------------------------------------------------------------

  // SockJS's own close codes below the application range, which come without rtt's text:
  // 2010 a second receiving request for one session, 1002 an interrupted session (as
  // rtt_sockjs/_wire.py's received_close).
  /** @type {Map<number, string>} */
  const FROM_SOCKJS = new Map([
    [2010, CloseReason.PROTOCOL_ERROR],
    [1002, CloseReason.TRANSPORT_ERROR],
  ]);

  // The close a close event after the connection opened stands for: an application code
  // (3000-4999, SockJS's 3000 "Go away!" included) is the application's close with its
  // code and text, whatever the text; then rtt's text wins, then SockJS's codes, then the
  // WebSocket codes (1001 "shutdown", 1006 "transport error", ...).
  /**
   * @param {number} code
   * @param {string} text
   * @returns {{reason: string, code: number | null, text: string | null}}
   */
  function closeOf(code, text) {
    if (Number.isInteger(code) && code >= 3000 && code <= 4999) return closeFromWire(code, text);
    if (REASONS.has(text) && text !== CloseReason.APPLICATION) return { reason: text, code: null, text: null };
    const own = FROM_SOCKJS.get(code);
    return own !== undefined ? { reason: own, code: null, text: null } : closeFromWire(code, "");
  }

  /**
   * @param {unknown} value
   * @returns {readonly string[]}
   */
  function checkTransports(value) {
    if (
      !Array.isArray(value) ||
      value.length === 0 ||
      value.some((name) => !TRANSPORTS.includes(name)) ||
      new Set(value).size !== value.length
    ) {
      throw new TypeError(
        `sockjs transports must be a non-empty list of ${TRANSPORTS.map((name) => `"${name}"`).join(", ")}; ` +
          `got ${JSON.stringify(value)}`,
      );
    }
    return Object.freeze([...value]);
  }

  // sockjs-client 1.x's HTTP transports (xhr-streaming, xhr-polling, eventsource,
  // htmlfile, jsonp-polling and the xdr ones) share one shape: `sender(url, payload,
  // callback)` posts a batch of messages, `sendBuffer` holds the next batch (one POST at
  // a time, in order) and `poll` runs the receiving requests. Anything else (WebSocket,
  // the iframe transports, another sockjs-client): null.
  /**
   * @param {SockjsSocket} sock
   * @returns {SockjsHttpTransport | null}
   */
  function httpTransport(sock) {
    const transport = /** @type {Partial<SockjsHttpTransport> | undefined} */ (sock._transport);
    return transport &&
      typeof transport.sender === "function" &&
      Array.isArray(transport.sendBuffer) &&
      transport.poll &&
      typeof transport.poll === "object"
      ? /** @type {SockjsHttpTransport} */ (transport)
      : null;
  }

  // Close an HTTP transport once the closing notice has been posted. sockjs-client's own
  // close() aborts the POSTs in flight and the receiving request at once; a server that
  // then writes to the aborted request (an echo, say) takes the client for lost before
  // the notice arrives. So the receiving request in progress stays open (what it brings
  // is ignored) but no new one starts, and sockjs-client closes once the last POST has
  // been answered, or after NOTICE_TIMEOUT_MS.
  /**
   * @param {SockjsSocket} sock
   * @param {SockjsHttpTransport} transport
   * @param {string} reasonText
   */
  function closeAfterNotice(sock, transport, reasonText) {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer = undefined;
    const close = () => {
      clearTimeout(timer);
      if (sock.readyState < CLOSING) sock.close(1000, reasonText);
    };
    const sender = transport.sender;
    transport.sender = (url, payload, callback) =>
      sender.call(transport, url, payload, (error) => {
        callback(error);
        if (error || transport.sendBuffer.length === 0) close();
      });
    transport.poll.pollIsClosing = true; // sockjs-client's own flag: start no receiving request
    timer = setTimeout(close, NOTICE_TIMEOUT_MS);
    sock.send(CLIENT_CLOSING);
  }

  /**
   * @param {{SockJS?: Function}} settings
   * @returns {SockjsClass}
   */
  function findSockJS(settings) {
    const SockJS = settings.SockJS || /** @type {{SockJS?: Function}} */ (/** @type {unknown} */ (globalThis)).SockJS;
    if (typeof SockJS !== "function") {
      throw new ConnectError(
        "rtt-sockjs.js needs sockjs-client 1.6: load its dist/sockjs.min.js first (it defines SockJS), " +
          'or pass its class: rtt.sockjs.register("sockjs", { SockJS })',
      );
    }
    return /** @type {SockjsClass} */ (SockJS);
  }

  /**
   * @param {{transports: readonly string[] | null, SockJS?: Function}} settings
   * @returns {Adapter}
   */
  function makeAdapter(settings) {
    return {
      /**
       * @param {string} url the endpoint, http(s)://HOST:PORT/sockjs
       * @param {Parameters<Adapter["open"]>[1]} options the client's options
       * @param {Parameters<Adapter["open"]>[2]} sink
       */
      open(url, options, sink) {
        const SockJS = findSockJS(settings);
        const href = new URL(url, globalThis.location ? globalThis.location.href : undefined).href;
        // A bad URL throws here: a failed attempt.
        const sock = new SockJS(href, null, settings.transports ? { transports: [...settings.transports] } : {});
        let opened = false;
        let done = false; // the sink has heard the end, or the client closed: ignore the rest

        /** @param {string} reason @param {number | null} [code] @param {string | null} [text] */
        const finish = (reason, code = null, text = null) => {
          if (done) return;
          done = true;
          sink.closed(reason, code, text);
        };

        sock.onopen = () => {
          if (done) return;
          opened = true;
          sink.opened();
        };
        sock.onmessage = (event) => {
          if (done) return;
          if (typeof event.data === "string") {
            sink.message(decodeText(event.data));
            return;
          }
          // Only a server other than rtt's puts anything but strings in its frames.
          finish(CloseReason.PROTOCOL_ERROR);
          sock.close(1000, CloseReason.PROTOCOL_ERROR);
        };
        // sockjs-client reports every end, its own failures included, as one close
        // event (an "error" event comes just before it only when /info failed).
        sock.onclose = (event) => {
          if (opened) {
            const close = closeOf(event.code, event.reason);
            finish(close.reason, close.code, close.text);
            return;
          }
          if (done) return;
          done = true;
          sink.failed(new ConnectError(`cannot connect to ${url}: SockJS closed with ${event.code} ${event.reason}`));
        };

        return {
          /** @param {string | Uint8Array} data */
          send(data) {
            // sockjs-client drops what is sent while closing; throw instead, so the
            // client keeps the message for the next connection.
            if (done || sock.readyState !== OPEN) throw new ConnectionClosed(null);
            sock.send(encodeText(data));
          },
          /** @param {number} code @param {string} reasonText */
          close(code, reasonText) {
            done = true;
            if (sock.readyState >= CLOSING) return;
            if (sock.readyState !== OPEN) {
              sock.close(1000, reasonText); // an attempt abandoned: nothing to tell the server
              return;
            }
            const transport = httpTransport(sock);
            if (transport !== null) {
              closeAfterNotice(sock, transport, reasonText);
              return;
            }
            // One WebSocket: the notice goes out after every message sent before it, and
            // before the WebSocket's close.
            sock.send(CLIENT_CLOSING);
            sock.close(1000, reasonText);
          },
        };
      },
    };
  }

  /**
   * Register a "sockjs" flavour under `name`.
   * @param {string} name
   * @param {SockjsSettings} [settings]
   */
  function register(name, settings = {}) {
    if (settings === null || typeof settings !== "object") throw new TypeError("settings must be an object");
    const unknown = Object.keys(settings).filter((key) => key !== "transports" && key !== "SockJS");
    if (unknown.length > 0) {
      throw new TypeError(`unknown sockjs setting ${unknown.join(", ")}; valid settings: transports, SockJS`);
    }
    if (settings.SockJS !== undefined && typeof settings.SockJS !== "function") {
      throw new TypeError("SockJS must be sockjs-client's SockJS class");
    }
    const frozen = Object.freeze({
      transports: settings.transports === undefined ? null : checkTransports(settings.transports),
      SockJS: settings.SockJS,
    });
    rtt.registerTransport(name, makeAdapter(frozen));
  }

  rtt.sockjs = Object.freeze({ register, encodeText, decodeText });
  register("sockjs");
})();
