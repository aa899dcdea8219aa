"""The sockjs server: rtt's server template over aiohttp's ``sockjs`` library (SPEC.md 12.4).

The library owns the SockJS routes, the receiving transports (xhr polling,
xhr streaming, eventsource, htmlfile, jsonp) and the session; rtt adds what
it lacks. The work is split by job:

- this module: :class:`SockjsServer`, rtt's hooks (send, broadcast, close,
  start, stop) and the calls rtt's transports make (a payload arrived, the
  connection failed, the close frame went out), with rtt's heartbeat and
  expiry: the heartbeat is strictly periodic and ends a streaming response,
  so a client that stops reading is noticed (``ping timeout``);
- :mod:`rtt_sockjs._endpoint`: the aiohttp side (the sub-application and its
  guard: origins, ``authorize``, session binding, message POSTs; the relay
  glue of SPEC.md 13.8; assets; the standalone site);
- :mod:`rtt_sockjs._library`: everything that overrides or reads the
  library's internals (its session, session manager and transports), listed
  with the reason for each.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sockjs import Frame, SessionState  # type: ignore[import-untyped, unused-ignore]

from rtt import Close, CloseReason, ConnectionClosed, Server, Socket
from rtt.codec import decode_text, encode_text, message_size

from ._endpoint import Endpoint
from ._library import Refused, RttSession
from ._wire import CLIENT_CLOSING, FrameError, close_frame, frame_limit, messages_frame, parse_client_payload

if TYPE_CHECKING:
    import sockjs  # type: ignore[import-untyped, unused-ignore]

    from .transport import SockjsServerOptions, SockjsTransport

__all__ = ["CLOSED_GRACE", "SockjsConn", "SockjsServer"]

#: Seconds an ended HTTP session keeps answering its close frame before its id is forgotten
#: (SockJS 0.3.3: "until the timeout occurs"; SockJS servers' usual disconnect delay).
CLOSED_GRACE = 5.0


class SockjsConn:
    """rtt's view of one SockJS session (the ``C`` of ``Server[C]``)."""

    __slots__ = (
        "beat",
        "client_closing",
        "close_taken",
        "close_text",
        "closing",
        "deadline",
        "detected",
        "ended",
        "forget",
        "http",
        "key",
        "queued",
        "rtt_reason",
        "server",
        "session",
        "socket",
        "ws",
    )

    def __init__(self, server: SockjsServer, session: RttSession, *, http: bool, key: str | None) -> None:
        self.server = server
        self.session = session
        #: An HTTP session (its requests come and go), not a framed WebSocket's.
        self.http = http
        #: The binding key of an HTTP session (``session_binding``), None when it is not bound.
        self.key = key
        self.socket: Socket | None = None
        #: Bytes of messages queued that the client has not been sent yet.
        self.queued = 0
        #: The reason rtt chose when it began closing the session itself.
        self.rtt_reason: CloseReason | None = None
        #: The close rtt is sending (an application's code and text, or rtt's reason's).
        self.closing: Close | None = None
        #: A reason rtt saw on the wire (oversize, malformed) before the session ended.
        self.detected: CloseReason | None = None
        #: The client announced a deliberate close (``CLIENT_CLOSING``).
        self.client_closing = False
        #: The close frame, once queued, and a future done when a transport sent it.
        self.close_text: str | None = None
        self.close_taken: asyncio.Future[None] | None = None
        #: When the client must show life by (a pong, a new receiving request).
        self.deadline: asyncio.TimerHandle | None = None
        #: The next heartbeat, while a transport holds the session.
        self.beat: asyncio.TimerHandle | None = None
        self.ws: web.WebSocketResponse | None = None
        self.ended = False
        #: When an ended HTTP session's id is forgotten (CLOSED_GRACE after its end).
        self.forget: asyncio.TimerHandle | None = None

    @property
    def transport_name(self) -> str:
        """The SockJS transport of the session's latest receiving request."""
        return self.session.transport_name


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
        self._endpoint: Endpoint | None = None

    # -- Mounting -----------------------------------------------------------

    @property
    def prefix(self) -> str:
        """URL path of the endpoint (``/sockjs``)."""
        return self.options.sockjs_prefix

    @property
    def manager(self) -> sockjs.SessionManager:
        """The library's session manager (for inspection; rtt owns its sessions)."""
        return self._app().manager

    def attach(self, app: web.Application) -> None:
        """Serve the endpoint (and the browser assets) inside ``app``, beside its other routes.

        Call before ``app`` starts; then ``start()`` the server (or ``async with
        server``) while the application runs. ``host``/``port`` only make ``url``.
        The application's web server does TLS, if any: the ``ssl`` option is refused here.
        The application's shutdown (``on_shutdown``) closes this server.
        """
        self._refuse_tls_mounted("an aiohttp application")
        self._app().attach(app)
        app.on_shutdown.append(self._close_on_app_shutdown)

    def _app(self) -> Endpoint:
        if self._endpoint is None:
            self._endpoint = Endpoint(self)
        return self._endpoint

    # -- Calls from the library's session manager -----------------------------

    async def new_conn(self, session: RttSession, request: web.Request) -> SockjsConn:
        """A session opens: rtt's connection for it (only for a request the guard admitted)."""
        if request.get("rtt.admitted") is None:
            raise Refused()
        conn = SockjsConn(self, session, http=request.get("rtt.http", False), key=request.get("rtt.key"))
        session.rtt_conn = conn
        if conn.http and self._relay_socket is not None:
            await self._hold_session(session.id)
        return conn

    def resumes(self, conn: SockjsConn, request: web.Request) -> bool:
        """Whether ``request`` may resume the HTTP session ``conn`` (the guard let it, and it is live)."""
        return not conn.ended and conn.http and request.get("rtt.owner") is conn

    async def acquired(self, conn: SockjsConn, request: web.Request) -> None:
        """A transport holds the session: open rtt's socket the first time, keep the heartbeat."""
        admitted = request.get("rtt.admitted")
        if conn.socket is None and admitted is not None:
            handshake, identity = admitted
            conn.socket = await self._opened(conn, handshake, identity)
        if conn.beat is None and not conn.ended and self.options.ping_interval:
            conn.beat = asyncio.get_running_loop().call_later(self.options.ping_interval, self._beat, conn)

    def released(self, conn: SockjsConn) -> None:
        """No transport holds the session: no heartbeat; an HTTP session must come back in time."""
        _stop_beat(conn)
        if not conn.ended and conn.http:
            options = self.options
            self.arm(conn, (options.ping_interval or 0.0) + options.ping_timeout)

    def _beat(self, conn: SockjsConn) -> None:
        # Strictly periodic (the library postpones its heartbeat after every frame):
        # a busy connection must still prove it reads.
        interval = self.options.ping_interval
        assert interval
        conn.beat = asyncio.get_running_loop().call_later(interval, self._beat, conn)
        conn.session.feed(Frame.HEARTBEAT, Frame.HEARTBEAT.value)
        self.arm(conn, self.options.ping_timeout)

    # -- Calls from the transports ------------------------------------------

    async def deliver(self, conn: SockjsConn, payload: str, *, raw: bool = False) -> bool:
        """Hand a client payload's messages to rtt in order; False once the session must end.

        ``raw``: the payload is one message as it is (SockJS's raw WebSocket), not SockJS JSON.
        """
        if raw:
            messages = [payload]
        else:
            try:
                messages = parse_client_payload(payload)
            except FrameError:
                self.violation(conn, CloseReason.PROTOCOL_ERROR)
                return False
        for text in messages:
            socket = conn.socket
            if conn.ended or socket is None:
                return False
            if self._rtt_closing(conn, socket):
                continue  # nothing more is delivered
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

    def _rtt_closing(self, conn: SockjsConn, socket: Socket) -> bool:
        """Whether rtt closes this connection, or replaced it (a resumed socket's old one is aborted).

        ``sockets`` alone does not say: a resumable socket stays in it while its connection closes.
        """
        return conn.rtt_reason is not None or socket.id not in self._sockets

    def violation(self, conn: SockjsConn, reason: CloseReason) -> None:
        """The client sent something rtt refuses: close its session with ``reason``."""
        conn.detected = reason
        if conn.socket is not None and not self._rtt_closing(conn, conn.socket):
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
        if conn.socket is not None and self._handling(conn.socket.id):
            # rtt's message handler holds up this session's reading, and the answer with it:
            # the clock restarts instead (SPEC.md 10.2).
            self.arm(conn, self.options.ping_timeout)
            return
        if conn.socket is not None and not self._rtt_closing(conn, conn.socket):
            # By id: so only while rtt has not closed or replaced this connection (SPEC.md 10.2).
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
                self._spawn(_close_quietly(conn.ws))
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
        session.release()
        _stop_beat(conn)
        session.drop_queue()
        if conn.http and self._relay_socket is not None:
            self._release_session(session.id)
        endpoint = self._endpoint
        if endpoint is not None:
            if not conn.http:  # a WebSocket session ends with its socket: nothing can ask again
                endpoint.manager.forget(session)
            else:
                # Its client's next request gets the close frame again, not a new session.
                conn.close_text = conn.close_text or close_frame(reason)
                conn.forget = asyncio.get_running_loop().call_later(
                    CLOSED_GRACE, endpoint.manager.forget, session
                )
        if conn.socket is not None:
            await self._closed(conn.socket, reason)

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        endpoint = self._app()
        if endpoint.mounted:  # the application owns the listener
            return self.host, self.port
        address = await endpoint.start_site(self.host, self.port, relay=self.broker is not None)
        self._relay_socket = endpoint.relay_socket
        return address

    def _url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.options.ssl is not None else 'http'}://{host}:{port}{self.prefix}"

    async def _send(self, conn: SockjsConn, data: str | bytes) -> None:
        session = conn.session
        if conn.ended or session.state is not SessionState.OPEN:
            raise ConnectionClosed(conn.rtt_reason or CloseReason.TRANSPORT_ERROR)
        size = message_size(data)
        session.feed(Frame.MESSAGE, encode_text(data), size)
        conn.queued += size

    async def _broadcast(self, conns: list[SockjsConn], data: str | bytes) -> None:
        size = message_size(data)
        text = encode_text(data)
        frame = messages_frame([text])  # encoded once for every session
        blob = Frame.MESSAGE_BLOB
        for conn in conns:
            session = conn.session
            if conn.ended or session.state is not SessionState.OPEN:
                continue
            if session.raw:  # SockJS's raw WebSocket sends the message itself, unframed
                session.feed(Frame.MESSAGE, text, size)
            else:
                session.feed(blob, frame, size)
            conn.queued += size

    def _buffered(self, conn: SockjsConn) -> int:
        return max(conn.queued, 0)

    async def _close(self, conn: SockjsConn, close: Close) -> None:
        reason = conn.rtt_reason = close.reason
        conn.closing = close
        session = conn.session
        try:
            if not conn.ended and session.state is SessionState.OPEN:
                session.state = SessionState.CLOSING
                conn.close_text = close_frame(close)
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
        endpoint = self._endpoint
        if endpoint is None:
            return
        for conn in endpoint.manager.conns():
            conn.rtt_reason = conn.rtt_reason or CloseReason.SHUTDOWN
            self.drop(conn)
        await endpoint.stop_site()
        self._relay_socket = None
        for conn in endpoint.manager.conns():
            if conn.forget is not None:
                conn.forget.cancel()
        await endpoint.manager.clear()


def _stop_beat(conn: SockjsConn) -> None:
    if conn.beat is not None:
        conn.beat.cancel()
        conn.beat = None


async def _close_quietly(ws: Any) -> None:
    # The close coroutine is made here, not by the caller: a task cancelled before its first step
    # (at shutdown) would leave it never awaited.
    with contextlib.suppress(Exception):
        await ws.close()
