"""A long-polling POST whose body trickles in is cut (issue 12; SPEC.md 3.11, 12.3).

Slowloris after the headers: a client posts to its session with
``Content-Length: 1000`` and then sends a byte every couple of seconds. The
listener's header deadline is lifted once the headers are in, and neither
aiohttp nor python-engineio bounds the time to a body, so without rtt's bound
such a request holds its connection (and a handler) for as long as its client
likes. rtt-engineio answers 408 once the body has not arrived within
``rtt.listener.HEADER_TIMEOUT``, closes the connection, logs no ERROR, and the
session goes on: nothing of the body was delivered, and the client knows its
POST failed. Standalone, attached to an aiohttp application, and through the
relay to the process that holds the session (SPEC.md 13.8) alike, all three
at once (each waits out the 10 s bound).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import rtt
from rtt.listener import HEADER_TIMEOUT
from rtt.testing import Recorder, echo
from rtt_engineio import EngineioServer

from .http_support import each_at_once, text_of, trickle_post

pytestmark = pytest.mark.timeout(90)

MARGIN = 5.0

_hubs = (f"eio-body-{n}" for n in itertools.count())


@asynccontextmanager
async def engineio_servers(mode: str) -> AsyncIterator[tuple[list[rtt.Server[Any]], str, str]]:
    """Echoing engineio servers, the URL to open a session at and the URL to trickle a POST to."""
    if mode == "standalone":
        async with echo(rtt.load("engineio").server(host="127.0.0.1", port=0, close_timeout=1)) as server:
            yield [server], server.url, server.url
        return
    if mode == "relayed":
        transport = rtt.load("engineio", broker=f"memory://{next(_hubs)}")
        holder = echo(transport.server(host="127.0.0.1", port=0, close_timeout=1))
        other = echo(transport.server(host="127.0.0.1", port=0, close_timeout=1))
        async with holder, other:
            yield [holder, other], holder.url, other.url
        return
    app = web.Application()
    runner = web.AppRunner(app, shutdown_timeout=1)
    attached = echo(rtt.load("engineio").server(host="127.0.0.1", port=0, close_timeout=1))
    assert isinstance(attached, EngineioServer)
    attached.attach(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with attached:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}{attached.path}"
            yield [attached], url, url
    finally:
        await runner.cleanup()


async def test_a_trickling_post_is_cut_with_408(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await each_at_once(
        {mode: a_trickling_post_is_cut(mode) for mode in ("standalone", "attached", "relayed")}
    )
    errors = [text_of(record) for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


async def a_trickling_post_is_cut(mode: str) -> None:
    async with engineio_servers(mode) as (servers, open_url, post_url), aiohttp.ClientSession() as http:
        recs = [Recorder().listen(server, "message", "disconnect") for server in servers]
        async with http.get(open_url + "?EIO=4&transport=polling") as response:
            sid = json.loads((await response.text())[1:])["sid"]
        session = f"?EIO=4&transport=polling&sid={sid}"
        status, elapsed, closed = await trickle_post(
            post_url + session, "text/plain;charset=UTF-8", b"x", first=b"4", give_up=HEADER_TIMEOUT + MARGIN
        )
        assert status == 408
        assert HEADER_TIMEOUT - 1 <= elapsed <= HEADER_TIMEOUT + MARGIN
        assert closed, "the connection of a cut request is closed"
        # Nothing of the cut body was delivered, and the session lives on.
        assert all(rec.of("message") == [] and rec.of("disconnect") == [] for rec in recs)
        async with http.post(open_url + session, data="4after") as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with http.get(open_url + session) as response:
            assert await response.text() == "4after"
