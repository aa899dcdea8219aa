"""FastAPI and Django applications serving their routes and rtt-ws on one port under uvicorn (SPEC.md 12.2).

The applications are built as the README's snippets build them: FastAPI
wrapped by ``server.asgi_app(app)`` (rtt's lifespan runs FastAPI's), FastAPI
with ``app.mount("/ws", server.asgi_app(path="/"))`` (FastAPI's lifespan runs
rtt's server), and Django's ASGI handler wrapped by ``server.asgi_app()``
(Django refuses the lifespan scope: rtt's lifespan leaves it out). Each is
served by uvicorn on a free loopback port (``mount_support.serve_asgi``) and
talked to with real requests: an HTTP GET of the framework's route, rtt's
Python client, and shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import django  # type: ignore[import-untyped]
import pytest
from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]
from django.urls import path as django_path  # type: ignore[import-untyped]
from fastapi import FastAPI
from mount_support import listen, serve_asgi

import rtt
from rtt.asgi import ASGIApp
from rtt.testing import Recorder
from rtt_ws import WsServer

if not settings.configured:
    # Django's settings are the process's: a minimal project whose URLconf is this module.
    settings.configure(
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1"],
        SECRET_KEY="rtt tests, not a secret",
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
    )
    django.setup()
from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]  # after the settings

WAIT = 10.0
"""Seconds any wait of these tests may take."""


# -- The applications, as the README builds them -------------------------------------------


def fastapi_wrapped(server: WsServer, events: list[str]) -> ASGIApp:
    """FastAPI with rtt-ws in front: ``/ws`` is rtt's, everything else FastAPI's (README)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append(f"fastapi startup, rtt {server.state.name}")
        yield
        events.append(f"fastapi shutdown, rtt {server.state.name}")

    api = FastAPI(lifespan=lifespan)

    @api.get("/api/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "from fastapi"}

    # rtt's lifespan starts the server after FastAPI's startup and closes it before FastAPI's shutdown.
    return server.asgi_app(api)


def fastapi_mounting(server: WsServer, events: list[str]) -> ASGIApp:
    """FastAPI with rtt-ws mounted at ``/ws/``: FastAPI's lifespan runs the rtt server (README)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append(f"fastapi startup, rtt {server.state.name}")
        async with server:  # Starlette runs no lifespan of a mounted application
            yield
        events.append(f"fastapi shutdown, rtt {server.state.name}")

    api = FastAPI(lifespan=lifespan)

    @api.get("/api/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "from fastapi"}

    # Starlette's Mount("/ws") takes /ws/ and below, and hands "/" on: rtt's WebSocket at /ws/.
    api.mount("/ws", server.asgi_app(path="/"))
    return api


async def django_hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hello": "from django", "path": request.path})


urlpatterns = [django_path("api/hello", django_hello)]
"""This module is the Django project's URLconf."""


def django_wrapped(server: WsServer) -> ASGIApp:
    """Django's ASGI handler with rtt-ws in front: ``/ws`` is rtt's, everything else Django's (README)."""
    return server.asgi_app(get_asgi_application())


# -- Helpers ---------------------------------------------------------------------------------


async def get_json(port: int, target: str) -> tuple[int, Any]:
    """GET ``http://127.0.0.1:port{target}``: its status and JSON body."""
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}{target}") as response,
    ):
        return response.status, await response.json(content_type=None)


async def get_content_type(port: int, target: str) -> tuple[int, str]:
    """GET ``http://127.0.0.1:port{target}``: its status and content type."""
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}{target}") as response,
    ):
        await response.read()
        return response.status, response.content_type


def ws_server(port: int, **options: Any) -> WsServer:
    """A ws server for an application served at ``127.0.0.1:port``."""
    server = rtt.load("ws").server(host="127.0.0.1", port=port, **options)
    assert isinstance(server, WsServer)
    return server


def state_of(server: rtt.Server[Any]) -> rtt.ServerState:
    """The server's state, read through a call so the type checker does not narrow it between reads."""
    return server.state


async def check_rtt_on_the_same_port(server: rtt.Server[Any], url: str) -> None:
    """rtt's Python clients at ``url``: admitted by :func:`authorizing`, echo both ways, a broadcast to two.

    ``server`` runs with :func:`authorizing`'s hook; a third client is refused with its status and reason.
    """
    ws = rtt.load("ws")
    path = urlsplit(url).path
    rec = Recorder().listen(server, "connect", "disconnect")

    @server.on("message")
    async def reply(socket: rtt.Socket, data: str | bytes) -> None:
        if data == "to everyone":
            await server.broadcast(data)
        else:
            await server.send(socket.id, data)

    async with (
        ws.client(f"{url}?room=blue", headers={"Authorization": "Bearer ann"}) as ann,
        ws.client(f"{url}?room=red", headers={"Authorization": "Bearer bob"}) as bob,
    ):
        await rec.wait("connect", 2)
        by_user = {socket.identity: (socket.path, socket.query) for socket in server.sockets.values()}
        assert by_user == {"ann": (path, {"room": "blue"}), "bob": (path, {"room": "red"})}
        await ann.send("hello")
        assert await ann.recv() == "hello"
        await ann.send(b"\x00\xffbytes")
        assert await ann.recv() == b"\x00\xffbytes"
        await bob.send("to everyone")
        assert await ann.recv() == "to everyone"
        assert await bob.recv() == "to everyone"
        with pytest.raises(rtt.RejectedError) as refused:
            await ws.client(url, headers={"Authorization": "Bearer eve"}, reconnect=False).connect()
        assert (refused.value.status, refused.value.reason) == (401, "who are you?")
    await rec.wait("disconnect", 2)
    assert {reason for _, reason in rec.of("disconnect")} == {rtt.CloseReason.CLIENT_CLOSED}


