"""The browser client (rtt-client.js + rtt-engineio.js over engine.io-client 6) in headless Chromium.

Pages are fulfilled by Playwright (``page.route``) at the rtt-engineio
server's own origin, and so are the scripts they load: engine.io-client's UMD
bundle from the npm install in ``tests/node`` (``dist/engine.io.js``, which
defines ``eio``), ``rtt-client.js`` from rtt-core (``rtt.assets.core_script()``)
and ``rtt-engineio.js`` from the rtt-engineio package, each read from disk in
the route handler. A fulfilled page counts as public to Chromium's local
network access check, which would block its requests to 127.0.0.1, so each
context is granted that permission. One Chromium serves the whole module and
each test gets a fresh context; servers run in the test's event loop and
listen on 127.0.0.1 only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browser_support import FAST_RECONNECT, Message, from_js, launch, new_context, summary, to_js
from playwright.async_api import Browser, BrowserContext, Page, Route

import rtt
import rtt.assets
import rtt_engineio
from rtt.testing import ROUND_TRIP as KIT_ROUND_TRIP
from rtt.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT_MS = 8000
"""Every wait in the page is bounded by this many milliseconds."""

REPO = Path(__file__).resolve().parents[2]
ENGINEIO_CLIENT = REPO / "tests" / "node" / "node_modules" / "engine.io-client"
ENGINEIO_BUNDLE = ENGINEIO_CLIENT / "dist" / "engine.io.js"
ADAPTER = Path(rtt_engineio.__file__).parent / "browser" / "rtt-engineio.js"
MODULE_ENTRY = ADAPTER.with_name("rtt-engineio.mjs")

# The kit's round trip set (text that looks like Engine.IO framing or JSON, NUL, line
# separators, empty and all 256 byte values) and a text that starts with "b", which a
# long-polling payload must not take for base64 binary.
ROUND_TRIP: list[Message] = [*KIT_ROUND_TRIP, "bAAAA", "ünïcødé ✓ 🚀"]


# -- Fixtures and helpers -----------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert ENGINEIO_BUNDLE.is_file(), (
        f"engine.io-client is not installed: run npm ci in {REPO / 'tests' / 'node'}"
    )
    async with launch() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    async with new_context(browser) as context:
        yield context


class Pages:
    """Opens pages in one context and keeps every console message they print."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.console: list[tuple[str, str]] = []

    async def _open(self, base: str, html: str) -> Page:
        """A page at ``base``/page.html; the scripts under /vendor/ and /rtt/ come from disk."""
        page = await self.context.new_page()
        page.on("console", lambda message: self.console.append((message.type, message.text)))
        files = {
            "/vendor/engine.io.js": ENGINEIO_BUNDLE.read_bytes(),
            "/rtt/rtt-client.js": rtt.assets.core_script().read_bytes(),
            "/rtt/rtt-engineio.js": ADAPTER.read_bytes(),
            "/rtt/rtt-engineio.mjs": MODULE_ENTRY.read_bytes(),
        }

        async def page_html(route: Route) -> None:
            await route.fulfill(content_type="text/html; charset=utf-8", body=html)

        async def script(route: Route) -> None:
            path = "/" + route.request.url.split("/", 3)[3]
            await route.fulfill(content_type="text/javascript; charset=utf-8", body=files[path])

        await page.route(f"{base}/page.html", page_html)
        for path in files:
            await page.route(f"{base}{path}", script)
        await page.goto(f"{base}/page.html")
        return page

    async def classic(self, base: str) -> Page:
        """A page that loads engine.io-client, rtt-client.js and rtt-engineio.js as classic scripts."""
        html = (
            '<!doctype html><meta charset="utf-8"><title>classic</title>\n'
            '<script src="/vendor/engine.io.js"></script>\n'
            '<script src="/rtt/rtt-client.js"></script>\n'
            '<script src="/rtt/rtt-engineio.js"></script>\n'
        )
        page = await self._open(base, html)
        types = await page.evaluate("[typeof eio, typeof rtt.client, typeof rtt.engineio.register]")
        assert types == ["function", "function", "function"]
        return page

    async def module(self, base: str) -> Page:
        """A page that loads engine.io-client's bundle, then imports rtt-engineio.mjs."""
        entry = f"{base}/rtt/rtt-engineio.mjs"
        html = (
            '<!doctype html><meta charset="utf-8"><title>module</title>\n'
            '<script src="/vendor/engine.io.js"></script>\n'
            '<script type="module">\n'
            f'import rtt, {{ client, CloseReason, engineio }} from "{entry}";\n'
            "window.imported = { rtt, client, CloseReason, engineio };\n"
            "</script>\n"
        )
        page = await self._open(base, html)
        await page.wait_for_function("window.imported !== undefined", timeout=WAIT_MS)
        return page

    def rtt_errors(self) -> list[str]:
        """What rtt printed to the console itself (first lines; rtt's own start with "rtt:")."""
        return [text.splitlines()[0] for _, text in self.console if text.startswith("rtt:")]


