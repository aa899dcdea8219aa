"""The sockjs Python client: rtt's reconnecting client, speaking SockJS over plain aiohttp (SPEC.md 12.4).

No SockJS client library exists for Python, so this module is one: the
``websocket``, ``xhr-streaming`` and ``xhr-polling`` transports, the frames
of :mod:`rtt_sockjs._wire`, and nothing else. Each connection attempt asks
``{prefix}/info`` first, then tries the configured transports in order, each
with a fresh session id, until one receives the ``o`` frame.

Received messages go to a bounded inbox; when it is full the reader stops
taking frames from the wire (and, on WebSocket, stops answering the server's
pings), so the server sees a slow client. Every aiohttp request of one
attempt shares a cookie jar that accepts cookies from IP-address hosts, which
carries the server's session binding cookie (:data:`_wire.BINDING_COOKIE`,
with ``session_binding``); a request of the session the server refuses for
binding (its close frame ``rejected``, or a 403 to a POST) ends the
connection as ``rejected``, which is not retried.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any, Final, NoReturn, cast
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from rtt import (
    Client,
    ClientConnection,
    Close,
    CloseReason,
    ConnectError,
    ConnectionClosed,
    RejectedError,
)
from rtt.client import Inbox
from rtt.codec import decode_text, encode_text, message_size
from rtt.handshake import refusal_reason
from rtt.resume import wire_limit

from ._wire import (
    CLIENT_CLOSING,
    FrameError,
    encode_payload,
    frame_limit,
    load_json,
    parse_server_frame,
    received_close,
)

if TYPE_CHECKING:
    from .transport import SockjsClientOptions

__all__ = ["SockjsClient", "SockjsConnection"]

logger = logging.getLogger("rtt.sockjs.client")

#: Messages the connection buffers beyond rtt's own inbox before its reader waits.
INBOX_SIZE: Final = 16
#: Seconds without any frame (or WebSocket ping) after which the connection is dead.
#: SockJS servers send a heartbeat every 25 s by default.
LIVENESS_TIMEOUT: Final = 60.0
#: Heartbeat periods an HTTP transport misses (plus ``_SILENCE_SLACK`` seconds) before its open
#: request counts as dead, when the server told its period: see :func:`_silence_bound`.
_SILENT_BEATS: Final = 2
_SILENCE_SLACK: Final = 2.0
#: The line an ``xhr_streaming`` response starts with (it defeats browser buffering).
PRELUDE: Final = b"h" * 2048
_PRELUDE_TEXT: Final = PRELUDE.decode()
#: The longest error body or ``/info`` answer read.
_SMALL_BODY: Final = 64 * 1024
_HTTP_ENDPOINTS: Final = {"xhr-streaming": "xhr_streaming", "xhr-polling": "xhr"}
_SEND_HEADERS: Final = {"Content-Type": "text/plain;charset=UTF-8"}


class _Ended(Exception):
    """The reader saw the connection end; :attr:`close` says why (:attr:`reason` for short)."""

    def __init__(self, reason: CloseReason | Close, detail: str = "") -> None:
        self.close = Close.of(reason) if isinstance(reason, CloseReason) else reason
        self.reason = self.close.reason
        super().__init__(detail or self.reason.value)


class _Unavailable(Exception):
    """A transport could not open; the next one may."""


class _Lines:
    """Splits an HTTP response body into ``\\n``-terminated frames of at most ``limit`` bytes."""

    def __init__(self, response: aiohttp.ClientResponse, limit: int) -> None:
        self.response = response
        self._limit = limit
        self._buffer = bytearray()
        self._scanned = 0

    async def next(self) -> str | None:
        """The next frame, ``None`` at the end of the body; raise :class:`FrameError` if malformed."""
        buffer = self._buffer
        while (end := buffer.find(b"\n", self._scanned)) < 0:
            self._scanned = len(buffer)
            if len(buffer) > self._limit:
                raise FrameError(f"frame longer than {self._limit} bytes")
            chunk = await self.response.content.readany()
            if not chunk:
                if buffer:
                    raise FrameError("response ended inside a frame")
                return None
            buffer += chunk
        if end > self._limit:
            raise FrameError(f"frame longer than {self._limit} bytes")
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        self._scanned = 0
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("frame is not UTF-8") from None


class _Endpoint:
    """URLs of one SockJS endpoint; the attempt's query string goes on every one."""

    def __init__(self, url: str, shown: str | None = None) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.query = parts.query
        # Messages name the user's URL: the attempt's may carry a resume token (SPEC.md 10.3).
        self.shown_query = urlsplit(shown).query if shown is not None else parts.query

    def url(self, path: str, *, websocket: bool = False, shown: bool = False) -> str:
        """``{prefix}{path}`` with the query (``ws(s)://`` for ``websocket``; the user's if ``shown``)."""
        scheme = ("wss" if self.scheme == "https" else "ws") if websocket else self.scheme
        query = self.shown_query if shown else self.query
        return urlunsplit((scheme, self.netloc, self.prefix + path, query, ""))


