"""The browser client (rtt-client.js + rtt-engineio.js over engine.io-client 6) in headless Chromium.

Pages are fulfilled by Playwright at the rtt-engineio server's own origin,
and so are the scripts they load: engine.io-client's UMD bundle from the npm
install in ``tests/node`` (``dist/engine.io.js``, which defines ``eio``) and
rtt-engineio's browser assets, read from the installed packages in the route
handler (``browser_support`` has the browser, the context and the pages).
One Chromium serves the whole module and each test gets a fresh context;
servers run in the test's event loop and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import re
from functools import partial
from typing import Any

import conftest
import pytest
from browser_support import (
    FAST_RECONNECT,
    NODE_MODULES,
    WAIT_MS,
    BrowserClient,
    Message,
    Pages,
    messages,
    send_all_and_check,
    summary,
    wait_for_event,
)

import rtt
import rtt_engineio
from rtt.testing import ROUND_TRIP as KIT_ROUND_TRIP
from rtt.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The kit's round trip set (text that looks like Engine.IO framing or JSON, NUL, line
# separators, empty and all 256 byte values) and a text that starts with "b", which a
# long-polling payload must not take for base64 binary.
ROUND_TRIP: list[Message] = [*KIT_ROUND_TRIP, "bAAAA", "ünïcødé ✓ 🚀"]

echo_server = partial(conftest.echo_server, "engineio")
"""An engineio server that records and echoes every message (``conftest.echo_server``)."""


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient(
        "engineio",
        exports=("client", "CloseReason", "engineio"),
        functions=("eio", "rtt.client", "rtt.engineio.register"),
        library=NODE_MODULES / "engine.io-client" / "dist" / "engine.io.js",
        assets_from_disk=True,
    )


def transport_names(server: rtt.Server[Any]) -> set[str]:
    """The Engine.IO transport each socket of ``server`` uses now ("polling" or "websocket")."""
    assert isinstance(server, rtt_engineio.EngineioServer)
    eio = server.engineio_server
    return {"websocket" if eio.sockets[sid].upgraded else "polling" for sid in eio.sockets}


# -- Tests ----------------------------------------------------------------------------


async def test_echoes_text_and_binary(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
        assert await page.evaluate("log") == [["open"]]
        await send_all_and_check(page, received, ROUND_TRIP)
        # Received binary is always a Uint8Array.
        binary = sum(isinstance(message, bytes) for message in ROUND_TRIP)
        assert await page.evaluate("log.filter((e) => e[0] === 'message' && e[1].bytes).length") == binary

        await page.evaluate("client.close()")
        await eventually(lambda: not server.sockets, what="the page's socket to close")
        assert summary(await page.evaluate("log")).endswith("close:client closed")
    assert pages.rtt_errors() == []


async def test_es_module_entry(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.module(server)
        exports = await page.evaluate(
            """() => {
                const { rtt, client, CloseReason, engineio } = window.imported;
                return [rtt === globalThis.rtt, client === rtt.client, CloseReason.SHUTDOWN,
                        engineio === rtt.engineio];
            }"""
        )
        assert exports == [True, True, "shutdown", True]
        await page.evaluate(
            """async (url) => {
                window.client = record(window.imported.client("engineio", url));
                await client.connect();
                client.send("from a module");
            }""",
            server.url,
        )
        await wait_for_event(page, "message")
        assert received == ["from a module"]
        assert await messages(page) == ["from a module"]


async def test_websocket_upgrade_then_echo(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        await eventually(lambda: transport_names(server) == {"websocket"}, what="the upgrade to WebSocket")
        await send_all_and_check(page, received, ROUND_TRIP)


async def test_polling_only(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await pages.connect(page, server.url, transport="engineio-polling")
        await send_all_and_check(page, received, ROUND_TRIP)
        assert transport_names(server) == {"polling"}
        await page.evaluate("client.close()")
        await eventually(lambda: not server.sockets, what="the page's socket to close")
    assert pages.rtt_errors() == []


async def test_polling_only_server(pages: Pages) -> None:
    """A server that allows long-polling only: the default client never tries WebSocket."""
    async with echo_server(transports=("polling",)) as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        await send_all_and_check(page, received, ROUND_TRIP)
        assert transport_names(server) == {"polling"}


async def test_broadcast_reaches_the_other_page(pages: Pages) -> None:
    async with rtt.load("engineio").server(host="127.0.0.1", port=0) as server:

        @server.on("message")
        async def relay(socket: rtt.Socket, data: Message) -> None:
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


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_server_closed_is_final_and_comes_after_the_last_message(
    pages: Pages, transports: list[str]
) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
        await eventually(lambda: len(server.sockets) == 1, what="the page connected")
        socket_id = next(iter(server.sockets))
        await server.send(socket_id, "last words")
        await server.disconnect(socket_id)
        await wait_for_event(page, "close")
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "server closed"]
        assert summary(await page.evaluate("log")) == "open message close:server closed"
        assert await messages(page) == ["last words"]


@pytest.mark.parametrize("transports", [["polling", "websocket"], ["polling"], ["websocket"]])
async def test_server_restart_reconnects_and_flushes_the_offline_queue(
    pages: Pages, transports: list[str]
) -> None:
    async with echo_server() as (first, _):
        port = first.address[1]
        page = await pages.classic(first)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await pages.connect(page, first.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
        await eventually(lambda: len(first.sockets) == 1, what="the page connected")
        if "websocket" in transports:  # the CLOSE arrives over WebSocket (after the upgrade if any)
            await eventually(lambda: transport_names(first) == {"websocket"}, what="WebSocket in use")
        # Leaving the block shuts the server down: the page sees "shutdown" and reconnects.
    await wait_for_event(page, "reconnecting")
    await page.evaluate(
        """() => {
            if (client.state !== "reconnecting") throw new Error(client.state);
            client.send("queued 1");
            client.send(new Uint8Array([1, 2]));
            client.send("queued 2");
        }"""
    )
    assert await page.evaluate("client.unsent.map(plain)") == ["queued 1", {"bytes": [1, 2]}, "queued 2"]

    await wait_for_event(page, "error")  # at least one attempt failed while the port was closed
    async with echo_server(port=port) as (second, received):
        await wait_for_event(page, "reconnected")
        # Sent after `reconnected`: must come after the whole queue.
        await page.evaluate("client.send('after')")
        await wait_for_event(page, "message", 4)
        assert received == ["queued 1", b"\x01\x02", "queued 2", "after"]
        assert await page.evaluate("[client.state, client.unsent.length]") == ["open", 0]

        log = await page.evaluate("log")
        expected = r"open close:shutdown (reconnecting error )+reconnecting open reconnected( message)*"
        assert re.fullmatch(expected, summary(log)), summary(log)
        attempts = [event for event in log if event[0] == "reconnecting"]
        assert [event[1] for event in attempts] == list(range(1, len(attempts) + 1))
        assert ["reconnected", len(attempts)] in log
        assert {event[1]["error"] for event in log if event[0] == "error"} == {"ConnectError"}
        assert await messages(page) == ["queued 1", b"\x01\x02", "queued 2", "after"]
        await page.evaluate("client.close()")
        await eventually(lambda: not second.sockets, what="the page's socket to close")
    assert pages.rtt_errors() == []


# -- Session binding (SPEC.md 8.3) ------------------------------------------------------


async def test_session_binding_on_the_same_site_over_polling(pages: Pages) -> None:
    """With ``session_binding`` a page of the server's own site keeps its long-polling session."""
    async with echo_server(session_binding=True) as (server, received):
        page = await pages.classic(server)
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await pages.connect(page, server.url, transport="engineio-polling")
        await send_all_and_check(page, received, ["after the handshake", "and more polls"])
        assert transport_names(server) == {"polling"}
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]


