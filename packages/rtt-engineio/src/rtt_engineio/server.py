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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import socket as socket_module
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import engineio  # type: ignore[import-untyped, unused-ignore]
from aiohttp import WSMsgType, web
from engineio import exceptions as eio_exceptions  # type: ignore[import-untyped, unused-ignore]
from engineio import packet  # type: ignore[import-untyped, unused-ignore]
from engineio.async_socket import AsyncSocket  # type: ignore[import-untyped, unused-ignore]

from rtt import (
    Accept,
    BrokerError,
    CloseReason,
    ConnectionClosed,
    Handshake,
    Headers,
    Reject,
    Server,
    ServerState,
    Socket,
)
from rtt.assets import asset_headers, read_asset
from rtt.codec import message_size
from rtt.relay import RelayedRequest, relay_headers

from ._wire import CLOSE, MESSAGE, NOOP, PONG, UPGRADE, RawJson, TrackedTasks, decode_packet, wire_limit

if TYPE_CHECKING:
    from .transport import EngineioServerOptions, EngineioTransport

__all__ = ["EngineioConn", "EngineioServer"]

logger = logging.getLogger("rtt.server")

#: What python-engineio's ``ping_interval`` becomes when rtt's is ``None``:
#: Engine.IO cannot switch heartbeats off, so they become rare (one a day).
NO_HEARTBEAT = 86400.0

#: Packets in one long-polling response: python-engineio's client refuses a payload of more than 16.
PACKETS_PER_POLL = 16

#: Query parameters that belong to the Engine.IO protocol, not to the application.
_PROTOCOL_QUERY = frozenset({"EIO", "transport", "t", "sid", "j"})

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
        "detected",
        "eio_socket",
        "ended",
        "queued",
        "request_transport",
        "rtt_reason",
        "server",
        "sid",
        "socket",
        "ws",
        "ws_ended",
    )

    def __init__(
        self, server: EngineioServer, sid: str, eio_socket: _RttSocket, request_transport: Any
    ) -> None:
        self.server = server
        self.sid = sid
        self.eio_socket = eio_socket
        self.socket: Socket | None = None
        #: Bytes of messages queued for this socket that it has not taken yet.
        self.queued = 0
        #: The reason rtt chose when it began closing the socket itself.
        self.rtt_reason: CloseReason | None = None
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

    @property
    def transport_name(self) -> str:
        """``"websocket"`` once upgraded (or opened as WebSocket), else ``"polling"``."""
        return "websocket" if self.eio_socket.upgraded else "polling"