class SockjsConnection(ClientConnection):
    """One SockJS session of a client, over one SockJS transport."""

    #: ``"websocket"``, ``"xhr-streaming"`` or ``"xhr-polling"``.
    transport: str

    def __init__(
        self, options: SockjsClientOptions, http: aiohttp.ClientSession, endpoint: _Endpoint, session: str
    ) -> None:
        self.options = options
        #: ``/{server}/{session}``: the session's part of every URL after the prefix.
        self.session_path = session
        #: Why the connection ended; ``None`` while it is open.
        self.reason: CloseReason | None = None
        #: The application's close (code and text) when the server ended it with one.
        self.application_close: Close | None = None
        self._http = http
        self._endpoint = endpoint
        self._inbox = Inbox(INBOX_SIZE)
        self._send_lock = asyncio.Lock()
        self._stalled: asyncio.Event | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._disposed = False

    # -- ClientConnection -------------------------------------------------------

    async def recv(self) -> str | bytes:
        data = await self._inbox.get()
        if data is None:
            await self._dispose()  # the connection ended by itself: release it
            raise self._closed_error()
        return data

    async def send(self, data: str | bytes) -> None:
        if self.reason is not None:
            raise self._closed_error()
        await self._send_text(encode_text(data))

    async def close(self, reason: CloseReason) -> None:
        if self._closing:
            return
        self._closing = True
        was_open = self.reason is None
        self._end(reason)
        try:
            async with asyncio.timeout(self.options.close_timeout):
                if was_open:
                    # SockJS has no client close frame: this message tells an rtt server
                    # the close is deliberate (it goes after any send still in progress).
                    await self._send_text(CLIENT_CLOSING)
                    await self._say_goodbye(reason)
        except (OSError, aiohttp.ClientError, ConnectionClosed) as exc:  # OSError covers TimeoutError
            logger.debug("closing notice did not complete: %r", exc)
        finally:
            await self._dispose()

    # -- Fault tests ------------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop taking frames from the server: messages pile up, heartbeats go unanswered."""
        if self._stalled is None:
            self._stalled = asyncio.Event()

    # -- What each transport implements -----------------------------------------

    @abc.abstractmethod
    async def _read(self) -> NoReturn:
        """Read frames until the connection ends; raise :class:`_Ended` then."""

    @abc.abstractmethod
    async def _send_text(self, text: str) -> None:
        """Send one encoded message after every earlier one; raise ConnectionClosed if it cannot."""

    async def _say_goodbye(self, reason: CloseReason) -> None:
        """Finish a deliberate close once ``CLIENT_CLOSING`` is sent."""

    async def _after_end(self, reason: CloseReason) -> None:
        """Tell the server, if the transport can, why the reader ended the connection."""

    async def _release(self) -> None:
        """Let go of what the transport holds besides the HTTP session."""

    # -- Shared machinery -----------------------------------------------------

    def _url(self, name: str, *, websocket: bool = False) -> str:
        return self._endpoint.url(f"{self.session_path}/{name}", websocket=websocket)

    def _start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._read()
        except _Ended as end:
            reason = end.reason
            if reason is CloseReason.APPLICATION and self.reason is None:
                self.application_close = end.close
            logger.debug("sockjs connection ended: %s", end)
        except (aiohttp.ClientError, OSError) as exc:
            reason = CloseReason.TRANSPORT_ERROR
            logger.debug("sockjs connection failed: %r", exc)
        except Exception:
            reason = CloseReason.TRANSPORT_ERROR
            logger.exception("sockjs reader failed")
        if self.reason is None:
            self._end(reason)
            await self._after_end(reason)

    async def _wait_unpaused(self) -> None:
        """Hold the reader (with the frame in its hand) once :meth:`pause_reading` was called."""
        if self._stalled is not None:
            await self._stalled.wait()  # never set: a paused connection stays paused

    async def _on_frame(self, frame: str) -> None:
        """Act on one frame received after ``o``; raise :class:`_Ended` at a close or a bad frame."""
        await self._wait_unpaused()
        try:
            kind, content = parse_server_frame(frame)
        except FrameError as exc:
            raise _Ended(CloseReason.PROTOCOL_ERROR, str(exc)) from None
        if kind == "a":
            assert isinstance(content, list)
            limit = self.options.max_message_size
            for text in content:
                data = decode_text(text)
                size = message_size(data)
                # Resume framing (SPEC.md 17.2) makes a text that starts with U+0000 a byte longer,
                # and a welcome must pass a tiny limit; the core checks the decoded message.
                if size > limit and not (
                    type(data) is str and data[:1] == "\x00" and size <= wire_limit(limit)
                ):
                    raise _Ended(CloseReason.MESSAGE_TOO_BIG, f"received a message of {size} bytes")
                await self._inbox.put(data)
        elif kind == "c":
            assert isinstance(content, tuple)
            raise _Ended(received_close(*content), f"the server closed the session: {content!r}")
        elif kind == "o":
            raise _Ended(CloseReason.PROTOCOL_ERROR, "a second 'o' frame")
        # "h" is a heartbeat: any frame proves the server is there, and the caller notes that.

    def _end(self, reason: CloseReason) -> None:
        if self.reason is None:
            self.reason = reason
        self._inbox.close()

    def _ended(
        self, exc: BaseException, reason: CloseReason = CloseReason.TRANSPORT_ERROR
    ) -> ConnectionClosed:
        """A send failed: the connection is over (the server may hold any prefix of what was sent)."""
        logger.debug("sockjs send failed: %r", exc)
        self._end(reason)
        return self._closed_error()

    def _closed_error(self) -> ConnectionClosed:
        """The error for using the ended connection: an application close keeps its code and text."""
        if self.application_close is not None and self.reason is CloseReason.APPLICATION:
            return ConnectionClosed.of(self.application_close)
        return ConnectionClosed(self.reason or CloseReason.TRANSPORT_ERROR)

    async def _dispose(self) -> None:
        """Stop the reader and release the HTTP session with every socket in it."""
        if self._disposed:
            return
        self._disposed = True
        self._end(CloseReason.TRANSPORT_ERROR)
        try:
            reader = self._reader
            if reader is not None and reader is not asyncio.current_task():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            await self._release()
        finally:
            await self._http.close()


