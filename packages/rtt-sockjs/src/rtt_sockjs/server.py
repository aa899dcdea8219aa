"""The sockjs server: rtt's server template over aiohttp's ``sockjs`` library (SPEC.md 12.4).

The library owns the SockJS routes, the receiving transports (xhr polling,
xhr streaming, eventsource, htmlfile, jsonp) and the session queue. rtt adds
what it lacks, in an aiohttp sub-application at the endpoint prefix:

- a middleware that runs the origin check on every request and ``authorize``
  before a session exists, and binds each HTTP session to the client that
  opened it with a cookie (SockJS session ids come from the client's URL, so
  anyone who learns one could otherwise poll or post as that client);
- its own WebSocket transport and message POST handling, which parse frames
  strictly, enforce ``max_message_size`` and report why a connection ended;
- a session class whose queue counts its bytes (``outbound_limit``), whose
  heartbeat is strictly periodic, and which ends a streaming response after
  each heartbeat, so a client that stops reading is noticed (``ping timeout``);
- with a broker, a request of an HTTP session another process holds is
  relayed to that process (SPEC.md 13.8), so no sticky sessions are needed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import shutil
import socket as socket_module
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote_plus, urlencode

import sockjs  # type: ignore[import-untyped, unused-ignore]
from aiohttp import WSMsgType, hdrs, web
from sockjs import (  # type: ignore[import-untyped, unused-ignore]
    Frame,
    SessionIsAcquired,
    SessionIsClosed,
    SessionState,
)
from sockjs.transports import transport_handlers  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports.base import StreamingTransport  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports.websocket import WebSocketTransport  # type: ignore[import-untyped, unused-ignore]

from rtt import BrokerError, CloseReason, ConnectionClosed, Handshake, Headers, Reject, Server, Socket
from rtt.assets import asset_headers, read_asset
from rtt.codec import decode_text, encode_text, message_size
from rtt.handshake import origin_allowed
from rtt.relay import RelayedRequest, relay_headers

from ._wire import (
    BATCH_CHARS,
    BINDING_COOKIE,
    CLIENT_CLOSING,
    FrameError,
    close_frame,
    frame_limit,
    messages_frame,
    parse_client_payload,
)

if TYPE_CHECKING:
    from .transport import SockjsServerOptions, SockjsTransport

__all__ = ["SockjsConn", "SockjsServer"]

logger = logging.getLogger("rtt.sockjs")

#: Transports whose request opens (or resumes) a session's receiving side.
RECEIVING: Final = frozenset({"websocket", "xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp"})
#: Transports that post messages into an existing session.
SENDING: Final = frozenset({"xhr_send", "jsonp_send"})
#: Query parameters SockJS clients add themselves (cache buster, JSONP callback, iframe id).
_PROTOCOL_QUERY: Final = frozenset({"t", "c", "i"})
#: Close codes of a WebSocket the client closed on purpose (normal, going away, no status).
_CLIENT_CLOSE_CODES: Final = frozenset({1000, 1001, 1005, 0})
_ANOTHER_CONNECTION: Final = 'c[2010,"Another connection still open"]'


class SockjsConn:
    """rtt's view of one SockJS session (the ``C`` of ``Server[C]``)."""

    __slots__ = (
        "client_closing",
        "close_taken",
        "close_text",
        "deadline",
        "detected",
        "ended",
        "key",
        "queued",
        "rtt_reason",
        "server",
        "session",
        "socket",
        "ws",
    )

    def __init__(self, server: SockjsServer, session: _RttSession, key: str | None) -> None:
        self.server = server
        self.session = session
        #: The binding cookie of an HTTP session (None for a WebSocket session).
        self.key = key
        self.socket: Socket | None = None
        #: Bytes of messages queued that the client has not been sent yet.
        self.queued = 0
        #: The reason rtt chose when it began closing the session itself.
        self.rtt_reason: CloseReason | None = None
        #: A reason rtt saw on the wire (oversize, malformed) before the session ended.
        self.detected: CloseReason | None = None
        #: The client announced a deliberate close (``CLIENT_CLOSING``).
        self.client_closing = False
        #: The close frame, once queued, and a future done when a transport sent it.
        self.close_text: str | None = None
        self.close_taken: asyncio.Future[None] | None = None
        #: When the client must show life by (a pong, a new receiving request).
        self.deadline: asyncio.TimerHandle | None = None
        self.ws: web.WebSocketResponse | None = None
        self.ended = False

    @property
    def transport_name(self) -> str:
        """The SockJS transport of the session's latest receiving request."""
        return self.session.transport_name


