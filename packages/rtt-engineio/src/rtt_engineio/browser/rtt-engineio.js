// @ts-check
/**
 * rtt-engineio.js: the "engineio" transport for rtt's browser client, over the official
 * engine.io-client (npm package "engine.io-client", version 6; Engine.IO protocol v4).
 *
 * The wire is plain Engine.IO v4 (SPEC.md 12.3): strings are text message packets,
 * bytes are binary packets (binary frames on WebSocket, "b" + base64 on long-polling).
 * Everything else (events, backoff, offline queue, limits, connectTimeout) is in
 * rtt-client.js; this file follows the adapter contract described at the top of that
 * file. engine.io-client has no reconnection of its own (that is socket.io-client's
 * Manager), so each rtt attempt is one fresh engine.io-client Socket.
 *
 * engine.io-client is not bundled: the page loads it first. As classic scripts:
 *
 *     <script src="https://cdn.jsdelivr.net/npm/engine.io-client@6/dist/engine.io.min.js"></script>
 *     <script src="http://host:port/rtt/rtt-client.js"></script>
 *     <script src="http://host:port/rtt/rtt-engineio.js"></script>
 *     <script>
 *       const client = rtt.client("engineio", "http://host:port/engine.io/");
 *     </script>
 *
 * (engine.io-client's UMD bundle, dist/engine.io.js or dist/engine.io.min.js from
 * `npm install engine.io-client@6`, defines `globalThis.eio`; serve it from anywhere.)
 * As a module, import rtt-engineio.mjs, and tell it the Socket class if `eio` is not a
 * global:
 *
 *     import { Socket } from "engine.io-client";          // through a bundler or import map
 *     import rtt from "http://host:port/rtt/rtt-engineio.mjs";
 *     rtt.engineio.register("engineio", { Socket });
 *
 * The URL is the server's endpoint, http(s)://HOST:PORT/engine.io/ (its path is the
 * Engine.IO path; its query travels with every request, e.g. a token).
 *
 * Engine.IO transports: by default long-polling first, then the upgrade to WebSocket.
 * The client options are the same as every rtt browser client's, so the transports are
 * chosen per registered name instead:
 *
 *     rtt.engineio.register("engineio-polling", { transports: ["polling"] });
 *     rtt.client("engineio-polling", "http://host:port/engine.io/");
 *
 * `rtt.engineio.register(name, { transports, Socket })`: `transports` is a non-empty
 * list of "polling" / "websocket" (default ["polling", "websocket"]; the upgrade is
 * tried only when both are given); `Socket` is engine.io-client's Socket class (default:
 * `globalThis.eio.Socket`, looked up at each connection attempt, so load order does
 * not matter). If the core passes a `transports` client option, it wins.
 *
 * Close reasons: rtt's server puts its CloseReason text in the Engine.IO CLOSE packet
 * (SPEC.md 12.3), or an application close's code and text ("4001 logged in elsewhere",
 * read with rtt.closeFromText and passed on as the close's code and text).
 * engine.io-client drops that data (its parser keeps it, its Socket never reads it, and
 * no event carries it), so this adapter reads it from the raw transport data itself and
 * closes at once. A CLOSE without rtt's text (another Engine.IO server) counts as
 * "server closed"; engine.io-client's own reasons map as "ping
 * timeout" -> "ping timeout", "parse error" -> "protocol error", and "transport close"
 * (the connection dropped without a CLOSE) or "transport error" -> "transport error";
 * a poll of the open session answered 403 (refused for session binding, SPEC.md 8.3)
 * is "rejected", which is not retried. Polls carry cookies (`withCredentials`).
 * Long-polling posts Engine.IO's CLOSE only when the page closes (or answers the server's
 * CLOSE): when a request fails or a ping times out the transport is let go without it,
 * so that the server sees a drop, which a resuming client comes back from (SPEC.md 12.3, 17).
 *
 * What cannot be told or done: the reason of a close by the page does not travel
 * (Engine.IO's CLOSE packet from a client has no data; the server sees "client
 * closed"); a refused handshake is a RejectedError with its HTTP status only on
 * long-polling (a refused WebSocket looks like any network failure); no handshake
 * headers (use the URL's query).
 */

/**
 * What this script adds to the namespace as `rtt.engineio`.
 * @typedef {Readonly<{register: (name: string, settings?: EngineioSettings) => void}>} RttEngineio
 */
/**
 * `transports`: "polling" and/or "websocket"; `Socket`: engine.io-client's Socket class.
 * @typedef {{transports?: readonly string[], Socket?: Function}} EngineioSettings
 */