class _WebSocketConnection(SockjsConnection):
    """SockJS over ``{session}/websocket``: one SockJS frame per WebSocket text frame."""

    transport = "websocket"

    def __init__(
        self,
        options: SockjsClientOptions,
        http: aiohttp.ClientSession,
        endpoint: _Endpoint,
        session: str,
        ws: aiohttp.ClientWebSocketResponse,
    ) -> None:
        super().__init__(options, http, endpoint, session)
        self.ws = ws

    async def _read(self) -> NoReturn:
        ws = self.ws
        while True:
            try:
                # The timeout restarts with every frame, pings included.
                msg = await ws.receive(timeout=LIVENESS_TIMEOUT)
            except TimeoutError:
                raise _Ended(CloseReason.TRANSPORT_ERROR, f"silent for {LIVENESS_TIMEOUT} s") from None
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self._on_frame(msg.data)
            elif msg.type is aiohttp.WSMsgType.PING:
                # Answered here rather than by aiohttp's autoping, so a paused client does not answer.
                await self._wait_unpaused()
                await ws.pong(msg.data)
            elif msg.type is aiohttp.WSMsgType.PONG:
                pass
            elif msg.type is aiohttp.WSMsgType.BINARY:
                raise _Ended(CloseReason.PROTOCOL_ERROR, "binary WebSocket frame")
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                close = received_close(msg.data, msg.extra or "", websocket=True)
                raise _Ended(close, f"closed with {msg.data}")
            elif msg.type is aiohttp.WSMsgType.ERROR and isinstance(msg.data, aiohttp.WebSocketError):
                # aiohttp closed the WebSocket with this code: 1009 (a frame past max_msg_size),
                # 1007 (text that is not UTF-8) or 1002 (a malformed frame).
                raise _Ended(CloseReason.from_wire(msg.data.code), str(msg.data))
            else:  # the connection dropped without a close frame
                raise _Ended(CloseReason.TRANSPORT_ERROR, f"WebSocket {msg.type.name}: {msg.data!r}")

    async def _send_text(self, text: str) -> None:
        async with self._send_lock:
            try:
                await self.ws.send_str(encode_payload([text]))
            except (aiohttp.ClientError, OSError) as exc:
                raise self._ended(exc) from None

    async def _say_goodbye(self, reason: CloseReason) -> None:
        await self.ws.close(code=reason.code, message=reason.value.encode())

    async def _after_end(self, reason: CloseReason) -> None:
        await self._close_ws(reason)

    async def _release(self) -> None:
        # Until closed, the WebSocket holds aiohttp's connection (which warns if dropped unclosed).
        await self._close_ws(self.reason or CloseReason.TRANSPORT_ERROR)

    async def _close_ws(self, reason: CloseReason) -> None:
        if self.ws.closed:
            return
        # 1006 may not be sent; 1011 reads as a transport error too.
        code = 1011 if reason is CloseReason.TRANSPORT_ERROR else reason.code
        text = reason.value
        if reason is CloseReason.APPLICATION:  # the server's close, answered as a normal one
            code, text = 1000, ""
        with contextlib.suppress(Exception):
            # Cut short, aiohttp drops the connection instead.
            async with asyncio.timeout(min(1.0, self.options.close_timeout)):
                await self.ws.close(code=code, message=text.encode())


