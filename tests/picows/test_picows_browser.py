"""The browser client (rtt-client.js + rtt-picows.js) in real headless Chromium against rtt-picows.

The same pages as tests/ws/test_ws_browser.py (``browser_support``): the page
loads the client files the picows server hands out under ``/rtt/`` and talks
to it over the browser's own WebSocket (SPEC.md 4, 5, 6.3, 7.2).
"""

from __future__ import annotations

import asyncio
from functools import partial

import conftest
import pytest
from browser_support import (
    FAST_RECONNECT,
    RETRY_4503,
    BrowserClient,
    Pages,
    check_application_close_is_final,
    check_retry_codes_reconnect,
    messages,
    send_all_and_check,
    summary,
    wait_for_event,
)

import rtt
from rtt.testing import ROUND_TRIP, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

echo_server = partial(conftest.echo_server, "picows")
"""A picows server that records and echoes every message (``conftest.echo_server``)."""


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient("picows", exports=("client", "Client", "CloseReason", "StateError"))


async def test_classic_script_echoes_text_and_binary(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        await send_all_and_check(page, received, list(ROUND_TRIP))
    assert pages.rtt_errors() == []


async def test_es_module_entry_exports_the_client(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.module(server)
        await page.evaluate(
            """async (url) => {
                window.client = record(window.imported.client("picows", url));
                await client.connect();
                client.send("from a module");
                client.send(new Uint8Array([0, 255]));
            }""",
            server.url,
        )
        await wait_for_event(page, "message", 2)
        assert received == ["from a module", b"\x00\xff"]
        assert await messages(page) == ["from a module", b"\x00\xff"]


async def test_broadcast_reaches_the_other_page(pages: Pages) -> None:
    async with rtt.load("picows").server() as server:

        @server.on("message")
        async def relay(socket: rtt.Socket, data: str | bytes) -> None:
            await server.broadcast(data, exclude=socket.id)

        sender = await pages.classic(server)
        listener = await pages.classic(server)
        await pages.connect(sender, server.url)
        await pages.connect(listener, server.url)
        await eventually(lambda: len(server.sockets) == 2, what="both pages connected")
        await sender.evaluate("() => { client.send('to everyone'); client.send(new Uint8Array([1, 2, 3])); }")
        await wait_for_event(listener, "message", 2)
        assert await messages(listener) == ["to everyone", b"\x01\x02\x03"]
        assert await messages(sender) == []


async def test_shutdown_reconnects_and_server_closed_is_final(pages: Pages) -> None:
    async with echo_server() as (first, _):
        port = first.address[1]
        page = await pages.classic(first)
        await pages.connect(page, first.url, {"reconnect": FAST_RECONNECT})
    await wait_for_event(page, "reconnecting")
    async with echo_server(port=port) as (second, received):
        await wait_for_event(page, "reconnected")
        await page.evaluate("client.send('after')")
        await eventually(lambda: received == ["after"], what="a message over the new connection")
        assert summary(await page.evaluate("log")).startswith("open close:shutdown reconnecting")
        await second.disconnect(next(iter(second.sockets)))
        await wait_for_event(page, "close", 2)
        await asyncio.sleep(0.3)  # longer than a reconnect delay: nothing else may happen
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "server closed"]


async def test_application_close_reaches_the_page_and_is_final(pages: Pages) -> None:  # SPEC 6.3
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT})
        await check_application_close_is_final(page, server)


async def test_application_close_in_retry_codes_reconnects(pages: Pages) -> None:  # SPEC 6.3, 7
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url, RETRY_4503)
        await check_retry_codes_reconnect(page, server, received, (4001, "not this one"))


async def test_message_size_limits_in_both_directions(pages: Pages) -> None:
    reasons: list[rtt.CloseReason] = []
    async with echo_server() as (server, received):
        server.on("disconnect", lambda socket, reason: reasons.append(reason))
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"maxMessageSize": 1000, "reconnect": FAST_RECONNECT})
        await page.evaluate("() => { client.send('x'.repeat(1000)); client.send(new Uint8Array(1000)); }")
        await eventually(lambda: len(received) == 2, what="the two messages at the limit")
        await wait_for_event(page, "message", 2)
        # A message over the page's own limit is not delivered and drops the connection; the
        # browser cannot send close code 1009, and rtt's reason text still tells the server why.
        await server.send(next(iter(server.sockets)), "y" * 1000 + "é")
        await wait_for_event(page, "reconnected")
        log = await page.evaluate("log")
        assert summary(log) == "open message message close:message too big reconnecting open reconnected"
        assert reasons == [rtt.CloseReason.MESSAGE_TOO_BIG]
    async with echo_server(max_message_size=1000) as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"maxMessageSize": 2000, "reconnect": FAST_RECONNECT})
        # Over the server's limit: picows closes with 1009, which the page reads as the reason.
        await page.evaluate("client.send('z'.repeat(1001))")
        await wait_for_event(page, "reconnected")
        assert (
            summary(await page.evaluate("log")) == "open close:message too big reconnecting open reconnected"
        )
        assert received == []
