"""rtt-engineio over TLS beyond the kit (SPEC.md 8.4, 12.3): mounted servers refuse ``ssl``,
the official engine.io-client in Node and the browser client in Chromium over HTTPS.

The kit's TLS cases already run the Python client over each Engine.IO
transport (``test_engineio_conformance``: WebSocket, long-polling, upgrade).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from browser_support import NODE_MODULES, BrowserClient, Pages, https_echo_page, send_all_and_check
from tls_support import certificate_authority, node_env, run_node, server_context

import rtt
import rtt_engineio
from rtt.testing import Recorder, echo, eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient(
        "engineio",
        exports=("client",),
        functions=("eio", "rtt.client", "rtt.engineio.register"),
        library=NODE_MODULES / "engine.io-client" / "dist" / "engine.io.js",
        assets_from_disk=True,
    )


async def test_a_mounted_server_refuses_ssl() -> None:
    """TLS belongs to the application's web server: attach() and asgi_app() say so, at once."""
    context = server_context(certificate_authority())
    server = rtt.load("engineio").server(ssl=context)
    assert isinstance(server, rtt_engineio.EngineioServer)
    with pytest.raises(rtt.OptionError, match="option ssl is for a standalone server: mounted in an aiohttp"):
        server.attach(web.Application())
    with pytest.raises(rtt.OptionError, match="option ssl is for a standalone server: mounted in an ASGI"):
        server.asgi_app()


@pytest.mark.parametrize(
    ("transports", "final"),
    [("polling", "polling"), ("websocket", "websocket"), ("polling,websocket", "websocket")],
)
async def test_node_engineio_client_over_https(transports: str, final: str, tmp_path: Path) -> None:
    ca = certificate_authority()
    async with rtt.load("engineio").server(ssl=server_context(ca)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        rec = Recorder().listen(echo(server), "disconnect")
        host, port = server.address
        status, result = await run_node(
            "engineio-interop.mjs", f"https://{host}:{port}/", transports, env=node_env(ca, tmp_path)
        )
        assert status == 0, result
        assert result["seen"] == [{"text": "hello from engine.io-client"}, {"binary": [0, 1, 2, 255]}]
        assert result["closedOver"] == final
        ((_, reason),) = await rec.wait("disconnect", timeout=10)
        assert reason is rtt.CloseReason.CLIENT_CLOSED


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_chromium_over_https(https_pages: Pages, transports: list[str]) -> None:
    """A page on the standalone server's HTTPS origin, over long-polling, WebSocket and the upgrade."""
    async with rtt.load("engineio").server(ssl=server_context(certificate_authority())) as server:
        page, received = await https_echo_page(https_pages, server)
        await page.evaluate("(transports) => rtt.engineio.register('eio-tls', { transports })", transports)
        await https_pages.connect(page, server.url, transport="eio-tls")
        assert await page.evaluate("location.protocol") == "https:"
        assert isinstance(server, rtt_engineio.EngineioServer)
        eio = server.engineio_server
        final = transports[-1]
        await eventually(
            lambda: [("websocket" if s.upgraded else "polling") for s in eio.sockets.values()] == [final],
            what=f"the session on {final}",
        )
        await send_all_and_check(page, received, ["over https", b"\x00\x01\xff", "ünïcødé ✓"])
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
    assert https_pages.rtt_errors() == []
