"""Session binding across sites over HTTPS, in Chromium (SPEC.md 8.3, issue 12 section 3).

A page on ``https://localhost`` talks to rtt-engineio on ``https://127.0.0.1``
(another site) over long-polling with ``session_binding`` on. Over HTTPS the
binding cookie is ``SameSite=None; Secure; Partitioned``, which Chromium keeps
for a cross-site request with credentials, so every later poll carries it
and the session works; a request with the session id but without the cookie
is refused. TLS is the application's server's (aiohttp, or uvicorn for the
ASGI mount, with a throwaway CA), as for any mounted rtt server (SPEC.md
12.3); Chromium ignores certificate errors in this test's context only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme
import uvicorn
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
from tls_support import (
    NAMES,
    bound_socket,
    certificate_authority,
    client_context,
    https_app,
    server_context,
)

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


@asynccontextmanager
async def asgi_https(
    server: rtt_engineio.EngineioServer, ca: trustme.CA, sock: Any, tmp_path: Path
) -> AsyncIterator[None]:
    """Serve ``server.asgi_app()`` under uvicorn over TLS on ``sock``; the ASGI lifespan runs the server."""
    cert = ca.issue_cert(*NAMES)
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    config = uvicorn.Config(
        server.asgi_app(),
        lifespan="on",
        log_level="warning",
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
        timeout_graceful_shutdown=2,
    )
    uv = uvicorn.Server(config)
    serving = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        await eventually(lambda: uv.started or serving.done(), 10, "uvicorn to start")
        assert not serving.done(), "uvicorn did not start"
        yield
    finally:
        uv.should_exit = True
        await asyncio.wait_for(serving, 15)
        sock.close()


@asynccontextmanager
async def aiohttp_https(
    server: rtt_engineio.EngineioServer, ca: trustme.CA, sock: Any, tmp_path: Path
) -> AsyncIterator[None]:
    """Serve an aiohttp application with ``server`` attached over TLS on ``sock``."""
    app = web.Application()
    server.attach(app)
    async with https_app(app, server_context(ca), sock), server:
        yield


Mount = Callable[[rtt_engineio.EngineioServer, trustme.CA, Any, Path], AbstractAsyncContextManager[None]]


@pytest.mark.parametrize("mount", [aiohttp_https, asgi_https], ids=["aiohttp", "asgi"])
async def test_a_page_on_another_site_keeps_its_bound_session_over_https(
    https_pages: Pages, mount: Mount, tmp_path: Path
) -> None:
    ca = certificate_authority()
    sock, port = bound_socket()
    server = rtt.load("engineio").server(host="127.0.0.1", port=port, session_binding=True)
    assert isinstance(server, rtt_engineio.EngineioServer)
    received: list[str | bytes] = []

    @server.on("message")
    async def echo(socket: rtt.Socket, data: str | bytes) -> None:
        received.append(data)
        await server.send(socket.id, data)

    url = f"https://127.0.0.1:{port}/engine.io/"
    async with mount(server, ca, sock, tmp_path):
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