class _RttSocket(AsyncSocket):  # type: ignore[misc]
    """python-engineio's socket with rtt's accounting, decoding and close reasons.

    The library creates a plain ``AsyncSocket``; rtt switches its class to
    this one in the ``connect`` handler, before any message can arrive.
    """

    rtt_conn: EngineioConn
    closed: bool
    closing: bool
    connected: bool
    upgraded: bool
    upgrading: bool

    async def poll(self) -> list[packet.Packet]:
        """Next packets to send: all queued on WebSocket, at most :data:`PACKETS_PER_POLL` on long-polling.

        python-engineio's client refuses a polling payload of more than 16
        packets; a WebSocket writer sends each packet as its own frame.
        """
        queue = self.queue
        try:
            if self.upgraded:
                # The WebSocket writer needs no timeout (the reader watches the
                # heartbeat), and wait_for would cost a task per message.
                first = await queue.get()
            else:
                async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                    first = await queue.get()
            queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise eio_exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        limit = None if self.upgraded else PACKETS_PER_POLL
        while limit is None or len(packets) < limit:
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            queue.task_done()
            if pkt is None:
                queue.put_nowait(None)
                break
            packets.append(pkt)
        if not self.upgraded:
            # Long-polling: these are the answer to a poll, taken now. (On WebSocket
            # the writer counts each packet once it is written.)
            conn = self.rtt_conn
            for pkt in packets:
                conn.queued -= getattr(pkt, "rtt_size", 0)
        return packets

    async def close(self, wait: bool = True, abort: bool = False, reason: str | None = None) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        await self.server._trigger_event(
            "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
        )
        if not abort:
            chosen = self.rtt_conn.rtt_reason
            await self.send(packet.Packet(CLOSE, chosen.value if chosen is not None else None))
            if wait:
                # Still open meanwhile: a long-polling client must be able to fetch the CLOSE.
                await self.queue.join()
        self.closed = True
        if abort:
            _drop_queue(self)

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        conn = self.rtt_conn
        length = int(environ.get("CONTENT_LENGTH") or "0")
        if length > self.server.max_http_buffer_size:
            conn.server._wire_violation(conn, CloseReason.MESSAGE_TOO_BIG)
            return
        request = environ.get("aiohttp.request")
        if request is not None:
            body: bytes = await request.content.readexactly(length)
        else:
            body = await environ["wsgi.input"].read(length)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            conn.server._wire_violation(conn, CloseReason.PROTOCOL_ERROR)
            return
        if not text:
            return
        for encoded in text.split("\x1e"):
            pkt = decode_packet(encoded)
            if pkt is None:
                conn.server._wire_violation(conn, CloseReason.PROTOCOL_ERROR)
                return
            await self._receive_packet(pkt)
            if self.closing or self.closed:
                return

    async def _receive_packet(self, pkt: packet.Packet) -> None:
        kind = pkt.packet_type
        if kind == MESSAGE:
            await self.rtt_conn.server._on_message(self.rtt_conn, pkt.data)
        elif kind == PONG:
            self.schedule_ping()
        elif kind == CLOSE:
            await self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)
        elif kind == UPGRADE:
            await self.send(packet.Packet(NOOP))
        elif kind != NOOP:
            self.rtt_conn.server._wire_violation(self.rtt_conn, CloseReason.PROTOCOL_ERROR)

    async def _websocket_handler(self, ws: Any) -> None:
        """The library's WebSocket loop, reading through rtt's decoder and reporting why it ended."""
        conn = self.rtt_conn
        server: _EngineServer = self.server
        receive = _frame_reader(ws)
        if self.connected:  # an upgrade from long-polling
            self.upgrading = True
            try:
                probe = await receive()
                if probe != "2probe":
                    self.upgrading = False
                    return
                await ws.send("3probe")
                await self.queue.put(packet.Packet(NOOP))  # ends the pending poll
                if await receive() != "5":
                    self.upgrading = False
                    return
            except (OSError, _FrameError):
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True
        conn.ws = ws
        ended = conn.ws_ended = asyncio.get_running_loop().create_future()

        async def writer() -> None:
            try:
                while True:
                    try:
                        packets = await self.poll()
                    except eio_exceptions.QueueEmpty:
                        break
                    if not packets:
                        break
                    for pkt in packets:
                        await ws.send(pkt.encode())
                        conn.queued -= getattr(pkt, "rtt_size", 0)
            except Exception:  # the peer went away
                pass
            with contextlib.suppress(Exception):
                await ws.close()

        writer_task = server.start_background_task(writer)
        reason = server.reason.TRANSPORT_CLOSE
        timeout = server.ping_interval + server.ping_timeout
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout):  # a timer, not a task per frame
                        frame = await receive()
                except TimeoutError:
                    reason = server.reason.PING_TIMEOUT
                    break
                except _FrameError as exc:
                    if exc.reason is not None:
                        conn.detected = exc.reason
                    break
                except OSError:
                    break
                pkt = decode_packet(frame)
                if pkt is None:
                    conn.detected = CloseReason.PROTOCOL_ERROR
                    break
                try:
                    await self._receive_packet(pkt)
                except eio_exceptions.SocketIsClosedError:
                    break
                if self.closed:
                    break
        finally:
            await self.queue.put(None)  # lets the writer finish
            await asyncio.wait({writer_task}, timeout=server.rtt.options.close_timeout)
            writer_task.cancel()
            await self.close(wait=False, abort=True, reason=reason)
            ended.set_result(None)


#: Close codes of a deliberate client close: normal, going away (a page left),
#: and a close frame with no status (what engine.io-client's close() sends),
#: which ASGI servers report as 1005 and aiohttp as 0.
CLIENT_CLOSE_CODES = frozenset({1000, 1001, 1005, 0})


class _FrameError(Exception):
    """The WebSocket ended; ``reason`` says why when rtt can tell."""

    def __init__(self, reason: CloseReason | None) -> None:
        super().__init__(reason)
        self.reason = reason