class _Refused(Exception):
    """A request may not use this session (it belongs to another client)."""


class _RttSession(sockjs.Session):  # type: ignore[misc]
    """A library session whose queue counts bytes and whose heartbeat keeps time.

    Queue entries are ``[frame, payload, bytes, characters]``; consecutive
    messages share one entry (one ``a[...]`` frame), as in the library, up to
    :data:`~rtt_sockjs._wire.BATCH_CHARS`.
    """

    rtt_conn: SockjsConn | None = None
    transport_name = "websocket"
    _waiter: asyncio.Future[None] | None

    def tick(self, timeout: float | None = None) -> None:
        # The library postpones the heartbeat on every frame; rtt's heartbeat is
        # strictly periodic (a busy connection must still prove it reads), so
        # there is nothing to compute per frame.
        pass

    async def _heartbeat_task(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_delay)
            self.heartbeat()
            conn = self.rtt_conn
            if conn is not None:
                conn.server.arm(conn, conn.server.options.ping_timeout)

    def feed(self, frame: Frame, data: Any, size: int = 0) -> None:
        queue: collections.deque[list[Any]] = self._queue
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

    async def get_frame(self, pack: bool = True) -> tuple[Frame, str]:
        queue: collections.deque[list[Any]] = self._queue
        if not queue and self.state is not SessionState.CLOSED:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        if not queue:
            raise SessionIsClosed()
        frame, payload, size, _ = queue.popleft()
        conn = self.rtt_conn
        if conn is not None:
            conn.queued -= size
        if frame is Frame.MESSAGE:
            return frame, messages_frame(payload)
        return frame, payload

    def drop_queue(self) -> None:
        """Free everything queued and wake a waiting transport."""
        self._queue.clear()
        if self.rtt_conn is not None:
            self.rtt_conn.queued = 0
        self.release_waiters()


class _RttManager(sockjs.SessionManager):  # type: ignore[misc]
    """The library's session manager with rtt's sessions, binding and close reasons.

    rtt expires sessions itself (:meth:`SockjsServer.arm`), so the library's
    periodic garbage collection never runs.
    """

    def __init__(self, rtt: SockjsServer, app: web.Application, heartbeat: float) -> None:
        # The library drops sessions that outlive ``disconnect_delay`` in a collector
        # that rtt never starts; a positive value only keeps new sessions valid.
        super().__init__("rtt", app, _ignore, heartbeat_delay=heartbeat, disconnect_delay=3600)
        self.rtt = rtt
        self.factory = _RttSession

    @property
    def started(self) -> bool:
        return True

    def start(self) -> None:
        pass

    async def stop(self, _app: Any = None) -> None:
        await self.clear()

    async def clear(self) -> None:
        for session in list(self.sessions.values()):
            conn = session.rtt_conn
            if conn is not None and not conn.ended:
                self.rtt.drop(conn)
                await self.rtt.finish_conn(conn, conn.rtt_reason or CloseReason.SHUTDOWN)
            session.release()
        self.sessions.clear()
        self.acquired.clear()

    async def acquire(self, session: _RttSession, request: web.Request) -> _RttSession:
        conn = session.rtt_conn
        admitted = request.get("rtt.admitted")
        if session.state is SessionState.NEW:
            if admitted is None:  # a request the middleware did not admit: never a session
                raise _Refused()
            conn = SockjsConn(self.rtt, session, request.get("rtt.key"))
            session.rtt_conn = conn
            if conn.key is not None and self.rtt._relay_socket is not None:
                await self.rtt._hold_session(session.id)
        elif conn is None or conn.ended or conn.key is None or conn.key != request.get("rtt.key"):
            raise _Refused()
        session.transport_name = request["sockjs_transport_name"]
        self.rtt.disarm(conn)
        await super().acquire(session, request)
        if conn.socket is None and admitted is not None:
            handshake, identity = admitted
            conn.socket = await self.rtt._opened(conn, handshake, identity)
        return session

    async def release(self, s: _RttSession) -> None:
        await super().release(s)
        conn = s.rtt_conn
        if conn is not None and not conn.ended and conn.key is not None:
            options = self.rtt.options
            self.rtt.arm(conn, (options.ping_interval or 0.0) + options.ping_timeout)

    async def remote_close(self, session: _RttSession, exc: BaseException | None = None) -> None:
        # The library calls this when a receiving request fails (the client went away).
        conn = session.rtt_conn
        if conn is not None and not conn.ended:
            self.rtt.lost(conn, CloseReason.TRANSPORT_ERROR)

    async def remote_closed(self, session: _RttSession) -> None:
        await self.remote_close(session)


