"""The sockjs server at its edges: the guard's answers, the site's failures, the application's shutdown,
WebSocket pings and close codes, a client that vanishes.

Raw HTTP and WebSocket with aiohttp, as in ``test_sockjs.py``: each test
checks what the endpoint does (SPEC.md 12.4) with what no rtt client sends.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from conftest import echo_server
from mount_support import check_aiohttp_shutdown_closes_the_server

import rtt
from rtt.testing import Recorder
from rtt_sockjs import SockjsServer

# sockjs 0.13 stores its state under string keys of the aiohttp application.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@asynccontextmanager
async def browser_like() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client with its own cookie jar, cookies for 127.0.0.1 included."""
    async with asyncio.timeout(20), aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


async def open_xhr(http: aiohttp.ClientSession, base: str, **headers: str) -> str:
    """Fetch /info (the binding cookie), open an xhr-polling session, return its URL."""
    async with http.get(base + "/info") as response:
        assert response.status == 200
    url = f"{base}/{secrets.randbelow(1000):03d}/{secrets.token_urlsafe(8)}"
    async with http.post(url + "/xhr", headers=headers) as response:
        assert await response.text() == "o\n"
    return url


async def answer(response: aiohttp.ClientResponse) -> tuple[int, str]:
    return response.status, await response.text()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A request body without Content-Length (sent chunked)."""
    for part in parts:
        yield part


async def test_posts_are_read_strictly_with_or_without_a_length() -> None:
    async with (
        echo_server("sockjs", kind=SockjsServer, close_timeout=0.5, max_message_size=1024) as (server, _),
        browser_like() as http,
    ):
        rec = Recorder().listen(server, "disconnect")
        url = await open_xhr(http, server.url)
        async with http.post(url + "/xhr_send", data=b"") as response:
            assert await answer(response) == (500, "Payload expected.")
        async with http.post(url + "/xhr_send", data=chunks(b'["chun', b'ked"]')) as response:
            assert response.status == 204
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'a["chunked"]\n')
        async with http.post(url + "/xhr_send", data=b'["\xff"]') as response:
            assert await answer(response) == (500, "Broken JSON encoding.")
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'c[1002,"protocol error"]\n')
        # Past the bound without a length: read only until the bound, then refused.
        url = await open_xhr(http, server.url)
        big = json.dumps(["z" * server.body_limit]).encode()
        async with http.post(url + "/xhr_send", data=chunks(big[:65536], big[65536:])) as response:
            assert response.status == 413
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'c[1009,"message too big"]\n')
        await rec.wait("disconnect", 2)
        assert [reason for _, reason in rec.of("disconnect")] == [
            rtt.CloseReason.PROTOCOL_ERROR,
            rtt.CloseReason.MESSAGE_TOO_BIG,
        ]


async def test_a_session_is_used_from_allowed_origins_only() -> None:
    good = {"Origin": "https://app.example"}
    async with (
        echo_server(
            "sockjs", kind=SockjsServer, close_timeout=0.5, allowed_origins=["https://app.example"]
        ) as (server, _),
        browser_like() as http,
    ):
        url = await open_xhr(http, server.url, **good)
        evil = {"Origin": "https://evil.example"}
        async with http.post(url + "/xhr_send", data='["x"]', headers=evil) as response:
            assert await answer(response) == (403, "Origin not allowed")
        async with http.post(url + "/xhr", headers=evil) as response:
            assert await answer(response) == (403, "Origin not allowed")
        async with http.post(url + "/carrier_pigeon", headers=good) as response:
            assert response.status == 404
        async with http.post(url + "/xhr_send", data='["still here"]', headers=good) as response:
            assert response.status == 204
        async with http.post(url + "/xhr", headers=good) as response:
            assert await answer(response) == (200, 'a["still here"]\n')


async def test_a_port_in_use_fails_start_and_leaves_nothing() -> None:
    async with echo_server("sockjs", kind=SockjsServer, close_timeout=0.5) as (first, _):
        second = rtt.load("sockjs").server(port=first.address[1])
        assert isinstance(second, SockjsServer)
        with pytest.raises(OSError):
            await second.start()
        assert second.manager.sessions == {}


async def test_an_application_that_stops_first_ends_its_sessions_as_shutdown() -> None:
    """Mounted, the application's cleanup stops the library's manager: rtt ends each session once."""
    app = web.Application()
    server = rtt.load("sockjs").server(port=0)
    assert isinstance(server, SockjsServer)
    server.attach(app)
    rec = Recorder().listen(server, "connect", "disconnect")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with server:
            async with browser_like() as http:
                await open_xhr(http, f"http://127.0.0.1:{port}/sockjs")
            await rec.wait("connect", 1)
            await runner.cleanup()
            await rec.wait("disconnect", 1)
            assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.SHUTDOWN]
            assert server.sockets == {} and server.manager.sessions == {}
    finally:
        await runner.cleanup()


async def test_websocket_edges_ping_close_codes_and_methods() -> None:
    async with (
        echo_server("sockjs", kind=SockjsServer, close_timeout=0.5) as (server, _),
        browser_like() as http,
    ):
        rec = Recorder().listen(server, "disconnect")
        session = f"{server.url}/000/{secrets.token_urlsafe(8)}"
        async with http.post(session + "/websocket") as response:
            # A WebSocket session opens with GET only: SockJS's 405, without a body.
            assert (response.status, response.headers["Allow"], await response.read()) == (405, "GET", b"")
        ws = await http.ws_connect(session.replace("http", "ws", 1) + "/websocket", autoping=False)
        assert await ws.receive_str() == "o"
        await ws.ping(b"are you there")
        pong = await asyncio.wait_for(ws.receive(), 5)
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"are you there")
        await ws.close(code=4321, message=b"my own reason")
        await rec.wait("disconnect", 1)
        ((_, reason),) = rec.of("disconnect")
        # An application's code is a deliberate close of the client (SPEC.md 6).
        assert reason is rtt.CloseReason.from_client(4321, "my own reason") is rtt.CloseReason.CLIENT_CLOSED


async def test_a_streaming_client_that_vanishes_is_a_transport_error() -> None:
    """The next heartbeat finds the stream's connection gone, long before any ping timeout."""
    async with (
        echo_server("sockjs", kind=SockjsServer, close_timeout=0.5, ping_interval=0.2, ping_timeout=30) as (
            server,
            _,
        ),
        browser_like() as http,
    ):
        rec = Recorder().listen(server, "connect", "disconnect")
        url = await open_xhr(http, server.url)
        response = await http.post(url + "/xhr_streaming")
        assert response.status == 200
        await response.content.readline()  # the prelude: the stream is open
        connection = response.connection
        assert connection is not None and connection.transport is not None
        connection.transport.abort()
        await rec.wait("disconnect", 1)
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.TRANSPORT_ERROR]


async def test_attach_closes_the_server_when_the_application_shuts_down() -> None:
    await check_aiohttp_shutdown_closes_the_server(rtt.load("sockjs"))