(() => {
  "use strict";

  /**
   * The parts of engine.io-client 6 this adapter uses: a Transport and a Socket.
   * @typedef {{name: string, onData: (data: unknown) => unknown, doClose?: () => void}} EioTransport
   * @typedef {{transport: EioTransport, readyState: string, binaryType: string,
   *            createTransport: (name: string) => EioTransport,
   *            on: (event: string, listener: (...args: any[]) => void) => unknown,
   *            send: (data: string | Uint8Array) => void, close: () => void}} EioSocket
   * @typedef {new (uri: string, options: object) => EioSocket} EioSocketClass
   * @typedef {Parameters<typeof globalThis.rtt.registerTransport>[1]} Adapter
   */

  const rtt = /** @type {typeof globalThis.rtt & {engineio?: RttEngineio}} */ (globalThis.rtt);
  if (!rtt || typeof rtt.registerTransport !== "function") {
    throw new Error("rtt-engineio.js needs rtt-client.js: load it first");
  }
  const { CloseReason, ConnectError, RejectedError, ConnectionClosed, closeFromText } = rtt;
  const TRANSPORTS = ["polling", "websocket"];
  const RECORD_SEPARATOR = "\x1e"; // between packets of a long-polling payload

  // engine.io-client's close reasons (Socket "close" event) -> CloseReason.
  /** @type {Map<string, string>} */
  const FROM_EIO = new Map([
    ["ping timeout", CloseReason.PING_TIMEOUT],
    ["parse error", CloseReason.PROTOCOL_ERROR],
    ["transport close", CloseReason.TRANSPORT_ERROR],
    ["transport error", CloseReason.TRANSPORT_ERROR],
    ["forced close", CloseReason.CLIENT_CLOSED],
  ]);

  /**
   * The close in a CLOSE packet's data: rtt's reason ("shutdown"), or an application's
   * code and text ("4001 logged in elsewhere", SPEC.md 6.3); anything else (another
   * Engine.IO server's data, or none) is a deliberate close.
   * @param {string} text
   * @returns {{reason: string, code: number | null, text: string | null}}
   */
  function serverClose(text) {
    return closeFromText(text) ?? { reason: CloseReason.SERVER_CLOSED, code: null, text: null };
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
        `engineio transports must be a non-empty list of "polling" and "websocket", got ${JSON.stringify(value)}`,
      );
    }
    return Object.freeze([...value]);
  }

  /**
   * The data of a CLOSE packet in raw transport data, or undefined if there is none.
   * A WebSocket frame is one packet; a long-polling payload is packets joined by \x1e.
   * @param {string} transportName
   * @param {unknown} data
   * @returns {string | undefined}
   */
  function closePacketData(transportName, data) {
    if (typeof data !== "string") return undefined;
    const packets = transportName === "polling" ? data.split(RECORD_SEPARATOR) : [data];
    const close = packets.find((packet) => packet[0] === "1");
    return close === undefined ? undefined : close.slice(1);
  }

  // Watch the raw data of `transport` for a CLOSE packet (engine.io-client drops its
  // data): `seen(text)` runs before engine.io-client handles the data (the messages in
  // front of the CLOSE, then the close itself), `after()` once it has.
  /**
   * @param {EioTransport} transport
   * @param {(text: string) => void} seen
   * @param {() => void} after
   * @param {() => boolean} deliberate whether the close under way is the page's (or answers the server's)
   * @returns {EioTransport}
   */
  function watchTransport(transport, seen, after, deliberate) {
    if (!transport || typeof transport.onData !== "function") return transport;
    // engine.io-client closes the transport whenever the Socket closes: long-polling then
    // posts a CLOSE packet, also after a failed request or a ping timeout. The server would
    // read it as the page's own close and end a session the client means to resume (SPEC.md
    // 12.3, 17): only a deliberate close sends it; otherwise the transport is let go silently
    // and the server sees the connection fail.
    const doClose = transport.doClose;
    if (transport.name === "polling" && typeof doClose === "function") {
      transport.doClose = () => {
        if (deliberate()) doClose.call(transport);
      };
    }
    const onData = transport.onData;
    transport.onData = (data) => {
      const text = closePacketData(transport.name, data);
      if (text === undefined) return onData.call(transport, data);
      seen(text);
      try {
        return onData.call(transport, data);
      } finally {
        after();
      }
    };
    return transport;
  }

  // engine.io-client's Socket class (the ES module's export), or the `eio(uri, opts)`
  // factory of its UMD bundle: either is called with `new`.
  /**
   * @param {EngineioSettings} settings
   * @returns {EioSocketClass}
   */
  function findSocket(settings) {
    const eio = /** @type {{eio?: {Socket?: Function}}} */ (/** @type {unknown} */ (globalThis)).eio;
    const Socket = settings.Socket || (eio && (eio.Socket || eio));
    if (typeof Socket !== "function") {
      throw new ConnectError(
        "rtt-engineio.js needs engine.io-client 6: load its dist/engine.io.min.js first (it defines eio), " +
          'or pass its Socket class: rtt.engineio.register("engineio", { Socket })',
      );
    }
    return /** @type {EioSocketClass} */ (Socket);
  }

  /**
   * @param {{transports: readonly string[], Socket?: Function}} settings
   * @returns {Adapter}
   */
  function makeAdapter(settings) {
    return {
      /**
       * @param {string} url the endpoint, http(s)://HOST:PORT/engine.io/
       * @param {Parameters<Adapter["open"]>[1]} options the client's options
       * @param {Parameters<Adapter["open"]>[2]} sink
       */
      open(url, options, sink) {
        const parsed = new URL(url, globalThis.location ? globalThis.location.href : undefined);
        const transports = options.transports !== undefined ? checkTransports(options.transports) : settings.transports;
        const Socket = findSocket(settings);
        let opened = false;
        let done = false; // the sink has heard the end; ignore the rest
        let closing = false; // the page closes, or the server closed: long-polling may say CLOSE

        const socket = new Socket(parsed.href, {
          path: parsed.pathname,
          transports: [...transports],
          upgrade: transports.length > 1,
          rememberUpgrade: false,
          tryAllTransports: false,
          closeOnBeforeunload: false,
          // Cookies go with cross-origin polls: a server with session_binding (SPEC.md 8.3)
          // checks its binding cookie on each (rtt's server grants credentials to allowed origins).
          withCredentials: true,
        });
        socket.binaryType = "arraybuffer";
        /** @param {{reason: string, code?: number | null, text?: string | null}} close */
        const finish = ({ reason, code = null, text = null }) => {
          if (done) return;
          done = true;
          sink.closed(reason, code, text);
        };
        // rtt's server says why in its CLOSE packet. Long-polling closes on it by itself
        // (the "close" handler below then uses the text); over WebSocket engine.io-client
        // would wait for the server to drop the connection, so close at once.
        /** @type {string | undefined} the data of the CLOSE packet received, if any */
        let closeText;
        /** @param {string} text */
        const seen = (text) => {
          if (opened && closeText === undefined) closeText = text;
        };
        const after = () => {
          if (closeText === undefined || done) return;
          finish(serverClose(closeText));
          closing = true;
          socket.close();
        };
        // The first transport is already made (nothing has arrived yet: that takes a
        // later task); the WebSocket of an upgrade is made by createTransport.
        const deliberate = () => closing;
        watchTransport(socket.transport, seen, after, deliberate);
        const createTransport = socket.createTransport;
        socket.createTransport = (/** @type {string} */ name) =>
          watchTransport(createTransport.call(socket, name), seen, after, deliberate);

        socket.on("open", () => {
          opened = true;
          sink.opened();
        });
        socket.on("message", (/** @type {string | ArrayBuffer | undefined} */ data) => {
          if (done) return;
          // engine.io-parser leaves `data` undefined for an empty text message ("4").
          if (data === undefined || typeof data === "string") sink.message(data ?? "");
          else sink.message(new Uint8Array(data));
        });
        socket.on("close", (/** @type {string} */ reason, /** @type {{description?: unknown} | undefined} */ description) => {
          // An XHR failure carries the HTTP status (0 for a network failure).
          const status = description && typeof description.description === "number" ? description.description : 0;
          if (opened) {
            if (closeText !== undefined) finish(serverClose(closeText));
            // A poll of the open session refused (403: session binding, SPEC.md 8.3, e.g. a page on
            // another site over plain HTTP, whose browser keeps no cookie): a refusal, never retried.
            else if (status === 403) finish({ reason: CloseReason.REJECTED });
            else finish({ reason: FROM_EIO.get(reason) ?? CloseReason.TRANSPORT_ERROR });
            return;
          }
          if (done) return;
          done = true;
          if (status >= 400 && status < 600) {
            sink.failed(new RejectedError(status));
          } else {
            sink.failed(new ConnectError(`cannot connect to ${url}: ${reason}`, description));
          }
        });
        // An "error" event is always followed by "close" (tryAllTransports is off).
        socket.on("error", () => {});

        return {
          /** @param {string | Uint8Array} data */
          send(data) {
            // engine.io-client buffers writes while closing; throw instead, so the
            // client keeps the message for the next connection.
            if (done || socket.readyState !== "open") throw new ConnectionClosed(null);
            socket.send(data);
          },
          /** @param {number} code @param {string} reasonText */
          close(code, reasonText) {
            // Engine.IO's CLOSE from a client carries no reason: code and text stay here.
            done = true;
            closing = true;
            if (socket.readyState === "closing" || socket.readyState === "closed") return;
            socket.close();
          },
        };
      },
    };
  }

  /**
   * Register an "engineio" flavour under `name`.
   * @param {string} name
   * @param {EngineioSettings} [settings]
   */
  function register(name, settings = {}) {
    if (settings === null || typeof settings !== "object") throw new TypeError("settings must be an object");
    const unknown = Object.keys(settings).filter((key) => key !== "transports" && key !== "Socket");
    if (unknown.length > 0) {
      throw new TypeError(`unknown engineio setting ${unknown.join(", ")}; valid settings: transports, Socket`);
    }
    if (settings.Socket !== undefined && typeof settings.Socket !== "function") {
      throw new TypeError("Socket must be engine.io-client's Socket class");
    }
    const frozen = Object.freeze({
      transports: checkTransports(settings.transports ?? TRANSPORTS),
      Socket: settings.Socket,
    });
    rtt.registerTransport(name, makeAdapter(frozen));
  }

  rtt.engineio = Object.freeze({ register });
  register("engineio");
})();