class _Batch:
    """Messages that go to the server in one ``xhr_send`` POST."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.size = 0
        self.failed: CloseReason | None = None


class _HttpConnection(SockjsConnection):
    """SockJS over HTTP: a receiving request (``xhr_streaming`` or ``xhr``) repeated, and ``xhr_send``.

    Sends that arrive while a POST is in flight join one batch, which the
    first of them posts next: one POST at a time keeps messages in order.
    """

    def __init__(
        self,
        options: SockjsClientOptions,
        http: aiohttp.ClientSession,
        endpoint: _Endpoint,
        session: str,
        transport: str,
        lines: _Lines,
    ) -> None:
        super().__init__(options, http, endpoint, session)
        self.transport = transport
        self._lines = lines
        self._limit = _frame_limit(options.max_message_size)
        self._batch: _Batch | None = None
        self._deadline = 0.0
        #: Seconds without a frame after which the connection is dead (see :func:`_silence_bound`).
        self.silence = LIVENESS_TIMEOUT

    async def _read(self) -> NoReturn:
        try:
            await self._receive()
        except FrameError as exc:
            raise _Ended(CloseReason.PROTOCOL_ERROR, str(exc)) from None
        except TimeoutError:
            raise _Ended(CloseReason.TRANSPORT_ERROR, f"no frame for {self.silence:.3g} s") from None

    async def _receive(self) -> NoReturn:
        # Every wait on the network shares one deadline that each frame pushes back,
        # so neither a silent server nor a server that only ends responses keeps us.
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.silence
        lines = self._lines  # the open request's response: frames may follow the 'o'
        while True:
            try:
                while True:
                    async with asyncio.timeout_at(self._deadline):
                        frame = await lines.next()
                    if frame is None:
                        lines.response.release()  # read to its end: the connection may serve the next one
                        break
                    await self._on_frame(frame)
                    self._deadline = loop.time() + self.silence
            finally:
                lines.response.close()
            await self._wait_unpaused()
            async with asyncio.timeout_at(self._deadline):
                lines = await self._request()

    async def _request(self) -> _Lines:
        """The session's next receiving request (its answer has no ``o`` frame)."""
        name = _HTTP_ENDPOINTS[self.transport]
        response = await self._http.post(self._url(name))
        try:
            if response.status != 200:
                raise _Ended(_failed_status(response.status), f"{name} answered HTTP {response.status}")
            lines = _Lines(response, self._limit)
            if self.transport == "xhr-streaming":
                await _prelude(lines)
        except BaseException:
            response.close()
            raise
        return lines

    async def _send_text(self, text: str) -> None:
        # The most JSON can make of the text ("\u00XX" for a byte), its quotes and a comma: a batch
        # stays within the frame bound, which fits any one message.
        cost = 6 * message_size(text) + 3
        batch = self._batch
        if batch is None or batch.size + cost > self._limit:
            batch = self._batch = _Batch()
        batch.texts.append(text)
        batch.size += cost
        async with self._send_lock:
            if self._batch is batch:  # not posted yet: post it, with whatever joined it meanwhile
                self._batch = None
                try:
                    await self._post(batch.texts)
                except BaseException:
                    # Failed or cancelled half-way: nobody can tell what the server got.
                    self._end(CloseReason.TRANSPORT_ERROR)
                    batch.failed = self.reason
                    raise
        if batch.failed is not None:
            raise self._closed_error()

    async def _post(self, texts: list[str]) -> None:
        try:
            async with self._http.post(
                self._url("xhr_send"), data=encode_payload(texts).encode(), headers=_SEND_HEADERS
            ) as response:
                if not 200 <= response.status < 300:
                    raise self._ended(
                        RuntimeError(f"xhr_send answered HTTP {response.status}"),
                        _failed_status(response.status),
                    )
        except (aiohttp.ClientError, OSError) as exc:
            raise self._ended(exc) from None


