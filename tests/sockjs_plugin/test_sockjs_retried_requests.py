"""A SockJS session's HTTP requests never reuse a connection, and a silent one is given up (SPEC.md 12.4).

Chromium sends a request again by itself when the keep-alive connection it
reused breaks before the response comes; a repeated xhr poll or xhr_send would
let a session go on past a gap or a repeat. Every answer to a session's HTTP
request therefore says ``Connection: close`` (aiohttp then closes the
connection after it); the greeting, ``/info`` and WebSocket are left alone.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

import rtt
from rtt.testing import Proxy, Recorder
from rtt_sockjs.client import LIVENESS_TIMEOUT, _silence_bound

pytestmark = pytest.mark.timeout(30)


@asynccontextmanager
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with asyncio.timeout(20), aiohttp.ClientSession(cookie_jar=jar) as http:
        yield http


async def test_every_request_of_an_http_session_closes_its_connection() -> None:
    server = rtt.load("sockjs").server(port=0)
    server.on("message", lambda socket, data: server.send(socket.id, data))
    async with server, http_client() as http:
        async with http.get(server.url + "/info") as response:
            assert response.status == 200
            assert response.headers.get("Connection") != "close"
        url = f"{server.url}/000/{secrets.token_urlsafe(8)}"
        async with http.post(url + "/xhr") as response:
            assert await response.text() == "o\n"
            assert response.headers["Connection"] == "close"
        async with http.post(url + "/xhr_send", data='["hello"]') as response:
            assert response.status == 204
            assert response.headers["Connection"] == "close"
        async with http.post(url + "/xhr") as response:
            assert await response.text() == 'a["hello"]\n'
            assert response.headers["Connection"] == "close"
        # A refusal too: a session's request with an unknown session.
        async with http.post(f"{server.url}/000/unknown/xhr_send", data='["x"]') as response:
            assert response.status == 404
            assert response.headers["Connection"] == "close"


async def test_info_gives_the_heartbeat_interval_when_there_is_one() -> None:
    for ping_interval, expected in ((0.5, 0.5), (None, None)):
        server = rtt.load("sockjs").server(port=0, ping_interval=ping_interval)
        async with server, http_client() as http, http.get(server.url + "/info") as response:
            info = await response.json()
        assert info.get("heartbeat_interval") == expected
        assert info["websocket"] is True and info["cookie_needed"] is True  # the library's fields stay


@pytest.mark.parametrize(
    ("info", "bound"),
    [
        ({}, LIVENESS_TIMEOUT),
        ({"heartbeat_interval": 0.5}, 3.0),
        ({"heartbeat_interval": 25}, 52.0),
        ({"heartbeat_interval": 45}, LIVENESS_TIMEOUT),
        ({"heartbeat_interval": 0}, LIVENESS_TIMEOUT),
        ({"heartbeat_interval": -1}, LIVENESS_TIMEOUT),
        ({"heartbeat_interval": True}, LIVENESS_TIMEOUT),
        ({"heartbeat_interval": "1"}, LIVENESS_TIMEOUT),
    ],
)
def test_the_python_client_bounds_a_silent_request_by_the_servers_heartbeat(
    info: dict[str, object], bound: float
) -> None:
    assert _silence_bound(info) == bound


@pytest.mark.parametrize("transport", ["xhr-polling", "xhr-streaming"])
async def test_the_python_client_gives_up_on_a_black_holed_request_within_two_heartbeats(
    transport: str,
) -> None:
    """Every request is on a new connection: one opened during a black hole is never cut, only silent."""
    interval = 0.3
    server = rtt.load("sockjs").server(port=0, ping_interval=interval, ping_timeout=5)
    async with server, Proxy(*server.address) as proxy:
        client = rtt.load("sockjs", transports=(transport,)).client(
            proxy.url_for(server.url), reconnect=False
        )
        events = Recorder().listen(client, "close")
        async with client:
            proxy.blackhole()
            started = time.monotonic()
            await events.wait("close", timeout=10)
            waited = time.monotonic() - started
        assert waited < 2 * interval + 2.0 + 1.0, f"gave up after {waited:.2f} s"
        ((reason,),) = events.of("close")
        assert reason is rtt.CloseReason.TRANSPORT_ERROR
