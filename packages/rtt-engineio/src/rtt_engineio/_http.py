"""The HTTP side of the engineio server: where requests come from (SPEC.md 12.3, 13.8).

Three ways to serve (standalone aiohttp site, mounted in an aiohttp
application, ASGI), the browser assets, the ASGI lifespan, the relay of a
long-polling request whose session another process holds, and what rtt
reads of a handshake request. No protocol and no rtt hooks: those are in
``server.py``; nothing here touches python-engineio's private parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket as socket_module
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import engineio  # type: ignore[import-untyped, unused-ignore]
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from rtt import BrokerError, Handshake, Headers
from rtt.asgi import serve_lifespan
from rtt.assets import asset_headers, read_asset
from rtt.listener import HEADER_TIMEOUT, Listener, RequestErrorLog
from rtt.relay import RelayedRequest

from ._library import aiohttp_request, answer_and_close, asgi_scope

if TYPE_CHECKING:
    from .server import EngineioServer

__all__ = ["HttpFront", "handshake_of"]

logger = logging.getLogger("rtt.server")

#: Query parameters that belong to the Engine.IO protocol, not to the application.
_PROTOCOL_QUERY = frozenset({"EIO", "transport", "t", "sid", "j"})


def handshake_of(environ: dict[str, Any]) -> Handshake:
    """What rtt knows of a handshake request, from either driver's environ."""
    request = aiohttp_request(environ)
    scope = asgi_scope(environ)
    remote: tuple[str, int] | None = None
    secure = False
    if request is not None:
        headers = Headers.from_raw(request.raw_headers)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer:
            remote = (str(peer[0]), int(peer[1]))
        path = request.path
        secure = request.secure
    elif scope is not None:
        headers = Headers.from_raw(scope["headers"])
        client = scope.get("client")
        if client:
            remote = (str(client[0]), int(client[1]))
        path = scope["path"]
        secure = scope.get("scheme") in ("https", "wss")
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
    return Handshake(
        headers=headers,
        path=path,
        query_string=urlencode(query),
        remote_address=remote,
        scheme="https" if secure else "http",
    )


class HttpFront:
    """The web server side of one :class:`~rtt_engineio.EngineioServer`."""

    def __init__(self, server: EngineioServer) -> None:
        self.server = server
        self.runner: web.AppRunner | None = None
        self.listener: Listener | None = None

    # -- aiohttp --------------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        """Serve Engine.IO (and the assets) under the server's paths of an aiohttp application."""
        self.server._refuse_tls_mounted("an aiohttp application")
        self._attach_endpoint(app)
        self._add_asset_route(app)

    def _attach_endpoint(self, app: web.Application) -> None:
        eio = self.server._engine("aiohttp")
        eio.attach(app, self.server.path)
        # The library routes GET, POST and OPTIONS only, so aiohttp would answer any other
        # method 405; the library's own answer (made 400, as the protocol says) is given instead.
        app.router.add_route("*", self.server.path, eio.handle_request)

    def _add_asset_route(self, app: web.Application) -> None:
        # GET <assets_path><name>: exactly the files of transport.browser_assets() (SPEC 2.7).
        assets_path = self.server.options.assets_path
        if assets_path is not None:
            app.router.add_get(assets_path + "{name}", self._asset)

    async def _asset(self, request: web.Request) -> web.Response:
        found = read_asset(self.server.transport.browser_assets(), request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, body = found
        return web.Response(body=body, headers=asset_headers(content_type))

    async def start(self) -> tuple[str, int]:
        """Run a standalone aiohttp site (and the relay's Unix socket with a broker); its address."""
        server = self.server
        eio = server._engine("aiohttp")
        app = web.Application(
            client_max_size=eio.max_http_buffer_size, middlewares=[self._headers_read, self._route]
        )
        self._attach_endpoint(app)
        self._add_asset_route(app)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=server.options.close_timeout,
            # A malformed request: one DEBUG line, not aiohttp's traceback quoting its bytes (SPEC 3.8).
            logger=RequestErrorLog(server_logger, (HttpProcessingError,)),
        )
        await runner.setup()
        self.runner = runner
        try:
            assert runner.server is not None
            self.listener = await Listener.open(
                runner.server,
                server.host,
                server.port,
                reuse_port=server.options.reuse_port,
                ssl=server.options.ssl,
            )
            if server.broker is not None:
                # Relayed requests (SPEC.md 13.8) reach this process's own server here.
                path = str(Path(tempfile.mkdtemp(prefix="rtt-relay-")) / "http.sock")
                await web.UnixSite(runner, path).start()
                server._relay_socket = path
        except BaseException:
            self._close_listener()
            await runner.cleanup()
            self.runner = None
            self._remove_relay_socket()
            raise
        return self.listener.address

    async def stop(self) -> None:
        """Close the standalone site (if any) and remove the relay's socket."""
        self._close_listener()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self._remove_relay_socket()

    def _close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    @web.middleware
    async def _headers_read(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Lift the listener's header deadline while the request is handled (SPEC.md 3.11)."""
        if self.listener is None:
            return await handler(request)
        with self.listener.request(request.transport):
            return await handler(request)

    @web.middleware
    async def _route(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Relay a request of a session another process holds to that process (SPEC.md 13.8)."""
        server = self.server
        sid = request.query.get("sid")
        if sid is None or server.holds(sid) or server._relay_socket is None or _relayed(request):
            return await handler(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            # A WebSocket cannot be relayed: the client keeps its session on long-polling.
            return web.Response(status=400, text="Session held by another process; keep polling")
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):  # a trickling body, as in handle_post_request
                body = await request.read()
        except TimeoutError:
            timed_out = web.Response(status=408, text="Request body timed out\n")
            await answer_and_close(request, timed_out)
            return timed_out
        try:
            relayed = await server._relay_session(
                sid,
                RelayedRequest.of(request, body),
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
        server = self.server
        if server._relay_socket is not None:
            shutil.rmtree(Path(server._relay_socket).parent, ignore_errors=True)
            server._relay_socket = None

    # -- ASGI -----------------------------------------------------------------

    def asgi_app(self, other_app: Callable[..., Any] | None) -> Callable[..., Any]:
        """An ASGI application: Engine.IO under the path, ``other_app`` elsewhere, rtt's lifespan."""
        self.server._refuse_tls_mounted("an ASGI application")
        eio = self.server._engine("asgi")
        app = engineio.ASGIApp(eio, other_app, engineio_path=self.server.path)

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                await serve_lifespan(self.server, scope, receive, send, other_app)
            else:
                await app(scope, receive, send)

        return asgi


def _relayed(request: web.Request) -> bool:
    """Whether ``request`` came over the relay's Unix socket (never relayed again)."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    return sock is not None and sock.family == socket_module.AF_UNIX
