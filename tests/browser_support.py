"""What the Chromium tests of every transport share: the browser, pages on a server's origin, the recorder.

A pytest plugin (``pytest_plugins`` in tests/conftest.py) with four fixtures:
``browser`` (one headless Chromium per test module), ``context`` (a fresh
context per test, the recorder installed), ``pages`` (a :class:`Pages`
opening pages in that context) and ``https_pages`` (the same in a context
that ignores certificate errors). A module that asks for ``pages`` defines
the fixture ``browser_client``: the :class:`BrowserClient` of its transport.
The ``check_*`` functions are behaviour every browser client must show.

Pages are fulfilled by Playwright (``page.route``) at the origin of the
server under test, so no other HTTP server is needed. A fulfilled page counts
as public to Chromium's local network access check, which would block its
requests to 127.0.0.1, so each context is granted that permission.

Every tox environment loads this module, with or without Playwright and with
one transport plugin at most: Playwright is imported when a browser starts,
and no transport plugin is imported here at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

import rtt
from rtt.testing import eventually

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Route

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium: Playwright cannot download a browser here."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FAST_RECONNECT = {"minDelay": 0.05, "maxDelay": 0.2, "factor": 2, "jitter": 0.5}
WAIT_MS = 8000
"""Every wait in a page is bounded by this many milliseconds."""
NODE_MODULES = Path(__file__).resolve().parent / "node" / "node_modules"
"""The npm install of the transport libraries' browser bundles (``npm ci --prefix tests/node``)."""

# Installed in every page before its own scripts: records a client's events as
# JSON-friendly lists, with bytes as {"bytes": [...]} and errors as {"error": name}.
RECORDER = """
window.plain = (value) =>
  value instanceof Uint8Array ? { bytes: Array.from(value) }
  : value instanceof Error ? { error: value.name, message: value.message }
  : value;
window.fromPlain = (value) =>
  value !== null && typeof value === "object" ? new Uint8Array(value.bytes) : value;
window.log = [];
window.record = (client) => {
  const events = ["open", "message", "close", "reconnecting", "reconnected", "reconnect_failed", "error"];
  for (const name of events) {
    client.on(name, (...args) => window.log.push([name, ...args.map(window.plain)]));
  }
  return client;
};
// Run fn and return the error it throws as {error, message}, or null.
window.thrown = (fn) => {
  try { fn(); return null; } catch (error) { return window.plain(error); }
};
"""

Message = str | bytes


def to_js(message: Message) -> Any:
    """A message as the page's ``fromPlain`` takes it."""
    return {"bytes": list(message)} if isinstance(message, bytes) else message


def from_js(value: Any) -> Message:
    """A message the page recorded with ``plain``."""
    if isinstance(value, dict):
        return bytes(value["bytes"])
    assert isinstance(value, str), value
    return value


def summary(log: list[list[Any]]) -> str:
    """The event names in order, with the close reason: "open close:shutdown reconnecting ..."."""
    return " ".join(f"close:{event[1]}" if event[0] == "close" else event[0] for event in log)


@asynccontextmanager
async def launch() -> AsyncIterator[Browser]:
    """Headless Debian Chromium, closed on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def new_context(browser: Browser, **options: Any) -> AsyncIterator[BrowserContext]:
    """A fresh context with the recorder installed, allowed to reach 127.0.0.1 from a fulfilled page.

    ``options`` go to Playwright's ``new_context`` (``ignore_https_errors=True`` for a test CA's servers).
    """
    context = await browser.new_context(**options)
    try:
        await context.grant_permissions(["local-network-access"])
        await context.add_init_script(RECORDER)
        yield context
    finally:
        await context.close()


def http_base(server: rtt.Server[Any]) -> str:
    """The server's origin, ``http://host:port``."""
    host, port = server.address
    return f"http://{host}:{port}"