async def _ignore(manager: Any, session: Any, message: Any) -> None:
    """The library's message handler: rtt reads messages itself, before the library would."""


class _Receiving(StreamingTransport):  # type: ignore[misc]
    """rtt's loop for the library's HTTP receiving transports (mixed into each).

    Differences from the library's: a closing session still hands out what
    was queued before its close frame; a closed one repeats rtt's reason; a
    response ends after each heartbeat, so the client must come back (and so
    prove it still reads) within ``ping_timeout``; a session is resumed only
    by the client that opened it.
    """

    session: _RttSession
    manager: _RttManager

    async def handle_session(self) -> None:
        session = self.session
        manager = self.manager
        conn = session.rtt_conn
        if session.state is SessionState.CLOSED:
            closed = conn.close_text if conn is not None else None
            await self._send(closed or close_frame(CloseReason.SERVER_CLOSED))
            return
        try:
            await manager.acquire(session, self.request)
        except (SessionIsAcquired, _Refused):
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
    return type(f"Rtt{library_class.__name__}", (_Receiving, library_class), {})


class _RttWebSocket(WebSocketTransport):  # type: ignore[misc]
    """SockJS's framed WebSocket, read by rtt: strict frames, size limit, close reasons, pings."""

    session: _RttSession
    manager: _RttManager

    async def process(self) -> web.StreamResponse:
        request = self.request
        if request.method != hdrs.METH_GET:
            raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET])
        rtt = self.manager.rtt
        session = self.session
        # No permessage-deflate (as rtt-ws): it costs ~90 KiB of memory per connection.
        ws = web.WebSocketResponse(autoping=False, max_msg_size=rtt.frame_limit, compress=False)
        await ws.prepare(request)
        try:
            await self.manager.acquire(session, request)
        except (SessionIsAcquired, _Refused):
            if session.rtt_conn is None:
                self.manager.sessions.pop(session.id, None)
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
                        await ws.close(code=(conn.detected or CloseReason.SERVER_CLOSED).code)
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
                    reason = conn.rtt_reason or CloseReason.SERVER_CLOSED
                    await ws.close(code=reason.code, message=reason.value.encode())
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
                if msg.data and not await rtt.deliver(conn, msg.data) and conn.client_closing:
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
                if msg.data in _CLIENT_CLOSE_CODES:
                    return CloseReason.CLIENT_CLOSED
                return CloseReason.from_wire(msg.data, msg.extra or "")
            elif kind is WSMsgType.ERROR:
                if ws.close_code == 1009:
                    conn.detected = CloseReason.MESSAGE_TOO_BIG
                return conn.detected or CloseReason.TRANSPORT_ERROR
            else:  # CLOSING, CLOSED
                return CloseReason.TRANSPORT_ERROR


#: The library's transports with rtt's receiving loop and WebSocket; the message
#: POSTs (``xhr_send``, ``jsonp_send``) never reach the library (see ``_guard``).
_HANDLERS: Final[dict[str, type[Any]]] = {
    name: _receiving(cls) if issubclass(cls, StreamingTransport) else cls
    for name, cls in transport_handlers.items()
}
_HANDLERS["websocket"] = _RttWebSocket


