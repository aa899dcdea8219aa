"""Chromium and Node's ``ws`` client against rtt-ws mounted in an application (SPEC.md 12.2, 6.3).

Both mounted modes, each on a free loopback port: attached to an aiohttp
application (``server.attach(app)``, the rtt server run by the application's
``cleanup_ctx``) and served as an ASGI application under uvicorn
(``server.asgi_app()``, run by the ASGI lifespan). Pages are fulfilled at the
application's origin and load rtt's browser client from the mounted server's
own ``/rtt/`` assets (``browser_support``); one Chromium serves the module.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from browser_support import (
    FAST_RECONNECT,
    RETRY_4503,
    BrowserClient,
    Message,
    Pages,
    check_application_close_is_final,
    check_retry_codes_reconnect,
    messages,
    send_all_and_check,
    summary,
    wait_for_event,
)
from mount_support import listen, serve_aiohttp, serve_asgi
from node_support import check_node_ws_echo, check_node_ws_sees_the_application_close

import rtt
from rtt.testing import ROUND_TRIP, eventually
from rtt_ws import WsServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODES = ["aiohttp", "asgi"]


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient("ws", exports=("client", "Client", "CloseReason", "StateError"))


@asynccontextmanager
async def mounted_echo(mode: str, port: int = 0) -> AsyncIterator[tuple[rtt.Server[Any], list[Message]]]:
    """A ws server at ``/ws`` of an application served on ``port`` (0: a free one), echoing what it gets.

    ``mode`` is ``"aiohttp"`` (attached to an aiohttp application) or ``"asgi"``
    (its ASGI application under uvicorn). Yields the running server and the
    messages it received, in order; the application stops on exit.
    """
    sock = listen(port=port)
    server = rtt.load("ws").server(host="127.0.0.1", port=sock.getsockname()[1])
    assert isinstance(server, WsServer)
    received: list[Message] = []

    @server.on("message")
    async def echo(socket: rtt.Socket, data: Message) -> None:
        received.append(data)
        await server.send(socket.id, data)

    host: AbstractAsyncContextManager[int]
    if mode == "aiohttp":
        app = web.Application()
        server.attach(app)

        async def realtime(app: web.Application) -> AsyncIterator[None]:
            async with server:
                yield

        app.cleanup_ctx.append(realtime)  # attach closes the server in on_shutdown, before the cleanup
        host = serve_aiohttp(app, sock=sock)
    else:
        host = serve_asgi(server.asgi_app(), sock=sock)
    async with host:
        assert server.url == f"ws://127.0.0.1:{sock.getsockname()[1]}/ws"
        yield server, received


# -- Chromium ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_page_loads_the_client_from_the_mounted_server_and_echoes(pages: Pages, mode: str) -> None:
    async with mounted_echo(mode) as (server, received):
        page = await pages.classic(server)  # /rtt/rtt-client.js and /rtt/rtt-ws.js from the application
        await pages.connect(page, server.url)
        assert await page.evaluate("[client.state, log]") == ["open", [["open"]]]
        await send_all_and_check(page, received, list(ROUND_TRIP))
    assert pages.rtt_errors() == []


@pytest.mark.parametrize("mode", MODES)
async def test_application_close_reaches_the_page(pages: Pages, mode: str) -> None:  # SPEC 6.3
    async with mounted_echo(mode) as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT})
        await check_application_close_is_final(page, server)
        # A code in retryCodes brings a second page back, over the mounted endpoint again.
        again = await pages.classic(server)
        await pages.connect(again, server.url, RETRY_4503)
        await check_retry_codes_reconnect(again, server, received, (4001, "not this one"))
    assert pages.rtt_errors() == []


@pytest.mark.parametrize("mode", MODES)
async def test_application_restart_reconnects_the_page(pages: Pages, mode: str) -> None:  # SPEC 4.2
    async with mounted_echo(mode) as (first, _):
        port = first.address[1]
        page = await pages.classic(first)
        await pages.connect(page, first.url, {"reconnect": FAST_RECONNECT})
        # Leaving the block stops the application: the page sees "shutdown" and reconnects.
    await wait_for_event(page, "reconnecting")
    await page.evaluate("client.send('queued')")
    async with mounted_echo(mode, port=port) as (second, received):
        await wait_for_event(page, "reconnected")
        await wait_for_event(page, "message")
        assert received == ["queued"]
        assert await messages(page) == ["queued"]
        log = summary(await page.evaluate("log"))
        assert re.fullmatch(r"open close:shutdown (reconnecting (error )?)+open reconnected message", log), (
            log
        )
        await page.evaluate("client.close()")
        await eventually(lambda: not second.sockets, what="the page's socket to close")
    assert pages.rtt_errors() == []


# -- Node's ws client -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_node_ws_client_echo(mode: str) -> None:
    async with mounted_echo(mode) as (server, _):
        await check_node_ws_echo(server)


@pytest.mark.parametrize("mode", MODES)
async def test_node_ws_client_sees_the_application_close(mode: str) -> None:  # SPEC 6.3
    async with mounted_echo(mode) as (server, _):
        await check_node_ws_sees_the_application_close(server)