def authorizing(seen: list[rtt.Handshake]) -> Callable[[rtt.Handshake], rtt.Accept | rtt.Reject]:
    """An ``authorize`` hook that records each handshake and admits Ann and Bob by their bearer token."""

    def authorize(handshake: rtt.Handshake) -> rtt.Accept | rtt.Reject:
        seen.append(handshake)
        user = handshake.headers.get("authorization", "").removeprefix("Bearer ")
        return rtt.Accept(identity=user) if user in ("ann", "bob") else rtt.Reject(401, "who are you?")

    return authorize


def check_handshakes(seen: list[rtt.Handshake], endpoint: str) -> None:
    """What ``authorize`` saw of the three handshakes of :func:`check_rtt_on_the_same_port`."""
    assert [hs.path for hs in seen] == [endpoint] * 3
    assert [dict(hs.query) for hs in seen] == [{"room": "blue"}, {"room": "red"}, {}]
    assert [hs.headers["authorization"] for hs in seen] == ["Bearer ann", "Bearer bob", "Bearer eve"]
    assert all(hs.remote_address is not None and hs.remote_address[0] == "127.0.0.1" for hs in seen)
    assert all(hs.headers["host"] == seen[0].headers["host"] for hs in seen)


# -- FastAPI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "endpoint", "assets"),
    [
        pytest.param("wrapped", "/ws", "/rtt/", id="asgi_app(fastapi)"),
        pytest.param("mounted", "/ws/", "/ws/rtt/", id="fastapi.mount"),
    ],
)
async def test_fastapi_route_and_rtt_share_the_port(form: str, endpoint: str, assets: str) -> None:
    events: list[str] = []
    seen: list[rtt.Handshake] = []
    make = fastapi_wrapped if form == "wrapped" else fastapi_mounting
    sock = listen()
    port = sock.getsockname()[1]
    server = ws_server(port, authorize=authorizing(seen))
    async with serve_asgi(make(server, events), sock=sock):
        assert events == ["fastapi startup, rtt NEW"]
        assert server.state is rtt.ServerState.RUNNING
        assert await get_json(port, "/api/hello") == (200, {"hello": "from fastapi"})
        assert await get_json(port, "/nothing") == (404, {"detail": "Not Found"})  # FastAPI's own 404
        assert await get_content_type(port, f"{assets}rtt-ws.js") == (200, "text/javascript")
        url = f"ws://127.0.0.1:{port}{endpoint}"
        await check_rtt_on_the_same_port(server, url)
        check_handshakes(seen, endpoint)
        # Stopping the application closes rtt's clients with "shutdown", then FastAPI shuts down.
        client = rtt.load("ws").client(url, headers={"Authorization": "Bearer ann"}, reconnect=False)
        await client.connect()
    assert await client.wait_closed() is rtt.CloseReason.SHUTDOWN
    await client.close()
    assert state_of(server) is rtt.ServerState.CLOSED
    assert events == ["fastapi startup, rtt NEW", "fastapi shutdown, rtt CLOSED"]


# -- Django -----------------------------------------------------------------------------------


async def test_django_refuses_the_lifespan_scope() -> None:
    # What the next test relies on: Django's handler raises on anything but HTTP.
    async def nothing() -> dict[str, Any]:
        raise AssertionError("Django must not wait for an event")

    async def sent(message: Any) -> None:
        raise AssertionError(f"Django must not answer: {message}")

    with pytest.raises(ValueError, match="Django can only handle ASGI/HTTP connections, not lifespan"):
        await get_asgi_application()({"type": "lifespan", "asgi": {"version": "3.0"}}, nothing, sent)


async def test_django_view_and_rtt_share_the_port() -> None:
    seen: list[rtt.Handshake] = []
    sock = listen()
    port = sock.getsockname()[1]
    server = ws_server(port, authorize=authorizing(seen))
    # rtt's lifespan leaves Django out and still starts the server, and closes it at shutdown.
    async with serve_asgi(django_wrapped(server), sock=sock):
        assert server.state is rtt.ServerState.RUNNING
        assert await get_json(port, "/api/hello") == (200, {"hello": "from django", "path": "/api/hello"})
        assert await get_content_type(port, "/rtt/rtt-ws.js") == (200, "text/javascript")
        assert server.url == f"ws://127.0.0.1:{port}/ws"
        await check_rtt_on_the_same_port(server, server.url)
        check_handshakes(seen, "/ws")
        client = rtt.load("ws").client(server.url, headers={"Authorization": "Bearer bob"}, reconnect=False)
        await client.connect()
        await client.send("still here")
        assert await client.recv() == "still here"
    assert await client.wait_closed() is rtt.CloseReason.SHUTDOWN
    await client.close()
    assert state_of(server) is rtt.ServerState.CLOSED
