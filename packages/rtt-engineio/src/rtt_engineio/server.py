"""The engineio server: rtt's server template over ``engineio.AsyncServer`` (SPEC.md 12.3).

python-engineio runs the Engine.IO protocol (handshake, long-polling, the
WebSocket upgrade, heartbeats); rtt adds what it lacks or does differently:

- the handshake goes through :meth:`rtt.Server._admit` first, so origins and
  ``authorize`` refuse with rtt's HTTP status (the library's own same-origin
  check is switched off);
- every socket's outgoing queue (unbounded in the library) is measured, so a
  client that stops reading, or stops polling, is dropped as a slow consumer;
- broadcast puts one shared packet (encoded once) on every queue, without a
  task or an await per socket;
- received packets are decoded by rtt, so text stays text (the library would
  JSON-decode it), a long-polling payload may carry any number of packets,
  and an oversize message closes the socket with ``message too big``;
- rtt's close reason travels as the data of the ``CLOSE`` packet;
- with a broker, a long-polling request whose session another process holds
  is relayed to that process (SPEC.md 13.8), so no sticky sessions are needed.

This module holds rtt's hooks; ``_library.py`` what is done inside
python-engineio for them, ``_http.py`` where the requests come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import engineio  # type: ignore[import-untyped, unused-ignore]
from aiohttp import web

from rtt import Accept, Close, CloseReason, ConnectionClosed, Handshake, Reject, Server, Socket
from rtt.codec import message_size

from ._http import HttpFront, handshake_of
from ._library import LibraryServer, RttSocket, aiohttp_request, binding_key_of, message_packet
from ._wire import check_polling_text, wire_limit

if TYPE_CHECKING:
    from .transport import EngineioServerOptions, EngineioTransport

__all__ = ["EngineioConn", "EngineioServer"]

logger = logging.getLogger("rtt.server")

#: What python-engineio's ``ping_interval`` becomes when rtt's is ``None``:
#: Engine.IO cannot switch heartbeats off, so they become rare (one a day).
NO_HEARTBEAT = 86400.0

#: python-engineio's disconnect reasons, as rtt close reasons.
_REASONS: dict[str, CloseReason] = {
    engineio.AsyncServer.reason.CLIENT_DISCONNECT: CloseReason.CLIENT_CLOSED,
    engineio.AsyncServer.reason.SERVER_DISCONNECT: CloseReason.SERVER_CLOSED,
    engineio.AsyncServer.reason.PING_TIMEOUT: CloseReason.PING_TIMEOUT,
    engineio.AsyncServer.reason.TRANSPORT_CLOSE: CloseReason.TRANSPORT_ERROR,
    engineio.AsyncServer.reason.TRANSPORT_ERROR: CloseReason.TRANSPORT_ERROR,
}


class EngineioConn:
    """rtt's view of one Engine.IO session (the ``C`` of ``Server[C]``)."""

    __slots__ = (
        "close_text",
        "detected",
        "eio_socket",
        "ended",
        "key",
        "queued",
        "request_transport",
        "rtt_reason",
        "server",
        "sid",
        "socket",
        "ws",
        "ws_ended",
    )

    def __init__(self, server: EngineioServer, sid: str, request_transport: Any) -> None:
        self.server = server
        self.sid = sid
        #: python-engineio's socket of the session, made rtt's by ``LibraryServer.adopt``.
        self.eio_socket: RttSocket
        self.socket: Socket | None = None
        #: Bytes of messages queued for this socket that it has not taken yet.
        self.queued = 0
        #: The reason rtt chose when it began closing the socket itself.
        self.rtt_reason: CloseReason | None = None
        #: The data of the CLOSE packet rtt sends (``Close.as_text``); None: the reason's value.
        self.close_text: str | None = None
        #: A reason rtt saw on the wire (oversize, malformed) before the library ended the session.
        self.detected: CloseReason | None = None
        #: The WebSocket of this session once it has one, and a future done when its
        #: handler ends (made with the WebSocket: an idle polling session carries neither).
        self.ws: Any = None
        self.ws_ended: asyncio.Future[None] | None = None
        #: The asyncio transport of the request (aiohttp only), to abort a WebSocket.
        self.request_transport = request_transport
        #: True once the session has ended and rtt has been told.
        self.ended = False
        #: The binding key of a long-polling session (``session_binding``); None when not bound.
        self.key: str | None = None

    @property
    def transport_name(self) -> str:
        """``"websocket"`` once upgraded (or opened as WebSocket), else ``"polling"``."""
        return "websocket" if self.eio_socket.on_websocket else "polling"