# -- Pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrowserClient:
    """How a page loads one transport's browser client.

    The page loads, in order, the transport library's bundle (``library``, at
    ``/vendor/<its file name>``) if there is one, then ``/rtt/rtt-client.js`` and
    ``/rtt/rtt-<transport>.js``. The ``/rtt/`` files are the transport's
    ``browser_assets()``: handed out by the server under test itself, or with
    ``assets_from_disk`` read from the installed packages in the route handler.
    """

    transport: str
    """The transport's name, as the page passes it to ``rtt.client``."""
    exports: tuple[str, ...]
    """Named exports the module page imports from ``rtt-<transport>.mjs`` (besides the default)."""
    functions: tuple[str, ...] = ("rtt.client",)
    """What the classic page must define as functions once its scripts ran."""
    library: Path | None = None
    assets_from_disk: bool = False

    def files(self) -> dict[str, bytes]:
        """The files the route handler serves, by path on the page's origin."""
        files: dict[str, bytes] = {}
        if self.library is not None:
            assert self.library.is_file(), f"{self.library} is missing: run npm ci in {NODE_MODULES.parent}"
            files[f"/vendor/{self.library.name}"] = self.library.read_bytes()
        if self.assets_from_disk:
            for name, asset in rtt.load(self.transport).browser_assets().items():
                files[f"/rtt/{name}"] = asset.read_bytes()
        return files

    def library_tag(self) -> str:
        return "" if self.library is None else f'<script src="/vendor/{self.library.name}"></script>\n'


class Pages:
    """Opens pages of one browser client in one context and keeps every console message they print."""

    def __init__(self, context: BrowserContext, client: BrowserClient) -> None:
        self.context = context
        self.client = client
        self.console: list[tuple[str, str]] = []

    async def _open(self, base: str, html: str) -> Page:
        """A page at ``base``/page.html, with the client's files from disk where it has them."""
        page = await self.context.new_page()
        page.on("console", lambda message: self.console.append((message.type, message.text)))
        files = self.client.files()

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

    async def classic(self, where: rtt.Server[Any] | str) -> Page:
        """A page that loads the library and the client as classic scripts.

        ``where`` is the server whose origin the page is on, or a base URL (``http://host:port``).
        """
        base = where if isinstance(where, str) else http_base(where)
        html = (
            '<!doctype html><meta charset="utf-8"><title>classic</title>\n'
            + self.client.library_tag()
            + '<script src="/rtt/rtt-client.js"></script>\n'
            + f'<script src="/rtt/rtt-{self.client.transport}.js"></script>\n'
        )
        page = await self._open(base, html)
        names = list(self.client.functions)
        types = await page.evaluate(f"[{', '.join(f'typeof {name}' for name in names)}]")
        assert dict(zip(names, types, strict=True)) == dict.fromkeys(names, "function")
        return page

    async def module(self, where: rtt.Server[Any] | str) -> Page:
        """A page that loads the library, then imports ``rtt-<transport>.mjs`` by its full URL.

        The default export and the client's named exports end up in ``window.imported``.
        """
        base = where if isinstance(where, str) else http_base(where)
        entry = f"{base}/rtt/rtt-{self.client.transport}.mjs"
        names = ", ".join(self.client.exports)
        html = (
            '<!doctype html><meta charset="utf-8"><title>module</title>\n'
            + self.client.library_tag()
            + '<script type="module">\n'
            + f'import rtt, {{ {names} }} from "{entry}";\n'
            + f"window.imported = {{ rtt, {names} }};\n"
            + "</script>\n"
        )
        page = await self._open(base, html)
        await page.wait_for_function("window.imported !== undefined", timeout=WAIT_MS)
        return page

    async def connect(
        self, page: Page, url: str, options: dict[str, Any] | None = None, transport: str | None = None
    ) -> None:
        """Make ``window.client`` (of ``transport``, by default the page's), record its events, connect it."""
        await page.evaluate(
            """async ([transport, url, options]) => {
                window.client = record(rtt.client(transport, url, options));
                await client.connect();
            }""",
            [transport or self.client.transport, url, options or {}],
        )

    def rtt_errors(self) -> list[str]:
        """What rtt printed to the console itself (first lines; rtt's own start with "rtt:")."""
        return [text.splitlines()[0] for _, text in self.console if text.startswith("rtt:")]


