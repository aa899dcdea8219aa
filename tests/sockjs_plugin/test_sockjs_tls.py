"""rtt-sockjs over TLS beyond the kit (SPEC.md 8.4, 12.4): a mounted server refuses ``ssl``,
the official sockjs-client in Node and the browser client in Chromium over HTTPS.

The kit's TLS cases already run the Python client over WebSocket,
xhr-streaming and xhr-polling (``test_sockjs_conformance``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from browser_support import NODE_MODULES, BrowserClient, Pages, https_echo_page, send_all_and_check
from tls_support import certificate_authority, node_env, server_context

import rtt
import rtt_sockjs
from rtt.testing import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"]

# sockjs-client in Node over one transport: open, echo one message, close; what it saw.
ECHO = """
import SockJS from "sockjs-client";
const [url, transport] = process.argv.slice(1);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(1);
}, 15000);
const sock = new SockJS(url, null, { transports: [transport] });
const seen = [];
sock.onopen = () => sock.send("over " + transport);
sock.onmessage = (event) => { seen.push(event.data); sock.close(); };
sock.onclose = (event) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ seen, code: event.code }));
  process.exit(0);
};
"""


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
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the interop tests"
    assert (NODE_DIR / "node_modules" / "sockjs-client").is_dir(), "run `npm ci --prefix tests/node` first"
    ca = certificate_authority()
    async with rtt.load("sockjs").server(ssl=server_context(ca), close_timeout=1) as server:
        assert server.url.startswith("https://127.0.0.1:")
        used: list[str] = []
        server.on("connect", lambda socket: used.append(server._conns[socket.id].transport_name))
        server.on("message", lambda socket, data: server.send(socket.id, data))
        process = await asyncio.create_subprocess_exec(
            node,
            "--input-type=module",
            "-e",
            ECHO,
            server.url,
            transport,
            stdout=asyncio.subprocess.PIPE,
            cwd=NODE_DIR,  # where sockjs-client is installed
            env=node_env(ca, tmp_path),
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stdout
        assert json.loads(stdout) == {"seen": [f"over {transport}"], "code": 1000}
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