def _silence_bound(info: dict[str, Any]) -> float:
    """How long an HTTP transport waits for a frame before its connection counts as dead.

    A request that went out while the network silently lost the way back (a
    black hole) never ends by itself: only the server's heartbeat, which a
    SockJS server sends at a fixed period while a request is open, tells that
    a frame is overdue. rtt's server gives its period (``ping_interval``) in
    ``/info`` as ``heartbeat_interval``; other servers give none (25 s by
    default): ``LIVENESS_TIMEOUT`` then.
    """
    interval = info.get("heartbeat_interval")
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        return LIVENESS_TIMEOUT
    return min(LIVENESS_TIMEOUT, _SILENT_BEATS * interval + _SILENCE_SLACK)


class SockjsClient(Client):
    """A client of a SockJS endpoint at ``http://host:port/sockjs`` (any SockJS server works).

    ``transports`` (an option) lists the SockJS transports to try, in order,
    on every connection attempt: ``websocket``, ``xhr-streaming`` and
    ``xhr-polling`` by default.
    """

    options: SockjsClientOptions
    _connection: SockjsConnection | None = None

    @property
    def connection(self) -> SockjsConnection | None:
        """The current SockJS session (an escape hatch, and for fault tests)."""
        return self._connection

    def pause_reading(self) -> None:
        """Freeze the session (SPEC.md 10.3): a WebSocket stops answering pings, an HTTP
        transport stops polling or reading its stream."""
        cast(SockjsConnection, self._current_connection()).pause_reading()

    async def _connect(self) -> ClientConnection:
        options = self.options
        endpoint = _Endpoint(self.connect_url, self.url)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.connect_timeout
        # aiohttp's WebSocket handshake error drops the body, where the server's reason is:
        # refused upgrades leave it here, by URL.
        refusals: dict[str, bytes] = {}

        async def on_request_end(
            session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
        ) -> None:
            if params.response.status >= 400 and params.headers.get("Upgrade", "").lower() == "websocket":
                refusals[str(params.url)] = await _read_small(params.response)

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(on_request_end)
        http = aiohttp.ClientSession(
            trace_configs=[trace],
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the default jar ignores cookies from IP hosts
            headers=options.headers,
            # Every request and the WebSocket use it; True verifies against the system's CAs.
            connector=aiohttp.TCPConnector(ssl=options.ssl or True),
            # Requests after the open have no deadline of their own but must not hang forever.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=LIVENESS_TIMEOUT, sock_read=LIVENESS_TIMEOUT
            ),
        )
        try:
            info = await _info(http, endpoint)
            failures: list[str] = []
            transports = options.transports
            for index, transport in enumerate(transports):
                if transport == "websocket" and info.get("websocket") is False:
                    failures.append("websocket: disabled by the server")
                    continue
                # A fair share of the time left, so a transport that hangs leaves time for the rest.
                share = (deadline - loop.time()) / (len(transports) - index)
                session = f"/{secrets.randbelow(1000):03d}/{secrets.token_urlsafe(12)}"
                try:
                    async with asyncio.timeout(share):
                        conn = await _open(transport, options, http, endpoint, session, refusals)
                except (_Unavailable, TimeoutError) as exc:
                    failures.append(f"{transport}: {str(exc) or 'timed out'}")
                    continue
                if isinstance(conn, _HttpConnection):
                    conn.silence = _silence_bound(info)
                conn._start()
                self._connection = conn
                return conn
            raise ConnectError(f"cannot connect to {self.url}: " + "; ".join(failures))
        except BaseException:
            await http.close()
            raise