def _frame_reader(ws: Any) -> Callable[[], Coroutine[Any, Any, str | bytes]]:
    """Read WebSocket frames from either driver, telling a clean close from an oversize frame."""
    sock = getattr(ws, "_sock", None)
    if isinstance(sock, web.WebSocketResponse):
        return _AiohttpFrames(sock).receive
    return _AsgiFrames(ws).receive


class _AiohttpFrames:
    # A slotted object rather than a closure: one lives as long as each connection.
    __slots__ = ("sock",)

    def __init__(self, sock: web.WebSocketResponse) -> None:
        self.sock = sock

    async def receive(self) -> str | bytes:
        sock = self.sock
        msg = await sock.receive()
        if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
            data: str | bytes = msg.data
            return data
        if msg.type is WSMsgType.ERROR and 1009 in (sock.close_code, getattr(msg.data, "code", None)):
            raise _FrameError(CloseReason.MESSAGE_TOO_BIG)
        if msg.type is WSMsgType.CLOSE and msg.data in CLIENT_CLOSE_CODES:
            raise _FrameError(CloseReason.CLIENT_CLOSED)
        raise _FrameError(None)


class _AsgiFrames:
    __slots__ = ("ws",)

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def receive(self) -> str | bytes:
        event = await self.ws.asgi_receive()
        if event["type"] == "websocket.receive":
            if event.get("bytes") is not None:
                data: bytes = event["bytes"]
                return data
            if event.get("text") is not None:
                text: str = event["text"]
                return text
        elif event["type"] == "websocket.disconnect":
            code = event.get("code")
            if code in CLIENT_CLOSE_CODES:
                raise _FrameError(CloseReason.CLIENT_CLOSED)
            if code == 1009:
                raise _FrameError(CloseReason.MESSAGE_TOO_BIG)
        raise _FrameError(None)


def _drop_queue(sock: AsyncSocket) -> None:
    """Free everything queued for a socket and wake its pending poll or writer."""
    queue: asyncio.Queue[Any] = sock.queue
    while True:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        queue.task_done()
    queue.put_nowait(None)
    if hasattr(sock, "rtt_conn"):
        sock.rtt_conn.queued = 0


class _EngineServer(TrackedTasks, engineio.AsyncServer):  # type: ignore[misc]
    """``engineio.AsyncServer`` that asks rtt before it opens a session and tracks its tasks."""

    def __init__(self, rtt: EngineioServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rtt = rtt
        self.rtt_tasks: set[asyncio.Task[Any]] = set()

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: Any = None) -> Any:
        handshake = _handshake(environ)
        decision = await self.rtt._admit(handshake)
        if isinstance(decision, Reject):
            return {
                "status": f"{decision.status} {decision.reason}",
                "headers": [("Content-Type", "text/plain; charset=utf-8")],
                "response": f"{decision.reason}\n".encode(),
            }
        environ["rtt.admitted"] = (handshake, decision)
        return await super()._handle_connect(environ, transport, jsonp_index)


