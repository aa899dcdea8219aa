"""The ws server: rtt's server template over the ``websockets`` asyncio server.

Mapping of the normalised options (SPEC.md 12.2): ``max_message_size`` is
websockets' ``max_size``, with :func:`rtt.resume.wire_limit`'s slack (oversize
closes with 1009 and rtt's text; the core refuses the rest);
origins and ``authorize`` run in ``process_request``, before the upgrade, and
refuse with an HTTP status; ``close_timeout`` is websockets' own;
``ping_interval``/``ping_timeout`` drive rtt's own keepalive on websockets'
``ping()``, which drops a peer that misses a pong at once (websockets'
keepalive would first wait ``close_timeout`` for a closing handshake the
silent peer never answers); ``outbound_limit`` is the write buffer's
high-water mark: rtt writes with websockets' ``broadcast()`` (no
backpressure), and a connection whose buffer passes the mark is closed as a
slow consumer as soon as that write returns.

Mounted (:meth:`WsServer.attach` in an aiohttp application,
:meth:`WsServer.asgi_app` as an ASGI application) the web server does the
WebSocket; ``_aiohttp.py`` and ``_asgi.py`` drive it, with the outgoing queue
of ``_mounted.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers as WsHeaders
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from rtt import (
    Accept,
    Close,
    CloseReason,
    ConnectionClosed,
    Handshake,
    Headers,
    Reject,
    Server,
    ServerState,
)
from rtt.asgi import ASGIApp
from rtt.assets import asset_headers, read_asset
from rtt.listener import HEADER_TIMEOUT, RequestErrorLog, quiet_accept_errors
from rtt.resume import wire_limit

from . import _frames
from ._asgi import asgi_app
from ._mounted import MountedConn

if TYPE_CHECKING:
    from aiohttp import web
    from websockets.asyncio.server import Server as WsListener

    from .transport import WsServerOptions, WsTransport

__all__ = ["WsServer"]


def close_reason(conn: ServerConnection) -> CloseReason:
    """Why a server connection ended."""
    protocol = conn.protocol
    return _frames.close_reason(
        protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent, peer_is_client=True
    )


class _Connection(ServerConnection):
    """A websockets connection that tells rtt when its write buffer passes the high-water mark."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        _frames.speak_rtt_reasons(protocol)
        super().__init__(protocol, *args, **kwargs)

    rtt_server: WsServer | None = None
    rtt_socket_id: str | None = None
    # The accepted handshake, held by the connection itself so a handshake that
    # fails after process_request leaves nothing behind.
    rtt_admitted: tuple[Handshake, Accept] | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.rtt_server is not None:
            # Called from inside transport.write(): only note it; the server acts
            # right after the write returns (see WsServer._check_over_limit).
            self.rtt_server._over_limit.append(self)


_FAILED = "Failed to open a WebSocket connection: "
"""How websockets begins the body of each refusal; rtt's own say the same."""
_WS_VERSION = "13"
"""The only WebSocket version (RFC 6455 4.1)."""


def _check_request(conn: ServerConnection, request: Request) -> Response | None:
    """Refuse what websockets parses but HTTP or RFC 6455 does not allow, before anything else runs.

    websockets checks the upgrade itself after ``process_request`` (426 for a
    plain request, 400 for a missing key, 405 for another method), but takes
    any target and no ``Host``, and answers a WebSocket version it does not
    speak with 400 where RFC 6455 4.4 asks for 426 naming the version it does.
    """
    # RFC 9112 3.2: a request-target is visible ASCII (websockets takes control characters too).
    if not request.path or not all("!" <= char <= "~" for char in request.path):
        return conn.respond(HTTPStatus.BAD_REQUEST, f"{_FAILED}invalid target.\n")
    # RFC 9112 3.2: exactly one Host header, or 400 (RFC 6455 4.2.1 requires it too).
    if len(request.headers.get_all("Host")) != 1:
        return conn.respond(HTTPStatus.BAD_REQUEST, f"{_FAILED}missing or repeated Host header.\n")
    versions = request.headers.get_all("Sec-WebSocket-Version")
    if versions and versions != [_WS_VERSION]:
        text = f"{_FAILED}unsupported WebSocket version, use {_WS_VERSION}.\n"
        response = conn.respond(HTTPStatus.UPGRADE_REQUIRED, text)
        response.headers["Sec-WebSocket-Version"] = _WS_VERSION
        return response
    return None