@pytest.fixture
def pages(context: BrowserContext) -> Pages:
    return Pages(context)


def http_base(server: rtt.Server[Any]) -> str:
    host, port = server.address
    return f"http://{host}:{port}"


@asynccontextmanager
async def echo_server(port: int = 0, **options: Any) -> AsyncIterator[tuple[rtt.Server[Any], list[Message]]]:
    """An engineio server that records and echoes every message."""
    received: list[Message] = []
    async with rtt.load("engineio").server(host="127.0.0.1", port=port, **options) as server:

        @server.on("message")
        async def echo(socket: rtt.Socket, data: Message) -> None:
            received.append(data)
            await server.send(socket.id, data)

        yield server, received


async def connect(
    page: Page, url: str, options: dict[str, Any] | None = None, transport: str = "engineio"
) -> None:
    """Make `window.client`, record its events and connect it."""
    await page.evaluate(
        """async ([transport, url, options]) => {
            window.client = record(rtt.client(transport, url, options));
            await client.connect();
        }""",
        [transport, url, options or {}],
    )


async def wait_for_event(page: Page, name: str, count: int = 1) -> None:
    await page.wait_for_function(
        "([name, count]) => log.filter((event) => event[0] === name).length >= count",
        arg=[name, count],
        timeout=WAIT_MS,
    )


async def messages(page: Page) -> list[Message]:
    return [from_js(event[1]) for event in await page.evaluate("log") if event[0] == "message"]


def transport_names(server: rtt.Server[Any]) -> set[str]:
    """The Engine.IO transport each socket of ``server`` uses now ("polling" or "websocket")."""
    assert isinstance(server, rtt_engineio.EngineioServer)
    eio = server.engineio_server
    return {"websocket" if eio.sockets[sid].upgraded else "polling" for sid in eio.sockets}


# -- Tests ----------------------------------------------------------------------------


async def send_all_and_check(page: Page, received: list[Message]) -> None:
    await page.evaluate(
        "(all) => all.forEach((message) => client.send(fromPlain(message)))",
        [to_js(message) for message in ROUND_TRIP],
    )
    await wait_for_event(page, "message", len(ROUND_TRIP))
    assert received == ROUND_TRIP  # list equality also compares str vs bytes
    assert await messages(page) == ROUND_TRIP


async def test_echoes_text_and_binary(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(http_base(server))
        await connect(page, server.url)
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
        assert await page.evaluate("log") == [["open"]]
        await send_all_and_check(page, received)
        # Received binary is always a Uint8Array.
        binary = sum(isinstance(message, bytes) for message in ROUND_TRIP)
        assert await page.evaluate("log.filter((e) => e[0] === 'message' && e[1].bytes).length") == binary

        await page.evaluate("client.close()")
        await eventually(lambda: not server.sockets, what="the page's socket to close")
        assert summary(await page.evaluate("log")).endswith("close:client closed")
    assert pages.rtt_errors() == []


async def test_es_module_entry(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.module(http_base(server))
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
        page = await pages.classic(http_base(server))
        await connect(page, server.url)
        await eventually(lambda: transport_names(server) == {"websocket"}, what="the upgrade to WebSocket")
        await send_all_and_check(page, received)


async def test_polling_only(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(http_base(server))
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await connect(page, server.url, transport="engineio-polling")
        await send_all_and_check(page, received)
        assert transport_names(server) == {"polling"}
        await page.evaluate("client.close()")
        await eventually(lambda: not server.sockets, what="the page's socket to close")
    assert pages.rtt_errors() == []


async def test_polling_only_server(pages: Pages) -> None:
    """A server that allows long-polling only: the default client never tries WebSocket."""
    async with echo_server(transports=("polling",)) as (server, received):
        page = await pages.classic(http_base(server))
        await connect(page, server.url)
        await send_all_and_check(page, received)
        assert transport_names(server) == {"polling"}


async def test_broadcast_reaches_the_other_page(pages: Pages) -> None:
    async with rtt.load("engineio").server(host="127.0.0.1", port=0) as server:

        @server.on("message")
        async def relay(socket: rtt.Socket, data: Message) -> None:
            await server.broadcast(data, exclude=socket.id)

        base = http_base(server)
        sender = await pages.classic(base)
        listener = await pages.classic(base)
        await connect(sender, server.url)
        await connect(listener, server.url)
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
        page = await pages.classic(http_base(server))
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
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
        page = await pages.classic(http_base(first))
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await connect(page, first.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
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
