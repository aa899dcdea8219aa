"""rtt-engineio's ``session_binding`` (SPEC.md 8.3, 12.3): the cookie, what it binds, what it leaves alone."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from conftest import echo_server

import rtt
from rtt.testing import eventually
from rtt_engineio import EngineioServer
from rtt_engineio._wire import BINDING_COOKIE, binding_cookie

pytestmark = pytest.mark.timeout(60)


async def handshake(http: aiohttp.ClientSession, server: EngineioServer) -> tuple[str, list[str]]:
    """Open a long-polling session; its sid and the binding cookies its answer sets."""
    async with http.get(f"{server.url}?EIO=4&transport=polling") as response:
        assert response.status == 200
        sid = json.loads((await response.text())[1:])["sid"]
        cookies = [c for c in response.headers.getall("Set-Cookie", []) if c.startswith(BINDING_COOKIE)]
    return sid, cookies


@pytest.mark.parametrize("binding", [False, True], ids=["binding-off", "binding-on"])
async def test_the_polling_handshake_sets_the_cookie_only_when_bound(binding: bool) -> None:
    async with (
        echo_server("engineio", session_binding=binding, kind=EngineioServer) as (server, _),
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        sid, cookies = await handshake(http, server)
        if not binding:
            assert cookies == []
            return
        (cookie,) = cookies
        # Plain HTTP: Lax (SameSite=None needs Secure, which needs HTTPS); Path = the endpoint.
        assert cookie.endswith("; Path=/engine.io/; HttpOnly; SameSite=Lax")
        # A second session of the same browser (a tab) keeps the key it holds: no new cookie.
        _, again = await handshake(http, server)
        assert again == []
        async with http.get(f"{server.url}?EIO=4&transport=polling&sid={sid}") as response:
            assert response.status == 200  # the cookie goes with the poll


def test_the_cookie_over_https_is_for_cross_site_pages() -> None:
    """Over HTTPS: SameSite=None; Secure; Partitioned, so a page on another site may keep it (CHIPS)."""
    assert binding_cookie("k" * 22, "/engine.io/", secure=True) == (
        f"{BINDING_COOKIE}={'k' * 22}; Path=/engine.io/; HttpOnly; SameSite=None; Secure; Partitioned"
    )


async def test_a_session_opened_on_websocket_needs_no_cookie() -> None:
    """A WebSocket-only session lives on its connection: nothing to bind, no cookie."""
    async with (
        echo_server("engineio", session_binding=True, kind=EngineioServer) as (server, _),
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(f"{server.url}?EIO=4&transport=websocket".replace("http", "ws", 1))
        try:
            assert (await asyncio.wait_for(ws.receive_str(), 10)).startswith("0{")
            assert len(http.cookie_jar) == 0
            await ws.send_str("4hello")
            assert await asyncio.wait_for(ws.receive_str(), 10) == "4hello"
        finally:
            await ws.close()


@pytest.mark.parametrize("transports", [("polling",), ("polling", "websocket")], ids=["polling", "upgrade"])
async def test_the_python_client_keeps_a_bound_session(transports: tuple[str, ...]) -> None:
    """The rtt client keeps the cookie (127.0.0.1 included): polls, posts and the upgrade carry it."""
    transport = rtt.load("engineio", transports=transports, reconnect=False)
    async with echo_server(transport, session_binding=True, kind=EngineioServer) as (server, received):
        async with transport.client(server.url) as client:
            for text in ("one", "two"):
                await client.send(text)
                assert await asyncio.wait_for(client.recv(), 10) == text
            if len(transports) == 2:
                eio = client.engineio_client  # type: ignore[attr-defined]
                await eventually(lambda: eio.transport() == "websocket", what="the upgrade, cookie and all")
                await client.send("three")
                assert await asyncio.wait_for(client.recv(), 10) == "three"
        assert received[:2] == ["one", "two"]