class SockjsServer(Server[SockjsConn]):
    """A SockJS endpoint at ``http://host:port/sockjs`` (the ``sockjs_prefix`` option).

    Standalone (``async with transport.server(host, port)``) it runs its own
    aiohttp web server; ``server.attach(app)`` mounts it into an existing
    aiohttp application instead (before that application starts).
    """

    options: SockjsServerOptions

    def __init__(
        self, transport: SockjsTransport, options: SockjsServerOptions, host: str, port: int
    ) -> None:
        super().__init__(transport, options, host, port)
        #: Largest WebSocket frame accepted; a POST body may hold four (batched sends).
        self.frame_limit = frame_limit(options.max_message_size)
        self.body_limit = 4 * self.frame_limit
        self._sub: web.Application | None = None
        self._manager: _RttManager | None = None
        self._runner: web.AppRunner | None = None
        self._mounted = False

    # -- Mounting -----------------------------------------------------------

    @property
    def prefix(self) -> str:
        """URL path of the endpoint (``/sockjs``)."""
        return self.options.sockjs_prefix

    @property
    def manager(self) -> sockjs.SessionManager:
        """The library's session manager (for inspection; rtt owns its sessions)."""
        return self._endpoint()[1]

    def attach(self, app: web.Application) -> None:
        """Serve the endpoint (and the browser assets) inside ``app``, beside its other routes.

        Call before ``app`` starts; then ``start()`` the server (or ``async with
        server``) while the application runs. ``host``/``port`` only make ``url``.
        """
        if self._sub is not None:
            raise RuntimeError("this server is already attached to an application")
        sub, _ = self._endpoint()
        app.add_subapp(self.prefix, sub)
        self._add_asset_route(app)
        self._mounted = True

    def _endpoint(self) -> tuple[web.Application, _RttManager]:
        if self._sub is None or self._manager is None:
            sub = web.Application(middlewares=[self._guard])
            interval = self.options.ping_interval
            manager = _RttManager(self, sub, interval if interval is not None else 0)
            routes = sockjs.add_endpoint(
                sub,
                _ignore,
                name="rtt",
                prefix="/",
                manager=manager,
                sockjs_cdn=self.options.sockjs_client_url,
                cookie_needed=True,
                disable_transports=("websocket-raw",),
            )
            # add_endpoint takes no transport table: give its route rtt's one.
            routes[0].handler.__self__.handlers = _HANDLERS
            sub.on_response_prepare.append(self._decorate)
            self._sub, self._manager = sub, manager
        return self._sub, self._manager

    def _add_asset_route(self, app: web.Application) -> None:
        if self.options.assets_path is not None:
            app.router.add_get(self.options.assets_path + "{name}", self._asset)

    async def _asset(self, request: web.Request) -> web.Response:
        found = read_asset(self.transport.browser_assets(), request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, body = found
        return web.Response(body=body, headers=asset_headers(content_type))

    # -- The guard: origins, authorize, binding, message POSTs ---------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        info = request.match_info
        transport = info.get("transport")
        _, manager = self._endpoint()
        session = manager.sessions.get(info["session"]) if transport is not None else None
        if session is None and transport not in (None, "websocket") and self._relay_socket is not None:
            relayed = await self._forward(request, info["session"])
            if relayed is not None:
                return relayed
        if transport is None:  # greeting, info, iframe page: public, for any origin
            if request.path.endswith("/info"):
                self._key(request)
            return await handler(request)
        opening = transport in RECEIVING and (session is None or transport == "websocket")
        if not opening and not origin_allowed(request.headers.get(hdrs.ORIGIN), self.options.allowed_origins):
            # (A request that opens a session has its origin checked by _admit, with authorize.)
            return web.Response(status=403, text="Origin not allowed")
        if transport in SENDING or (transport == "jsonp" and request.method == hdrs.METH_POST):
            conn = session.rtt_conn if session is not None else None
            if conn is None or conn.ended or not _owns(conn, request):
                return web.Response(status=404, text="No such session")
            return await self._post(request, conn, jsonp=transport != "xhr_send")
        if transport not in RECEIVING or request.method == hdrs.METH_OPTIONS:
            return await handler(request)
        if not opening:
            assert session is not None
            conn = session.rtt_conn
            if conn is None or not _owns(conn, request):
                return web.Response(status=404, text="No such session")
            request["rtt.key"] = conn.key
            return await _answer(handler, request)
        # A new session: admit it before the library creates it.
        handshake = self._handshake(request)
        decision = await self._admit(handshake)
        if isinstance(decision, Reject):
            return web.Response(status=decision.status, text=decision.reason)
        request["rtt.admitted"] = (handshake, decision.identity)
        if transport != "websocket":  # a WebSocket session lives and dies with its socket
            request["rtt.key"] = self._key(request)
        try:
            return await _answer(handler, request)
        finally:
            # A request the library refused before the session opened (a JSONP
            # request without its callback, say) must not leave a session nobody owns.
            orphan = manager.sessions.get(info["session"])
            if orphan is not None and orphan.rtt_conn is None:
                del manager.sessions[orphan.id]

    async def _forward(self, request: web.Request, key: str) -> web.StreamResponse | None:
        """Relay a request of a session another process holds to that process (SPEC.md 13.8)."""
        if _relayed(request):
            return None  # relayed here already: never relayed again
        body = await _read_body(request, self.body_limit)
        if body is None:
            return web.Response(status=413, text="Payload too large")
        try:
            relayed = await self._relay_session(
                key, RelayedRequest(request.method, request.path_qs, relay_headers(request.headers), body)
            )
        except BrokerError as exc:
            logger.warning("cannot relay a request of session %s: %s", key, exc)
            return web.Response(status=503, text="Session held by another process, which cannot be reached")
        if relayed is None:
            return None  # no process holds it: a new session, or an unknown one
        response = web.StreamResponse(status=relayed.status, headers=relayed.headers)
        try:
            async with contextlib.aclosing(relayed.body) as parts:
                await response.prepare(request)
                async for part in parts:
                    await response.write(part)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left; closing the body told the holder to stop
        return response

    def _key(self, request: web.Request) -> str:
        """The request's binding key: its cookie's, or a new one its response will set."""
        key = request.cookies.get(BINDING_COOKIE)
        if key is None or len(key) != 22:
            key = secrets.token_urlsafe(16)
            request["rtt.new_key"] = key
        return key

    async def _decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        """Set the binding cookie and the CORS headers a cross-origin SockJS client needs."""
        key = request.get("rtt.new_key")
        if key is not None:
            # aiohttp has already turned response.cookies into headers at this point.
            response.headers.add(
                hdrs.SET_COOKIE, f"{BINDING_COOKIE}={key}; Path={self.prefix}; HttpOnly; SameSite=Lax"
            )
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin_allowed(origin, self.options.allowed_origins):
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"

    def _handshake(self, request: web.Request) -> Handshake:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        remote = (str(peer[0]), int(peer[1])) if peer else None
        query = [
            (k, v)
            for k, v in parse_qsl(request.query_string, keep_blank_values=True)
            if k not in _PROTOCOL_QUERY
        ]
        return Handshake(
            headers=Headers.from_raw(request.raw_headers),
            path=self.prefix,
            query_string=urlencode(query),
            remote_address=remote,
        )

    async def _post(self, request: web.Request, conn: SockjsConn, *, jsonp: bool) -> web.StreamResponse:
        """Messages posted over HTTP (``xhr_send``, ``jsonp_send``): read strictly, bounded."""
        body = await _read_body(request, self.body_limit)
        if body is None:
            self.violation(conn, CloseReason.MESSAGE_TOO_BIG)
            return web.Response(status=413, text="Payload too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self.violation(conn, CloseReason.PROTOCOL_ERROR)
            return web.Response(status=400, text="Payload is not UTF-8")
        if jsonp and request.content_type == "application/x-www-form-urlencoded":
            text = unquote_plus(text[2:]) if text.startswith("d=") else ""
        if not text:
            return web.Response(status=500, text="Payload expected.")
        if not await self.deliver(conn, text) and conn.detected is CloseReason.PROTOCOL_ERROR:
            return web.Response(status=400, text="Broken payload")
        headers = {hdrs.CONTENT_TYPE: "text/plain;charset=UTF-8", hdrs.CACHE_CONTROL: "no-store, no-cache"}
        if jsonp:
            return web.Response(body=b"ok", headers=headers)
        return web.Response(status=204, headers=headers)

    # -- Calls from the transports ------------------------------------------

    async def deliver(self, conn: SockjsConn, payload: str) -> bool:
        """Hand a client payload's messages to rtt in order; False once the session must end."""
        try:
            messages = parse_client_payload(payload)
        except FrameError:
            self.violation(conn, CloseReason.PROTOCOL_ERROR)
            return False
        for text in messages:
            socket = conn.socket
            if conn.ended or socket is None:
                return False
            if socket.id not in self._sockets:
                continue  # rtt is closing it: nothing more is delivered
            if text == CLIENT_CLOSING:
                conn.client_closing = True
                self._spawn(self._client_closed(conn))
                return False
            # The core checks the size and closes with ``message too big`` itself.
            await self._received(socket, decode_text(text))
        return True

    async def _client_closed(self, conn: SockjsConn) -> None:
        # Not dropped: ending the session ends a pending poll or stream normally,
        # and the client closes its WebSocket itself.
        await self.finish_conn(conn, CloseReason.CLIENT_CLOSED)

    def violation(self, conn: SockjsConn, reason: CloseReason) -> None:
        """The client sent something rtt refuses: close its session with ``reason``."""
        conn.detected = reason
        if conn.socket is not None:
            self._begin_close(conn.socket.id, reason)

    def lost(self, conn: SockjsConn, reason: CloseReason) -> None:
        """A transport saw the connection fail: end the session (unless rtt is closing it)."""
        if conn.ended or conn.rtt_reason is not None:
            return
        if conn.client_closing:
            reason = CloseReason.CLIENT_CLOSED
        self.drop(conn)
        self._spawn(self.finish_conn(conn, conn.detected or reason))

    def close_sent(self, conn: SockjsConn) -> None:
        """A transport has sent the session's close frame."""
        taken = conn.close_taken
        if taken is not None and not taken.done():
            taken.set_result(None)

    def arm(self, conn: SockjsConn, seconds: float) -> None:
        """Expect life from the client within ``seconds`` (unless already expected sooner)."""
        if conn.deadline is None and not conn.ended:
            conn.deadline = asyncio.get_running_loop().call_later(seconds, self._expired, conn)

    def disarm(self, conn: SockjsConn) -> None:
        """The client showed life (a pong, a receiving request)."""
        deadline = conn.deadline
        if deadline is not None:
            deadline.cancel()
            conn.deadline = None

    def _expired(self, conn: SockjsConn) -> None:
        conn.deadline = None
        if conn.ended:
            return
        if conn.socket is not None and conn.socket.id in self._sockets:
            self._begin_close(conn.socket.id, CloseReason.PING_TIMEOUT)
        else:  # already closing: stop waiting for a client that is gone
            self.drop(conn)
            self._spawn(self.finish_conn(conn, conn.rtt_reason or CloseReason.PING_TIMEOUT))

    def drop(self, conn: SockjsConn) -> None:
        """Cut the session's connection now and free its queue."""
        session = conn.session
        session.drop_queue()
        if conn.ws is not None:
            request = session.request
            transport = request.transport if request is not None else None
            if transport is not None:
                transport.abort()
            else:
                self._spawn(_quietly(conn.ws.close()))
        elif session.request is not None and session.request.transport is not None:
            session.request.transport.abort()  # a pending poll or stream

    async def finish_conn(self, conn: SockjsConn, reason: CloseReason) -> None:
        """Forget the session and report its end to rtt, once."""
        if conn.ended:
            return
        conn.ended = True
        self.disarm(conn)
        session = conn.session
        session.state = SessionState.CLOSED
        session.release()  # stops the heartbeat
        session.drop_queue()
        if conn.key is not None and self._relay_socket is not None:
            self._release_session(session.id)
        manager = self._manager
        if manager is not None:
            if manager.sessions.get(session.id) is session:
                del manager.sessions[session.id]
            manager.acquired.pop(session.id, None)
        if conn.socket is not None:
            await self._closed(conn.socket, reason)

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        if self._mounted:  # the application owns the listener
            return self.host, self.port
        app = web.Application()
        sub, _ = self._endpoint()
        app.add_subapp(self.prefix, sub)
        self._add_asset_route(app)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self.options.close_timeout
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_port=self.options.reuse_port)
        try:
            await site.start()
            if self.broker is not None:
                # Relayed requests (SPEC.md 13.8) reach this process's own server here.
                path = str(Path(tempfile.mkdtemp(prefix="rtt-relay-")) / "http.sock")
                await web.UnixSite(runner, path).start()
                self._relay_socket = path
        except BaseException:
            await runner.cleanup()
            self._remove_relay_socket()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    def _url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}{self.prefix}"

    async def _send(self, conn: SockjsConn, data: str | bytes) -> None:
        session = conn.session
        if conn.ended or session.state is not SessionState.OPEN:
            raise ConnectionClosed(conn.rtt_reason or CloseReason.TRANSPORT_ERROR)
        size = message_size(data)
        session.feed(Frame.MESSAGE, encode_text(data), size)
        conn.queued += size

    async def _broadcast(self, conns: list[SockjsConn], data: str | bytes) -> None:
        size = message_size(data)
        frame = messages_frame([encode_text(data)])  # encoded once for every session
        blob = Frame.MESSAGE_BLOB
        for conn in conns:
            session = conn.session
            if conn.ended or session.state is not SessionState.OPEN:
                continue
            session.feed(blob, frame, size)
            conn.queued += size

    def _buffered(self, conn: SockjsConn) -> int:
        return max(conn.queued, 0)

    async def _close(self, conn: SockjsConn, reason: CloseReason) -> None:
        conn.rtt_reason = reason
        session = conn.session
        try:
            if not conn.ended and session.state is SessionState.OPEN:
                session.state = SessionState.CLOSING
                conn.close_text = close_frame(reason)
                taken = conn.close_taken = asyncio.get_running_loop().create_future()
                session.feed(Frame.CLOSE, conn.close_text)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.close_timeout):
                        await taken
        finally:
            self.drop(conn)
            await self.finish_conn(conn, reason)

    def _abort(self, conn: SockjsConn) -> None:
        if conn.rtt_reason is None:
            chosen = self._closing_reason(conn.socket.id) if conn.socket is not None else None
            conn.rtt_reason = chosen or CloseReason.TRANSPORT_ERROR
        self.drop(conn)
        self._spawn(self.finish_conn(conn, conn.rtt_reason))

    async def _stop(self) -> None:
        manager = self._manager
        if manager is not None:
            for session in list(manager.sessions.values()):
                conn = session.rtt_conn
                if conn is not None:
                    conn.rtt_reason = conn.rtt_reason or CloseReason.SHUTDOWN
                    self.drop(conn)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._remove_relay_socket()
        if manager is not None:
            await manager.clear()

    def _remove_relay_socket(self) -> None:
        if self._relay_socket is not None:
            shutil.rmtree(Path(self._relay_socket).parent, ignore_errors=True)
            self._relay_socket = None


async def _answer(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], request: web.Request
) -> web.StreamResponse:
    """The library's response to a receiving request, or nothing if its client has left.

    A poller that gives up (a client closing, a relay cancelled) leaves the
    library writing to a closed connection; that is no error of the server's.
    """
    try:
        return await handler(request)
    except ConnectionResetError:
        return web.Response(status=204)


def _relayed(request: web.Request) -> bool:
    """Whether ``request`` came over the relay's Unix socket."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    return sock is not None and sock.family == socket_module.AF_UNIX


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None (unread) once it is past ``limit`` bytes."""
    length = request.content_length
    if length is not None:
        if length > limit:
            return None
        return await request.content.readexactly(length) if length else b""
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _owns(conn: SockjsConn, request: web.Request) -> bool:
    """Whether ``request`` comes from the client that opened the HTTP session ``conn``."""
    key = conn.key
    return key is not None and secrets.compare_digest(key, request.cookies.get(BINDING_COOKIE, ""))


async def _quietly(coro: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await coro
