"""The chat page of ``rtt serve --app chat`` in headless Chromium, on every transport (SPEC.md 16.2).

Each test runs the command in a subprocess as a user does, with the npm
install in ``tests/node`` as ``--node-modules`` (so no page needs the
network), opens the page it prints in two tabs, and has them talk to each
other and to a Python client of the same transport. The pages come from the
command's own page server, a different origin from the transport server's.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import new_context
from cli_support import NODE_MODULES, serving
from playwright.async_api import Browser, BrowserContext, Page
from redis_support import RedisServer
from tls_support import NAMES, certificate_authority, client_context

import rtt

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT_MS = 10000
"""Every wait in a page is bounded by this many milliseconds."""
STATE = "document.getElementById('status').dataset.state"
"""The page's connection state: connecting, open, reconnecting, closed or failed."""


@pytest.fixture(autouse=True)
def _browser_libraries() -> None:
    """The pages load the transport libraries from the npm install (Chromium is ``browser_support``'s)."""
    assert NODE_MODULES.is_dir(), f"no browser libraries: run npm ci in {NODE_MODULES.parent}"


async def say(page: Page, text: str) -> None:
    """Type ``text`` into the page's message box and press Send."""
    await page.fill("#text", text)
    await page.click("#send")


async def shown(page: Page, text: str) -> None:
    """Wait until the page lists a message with this text."""
    await page.wait_for_function(
        "(text) => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === text)",
        arg=text,
        timeout=WAIT_MS,
    )


async def lines(page: Page) -> list[list[str]]:
    """The page's message list: ``[class, name, text]`` per line."""
    result: list[list[str]] = await page.evaluate(
        """() => [...document.querySelectorAll('#messages li')].map((li) => [li.className,
            li.querySelector('.who')?.textContent ?? '', li.querySelector('.text').textContent])"""
    )
    return result


async def open_chat_pages(
    context: BrowserContext, url: str, count: int, console: list[tuple[str, str]]
) -> list[Page]:
    """``count`` pages of the chat at ``url``, each connected; their console records go to ``console``."""
    pages = []
    for _ in range(count):
        page = await context.new_page()
        page.on("console", lambda message: console.append((message.type, message.text)))
        page.on("pageerror", lambda error: console.append(("pageerror", str(error))))
        await page.goto(url)
        pages.append(page)
    for page in pages:
        await page.wait_for_function(f"{STATE} === 'open'", timeout=WAIT_MS)
    return pages


@pytest.mark.parametrize("name", ["ws", "picows", "engineio", "sockjs"])
async def test_two_pages_chat(browser: Browser, name: str) -> None:
    console: list[tuple[str, str]] = []
    async with new_context(browser) as context:
        async with serving(
            "--transport", name, "--app", "chat", "--port", "0", "--node-modules", str(NODE_MODULES)
        ) as served:
            assert served.page is not None
            pages = await open_chat_pages(context, served.page, 2, console)
            one, two = pages
            for page in pages:
                assert await page.title() == f"rtt chat on {name}"
            await one.fill("#name", "Ada")
            await two.fill("#name", "Grace")

            async with rtt.load(name).client(served.url) as python:
                await say(one, "hello from one")
                await shown(two, "hello from one")
                await say(two, "<b>not markup</b> from two")
                await shown(one, "<b>not markup</b> from two")
                # The Python client of the same transport is in the same room.
                heard = [json.loads(await asyncio.wait_for(python.recv(), 5)) for _ in range(2)]
                assert [(m["name"], m["text"]) for m in heard] == [
                    ("Ada", "hello from one"),
                    ("Grace", "<b>not markup</b> from two"),
                ]
                await python.send("plain text from Python")
                for page in pages:
                    await shown(page, "plain text from Python")

            # Both pages list the same conversation; each marks its own lines.
            assert await lines(one) == [
                ["mine", "Ada", "hello from one"],
                ["", "Grace", "<b>not markup</b> from two"],
                ["", "", "plain text from Python"],
            ]
            assert [line[1:] for line in await lines(two)] == [line[1:] for line in await lines(one)]
            assert (await lines(two))[1][0] == "mine"
            assert await one.locator("#messages b").count() == 0, "a message is text, never markup"
            assert [entry for entry in console if entry[0] in ("error", "warning", "pageerror")] == []
        # rtt serve has stopped (SIGTERM): the pages say so and try to come back.
        for page in pages:
            await page.wait_for_function(
                f"['closed', 'reconnecting', 'failed'].includes({STATE})",
                timeout=WAIT_MS,
            )