async def _info(http: aiohttp.ClientSession, endpoint: _Endpoint) -> dict[str, Any]:
    """``GET {prefix}/info``: the server's answer (which also sets the binding cookie)."""
    shown = endpoint.url("/info", shown=True)
    try:
        async with http.get(endpoint.url("/info")) as response:
            body = await _read_small(response)
            if not 200 <= response.status < 300:
                raise RejectedError(response.status, refusal_reason(body, response.reason or ""))
    except (aiohttp.ClientError, ValueError) as exc:
        raise ConnectError(f"cannot connect to {shown}: {exc}") from exc
    try:
        info = load_json(body)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise ConnectError(f"{shown} is not a SockJS endpoint: {_text(body)!r}")
    return info


async def _open(
    transport: str,
    options: SockjsClientOptions,
    http: aiohttp.ClientSession,
    endpoint: _Endpoint,
    session: str,
    refusals: dict[str, bytes],
) -> SockjsConnection:
    """Open ``session`` over ``transport`` and read its ``o`` frame.

    Raise :class:`_Unavailable` if the transport cannot open,
    :class:`RejectedError` if the server refused the session and
    :class:`ConnectError` if it broke the protocol.
    """
    limit = _frame_limit(options.max_message_size)
    if transport == "websocket":
        url = endpoint.url(f"{session}/websocket", websocket=True)
        try:
            ws = await http.ws_connect(
                url,
                max_msg_size=limit,
                autoping=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=options.close_timeout),
            )
        except aiohttp.WSServerHandshakeError as exc:
            _refused(exc.status, refusal_reason(refusals.pop(str(exc.request_info.url), b""), exc.message))
            raise _Unavailable(f"HTTP {exc.status} {exc.message}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Unavailable(str(exc) or type(exc).__name__) from None
        try:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise _Unavailable(f"WebSocket {msg.type.name} before the 'o' frame")
            _check_open(msg.data)
        except BaseException as exc:
            code = CloseReason.PROTOCOL_ERROR.code if isinstance(exc, ConnectError) else 1000
            with contextlib.suppress(Exception):
                async with asyncio.timeout(min(1.0, options.close_timeout)):
                    await ws.close(code=code)
            raise
        return _WebSocketConnection(options, http, endpoint, session, ws)

    name = _HTTP_ENDPOINTS[transport]
    try:
        response = await http.post(endpoint.url(f"{session}/{name}"))
    except (aiohttp.ClientError, OSError) as exc:
        raise _Unavailable(str(exc) or type(exc).__name__) from None
    lines = _Lines(response, limit)
    try:
        try:
            if response.status != 200:
                body = await _read_small(response)
            else:
                if transport == "xhr-streaming":
                    await _prelude(lines)
                first = await lines.next()
        except FrameError as exc:
            raise ConnectError(f"protocol error: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Unavailable(str(exc) or type(exc).__name__) from None
        if response.status != 200:
            _refused(response.status, refusal_reason(body, response.reason or ""))
            raise _Unavailable(f"HTTP {response.status}")
        _check_open(first)
    except BaseException:
        response.close()
        raise
    return _HttpConnection(options, http, endpoint, session, transport, lines)


def _frame_limit(max_message_size: int) -> int:
    """The longest frame (or ``xhr_send`` body) to accept or send: ``_wire.frame_limit``.

    The prelude of a streaming response must fit too.
    """
    return max(frame_limit(max_message_size), len(PRELUDE))


async def _prelude(lines: _Lines) -> None:
    if await lines.next() != _PRELUDE_TEXT:
        raise FrameError("xhr_streaming response without its 'hhh...' prelude")


def _failed_status(status: int) -> CloseReason:
    """Why a request of an open session failed with ``status``: 403 is a refusal (session
    binding, or an origin no longer allowed), anything else a transport failure."""
    return CloseReason.REJECTED if status == 403 else CloseReason.TRANSPORT_ERROR


def _refused(status: int, text: str) -> None:
    """Raise for a 4xx or 5xx answer to a session-creating request; 404 only means "not here"."""
    if status >= 400 and status != 404:
        raise RejectedError(status, text)


def _check_open(frame: str | None) -> None:
    if frame != "o":
        shown = repr(frame)[:60]
        raise ConnectError(f"protocol error: the server sent {shown} instead of the 'o' frame")


async def _read_small(response: aiohttp.ClientResponse) -> bytes:
    """The start of a body that is meant to be small (``/info``, an error page)."""
    body = bytearray()
    while len(body) < _SMALL_BODY and (chunk := await response.content.readany()):
        body += chunk
    return bytes(body[:_SMALL_BODY])


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace").strip()[:200]
