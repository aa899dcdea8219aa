"""Serve an application on a real loopback port, for the tests of servers mounted in one (SPEC.md 11).

- :func:`listen` binds a listening socket (port 0: a free one) before anything is made with its port,
  as a mounted server needs its address before it can say its ``url``.
- :func:`serve_aiohttp` serves an aiohttp ``web.Application`` on a real site, :func:`serve_asgi` an
  ASGI application under uvicorn (lifespan on): async context managers that yield the bound port,
  start and stop within bounds, and close the socket they serve on.
- :func:`check_aiohttp_shutdown_closes_the_server`: ``attach(app)`` closes the server as the
  application shuts down, so its clients read ``shutdown``.
- :class:`AiohttpMounted` and :class:`AsgiServed` are the conformance kit's mounting hook
  (:meth:`rtt.testing.Kit.mount`) built on them: mixed into a kit class before ``TransportTests``,
  every case's server is attached to an aiohttp application or served as an ASGI application.

Used by the mounted-mode kit modules and by tests of frameworks around a mounted server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket as socketlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from aiohttp import web

from rtt import CloseReason, Server, Transport
from rtt.asgi import ASGIApp
from rtt.testing import Kit, Recorder, eventually

if TYPE_CHECKING:
    import uvicorn

#: uvicorn's WebSocket implementations :func:`serve_asgi` offers.
WsImpl = Literal["websockets", "wsproto"]

#: Seconds a host may take to start or to stop before the test fails.
HOST_TIMEOUT = 10.0


def listen(host: str = "127.0.0.1", port: int = 0) -> socketlib.socket:
    """A TCP socket bound to ``host:port`` and listening; port 0 picks a free port.

    ``SO_REUSEADDR`` is set, so a port whose previous server just stopped can be bound again.
    """
    return socketlib.create_server(
        (host, port), family=socketlib.AF_INET6 if ":" in host else socketlib.AF_INET
    )


@asynccontextmanager
async def serve_aiohttp(
    app: web.Application,
    *,
    sock: socketlib.socket | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_timeout: float = 1.0,
) -> AsyncIterator[int]:
    """Serve ``app`` on a real aiohttp site; yields the bound port.

    On ``sock`` when given (the caller's :func:`listen`), else on a socket bound to ``host:port``.
    The application starts (its ``on_startup`` and ``cleanup_ctx``) before the port is yielded and
    is cleaned up on exit, each within :data:`HOST_TIMEOUT`; the socket is closed on exit.
    """
    sock = sock if sock is not None else listen(host, port)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout)
    try:
        async with asyncio.timeout(HOST_TIMEOUT):
            await runner.setup()
            await web.SockSite(runner, sock).start()
        yield sock.getsockname()[1]
    finally:
        try:
            await asyncio.wait_for(runner.cleanup(), HOST_TIMEOUT)
        finally:
            sock.close()


async def check_aiohttp_shutdown_closes_the_server(transport: Transport) -> None:
    """A server attached to an aiohttp application and run only from its ``cleanup_ctx`` closes as
    the application shuts down, before aiohttp cancels the handlers: its client reads ``shutdown``.

    aiohttp runs ``on_shutdown``, then waits ``shutdown_timeout`` for the handlers, cancels them, and
    only then runs the cleanup; a server closed there would find its sockets dropped (``transport
    error``). ``attach`` registers the close in ``on_shutdown`` (SPEC.md 12).
    """
    sock = listen()
    server = transport.server(host="127.0.0.1", port=sock.getsockname()[1])
    app = web.Application()
    server.attach(app)  # type: ignore[attr-defined]

    async def realtime(app: web.Application) -> AsyncIterator[None]:
        async with server:
            yield

    app.cleanup_ctx.append(realtime)
    rec = Recorder().listen(server, "disconnect")
    async with contextlib.AsyncExitStack() as stack:
        async with serve_aiohttp(app, sock=sock, shutdown_timeout=3.0):
            client = transport.client(server.url, reconnect=False)
            stack.push_async_callback(client.close)
            await client.connect()
            await eventually(lambda: len(server.sockets) == 1, 5, "the server to see the socket")
        closed = await asyncio.wait_for(client.wait_closed(), 10)
        assert closed is CloseReason.SHUTDOWN, closed
        assert [reason for _, reason in rec.of("disconnect")] == [CloseReason.SHUTDOWN]


_UVICORN_WS: dict[str, Any] = {"websockets": "websockets-sansio", "wsproto": "wsproto"}


@functools.cache
def _uvicorn_server_class() -> type[uvicorn.Server]:
    # Imported here: the modules that serve only aiohttp applications run where uvicorn is not installed.
    import uvicorn

    class _Uvicorn(uvicorn.Server):
        """uvicorn's server without its signal handlers (in a test, Ctrl-C belongs to pytest), and with
        an event for the moment it listens."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.listening = asyncio.Event()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[socketlib.socket] | None = None) -> None:
            await super().startup(sockets)
            # At once: a test registers its handlers when the port is yielded, and a client that is
            # already reconnecting would otherwise get in first.
            self.listening.set()

    return _Uvicorn


@asynccontextmanager
async def serve_asgi(
    app: ASGIApp,
    *,
    ws: WsImpl = "websockets",
    sock: socketlib.socket | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    graceful_shutdown: float = 2.0,
) -> AsyncIterator[int]:
    """Serve the ASGI application ``app`` under uvicorn; yields the bound port.

    ``ws`` picks uvicorn's WebSocket implementation: ``"websockets"`` is uvicorn's
    ``websockets-sansio`` (on websockets' current API; uvicorn's older ``websockets`` one is
    deprecated by uvicorn 0.54 and by websockets 14, and warns), ``"wsproto"`` is wsproto's. The lifespan
    is on: the port is yielded once uvicorn has started (the application's lifespan startup done),
    and on exit uvicorn shuts down (connections get ``graceful_shutdown`` seconds, then the lifespan
    shutdown runs), each within :data:`HOST_TIMEOUT`; a uvicorn that does not stop in time is
    cancelled. On ``sock`` when given, else on a socket bound to ``host:port``; closed on exit.
    """
    import uvicorn

    sock = sock if sock is not None else listen(host, port)
    config = uvicorn.Config(
        app,
        ws=_UVICORN_WS[ws],
        lifespan="on",
        log_level="warning",
        log_config=None,  # leave the process's logging as pytest set it up
        timeout_graceful_shutdown=int(graceful_shutdown) or 1,
    )
    server = _uvicorn_server_class()(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn serve")
    try:
        listening = asyncio.create_task(server.listening.wait())  # type: ignore[attr-defined]
        try:
            await asyncio.wait(
                {listening, serving}, timeout=HOST_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            listening.cancel()
        if not server.started:
            if not serving.done():
                raise AssertionError(f"uvicorn did not start within {HOST_TIMEOUT} s")
            serving.result()  # raises what stopped it, if anything did
            raise RuntimeError(
                "uvicorn stopped before it started (the application's lifespan startup failed)"
            )
        yield sock.getsockname()[1]
    finally:
        await _stop_uvicorn(server, serving)
        sock.close()


async def _stop_uvicorn(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    server.should_exit = True
    done, _ = await asyncio.wait({serving}, timeout=HOST_TIMEOUT)
    if not done:
        server.force_exit = True
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, HOST_TIMEOUT)
        raise AssertionError(f"uvicorn did not stop within {HOST_TIMEOUT} s")
    serving.result()


def _module_of(task: asyncio.Task[Any]) -> str:
    frame = getattr(task.get_coro(), "cr_frame", None)
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


# -- The conformance kit's mounting hook (rtt.testing.Kit.mount) ----------------------------------


class AiohttpMounted(Kit):
    """Kit mixin: every case's server attached to an aiohttp application, served on a real site.

    The server is attached with ``server.attach(app)`` and started by the application's
    ``on_startup``; ``attach`` has it closed by the application's ``on_shutdown``. Mix in before
    ``TransportTests``.
    """

    mounted = True
    #: The server, not the application's web server, listening with TLS is not a mounted mode's.
    lacks: ClassVar[Mapping[str, str]] = {
        "server_tls": "mounted in an aiohttp application, TLS is the application's web server's job",
    }

    def mount(
        self, server: Server[Any], listener: socketlib.socket
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return _aiohttp_host(server, listener)


@asynccontextmanager
async def _aiohttp_host(server: Server[Any], listener: socketlib.socket) -> AsyncIterator[None]:
    app = web.Application()
    server.attach(app)  # type: ignore[attr-defined]

    async def start(app: web.Application) -> None:
        await server.start()

    app.on_startup.append(start)
    async with serve_aiohttp(app, sock=listener):
        yield


class AsgiServed(Kit):
    """Kit mixin: every case's server served as an ASGI application (``server.asgi_app()``) under uvicorn.

    The ASGI lifespan starts and closes the server. ``uvicorn_ws`` picks uvicorn's WebSocket
    implementation. Mix in before ``TransportTests``.
    """

    mounted = True
    #: uvicorn's WebSocket implementation, as :func:`serve_asgi`'s ``ws``.
    uvicorn_ws: ClassVar[WsImpl] = "websockets"
    lacks: ClassVar[Mapping[str, str]] = {
        "server_tls": "served as an ASGI application, TLS is the ASGI server's job",
    }

    def mount(
        self, server: Server[Any], listener: socketlib.socket
    ) -> contextlib.AbstractAsyncContextManager[set[asyncio.Task[Any]]]:
        return _asgi_host(server, listener, self.uvicorn_ws)


@asynccontextmanager
async def _asgi_host(
    server: Server[Any], listener: socketlib.socket, ws: WsImpl
) -> AsyncIterator[set[asyncio.Task[Any]]]:
    before = asyncio.all_tasks()
    async with serve_asgi(server.asgi_app(), ws=ws, sock=listener):  # type: ignore[attr-defined]
        # uvicorn's own long-lived tasks (its serve loop, the lifespan), not the server's.
        yield {t for t in asyncio.all_tasks() - before if _module_of(t).startswith("uvicorn.")}