async def wait_for_event(page: Page, name: str, count: int = 1) -> None:
    """Wait until the page's client has fired ``name`` at least ``count`` times."""
    await page.wait_for_function(
        "([name, count]) => log.filter((event) => event[0] === name).length >= count",
        arg=[name, count],
        timeout=WAIT_MS,
    )


async def messages(page: Page) -> list[Message]:
    """The messages the page's client received, in order."""
    return [from_js(event[1]) for event in await page.evaluate("log") if event[0] == "message"]


async def send_all_and_check(page: Page, received: list[Message], round_trip: list[Message]) -> None:
    """Send every message of ``round_trip`` from the page; the server and the page get them all back."""
    await page.evaluate(
        "(all) => all.forEach((message) => client.send(fromPlain(message)))",
        [to_js(message) for message in round_trip],
    )
    await wait_for_event(page, "message", len(round_trip))
    assert received == round_trip  # list equality also compares str vs bytes
    assert await messages(page) == round_trip


async def https_echo_page(https_pages: Pages, server: rtt.Server[Any]) -> tuple[Page, list[Message]]:
    """Make ``server`` echo and record what it receives; a page on its own ``https://`` origin.

    The server (started, with the ``ssl`` option) serves the client's assets;
    the page is not connected yet. Returns the page and the list of messages
    the server receives, in order.
    """
    received: list[Message] = []

    async def echo_back(socket: rtt.Socket, data: Message) -> None:
        received.append(data)
        await server.send(socket.id, data)

    server.on("message", echo_back)
    host, port = server.address
    return await https_pages.classic(f"https://{host}:{port}"), received


# -- Checks every browser client passes (SPEC.md 6.3) ------------------------------------

RETRY_4503 = {"reconnect": {**FAST_RECONNECT, "retryCodes": [4503]}}
"""Client options for :func:`check_retry_codes_reconnect`."""


async def check_application_close_is_final(page: Page, server: rtt.Server[Any]) -> None:
    """The page's one socket is closed with 4001 "logged in elsewhere" after a last message.

    The page (connected with ``FAST_RECONNECT``) reads the code and text, in
    its close handler too, receives the last message, and does not reconnect.
    """
    # What the page sees while its close handler runs, not only afterwards.
    await page.evaluate(
        "client.on('close', () => { window.atClose = [client.closeCode, client.closeText]; })"
    )
    await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
    socket_id = next(iter(server.sockets))
    await server.send(socket_id, "last words")
    await server.disconnect(socket_id, code=4001, reason="logged in elsewhere")
    await wait_for_event(page, "close")
    await asyncio.sleep(0.5)  # many reconnection delays of FAST_RECONNECT: none may start
    assert await page.evaluate(
        "[client.state, client.closeReason, client.closeCode, client.closeText, atClose]"
    ) == ["closed", "application", 4001, "logged in elsewhere", [4001, "logged in elsewhere"]]
    assert summary(await page.evaluate("log")) == "open message close:application"
    assert await messages(page) == ["last words"]
    assert not server.sockets


async def check_retry_codes_reconnect(
    page: Page, server: rtt.Server[Any], received: list[Message], final: tuple[int, str]
) -> None:
    """A page connected with :data:`RETRY_4503` comes back after 4503 and stays out after ``final``."""
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
    code, text = final  # not in retryCodes: final
    await server.disconnect(second, code=code, reason=text)
    await page.wait_for_function("client.state === 'closed'", timeout=WAIT_MS)
    assert await page.evaluate("[client.closeReason, client.closeCode, client.closeText]") == [
        "application",
        code,
        text,
    ]


# -- Fixtures ---------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole test module."""
    async with launch() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh context for each test, with the recorder installed."""
    async with new_context(browser) as context:
        yield context


@pytest.fixture
def pages(context: BrowserContext, browser_client: BrowserClient) -> Pages:
    """Pages of the module's ``browser_client`` in the test's context."""
    return Pages(context, browser_client)


@pytest_asyncio.fixture(loop_scope="module")
async def https_pages(browser: Browser, browser_client: BrowserClient) -> AsyncIterator[Pages]:
    """Pages in a context that ignores certificate errors, for servers with a test CA (tls_support)."""
    async with new_context(browser, ignore_https_errors=True) as context:
        yield Pages(context, browser_client)