class EngineioServer(Server[EngineioConn]):
    """A server at ``http://host:port/engine.io/``: Engine.IO over long-polling and WebSocket.

    Three ways to serve it (SPEC.md 12.3):

    - standalone: ``async with transport.server(host, port) as server`` runs
      its own aiohttp web server;
    - in an aiohttp application: ``server.attach(app)`` before the app runs,
      then ``async with server`` (or ``await server.start()``) while it runs;
    - as ASGI: ``server.asgi_app(other_app)`` gives an ASGI application that
      serves Engine.IO under the path and hands every other request to
      ``other_app``; its lifespan starts and closes the server.

    When mounted, ``host``/``port`` only make ``server.url``: pass the
    address the application is served at.
    """

    options: EngineioServerOptions

    def __init__(
        self, transport: EngineioTransport, options: EngineioServerOptions, host: str, port: int
    ) -> None:
        super().__init__(transport, options, host, port)
        self._eio: LibraryServer | None = None
        self._mode: str | None = None
        self._http = HttpFront(self)
        self._by_sid: dict[str, EngineioConn] = {}

    # -- Serving modes ------------------------------------------------------

    @property
    def engineio_server(self) -> engineio.AsyncServer:
        """The underlying ``engineio.AsyncServer`` (built on first use)."""
        if self._eio is None:
            raise RuntimeError("the Engine.IO server is made by start(), attach() or asgi_app()")
        return self._eio

    @property
    def path(self) -> str:
        """The URL path Engine.IO is served under, e.g. ``/engine.io/``."""
        return self.options.engineio_path

    def attach(self, app: web.Application) -> None:
        """Serve Engine.IO under :attr:`path` of an existing aiohttp application.

        Call before the application starts; then start this server (``async
        with server``) while the application runs. Other routes are untouched.
        The application's shutdown (``on_shutdown``) closes this server.
        """
        self._http.attach(app)
        app.on_shutdown.append(self._close_on_app_shutdown)

    def asgi_app(self, other_app: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """An ASGI application serving Engine.IO under :attr:`path` and ``other_app`` elsewhere.

        Its lifespan startup starts this server and its shutdown closes it;
        without lifespan support, start and close the server yourself.
        """
        return self._http.asgi_app(other_app)

    def holds(self, sid: str) -> bool:
        """Whether this process holds the session ``sid``."""
        return sid in self._by_sid

    def _engine(self, mode: str) -> LibraryServer:
        if self._eio is not None:
            if self._mode != mode:
                raise RuntimeError(f"this server already serves in {self._mode} mode")
            return self._eio
        options = self.options
        interval = NO_HEARTBEAT if options.ping_interval is None else options.ping_interval
        self._eio = LibraryServer(
            self,
            async_mode=mode,
            # Advertised in ms as it is (LibraryServer.adopt), not as the library's int(seconds) * 1000.
            ping_interval=interval,
            ping_timeout=options.ping_timeout,
            # Per packet on WebSocket, per request body on long-polling; rtt
            # checks each message against max_message_size itself.
            max_http_buffer_size=2 * wire_limit(options.max_message_size) + 1024,
            allow_upgrades=set(options.transports) == {"polling", "websocket"},
            transports=list(options.transports),
            http_compression=False,
            cookie=None,
            # rtt runs its own allow-list in _admit; the library must not refuse first.
            cors_allowed_origins="*",
            cors_credentials=True,
            logger=False,
            # No json=: rtt decodes what the server receives itself (text stays text), and
            # the option would change every python-engineio user in the process.
            async_handlers=False,  # messages of one socket are handled in order
            monitor_clients=True,
        )
        self._mode = mode
        eio = self._eio
        eio.on("connect", self._on_connect)
        eio.on("disconnect", self._on_disconnect)
        return eio

    # -- Library events -------------------------------------------------------

    async def _admit_handshake(self, environ: dict[str, Any]) -> Reject | None:
        """Run rtt's admission on a handshake request; the refusal, or None to open the session."""
        handshake = handshake_of(environ)
        decision = await self._admit(handshake)
        if isinstance(decision, Reject):
            return decision
        environ["rtt.admitted"] = (handshake, decision)
        return None

    async def _on_connect(self, sid: str, environ: dict[str, Any]) -> bool:
        admitted: tuple[Handshake, Accept] = environ.pop("rtt.admitted")
        handshake, accept = admitted
        request = aiohttp_request(environ)
        conn = EngineioConn(self, sid, request.transport if request is not None else None)
        conn.key = binding_key_of(environ)
        assert self._eio is not None
        conn.eio_socket = self._eio.adopt(sid, conn)
        self._by_sid[sid] = conn
        if self._relay_socket is not None:
            await self._hold_session(sid)
        conn.socket = await self._opened(conn, handshake, accept.identity)
        return True

    async def _on_message(self, conn: EngineioConn, data: str | bytes) -> None:
        if conn.socket is not None and not conn.ended:
            await self._received(conn.socket, data)

    async def _on_disconnect(self, sid: str, reason: str) -> None:
        conn = self._by_sid.get(sid)
        if conn is None or conn.rtt_reason is not None:
            return  # rtt is closing it and reports the end itself
        mapped = conn.detected or _REASONS.get(reason, CloseReason.TRANSPORT_ERROR)
        if mapped is CloseReason.PING_TIMEOUT:
            self._drop(conn)  # the peer is not reading: no closing handshake
        await self._finish_conn(conn, mapped)

    def _wire_violation(self, conn: EngineioConn, reason: CloseReason) -> None:
        """The peer sent something rtt refuses (oversize, malformed): close it with ``reason``."""
        conn.detected = reason
        if conn.socket is not None:
            self._begin_close(conn.socket.id, reason)

    async def _finish_conn(self, conn: EngineioConn, reason: CloseReason) -> None:
        if conn.ended:
            return
        conn.ended = True
        self._by_sid.pop(conn.sid, None)
        if self._relay_socket is not None:
            self._release_session(conn.sid)
        if self._eio is not None:
            self._eio.forget(conn.sid, conn.eio_socket)
        if conn.socket is not None:
            await self._closed(conn.socket, reason)

    def _drop(self, conn: EngineioConn) -> None:
        """Cut the session's connection now and free its queue."""
        conn.eio_socket.cut()
        if conn.ws is not None:
            if conn.request_transport is not None:
                conn.request_transport.abort()
            else:
                self._spawn(_close_quietly(conn.ws))

    # -- Messages -----------------------------------------------------------

    async def send(self, socket_id: str, data: str | bytes) -> None:
        """As :meth:`rtt.Server.send`; with long-polling among the server's ``transports``, a text
        containing U+001E raises :class:`~rtt.errors.InvalidMessageError` before anything is queued
        (SPEC.md 12.3: the long-polling payload separates packets with it)."""
        check_polling_text(data, self.options.transports)
        await super().send(socket_id, data)

    async def broadcast(
        self, data: str | bytes, exclude: str | Iterable[str] = (), *, group: str | None = None
    ) -> int:
        """As :meth:`rtt.Server.broadcast`; a text long-polling cannot carry is refused as by
        :meth:`send`, before any socket gets it."""
        check_polling_text(data, self.options.transports)
        return await super().broadcast(data, exclude, group=group)

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        if self._eio is not None:  # mounted: the application owns the listener
            return self.host, self.port
        return await self._http.start()

    def _url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.options.ssl is not None else 'http'}://{host}:{port}{self.path}"

    async def _send(self, conn: EngineioConn, data: str | bytes) -> None:
        sock = conn.eio_socket
        if conn.ended or not sock.open:
            raise ConnectionClosed(conn.rtt_reason or CloseReason.TRANSPORT_ERROR)
        size = message_size(data)
        sock.put(message_packet(data, size))
        conn.queued += size

    async def _broadcast(self, conns: list[EngineioConn], data: str | bytes) -> None:
        size = message_size(data)
        # One packet, encoded once, shared by every queue. Bytes are encoded
        # differently on the two transports, so those get one packet each.
        shared = message_packet(data, size)
        polling = message_packet(data, size) if isinstance(data, bytes) else shared
        for conn in conns:
            sock = conn.eio_socket
            if conn.ended or not sock.open:
                continue
            sock.put(shared if sock.on_websocket else polling)
            conn.queued += size

    def _buffered(self, conn: EngineioConn) -> int:
        return max(conn.queued, 0)

    async def _close(self, conn: EngineioConn, close: Close) -> None:
        reason = conn.rtt_reason = close.reason
        conn.close_text = close.as_text()
        try:
            async with asyncio.timeout(self.options.close_timeout):
                # Queues CLOSE with rtt's reason (or the application's code and text) and
                # waits until the client has taken it.
                await conn.eio_socket.close(wait=True, abort=False, reason=close.as_text())
                if conn.ws_ended is not None:
                    await asyncio.shield(conn.ws_ended)  # the client closes the WebSocket on CLOSE
        except TimeoutError:
            # The socket's rtt id, never the sid (SPEC.md 3.8: a sid in a log is a session handed out).
            logger.debug(
                "closing handshake of socket %s timed out; dropping it",
                conn.socket.id if conn.socket else "?",
            )
        finally:
            self._drop(conn)
            await self._finish_conn(conn, reason)

    def _abort(self, conn: EngineioConn) -> None:
        if conn.rtt_reason is None:
            chosen = self._closing_reason(conn.socket.id) if conn.socket is not None else None
            conn.rtt_reason = chosen or CloseReason.TRANSPORT_ERROR
        self._drop(conn)
        self._spawn(self._abort_session(conn))

    async def _abort_session(self, conn: EngineioConn) -> None:
        await conn.eio_socket.close(
            wait=False, abort=True, reason=self.engineio_server.reason.SERVER_DISCONNECT
        )
        await self._finish_conn(conn, conn.rtt_reason or CloseReason.TRANSPORT_ERROR)

    async def _stop(self) -> None:
        eio = self._eio
        if eio is not None:
            for conn in list(self._by_sid.values()):
                conn.rtt_reason = conn.rtt_reason or CloseReason.SHUTDOWN
                self._drop(conn)
            eio.drop_all()
        await self._http.stop()
        if eio is not None:
            await _cancel(eio.rtt_tasks)


async def _close_quietly(ws: Any) -> None:
    # The close coroutine is made here, not by the caller: a task cancelled before its first step
    # (at shutdown) would leave it never awaited.
    with contextlib.suppress(Exception):
        await ws.close()


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    current = asyncio.current_task()
    pending = [t for t in tasks if t is not current and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
