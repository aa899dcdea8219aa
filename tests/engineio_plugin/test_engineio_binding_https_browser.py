"""Session binding across sites over HTTPS, in Chromium (SPEC.md 8.3, issue 12 section 3).

A page on ``https://localhost`` talks to rtt-engineio on ``https://127.0.0.1``
(another site) over long-polling with ``session_binding`` on. Over HTTPS the
binding cookie is ``SameSite=None; Secure; Partitioned``, which Chromium keeps
for a cross-site request with credentials, so every later poll carries it
and the session works; a request with the session id but without the cookie
is refused. TLS is the application's server's (aiohttp with a throwaway CA),
as for any mounted rtt server (SPEC.md 12.3); Chromium ignores certificate
errors in this test's context only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from browser_support import (
    NODE_MODULES,
    BrowserClient,
    Pages,
    new_context,
    send_all_and_check,
    wait_for_event,
)
from playwright.async_api import Browser
from tls_support import bound_socket, certificate_authority, client_context, https_app, server_context

import rtt
import rtt_engineio
from rtt.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient(
        "engineio",
        exports=("client", "CloseReason", "engineio"),
        functions=("eio", "rtt.client", "rtt.engineio.register"),
        library=NODE_MODULES / "engine.io-client" / "dist" / "engine.io.js",
        assets_from_disk=True,
    )


@pytest_asyncio.fixture(loop_scope="module")
async def https_pages(browser: Browser, browser_client: BrowserClient) -> AsyncIterator[Pages]:
    async with new_context(browser, ignore_https_errors=True) as context:
        yield Pages(context, browser_client)


async def test_a_page_on_another_site_keeps_its_bound_session_over_https(https_pages: Pages) -> None:
    ca = certificate_authority()
    sock, port = bound_socket()
    server = rtt.load("engineio").server(host="127.0.0.1", port=port, session_binding=True)
    assert isinstance(server, rtt_engineio.EngineioServer)
    received: list[str | bytes] = []

    @server.on("message")
    async def echo(socket: rtt.Socket, data: str | bytes) -> None:
        received.append(data)
        await server.send(socket.id, data)

    app = web.Application()
    server.attach(app)
    url = f"https://127.0.0.1:{port}/engine.io/"
    async with https_app(app, server_context(ca), sock), server:
        page = await https_pages.classic(f"https://localhost:{port}")
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await https_pages.connect(page, url, transport="engineio-polling")
        await send_all_and_check(page, received, ["from another site", "over https", "poll after poll"])
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]

        # The binding is on: the page's session id alone, without the page's cookie, is refused.
        eio = server.engineio_server
        await eventually(lambda: len(eio.sockets) == 1, what="the page's session")
        (sid,) = eio.sockets
        connector = aiohttp.TCPConnector(ssl=client_context(ca))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(url, params={"EIO": "4", "transport": "polling", "sid": sid}) as answer,
        ):
            assert answer.status == 403
            assert "Session binding" in await answer.text()
        # The refused request ended nothing: the page's session goes on.
        await page.evaluate("client.send('still bound to the page')")
        await wait_for_event(page, "message", 4)
        assert received[-1] == "still bound to the page"
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
    assert https_pages.rtt_errors() == []