@pytest.mark.parametrize("binding", [False, True], ids=["binding-off", "binding-on"])
async def test_page_on_another_site_over_plain_http(pages: Pages, binding: bool) -> None:
    """A page on ``localhost`` talking to the server on ``127.0.0.1`` (another site), long-polling.

    Without binding it works (no cookie is needed). With binding over plain
    HTTP the browser keeps no cookie from a cross-site answer (``SameSite=Lax``;
    ``SameSite=None`` needs HTTPS), so the first poll is refused: the page reads
    ``rejected`` and does not retry, rather than looping on ``transport error``.
    """
    async with echo_server(session_binding=binding) as (server, received):
        _, port = server.address
        page = await pages.classic(f"http://localhost:{port}")
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport="engineio-polling")
        if not binding:
            await send_all_and_check(page, received, ["from another site"])
            return
        await wait_for_event(page, "close")
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "rejected"]
        assert summary(await page.evaluate("log")) == "open close:rejected"


# -- Application close codes (SPEC.md 6.3) ------------------------------------------------


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_application_close_reaches_the_page_and_is_final(pages: Pages, transports: list[str]) -> None:
    """The code and text travel as the CLOSE packet's data (``"4001 logged in elsewhere"``)."""
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
        # What the page sees while its close handler runs, not only afterwards.
        await page.evaluate(
            "client.on('close', () => { window.atClose = [client.closeCode, client.closeText]; })"
        )
        await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
        assert transport_names(server) == set(transports)
        socket_id = next(iter(server.sockets))
        await server.send(socket_id, "last words")
        await server.disconnect(socket_id, code=4001, reason="logged in elsewhere")
        await wait_for_event(page, "close")
        await asyncio.sleep(0.3)  # longer than a reconnect delay: nothing else may happen
        assert await page.evaluate(
            "[client.state, client.closeReason, client.closeCode, client.closeText, atClose]"
        ) == ["closed", "application", 4001, "logged in elsewhere", [4001, "logged in elsewhere"]]
        assert summary(await page.evaluate("log")) == "open message close:application"
        assert await messages(page) == ["last words"]
        assert not server.sockets
    assert pages.rtt_errors() == []


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_application_close_in_retry_codes_reconnects(pages: Pages, transports: list[str]) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        options = {"reconnect": {**FAST_RECONNECT, "retryCodes": [4503]}}
        await pages.connect(page, server.url, options, transport="eio-test")
        await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
        first = next(iter(server.sockets))
        await server.disconnect(first, code=4503, reason="come back later")
        await wait_for_event(page, "reconnected")
        assert await page.evaluate("[client.state, client.closeCode, client.closeText]") == [
            "open",
            4503,
            "come back later",
        ]
        assert summary(await page.evaluate("log")) == "open close:application reconnecting open reconnected"
        await eventually(lambda: len(server.sockets) == 1, what="the reconnected socket")
        (second,) = server.sockets
        assert second != first
        await page.evaluate("client.send('back')")
        await eventually(lambda: received == ["back"], what="a message over the new connection")
        # A code not in retryCodes is final.
        await server.disconnect(second, code=4001, reason="not this one")
        await page.wait_for_function("client.state === 'closed'", timeout=WAIT_MS)
        assert await page.evaluate("[client.closeReason, client.closeCode, client.closeText]") == [
            "application",
            4001,
            "not this one",
        ]