async def test_two_pages_chat_over_https(browser: Browser, tmp_path: Path) -> None:
    """``--certfile``/``--keyfile``: the page over https:// talks to the transport over wss://.

    The certificate is a throwaway CA's: only this test's browser context ignores certificate errors.
    """
    ca = certificate_authority()
    issued = ca.issue_cert(*NAMES)
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(certfile))
    issued.private_key_pem.write_to_path(str(keyfile))
    console: list[tuple[str, str]] = []
    async with (
        new_context(browser, ignore_https_errors=True) as context,
        serving(
            *("-t", "picows", "--app", "chat", "--port", "0"),
            *("--certfile", str(certfile), "--keyfile", str(keyfile)),
        ) as served,
    ):
        assert served.page is not None and served.page.startswith("https://")
        assert served.url.startswith("wss://")
        pages = await open_chat_pages(context, served.page, 2, console)
        for page in pages:
            assert await page.evaluate("location.protocol") == "https:"
        one, two = pages
        await say(one, "over wss")
        await shown(two, "over wss")
        async with rtt.load("picows").client(served.url, ssl=client_context(ca)) as python:
            await say(two, "to Python")
            assert json.loads(await asyncio.wait_for(python.recv(), 5))["text"] == "to Python"
    assert [entry for entry in console if entry[0] in ("error", "warning", "pageerror")] == []


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["ws", "picows", "engineio", "sockjs"])
async def test_two_pages_chat_on_four_workers(browser: Browser, name: str, redis_url: str) -> None:
    """The README's scale-out demo: one port, four worker processes, one chat (SPEC.md 13, 16.2).

    The kernel hands each connection to any worker, so the pages' connections
    (and, on Engine.IO, each long-poll and each post) are held by different
    processes; every message still reaches every page once.
    """
    console: list[tuple[str, str]] = []
    args = ("--transport", name, "--app", "chat", "--port", "0", "--node-modules", str(NODE_MODULES))
    async with (
        new_context(browser) as context,
        serving(*args, "--workers", "4", "--broker", redis_url) as served,
    ):
        assert served.page is not None
        pages = await open_chat_pages(context, served.page, 3, console)
        for k, page in enumerate(pages):
            await say(page, f"hello from page {k}")
        for page in pages:
            for k in range(len(pages)):
                await shown(page, f"hello from page {k}")
        await asyncio.sleep(0.5)  # room for a duplicate to show up
        for page in pages:
            texts = sorted(line[2] for line in await lines(page))
            assert texts == [f"hello from page {k}" for k in range(len(pages))]
        # An Engine.IO upgrade that lands on another worker is refused (the session stays on
        # long-polling, SPEC.md 13.8); Chromium logs that failed WebSocket. Nothing else may show.
        unexpected = [
            entry
            for entry in console
            if entry[0] in ("error", "warning", "pageerror")
            and not (name == "engineio" and "WebSocket" in entry[1] and "400" in entry[1])
        ]
        assert unexpected == []


async def test_a_library_that_fails_to_load_says_how_to_install_it_and_an_install_needs_no_restart(
    browser: Browser, tmp_path: Path
) -> None:
    """The page names the exact npm command; sending stays off until connected (SPEC.md 16.2).

    The CDN is blocked in the page, as it is offline or behind a strict proxy.
    Installing the library while ``rtt serve`` runs is picked up by a reload.
    """
    async with (
        new_context(browser) as context,
        serving("--transport", "sockjs", "--app", "chat", "--port", "0", cwd=tmp_path) as served,
    ):
        assert served.page is not None and served.process.stdout is not None
        page = await context.new_page()
        await page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
        await page.goto(served.page)
        await page.wait_for_function(f"{STATE} === 'failed'", timeout=WAIT_MS)
        said = await page.text_content("#status")
        assert said is not None
        assert "Run `npm install --no-save sockjs-client@1.6` where rtt serve runs" in said
        assert "then reload this page" in said
        assert await page.is_disabled("#send")

        # `npm install` in the directory rtt serve runs in, done here by copying the test's install.
        shutil.copytree(NODE_MODULES / "sockjs-client", tmp_path / "node_modules" / "sockjs-client")
        await page.reload()
        await page.wait_for_function(f"{STATE} === 'open'", timeout=WAIT_MS)
        assert await page.is_enabled("#send")
        await say(page, "installed while serving")
        await shown(page, "installed while serving")
        line = await asyncio.wait_for(served.process.stdout.readline(), 5)
        assert line.decode().startswith("rtt: now sockjs-client 1.6.") and "node_modules" in line.decode()
