"""Session binding across sites over HTTPS, in Chromium (SPEC.md 8.3, issue 12 section 3).

A page on ``https://localhost`` talks to rtt-sockjs on ``https://127.0.0.1``
(another site) over xhr-polling and xhr-streaming with ``session_binding``
on. Over HTTPS the binding cookie is ``SameSite=None; Secure; Partitioned``,
which Chromium keeps for a cross-site request with credentials, so every
later request of the session carries it and the session works; a request
with the session id but without the cookie is refused. TLS is the
application's server's (aiohttp with a throwaway CA), as for any mounted rtt
server (SPEC.md 12.4); Chromium ignores certificate errors in this test's
context only.
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
from playwright.async_api import Browser, Page
from tls_support import bound_socket, certificate_authority, client_context, https_app, server_context

import rtt
import rtt_sockjs
from rtt.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient(
        "sockjs",
        exports=("client", "CloseReason", "sockjs"),
        functions=("SockJS", "rtt.client", "rtt.sockjs.register"),
        library=NODE_MODULES / "sockjs-client" / "dist" / "sockjs.js",
        assets_from_disk=True,
    )


@pytest_asyncio.fixture(loop_scope="module")
async def https_pages(browser: Browser, browser_client: BrowserClient) -> AsyncIterator[Pages]:
    async with new_context(browser, ignore_https_errors=True) as context:
        yield Pages(context, browser_client)


async def use_transport(page: Page, transport: str) -> str:
    name = f"sockjs-{transport}"
    await page.evaluate(
        "([name, transport]) => rtt.sockjs.register(name, { transports: [transport] })", [name, transport]
    )
    return name


@pytest.mark.parametrize("transport", ["xhr-polling", "xhr-streaming"])
async def test_a_page_on_another_site_keeps_its_bound_session_over_https(
    https_pages: Pages, transport: str
) -> None:
    ca = certificate_authority()
    sock, port = bound_socket()
    server = rtt.load("sockjs").server(host="127.0.0.1", port=port, session_binding=True)
    assert isinstance(server, rtt_sockjs.SockjsServer)
    received: list[str | bytes] = []

    @server.on("message")
    async def echo(socket: rtt.Socket, data: str | bytes) -> None:
        received.append(data)
        await server.send(socket.id, data)

    app = web.Application()
    server.attach(app)
    url = f"https://127.0.0.1:{port}/sockjs"
    async with https_app(app, server_context(ca), sock), server:
        page = await https_pages.classic(f"https://localhost:{port}")
        variant = await use_transport(page, transport)
        await https_pages.connect(page, url, transport=variant)
        await send_all_and_check(page, received, ["from another site", "over https", "request after request"])
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
        await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
        (socket_id,) = server.sockets
        conn = server._conns[socket_id]
        assert conn.transport_name == transport

        # The binding is on: the page's session id alone, without the page's cookie, is refused.
        connector = aiohttp.TCPConnector(ssl=client_context(ca))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.post(f"{url}/000/{conn.session.id}/xhr_send", data='["as the page"]') as answer,
        ):
            assert answer.status == 403
        # The refused request ended nothing: the page's session goes on.
        await page.evaluate("client.send('still bound to the page')")
        await wait_for_event(page, "message", 4)
        assert received[-1] == "still bound to the page"
        assert "as the page" not in received
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
    assert https_pages.rtt_errors() == []
