"""rtt-sockjs over TLS beyond the kit (SPEC.md 8.4, 12.4): a mounted server refuses ``ssl``,
the official sockjs-client in Node and the browser client in Chromium over HTTPS.

The kit's TLS cases already run the Python client over WebSocket,
xhr-streaming and xhr-polling (``test_sockjs_conformance``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from browser_support import NODE_MODULES, BrowserClient, Pages, https_echo_page, send_all_and_check
from tls_support import certificate_authority, node_env, run_node, server_context

import rtt
import rtt_sockjs
from rtt.testing import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"]


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient(
        "sockjs",
        exports=("client",),
        functions=("SockJS", "rtt.client", "rtt.sockjs.register"),
        library=NODE_MODULES / "sockjs-client" / "dist" / "sockjs.js",
        assets_from_disk=True,
    )


def transport_names(server: rtt.Server[object]) -> set[str]:
    assert isinstance(server, rtt_sockjs.SockjsServer)
    return {conn.transport_name for conn in server._conns.values()}


async def test_a_mounted_server_refuses_ssl() -> None:
    """TLS belongs to the application's web server: attach() says so, at once."""
    server = rtt.load("sockjs").server(ssl=server_context(certificate_authority()))
    assert isinstance(server, rtt_sockjs.SockjsServer)
    with pytest.raises(rtt.OptionError, match="option ssl is for a standalone server: mounted in an aiohttp"):
        server.attach(web.Application())


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_node_sockjs_client_over_https(transport: str, tmp_path: Path) -> None:
    ca = certificate_authority()
    async with rtt.load("sockjs").server(ssl=server_context(ca), close_timeout=1) as server:
        assert server.url.startswith("https://127.0.0.1:")
        used: list[str] = []
        server.on("connect", lambda socket: used.append(server._conns[socket.id].transport_name))
        server.on("message", lambda socket, data: server.send(socket.id, data))
        status, result = await run_node("sockjs-echo.mjs", server.url, transport, env=node_env(ca, tmp_path))
        assert status == 0, result
        assert result == {"seen": [f"over {transport}"], "code": 1000}
        assert used == [transport]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_chromium_over_https(https_pages: Pages, transport: str) -> None:
    """A page on the standalone server's HTTPS origin, over each sockjs-client transport."""
    async with rtt.load("sockjs").server(ssl=server_context(certificate_authority())) as server:
        page, received = await https_echo_page(https_pages, server)
        name = f"sockjs-{transport}"
        await page.evaluate(
            "([name, transport]) => rtt.sockjs.register(name, { transports: [transport] })", [name, transport]
        )
        await https_pages.connect(page, server.url, transport=name)
        assert await page.evaluate("location.protocol") == "https:"
        await send_all_and_check(page, received, ["over https", b"\x00\x01\xff", "ünïcødé ✓"])
        await eventually(lambda: transport_names(server) == {transport}, what=f"the session over {transport}")
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
    assert https_pages.rtt_errors() == []