# What websockets logs at INFO for every connection: rtt.server logs its sockets at DEBUG.
_LIFECYCLE = frozenset({"connection open", "connection closed"})


class _HandshakeLog(RequestErrorLog):
    """websockets' server logger, quiet about bad requests: at most one INFO line a request (SPEC 3.11).

    On top of :class:`~rtt.listener.RequestErrorLog`: a DEBUG record with a
    traceback (websockets' ``! no valid HTTP request``, whose exception quotes
    the request's bytes) loses the traceback and names the exception's type, and the
    per-connection ``connection open``/``connection closed`` lines go to DEBUG,
    so what remains at INFO for a request is the status it was answered with
    (``connection rejected (400 Bad Request)``), never its bytes.
    """

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        exc_info = kwargs.pop("exc_info", None) if level <= logging.DEBUG else None
        if exc_info:
            exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
            if not isinstance(exc, BaseException):
                exc = sys.exc_info()[1]
            super().log(level, f"{msg} (%s)", *args, type(exc).__name__, **kwargs)
            return
        if level == logging.INFO and msg in _LIFECYCLE:
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


Mode = Literal["standalone", "aiohttp", "asgi"]


class WsServer(Server["ServerConnection | MountedConn"]):
    """A server at ``ws://host:port/``; any path is accepted and reported in ``socket.path``.

    Plain HTTP GETs under ``assets_path`` (default ``/rtt/``) get the browser
    client files, so a page can load exactly the code that talks to this server.
    Or mounted at a path of an aiohttp application (:meth:`attach`) or as an
    ASGI application (:meth:`asgi_app`), the web server serving the WebSocket.
    """

    options: WsServerOptions
    # The asyncio transport pauses writing past outbound_limit (websockets'
    # write_limit), so rtt hears of a slow consumer without polling every socket.
    _reports_slow_consumers = True

    def __init__(self, transport: WsTransport, options: WsServerOptions, host: str, port: int) -> None:
        super().__init__(transport, options, host, port)
        self._listener: WsListener | None = None
        self._quiet_accept: Callable[[], None] = lambda: None
        self._over_limit: list[_Connection] = []
        self._mode: Mode | None = None
        self._path = "/"
        # Mounted connections, from their accept to their end, for _stop.
        self._live: set[MountedConn] = set()

    # -- Serving modes ------------------------------------------------------

    def attach(self, app: web.Application, path: str = "/ws") -> None:
        """Serve rtt's WebSocket at ``path`` of an aiohttp application, and the browser assets.

        Call before the application starts; start this server while the
        application runs (``app.on_startup``, or ``async with server`` in
        ``cleanup_ctx``). The application's shutdown (``on_shutdown``, which
        aiohttp runs before it cancels the connections' handlers) closes it,
        so its sockets close with ``shutdown``. Needs aiohttp (``pip install
        rtt-ws[aiohttp]``); the option ``ssl`` is refused (the application's web
        server does TLS).
        """
        self._mount("aiohttp", path, "an aiohttp application")
        from ._aiohttp import attach  # aiohttp is an optional dependency

        attach(self, app, path)
        app.on_shutdown.append(self._close_on_app_shutdown)

    def asgi_app(self, other_app: ASGIApp | None = None, path: str = "/ws") -> ASGIApp:
        """An ASGI application: rtt's WebSocket at ``path``, the browser assets, ``other_app`` elsewhere.

        Its lifespan startup starts this server (after ``other_app``'s) and its
        shutdown closes it (before ``other_app``'s); without lifespan support
        (or mounted in a framework whose lifespan does not reach it), start
        and close the server yourself. Other requests go to ``other_app``, or
        get 404 without one. The option ``ssl`` is refused.
        """
        self._mount("asgi", path, "an ASGI application")
        return asgi_app(self, other_app, path)

    def _mount(self, mode: Mode, path: str, where: str) -> None:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must be a URL path starting with '/', got {path!r}")
        if self._mode is not None and self._mode != mode:
            raise RuntimeError(f"this server already serves in {self._mode} mode; one mode per server")
        if self.state is not ServerState.NEW:
            raise RuntimeError(f"mount a server before starting it (state {self.state.name})")
        self._refuse_tls_mounted(where)
        if self._mode is None:
            self._path = path
        self._mode = mode

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        refused = _check_request(conn, request)
        if refused is not None:
            return refused
        parts = urlsplit(request.path)
        assets_path = self.options.assets_path
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if assets_path is not None and not upgrade and parts.path.startswith(assets_path):
            return self._asset(parts.path[len(assets_path) :])
        remote = conn.remote_address
        handshake = Handshake(
            headers=Headers(request.headers.raw_items()),
            path=parts.path or "/",
            query_string=parts.query,
            remote_address=(remote[0], remote[1]) if remote else None,
        )
        decision = await self._admit(handshake)
        if isinstance(decision, Reject):
            return conn.respond(decision.status, f"{decision.reason}\n")
        assert isinstance(conn, _Connection)
        conn.rtt_admitted = (handshake, decision)
        return None

    def _asset(self, name: str) -> Response:
        # One response per connection: websockets serves no keep-alive, and a
        # browser holding the socket open would delay shutdown by close_timeout.
        found = read_asset(self.transport.browser_assets(), name)
        if found is None:
            return Response(404, "Not Found", WsHeaders({"Content-Length": "0", "Connection": "close"}))
        content_type, body = found
        headers = WsHeaders(
            {**asset_headers(content_type), "Content-Length": str(len(body)), "Connection": "close"}
        )
        return Response(200, "OK", headers, body)

    async def _handler(self, conn: ServerConnection) -> None:
        assert isinstance(conn, _Connection) and conn.rtt_admitted is not None
        handshake, accept = conn.rtt_admitted
        conn.rtt_admitted = None
        socket = await self._opened(conn, handshake, accept.identity)
        conn.rtt_socket_id = socket.id
        del handshake, accept  # the socket keeps what it needs
        keepalive = None
        if self.options.ping_interval is not None:
            keepalive = asyncio.create_task(self._keepalive(conn, socket.id, self.options.ping_interval))
        try:
            async for data in conn:
                await self._received(socket, data)
        except WsConnectionClosed:
            pass
        finally:
            if keepalive is not None:
                keepalive.cancel()
        await self._closed(socket, close_reason(conn))

    async def _keepalive(self, conn: ServerConnection, socket_id: str, interval: float) -> None:
        """Ping every ``interval``; no pong within ``ping_timeout`` drops the socket at once (SPEC 6)."""
        while True:
            await asyncio.sleep(interval)
            try:
                pong = await conn.ping()
                async with asyncio.timeout(self.options.ping_timeout):
                    await pong
            except WsConnectionClosed:
                return  # the handler reports how it ended
            except TimeoutError:
                # Core aborts the connection for ping timeout: the peer is not reading, so
                # a closing handshake would only hold the socket for close_timeout more.
                self._begin_close(socket_id, CloseReason.PING_TIMEOUT)
                return

    def _check_over_limit(self) -> None:
        over, self._over_limit = self._over_limit, []
        for conn in over:
            if conn.rtt_socket_id is not None:
                self._slow_consumer(conn.rtt_socket_id)

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        if self._mode is not None:  # mounted: the application owns the listener
            return self.host, self.port
        self._mode = "standalone"
        options = self.options
        server = self

        class Connection(_Connection):
            rtt_server = server

        self._listener = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            # One byte of slack for resume's escape; the core checks the message itself.
            max_size=wire_limit(options.max_message_size),
            ping_interval=None,  # rtt's own keepalive, see _keepalive
            close_timeout=options.close_timeout,
            write_limit=(options.outbound_limit, options.outbound_limit // 4),
            create_connection=Connection,
            reuse_port=options.reuse_port,  # passed on to loop.create_server
            ssl=options.ssl,
            # The handshake request's deadline, the same as the aiohttp servers' (SPEC 3.11);
            # open_timeout starts once TLS is up, so the TLS handshake gets its own.
            open_timeout=HEADER_TIMEOUT,
            ssl_handshake_timeout=HEADER_TIMEOUT if options.ssl is not None else None,
            # websockets 15 logs a failed handshake (slow, malformed: its bytes) at ERROR with a traceback.
            logger=_HandshakeLog(
                logging.getLogger("websockets.server"),
                (InvalidHandshake, WsConnectionClosed, TimeoutError),
                "opening handshake failed",
            ),
        )
        # Out of file descriptors: a few WARNING lines, not asyncio's traceback per accept() (SPEC 3.11).
        self._quiet_accept = quiet_accept_errors(self._listener.sockets)
        host, port = next(iter(self._listener.sockets)).getsockname()[:2]
        return host, port

    def _url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        if self._mode != "standalone":
            return f"ws://{host}:{port}{self._path}"
        return f"{'wss' if self.options.ssl is not None else 'ws'}://{host}:{port}/"

    async def _send(self, conn: ServerConnection | MountedConn, data: str | bytes) -> None:
        if isinstance(conn, MountedConn):
            conn.put(conn.prepare(data))
            self._check_mounted(conn)
            return
        if conn.protocol.state is not State.OPEN:
            raise ConnectionClosed(close_reason(conn))
        broadcast((conn,), data)  # writes at once, without waiting for the peer
        if self._over_limit:
            self._check_over_limit()

    async def _broadcast(self, conns: list[ServerConnection | MountedConn], data: str | bytes) -> None:
        if self._mode != "standalone":
            mounted = [conn for conn in conns if isinstance(conn, MountedConn) and conn.open]
            if mounted:
                item = mounted[0].prepare(data)  # encoded once (one mode, one connection class)
                for conn in mounted:
                    conn.put(item)
                    self._check_mounted(conn)
            return
        broadcast(conns, data)  # type: ignore[arg-type]  # encodes once, skips connections not open
        if self._over_limit:
            self._check_over_limit()

    def _check_mounted(self, conn: MountedConn) -> None:
        # Reported at once, as the standalone server's pause_writing does (_reports_slow_consumers).
        if conn.socket is not None and conn.buffered() > self.options.outbound_limit:
            self._slow_consumer(conn.socket.id)

    def _buffered(self, conn: ServerConnection | MountedConn) -> int:
        if isinstance(conn, MountedConn):
            return conn.buffered()
        return conn.transport.get_write_buffer_size()

    async def _close(self, conn: ServerConnection | MountedConn, close: Close) -> None:
        if isinstance(conn, MountedConn):
            await conn.close(close)
        else:
            await conn.close(close.code, close.text)

    def _abort(self, conn: ServerConnection | MountedConn) -> None:
        if isinstance(conn, MountedConn):
            conn.abort()
        else:
            conn.transport.abort()

    async def _stop_accepting(self) -> None:
        if self._listener is not None:
            # Stop listening; rtt closes the open connections itself with its own reason.
            self._listener.close(close_connections=False)
            self._quiet_accept()

    async def _stop(self) -> None:
        for mounted in list(self._live):
            mounted.abort()
        if self._listener is not None:
            for conn in list(self._listener.connections):
                conn.transport.abort()
            self._listener.close(close_connections=False)
            self._quiet_accept()
            await self._listener.wait_closed()