def _handshake(environ: dict[str, Any]) -> Handshake:
    """What rtt knows of a handshake request, from either driver's environ."""
    request = environ.get("aiohttp.request")
    scope = environ.get("asgi.scope")
    remote: tuple[str, int] | None = None
    if request is not None:
        headers = Headers.from_raw(request.raw_headers)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer:
            remote = (str(peer[0]), int(peer[1]))
        path = request.path
    elif scope is not None:
        headers = Headers.from_raw(scope["headers"])
        client = scope.get("client")
        if client:
            remote = (str(client[0]), int(client[1]))
        path = scope["path"]
    else:  # pragma: no cover - only the aiohttp and asgi drivers are used
        headers = Headers(
            [(k[5:].replace("_", "-").title(), v) for k, v in environ.items() if k.startswith("HTTP_")]
        )
        path = environ.get("PATH_INFO", "/")
    query = [
        (k, v)
        for k, v in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if k not in _PROTOCOL_QUERY
    ]
    return Handshake(headers=headers, path=path, query_string=urlencode(query), remote_address=remote)


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
        self._eio: _EngineServer | None = None
        self._mode: str | None = None
        self._runner: web.AppRunner | None = None
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
        """
        eio = self._engine("aiohttp")
        eio.attach(app, self.path)
        self._add_asset_route(app)

    def _add_asset_route(self, app: web.Application) -> None:
        # GET <assets_path><name>: exactly the files of transport.browser_assets() (SPEC 2.7).
        if self.options.assets_path is not None:
            app.router.add_get(self.options.assets_path + "{name}", self._asset)

    async def _asset(self, request: web.Request) -> web.Response:
        found = read_asset(self.transport.browser_assets(), request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, body = found
        return web.Response(body=body, headers=asset_headers(content_type))

    def asgi_app(self, other_app: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """An ASGI application serving Engine.IO under :attr:`path` and ``other_app`` elsewhere.

        Its lifespan startup starts this server and its shutdown closes it;
        without lifespan support, start and close the server yourself.
        """
        eio = self._engine("asgi")
        app = engineio.ASGIApp(eio, other_app, engineio_path=self.path)
        lifespan_other = other_app

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send, lifespan_other)
            else:
                await app(scope, receive, send)

        return asgi

    async def _lifespan(self, scope: dict[str, Any], receive: Any, send: Any, other: Any) -> None:
        """Start and close this server with the ASGI application, and run ``other``'s lifespan too.

        ``other`` gets its startup before this server starts and its shutdown
        after this server closed; an app without lifespan support (it raises
        or returns on the lifespan scope) is left out, as ASGI servers do.
        """
        relay = _LifespanRelay(other, scope) if other is not None else None
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                failure = await relay.ask("lifespan.startup") if relay is not None else None
                if failure is None:
                    try:
                        if self.state is ServerState.NEW:
                            await self.start()
                    except Exception as exc:
                        failure = str(exc) or repr(exc)
                if failure is not None:
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await self.close()
                failure = await relay.ask("lifespan.shutdown") if relay is not None else None
                if failure is not None:
                    await send({"type": "lifespan.shutdown.failed", "message": failure})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    def _engine(self, mode: str) -> _EngineServer:
        if self._eio is not None:
            if self._mode != mode:
                raise RuntimeError(f"this server already serves in {self._mode} mode")
            return self._eio
        options = self.options
        interval = NO_HEARTBEAT if options.ping_interval is None else options.ping_interval
        # python-engineio advertises int(interval + grace) * 1000 ms: round the
        # advertised value up to whole seconds so a client never expects
        # heartbeats sooner than they come (the sub-second interval bug).
        grace = math.ceil(interval) - interval
        self._eio = _EngineServer(
            self,
            async_mode=mode,
            ping_interval=(interval, grace),
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
            json=RawJson,
            async_handlers=False,  # messages of one socket are handled in order
            monitor_clients=True,
        )
        self._mode = mode
        eio = self._eio
        eio.on("connect", self._on_connect)
        eio.on("disconnect", self._on_disconnect)
        return eio

    # -- Library events -------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any]) -> bool:
        handshake, accept = environ.pop("rtt.admitted")
        assert isinstance(accept, Accept)
        eio = self.engineio_server
        eio_socket = eio.sockets[sid]
        eio_socket.__class__ = _RttSocket
        request = environ.get("aiohttp.request")
        conn = EngineioConn(self, sid, eio_socket, request.transport if request is not None else None)
        eio_socket.rtt_conn = conn
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
        if self._eio is not None and self._eio.sockets.get(conn.sid) is conn.eio_socket:
            del self._eio.sockets[conn.sid]
        if conn.socket is not None:
            await self._closed(conn.socket, reason)

    def _drop(self, conn: EngineioConn) -> None:
        """Cut the session's connection now and free its queue."""
        sock = conn.eio_socket
        sock.closing = True
        _drop_queue(sock)
        if conn.ws is not None:
            if conn.request_transport is not None:
                conn.request_transport.abort()
            else:
                self._spawn(_quietly(conn.ws.close()))

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        if self._eio is not None:  # mounted: the application owns the listener
            return self.host, self.port
        eio = self._engine("aiohttp")
        app = web.Application(client_max_size=eio.max_http_buffer_size, middlewares=[self._route])
        eio.attach(app, self.path)
        self._add_asset_route(app)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self.options.close_timeout
        )
        await runner.setup()
        self._runner = runner
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
            self._runner = None
            self._remove_relay_socket()
            raise
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    @web.middleware
    async def _route(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Relay a request of a session another process holds to that process (SPEC.md 13.8)."""
        sid = request.query.get("sid")
        if sid is None or sid in self._by_sid or self._relay_socket is None or _relayed(request):
            return await handler(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            # A WebSocket cannot be relayed: the client keeps its session on long-polling.
            return web.Response(status=400, text="Session held by another process; keep polling")
        try:
            body = await request.read()
            relayed = await self._relay_session(
                sid, RelayedRequest(request.method, request.path_qs, relay_headers(request.headers), body)
            )
        except BrokerError as exc:
            logger.warning("cannot relay a request of session %s: %s", sid, exc)
            return web.Response(status=503, text="Session held by another process, which cannot be reached")
        if relayed is None:
            return await handler(request)  # no process holds it: the library says so
        response = web.StreamResponse(status=relayed.status, headers=relayed.headers)
        try:
            async with contextlib.aclosing(relayed.body) as body_parts:
                await response.prepare(request)
                async for part in body_parts:
                    await response.write(part)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left; closing the body told the holder to stop
        return response

    def _remove_relay_socket(self) -> None:
        if self._relay_socket is not None:
            shutil.rmtree(Path(self._relay_socket).parent, ignore_errors=True)
            self._relay_socket = None

    def _url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}{self.path}"

    async def _send(self, conn: EngineioConn, data: str | bytes) -> None:
        sock = conn.eio_socket
        if conn.ended or sock.closing or sock.closed:
            raise ConnectionClosed(conn.rtt_reason or CloseReason.TRANSPORT_ERROR)
        pkt = packet.Packet(MESSAGE, data)
        size = message_size(data)
        pkt.rtt_size = size
        sock.queue.put_nowait(pkt)
        conn.queued += size

    async def _broadcast(self, conns: list[EngineioConn], data: str | bytes) -> None:
        size = message_size(data)
        # One packet, encoded once, shared by every queue. Bytes are encoded
        # differently on the two transports, so those get one packet each.
        shared = packet.Packet(MESSAGE, data)
        shared.rtt_size = size
        polling = shared
        if isinstance(data, bytes):
            polling = packet.Packet(MESSAGE, data)
            polling.rtt_size = size
        for conn in conns:
            sock = conn.eio_socket
            if conn.ended or sock.closing or sock.closed:
                continue
            sock.queue.put_nowait(shared if sock.upgraded else polling)
            conn.queued += size

    def _buffered(self, conn: EngineioConn) -> int:
        return max(conn.queued, 0)

    async def _close(self, conn: EngineioConn, reason: CloseReason) -> None:
        conn.rtt_reason = reason
        try:
            async with asyncio.timeout(self.options.close_timeout):
                # Queues CLOSE with rtt's reason and waits until the client has taken it.
                await conn.eio_socket.close(wait=True, abort=False, reason=reason.value)
                if conn.ws_ended is not None:
                    await asyncio.shield(conn.ws_ended)  # the client closes the WebSocket on CLOSE
        except TimeoutError:
            logger.debug("closing handshake of %s timed out; dropping it", conn.sid)
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
            for sock in list(eio.sockets.values()):
                sock.closed = True
                _drop_queue(sock)
            eio.sockets.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._remove_relay_socket()
        if eio is not None:
            await _cancel(eio.rtt_tasks)


class _LifespanRelay:
    """Runs another ASGI application's lifespan beside rtt's, one event at a time."""

    def __init__(self, app: Callable[..., Any], scope: dict[str, Any]) -> None:
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = asyncio.get_running_loop().create_task(
            app(scope, self._inbox.get, self._outbox.put)
        )

    async def ask(self, event_type: str) -> str | None:
        """Send ``event_type``; return the failure message, or ``None`` if it completed."""
        task = self._task
        if task is None:
            return None
        await self._inbox.put({"type": event_type})
        answer = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({answer, task}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            self._task = None  # no lifespan support: it raised or returned
            if not task.cancelled():
                task.exception()  # retrieved: an app may refuse the lifespan scope
            return None
        message = answer.result()
        if message["type"].endswith(".failed"):
            return str(message.get("message", ""))
        if event_type == "lifespan.shutdown":
            await asyncio.wait({task}, timeout=5)
        return None


def _relayed(request: web.Request) -> bool:
    """Whether ``request`` came over the relay's Unix socket (never relayed again)."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    return sock is not None and sock.family == socket_module.AF_UNIX


async def _quietly(coro: Coroutine[Any, Any, Any]) -> None:
    with contextlib.suppress(Exception):
        await coro


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    current = asyncio.current_task()
    pending = [t for t in tasks if t is not current and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
