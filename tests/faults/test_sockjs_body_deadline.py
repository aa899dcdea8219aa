"""A message POST whose body trickles in is cut (issue 12; SPEC.md 3.11, 12.4).

Slowloris after the headers: a client posts to ``xhr_send`` or ``jsonp_send``
with ``Content-Length: 1000`` and then sends a byte every couple of seconds.
The header deadline is lifted once the headers are in, and neither aiohttp
nor the library bounds the time to a body, so without a bound of rtt's such a
request holds its connection (and a handler) for as long as its client
likes. rtt-sockjs answers 408 once the body has not arrived within
``rtt.listener.HEADER_TIMEOUT`` of the headers, closes the connection, logs
no ERROR, and the session goes on: nothing of the body was delivered, and the
client knows its POST failed. Standalone and attached to an aiohttp
application alike.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

import rtt
from rtt.listener import HEADER_TIMEOUT
from rtt.testing import Recorder, eventually
from rtt_sockjs import SockjsServer

from .http_support import each_at_once, text_of, trickle_post

# sockjs 0.13 stores its state under string keys of the aiohttp application.
pytestmark = [
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
    pytest.mark.timeout(90),
]

MARGIN = 5.0


@asynccontextmanager
async def sockjs_server(mode: str) -> AsyncIterator[tuple[SockjsServer, str]]:
    """An echoing sockjs server, standalone or attached to an aiohttp application, and its URL."""
    transport = rtt.load("sockjs")
    if mode == "standalone":
        server = transport.server(host="127.0.0.1", port=0, close_timeout=1)
        assert isinstance(server, SockjsServer)
        async with server:
            server.on("message", lambda socket, data: server.send(socket.id, data))
            yield server, server.url
        return
    app = web.Application()
    runner = web.AppRunner(app, shutdown_timeout=1)
    attached = transport.server(host="127.0.0.1", port=0, close_timeout=1)
    assert isinstance(attached, SockjsServer)
    attached.attach(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with attached:
            attached.on("message", lambda socket, data: attached.send(socket.id, data))
            yield attached, f"http://127.0.0.1:{runner.addresses[0][1]}{attached.prefix}"
    finally:
        await runner.cleanup()


async def open_session(http: aiohttp.ClientSession, base: str) -> str:
    url = f"{base}/000/{secrets.token_urlsafe(8)}"
    async with http.post(url + "/xhr") as response:
        assert await response.text() == "o\n"
    return url


async def test_a_trickling_message_post_is_cut_with_408(caplog: pytest.LogCaptureFixture) -> None:
    """Standalone and attached at once: each waits out the 10 s bound."""
    caplog.set_level(logging.DEBUG)
    await each_at_once({mode: a_trickling_message_post_is_cut(mode) for mode in ("standalone", "attached")})
    errors = [text_of(record) for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


async def a_trickling_message_post_is_cut(mode: str) -> None:
    async with sockjs_server(mode) as (server, base), aiohttp.ClientSession() as http:
        rec = Recorder().listen(server, "message", "disconnect")
        url = await open_session(http, base)
        results = await asyncio.gather(
            trickle_post(f"{url}/xhr_send", "text/plain", b"[", give_up=HEADER_TIMEOUT + MARGIN),
            trickle_post(
                f"{url}/jsonp_send",
                "application/x-www-form-urlencoded",
                b"d",
                give_up=HEADER_TIMEOUT + MARGIN,
            ),
        )
        for status, elapsed, closed in results:
            assert status == 408, results
            assert HEADER_TIMEOUT - 1 <= elapsed <= HEADER_TIMEOUT + MARGIN, results
            assert closed, "the connection of a cut request is closed"
        # Nothing of the cut bodies was delivered, and the session lives on.
        assert rec.of("message") == [] and rec.of("disconnect") == []
        async with http.post(url + "/xhr_send", data='["after"]') as response:
            assert response.status == 204
        async with http.post(url + "/xhr") as response:
            assert await response.text() == 'a["after"]\n'


@pytest.mark.parametrize("mode", ["standalone", "attached"])
async def test_a_client_that_leaves_inside_its_body_costs_one_debug_line(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with sockjs_server(mode) as (server, base), aiohttp.ClientSession() as http:
        rec = Recorder().listen(server, "message", "disconnect")
        url = await open_session(http, base)
        parts = urlsplit(url)
        for endpoint in ("xhr_send", "jsonp_send"):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(
                f"POST {parts.path}/{endpoint} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f'Content-Length: 1000\r\n\r\n["half a'.encode()
            )
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        await eventually(
            lambda: sum("Request body incomplete" in r.getMessage() for r in caplog.records) == 2,
            MARGIN,
            "both requests given up",
        )
        assert rec.of("message") == [] and rec.of("disconnect") == []
        async with http.post(url + "/xhr_send", data='["after"]') as response:
            assert response.status == 204
    errors = [text_of(record) for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []
