"""Everything rtt-sockjs overrides or reads inside the ``sockjs`` library (SPEC.md 12.4, library coupling).

Written against ``sockjs>=0.13,<0.14`` (aio-libs) on ``aiohttp>=3.11``. The
library has no hooks for what rtt needs (a byte-counted queue, a strict
heartbeat, strict parsing, binding sessions to their client, close reasons),
so rtt subclasses its session, its session manager and its transports, and
gives its route rtt's transport table. Nothing else in the plugin touches the
library's internals: the rest uses this module and public APIs only.

:data:`COUPLING` lists each override and each access of something the library
does not document, with the reason; ``tests/sockjs_plugin/test_sockjs_canaries.py``
checks every entry against the installed release, and SPEC.md 12.4 lists them.
The rtt side of every decision (admitting, binding, closing) is
:class:`~rtt_sockjs.server.SockjsServer`'s; these classes only call it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp._websocket.reader
import aiohttp.web_protocol
import sockjs  # type: ignore[import-untyped, unused-ignore]
from aiohttp import WebSocketError, WSMsgType, web
from sockjs import (  # type: ignore[import-untyped, unused-ignore]
    Frame,
    SessionIsAcquired,
    SessionIsClosed,
    SessionState,
)
from sockjs.route import SockJSRoute  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports import transport_handlers  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports.base import (  # type: ignore[import-untyped, unused-ignore]
    StreamingTransport,
    Transport,
)
from sockjs.transports.websocket import WebSocketTransport  # type: ignore[import-untyped, unused-ignore]

from rtt import Close, CloseReason
from rtt.rfc6455 import check_aiohttp_masks

from ._wire import BATCH_CHARS, close_frame, messages_frame

if TYPE_CHECKING:
    from .server import SockjsConn, SockjsServer

__all__ = [
    "COUPLING",
    "HANDLERS",
    "PROTOCOL_ERROR_CODES",
    "RAW_WEBSOCKET",
    "TRANSPORT",
    "WRITTEN_AGAINST",
    "CheckedWebSocketResponse",
    "Coupling",
    "Receiving",
    "Refused",
    "RttManager",
    "RttRawWebSocket",
    "RttSession",
    "RttWebSocket",
    "add_endpoint",
    "answer_closed",
    "library_route",
    "raw_websocket",
    "served_urls",
]

#: The version range every entry of :data:`COUPLING` was written against.
WRITTEN_AGAINST: Final = "sockjs>=0.13,<0.14 (checked on 0.13.0), aiohttp>=3.11"

#: Request key under which rtt's transports name themselves before they acquire a session.
TRANSPORT: Final = "rtt.transport"

_ANOTHER_CONNECTION: Final = 'c[2010,"Another connection still open"]'


@dataclass(frozen=True)
class Coupling:
    """One part of the library rtt overrides, calls or reads although the library does not document it."""

    owner: type
    """The upstream class (``sockjs.session.Session``...)."""
    name: str
    """The method or attribute."""
    parameters: tuple[str, ...] | None
    """Its parameters (``self`` included) as rtt was written against; None: an attribute."""
    instance: bool
    """The attribute is set on instances (by the owner's ``__init__``), not on the class."""
    why: str
    """Why rtt touches it, and whether a public API could do instead."""


#: Every override and every undocumented access, in the order of this module.
COUPLING: Final[tuple[Coupling, ...]] = (
    Coupling(sockjs.Session, "__init__", None, False, "RttSession.__init__: adds rtt's own queue and waiter"),
    Coupling(
        sockjs.Session,
        "feed",
        ("self", "frame", "data"),
        False,
        "RttSession.feed: a queue that counts bytes (outbound_limit) and batches under BATCH_CHARS",
    ),
    Coupling(
        sockjs.Session,
        "get_frame",
        ("self", "pack"),
        False,
        "RttSession.get_frame: takes from rtt's queue; the transports' only way to read a session",
    ),
    Coupling(
        sockjs.Session,
        "release_waiters",
        ("self",),
        False,
        "RttSession.release_waiters: wakes the transport waiting on rtt's queue",
    ),
    Coupling(
        sockjs.Session,
        "request",
        None,
        True,
        "read by SockjsServer.drop: the receiving request, whose connection rtt aborts",
    ),
    Coupling(
        sockjs.SessionManager,
        "__init__",
        ("self", "name", "app", "handler", "heartbeat_delay", "disconnect_delay", "debug"),
        False,
        "RttManager.__init__: heartbeat_delay=0 (rtt keeps time), a long disconnect_delay",
    ),
    Coupling(
        sockjs.SessionManager, "factory", None, True, "set by RttManager.__init__: sessions are RttSessions"
    ),
    Coupling(
        sockjs.SessionManager,
        "started",
        None,
        False,
        "RttManager.started: always True, so the library never starts its session collector",
    ),
    Coupling(
        sockjs.SessionManager,
        "clear",
        ("self",),
        False,
        "RttManager.clear: ends every session as rtt's (shutdown), called by the library's stop",
    ),
    Coupling(
        sockjs.SessionManager,
        "acquire",
        ("self", "session", "request"),
        False,
        "RttManager.acquire: admission and binding before the library opens or resumes a session",
    ),
    Coupling(
        sockjs.SessionManager,
        "release",
        ("self", "s"),
        False,
        "RttManager.release: the heartbeat stops and an HTTP session's expiry starts",
    ),
    Coupling(
        sockjs.SessionManager,
        "remote_close",
        ("self", "session", "exc"),
        False,
        "RttManager.remote_close: the library's route saw a receiving request fail",
    ),
    Coupling(
        sockjs.SessionManager,
        "remote_closed",
        ("self", "session"),
        False,
        "RttManager.remote_closed: as remote_close (the library's route may call either)",
    ),
    Coupling(
        sockjs.SessionManager,
        "sessions",
        None,
        True,
        "read and written by rtt: an ended session is forgotten (after CLOSED_GRACE), a refused one at once",
    ),
    Coupling(
        sockjs.SessionManager,
        "acquired",
        None,
        True,
        "written by rtt: an ended session is no longer acquired",
    ),
    Coupling(
        Transport,
        "__init__",
        ("self", "manager", "session", "request"),
        False,
        "read: the transports' manager, session and request attributes",
    ),
    Coupling(Transport, "manager", None, True, "read by rtt's transports: the RttManager"),
    Coupling(Transport, "session", None, True, "read by rtt's transports: the RttSession"),
    Coupling(Transport, "request", None, True, "read by rtt's transports: the aiohttp request"),
    Coupling(
        StreamingTransport,
        "handle_session",
        ("self",),
        False,
        "Receiving.handle_session: rtt's receiving loop (close reasons, heartbeat ends a response)",
    ),
    Coupling(
        StreamingTransport,
        "_send",
        ("self", "text"),
        False,
        "called by Receiving.handle_session: each HTTP transport's own framing of a frame",
    ),
    Coupling(
        Transport,
        "process",
        ("self",),
        False,
        "called by answer_closed: each HTTP receiving transport's answer, given a closed stand-in session",
    ),
    Coupling(
        WebSocketTransport,
        "process",
        ("self",),
        False,
        "RttWebSocket.process: strict frames, the size limit, close reasons, pings as heartbeats",
    ),
    Coupling(
        WebSocketTransport,
        "get_session",
        ("manager", "session_id"),
        False,
        "relied on: a WebSocket presenting an existing session id gets a session of its own "
        "(raw_websocket makes its sessions with it too)",
    ),
    Coupling(
        WebSocketTransport,
        "name",
        None,
        False,
        "read by served_urls, add_endpoint: the transport classes' names (disable_transports, /info)",
    ),
    Coupling(
        SockJSRoute,
        "handlers",
        None,
        True,
        "set by add_endpoint below: add_endpoint takes no transport table, so its route gets rtt's",
    ),
    Coupling(
        SockJSRoute,
        "handler",
        ("self", "request"),
        False,
        "relied on: looks the transport up in handlers, calls remote_close/remote_closed/release",
    ),
    # aiohttp (written against 3.14.5; the lowest environment runs 3.11.0)
    Coupling(
        web.WebSocketResponse,
        "_post_start",
        ("self", "request", "protocol", "writer"),
        False,
        "CheckedWebSocketResponse: puts MaskCheck in front of the frame parser aiohttp has just made "
        "(RFC 6455 5.1: a server must fail an unmasked client frame; aiohttp takes it)",
    ),
    Coupling(
        web.WebSocketResponse,
        "_reader",
        None,
        True,
        "read by CheckedWebSocketResponse: the parser's message queue, which MaskCheck fails",
    ),
    Coupling(
        aiohttp._websocket.reader.WebSocketDataQueue,
        "set_exception",
        ("self", "exc", "exc_cause"),
        False,
        "called by MaskCheck as aiohttp's parser calls it for its own protocol errors: receive() "
        "then closes with 1002",
    ),
    Coupling(
        aiohttp.web_protocol.RequestHandler,
        "_payload_parser",
        None,
        False,
        "read and written by CheckedWebSocketResponse: the frame parser, wrapped in MaskCheck",
    ),
    Coupling(
        aiohttp.web_protocol.RequestHandler,
        "_message_tail",
        None,
        False,
        "read and written by CheckedWebSocketResponse: bytes that came with the handshake, "
        "checked before aiohttp's parser sees them",
    ),
    Coupling(
        web.WebSocketResponse,
        "close",
        ("self", "code", "message", "drain"),
        False,
        "CheckedWebSocketResponse.close: aiohttp's own close for a peer's protocol error (1002, "
        "1007) carries rtt's 'protocol error' text (SPEC.md 6); relies on receive() closing with "
        "the error's code",
    ),
)


class Refused(Exception):
    """A request may not use this session (it belongs to another client, or was not admitted)."""


class RttSession(sockjs.Session):  # type: ignore[misc]
    """A library session whose queue is rtt's: it counts bytes and batches messages under a bound.

    Queue entries are ``[frame, payload, bytes, characters]``; consecutive
    messages share one entry (one ``a[...]`` frame), as in the library, up to
    :data:`~rtt_sockjs._wire.BATCH_CHARS`. The library's own queue stays
    empty. rtt sends the heartbeat itself (:meth:`SockjsServer.acquired`), so the
    library's heartbeat task never starts (``heartbeat_delay=0``).
    """

    rtt_conn: SockjsConn | None = None
    transport_name = "websocket"
    #: A session of the raw WebSocket endpoint: messages are queued unpacked (never a blob).
    raw = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: collections.deque[list[Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None

    def feed(self, frame: Frame, data: Any, size: int = 0) -> None:
        # The library calls feed(Frame.OPEN, "o") when a session opens; rtt feeds the rest.
        queue = self.frames
        if frame is Frame.MESSAGE:
            chars = len(data) + 3
            last = queue[-1] if queue else None
            # Merged frames stay under BATCH_CHARS, so every client can take them (_wire.frame_limit).
            if last is not None and last[0] is Frame.MESSAGE and last[3] + chars <= BATCH_CHARS:
                last[1].append(data)
                last[2] += size
                last[3] += chars
            else:
                queue.append([frame, [data], size, chars])
        else:
            queue.append([frame, data, size, 0])
        self.release_waiters()

    async def get_frame(self, pack: bool = True) -> tuple[Frame, Any]:
        queue = self.frames
        if not queue and self.state is not SessionState.CLOSED:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiter = waiter
            try:
                await waiter
            finally:
                self.waiter = None
        if not queue:
            raise SessionIsClosed()
        frame, payload, size, _ = queue.popleft()
        conn = self.rtt_conn
        if conn is not None:
            conn.queued -= size
        if frame is Frame.MESSAGE:
            # Unpacked (the raw WebSocket): the messages' texts, one by one.
            return frame, messages_frame(payload) if pack else payload
        return frame, payload

    def release_waiters(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def drop_queue(self) -> None:
        """Free everything queued and wake a waiting transport."""
        self.frames.clear()
        if self.rtt_conn is not None:
            self.rtt_conn.queued = 0
        self.release_waiters()


class RttManager(sockjs.SessionManager):  # type: ignore[misc]
    """The library's session manager with rtt's sessions, admission, binding and close reasons.

    rtt expires sessions itself (:meth:`SockjsServer.arm`), so the library's
    periodic collector never runs, and sends heartbeats itself.
    """

    def __init__(self, rtt: SockjsServer, app: web.Application) -> None:
        # The library drops sessions that outlive ``disconnect_delay`` in a collector
        # that rtt never starts; a positive value only keeps new sessions valid.
        super().__init__("rtt", app, _ignore, heartbeat_delay=0, disconnect_delay=3600)
        self.rtt = rtt
        self.factory = RttSession

    @property
    def started(self) -> bool:
        return True

    async def clear(self) -> None:
        for session in list(self.sessions.values()):
            conn = session.rtt_conn
            if conn is not None and not conn.ended:
                self.rtt.drop(conn)
                await self.rtt.finish_conn(conn, conn.rtt_reason or CloseReason.SHUTDOWN)
            session.release()
        self.sessions.clear()
        self.acquired.clear()

    async def acquire(self, session: RttSession, request: web.Request) -> RttSession:
        conn = session.rtt_conn
        if session.state is SessionState.NEW:
            conn = await self.rtt.new_conn(session, request)
        elif conn is None or not self.rtt.resumes(conn, request):
            raise Refused()
        session.transport_name = request[TRANSPORT]
        self.rtt.disarm(conn)
        await super().acquire(session, request)
        await self.rtt.acquired(conn, request)
        return session

    async def release(self, s: RttSession) -> None:
        await super().release(s)
        conn = s.rtt_conn
        if conn is not None:
            self.rtt.released(conn)

    def forget(self, session: RttSession) -> None:
        """Drop an ended session from the library's tables (its id opens a new session)."""
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        self.acquired.pop(session.id, None)

    def conns(self) -> list[SockjsConn]:
        """rtt's view of every session the library holds."""
        return [s.rtt_conn for s in list(self.sessions.values()) if s.rtt_conn is not None]

    def forget_orphan(self, session_id: str) -> None:
        """Drop a session the library created for a request that never opened it."""
        orphan = self.sessions.get(session_id)
        if orphan is not None and orphan.rtt_conn is None:
            del self.sessions[session_id]

    async def remote_close(self, session: RttSession, exc: BaseException | None = None) -> None:
        # The library's route calls this when a receiving request fails (the client went away).
        conn = session.rtt_conn
        if conn is not None and not conn.ended:
            self.rtt.lost(conn, CloseReason.TRANSPORT_ERROR)

    async def remote_closed(self, session: RttSession) -> None:
        await self.remote_close(session)


async def _ignore(manager: Any, session: Any, message: Any) -> None:
    """The library's message handler: rtt reads messages itself, before the library would."""


class Receiving(StreamingTransport):  # type: ignore[misc]
    """rtt's loop for the library's HTTP receiving transports (mixed into each).

    Differences from the library's: a closing session still hands out what
    was queued before its close frame; a closed one repeats rtt's reason; a
    response ends after each heartbeat, so the client must come back (and so
    prove it still reads) within ``ping_timeout``; a session is resumed only
    by the client that opened it.
    """

    session: RttSession
    manager: RttManager

    async def handle_session(self) -> None:
        session = self.session
        manager = self.manager
        conn = session.rtt_conn
        if session.state is SessionState.CLOSED:
            closed = conn.close_text if conn is not None else None
            await self._send(closed or close_frame(CloseReason.SERVER_CLOSED))
            return
        self.request[TRANSPORT] = self.name
        try:
            await manager.acquire(session, self.request)
        except (SessionIsAcquired, Refused):
            await self._send(_ANOTHER_CONNECTION)
            return
        conn = session.rtt_conn
        assert conn is not None
        try:
            while True:
                frame, text = await session.get_frame()
                stop = await self._send(text)
                if frame is Frame.CLOSE:
                    manager.rtt.close_sent(conn)
                    break
                if stop or frame is Frame.HEARTBEAT:
                    break
        except (asyncio.CancelledError, ConnectionError, web.HTTPError):
            await manager.remote_close(session)
            raise
        except SessionIsClosed:
            pass
        finally:
            await manager.release(session)


def _receiving(library_class: type[StreamingTransport]) -> type[StreamingTransport]:
    return type(f"Rtt{library_class.__name__}", (Receiving, library_class), {})


class RttWebSocket(WebSocketTransport):  # type: ignore[misc]
    """SockJS's framed WebSocket, read by rtt: strict frames, size limit, close reasons, pings."""

    session: RttSession
    manager: RttManager
    #: SockJS's raw WebSocket (:class:`RttRawWebSocket`): one message per WebSocket message.
    raw = False

    async def process(self) -> web.StreamResponse:
        request = self.request  # a GET: the guard answers any other method (405)
        rtt = self.manager.rtt
        session = self.session
        # No permessage-deflate (as rtt-ws): it costs ~90 KiB of memory per connection.
        ws = CheckedWebSocketResponse(autoping=False, max_msg_size=rtt.frame_limit, compress=False)
        await ws.prepare(request)
        request[TRANSPORT] = self.name
        try:
            await self.manager.acquire(session, request)
        except (SessionIsAcquired, Refused):
            if session.rtt_conn is None:
                self.manager.sessions.pop(session.id, None)
            if not self.raw:
                await ws.send_str(_ANOTHER_CONNECTION)
            await ws.close()
            return ws
        conn = session.rtt_conn
        assert conn is not None
        conn.ws = ws
        writer = asyncio.get_running_loop().create_task(self._write(ws, conn))
        reason = CloseReason.TRANSPORT_ERROR
        try:
            reason = await self._read(ws, conn)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            await self.manager.release(session)
            await rtt.finish_conn(conn, conn.detected or reason)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(rtt.options.close_timeout):
                        closing = conn.detected or CloseReason.SERVER_CLOSED
                        await ws.close(code=closing.code, message=closing.value.encode())
        return ws

    async def _write(self, ws: web.WebSocketResponse, conn: SockjsConn) -> None:
        session = self.session
        rtt = self.manager.rtt
        try:
            while True:
                frame, text = await session.get_frame()
                if frame is Frame.HEARTBEAT:
                    await ws.ping()
                    continue
                await ws.send_str(text)
                if frame is Frame.CLOSE:
                    await _close_as(ws, conn)
                    rtt.close_sent(conn)
                    return
        except (SessionIsClosed, ConnectionError, RuntimeError):
            return

    async def _read(self, ws: web.WebSocketResponse, conn: SockjsConn) -> CloseReason:
        rtt = self.manager.rtt
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                # A framed empty message carries nothing; a raw one is the message "".
                delivered = not (msg.data or self.raw) or await rtt.deliver(conn, msg.data, raw=self.raw)
                if not delivered and conn.client_closing:
                    return CloseReason.CLIENT_CLOSED
                # After a violation rtt is closing the session: the writer sends the
                # close frame and closes, which ends this loop.
            elif kind is WSMsgType.PONG:
                rtt.disarm(conn)
            elif kind is WSMsgType.PING:
                await ws.pong(msg.data)
            elif kind is WSMsgType.BINARY:
                rtt.violation(conn, CloseReason.PROTOCOL_ERROR)  # SockJS is text only
            elif kind is WSMsgType.CLOSE:
                return CloseReason.from_client(msg.data, msg.extra or "")
            elif kind is WSMsgType.ERROR:
                code = getattr(msg.data, "code", None) or ws.close_code  # the WebSocketError's
                if code == 1009:
                    conn.detected = CloseReason.MESSAGE_TOO_BIG
                elif code in PROTOCOL_ERROR_CODES:  # CheckedWebSocketResponse closed it
                    conn.detected = CloseReason.PROTOCOL_ERROR
                return conn.detected or CloseReason.TRANSPORT_ERROR
            else:  # CLOSING, CLOSED
                return CloseReason.TRANSPORT_ERROR


async def _close_as(ws: web.WebSocketResponse, conn: SockjsConn) -> None:
    """Close the WebSocket with the session's close: the same code and text as its ``c[...]`` frame."""
    close = conn.closing or Close.of(conn.rtt_reason or CloseReason.SERVER_CLOSED)
    await ws.close(code=close.code, message=close.text.encode())


class RttRawWebSocket(RttWebSocket):
    """SockJS's raw WebSocket (``{prefix}/websocket``): each WebSocket text message is one message.

    No SockJS framing either way (no ``o``, ``h``, ``a[...]`` or ``c[...]``):
    heartbeats are WebSocket pings and the close reason is the WebSocket
    close's code and text (SPEC.md 6). Everything else (admission, limits,
    queue, heartbeat schedule, shutdown) is the framed WebSocket's.
    """

    name = "websocket-raw"
    raw = True

    async def _write(self, ws: web.WebSocketResponse, conn: SockjsConn) -> None:
        session = self.session
        rtt = self.manager.rtt
        try:
            while True:
                frame, data = await session.get_frame(pack=False)
                if frame is Frame.MESSAGE:
                    for text in data:
                        await ws.send_str(text)
                elif frame is Frame.HEARTBEAT:
                    await ws.ping()
                elif frame is Frame.CLOSE:
                    await _close_as(ws, conn)
                    rtt.close_sent(conn)
                    return
                else:  # the library's "o": the raw endpoint sends none
                    assert frame is Frame.OPEN, frame  # SockjsServer feeds a raw session no blob
        except (SessionIsClosed, ConnectionError, RuntimeError):
            return


async def raw_websocket(manager: RttManager, request: web.Request) -> web.StreamResponse:
    """Serve SockJS's raw WebSocket endpoint: a session of its own under an id no client chose.

    The library's own raw route draws ids from ``random`` and would join a
    session whose id it drew again; rtt's are 96 random bits, never reused
    while held. A session the request never opened is not left behind.
    """
    session = RttRawWebSocket.get_session(manager, secrets.token_urlsafe(12))
    session.raw = True
    try:
        response: web.StreamResponse = await RttRawWebSocket(manager, session, request).process()
        return response
    finally:
        manager.forget_orphan(session.id)


# -- aiohttp's server WebSocket, as RFC 6455 asks ------------------------------


class CheckedWebSocketResponse(web.WebSocketResponse):
    """aiohttp's server WebSocket, failing the connection where RFC 6455 says a server must.

    - An unmasked client frame is a protocol error (RFC 6455 5.1: the server
      MUST close the connection); aiohttp's reader takes it as if masked
      (:class:`rtt.rfc6455.MaskCheck`).
    - A close aiohttp sends on its own for a peer's protocol error (1002, or
      1007 for invalid UTF-8) carries rtt's ``protocol error`` text (SPEC.md 6);
      aiohttp sends no text.
    """

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        def start() -> Any:
            super(CheckedWebSocketResponse, self)._post_start(request, protocol, writer)
            return self._reader

        check_aiohttp_masks(request.protocol, start, _unmasked_error)

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if not message and code in PROTOCOL_ERROR_CODES:
            message = PROTOCOL_ERROR_TEXT
        return await super().close(code=code, message=message, drain=drain)


#: Close codes of a peer's protocol error (RFC 6455 7.4.1: protocol error, invalid UTF-8).
PROTOCOL_ERROR_CODES: Final = frozenset({1002, 1007})
PROTOCOL_ERROR_TEXT: Final = CloseReason.PROTOCOL_ERROR.value.encode()


def _unmasked_error() -> WebSocketError:
    # What aiohttp's frame parser puts in the message queue for its own protocol errors.
    return WebSocketError(1002, "unmasked client frame")


#: The name of the raw WebSocket route in the endpoint's sub-application.
RAW_WEBSOCKET: Final = "rtt-sockjs-websocket-raw"

#: The library's transports with rtt's receiving loop and WebSocket; the message
#: POSTs (``xhr_send``, ``jsonp_send``) never reach the library (rtt answers them).
HANDLERS: Final[dict[str, type[Any]]] = {
    name: _receiving(cls) if issubclass(cls, StreamingTransport) else cls
    for name, cls in transport_handlers.items()
}
HANDLERS["websocket"] = RttWebSocket
#: The library's name of each transport (``xhr`` and ``xhr_send`` are both ``xhr-polling``).
_NAMES: Final = frozenset(cls.name for cls in HANDLERS.values())


def served_urls(served: Iterable[str]) -> frozenset[str]:
    """The transport URL segments (``xhr_send``) a server serving the SockJS transports ``served`` answers.

    ``xhr_send`` carries the messages of every transport but JSONP's
    (sockjs-client's xhr-streaming, and its iframe transports, post there too).
    """
    names = set(served)
    urls = {url for url, cls in HANDLERS.items() if cls.name in names}
    if names & {"xhr-polling", "xhr-streaming", "eventsource", "htmlfile"}:
        urls.add("xhr_send")
    return frozenset(urls)


def add_endpoint(
    sub: web.Application, manager: RttManager, sockjs_cdn: str, served: Iterable[str] | None = None
) -> None:
    """The library's SockJS routes at the root of ``sub``, served by rtt's transports and ``manager``.

    Only the transports named in ``served`` (all if None) are routed (the
    library's ``disable_transports``, which its ``/info`` reflects). SockJS's
    raw WebSocket endpoint (``/websocket``) is served with ``websocket``, by
    rtt (:func:`raw_websocket`, route :data:`RAW_WEBSOCKET`, every method: the
    guard answers any but GET with 405); the library's own never is.

    ``sockjs.add_endpoint`` takes no transport table; the one object that
    answers its routes (a ``sockjs.route.SockJSRoute``) is found by its type,
    not by the order of the routes, and given rtt's table. A release where it
    is not found fails here, loudly, rather than serving the library's own
    transports behind rtt's back.
    """
    routes = sockjs.add_endpoint(
        sub,
        _ignore,
        name=manager.name,
        prefix="/",
        manager=manager,
        sockjs_cdn=sockjs_cdn,
        cookie_needed=True,
        disable_transports=("websocket-raw", *(_NAMES - set(_NAMES if served is None else served))),
    )
    library_route(routes).handlers = HANDLERS
    if served is None or WebSocketTransport.name in served:
        sub.router.add_route("*", "/websocket", functools.partial(raw_websocket, manager), name=RAW_WEBSOCKET)


def library_route(routes: Iterable[web.AbstractRoute]) -> Any:
    """The one ``sockjs.route.SockJSRoute`` whose methods answer ``routes``; RuntimeError if there is none."""
    owners = {id(owner): owner for owner in (getattr(route.handler, "__self__", None) for route in routes)}
    found = [owner for owner in owners.values() if isinstance(owner, SockJSRoute)]
    if len(found) != 1 or not isinstance(getattr(found[0], "handlers", None), dict):
        raise RuntimeError(
            f"sockjs {sockjs.__version__}: add_endpoint's routes are not answered by one "
            f"sockjs.route.SockJSRoute with a 'handlers' table (found {found!r}); rtt-sockjs was "
            f"written against {WRITTEN_AGAINST}: review rtt_sockjs/_library.py"
        )
    return found[0]


class _ClosedStandIn:
    """A closed session as :meth:`Receiving.handle_session` reads one: it answers ``close_text`` and ends."""

    state = SessionState.CLOSED
    interrupted = False

    def __init__(self, close_text: str) -> None:
        self.rtt_conn = self
        self.close_text = close_text
        self.ended = True  # RttManager.remote_close leaves an ended connection alone


async def answer_closed(
    manager: RttManager, transport: str, request: web.Request, close_text: str
) -> web.StreamResponse:
    """Answer a receiving request with ``close_text`` in its transport's framing, touching no session.

    The library's transport frames it (xhr, streaming prelude, eventsource,
    htmlfile and JSONP callbacks); its route is bypassed, because the route
    ends whatever session is acquired when a request finishes, and the
    refused request is not that session's.
    """
    handler = HANDLERS[transport](manager, _ClosedStandIn(close_text), request)
    response: web.StreamResponse = await handler.process()
    return response
