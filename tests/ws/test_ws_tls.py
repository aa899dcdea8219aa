"""rtt-ws over TLS beyond the kit's Python client (SPEC.md 8.4, 12.2): Node's ``ws`` and Chromium.

The server has a certificate from a throwaway CA (``tls_support``); Node
trusts the CA through ``NODE_EXTRA_CA_CERTS``, Chromium's context ignores
certificate errors for these tests only.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from browser_support import BrowserClient, Pages, messages, to_js, wait_for_event
from tls_support import certificate_authority, node_env, server_context

import rtt
from rtt.testing import ROUND_TRIP, Recorder, echo

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient("ws", exports=("client",))


async def run_node(*args: str, env: dict[str, str]) -> tuple[int, dict[str, object]]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the interop tests"
    assert (NODE_DIR / "node_modules" / "ws").is_dir(), "run `npm ci --prefix tests/node` first"
    process = await asyncio.create_subprocess_exec(node, *args, stdout=asyncio.subprocess.PIPE, env=env)
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, json.loads(stdout)


async def test_node_ws_client_over_wss(tmp_path: Path) -> None:
    ca = certificate_authority()
    async with rtt.load("ws").server(ssl=server_context(ca)) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        rec = Recorder().listen(echo(server), "disconnect")
        status, result = await run_node(
            str(NODE_DIR / "ws-interop.mjs"), server.url, env=node_env(ca, tmp_path)
        )
        assert status == 0, result
        assert result["seen"] == [{"text": "hello from node"}, {"binary": [0, 1, 2, 255]}]
        assert result["code"] == 1000
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.CLIENT_CLOSED


async def test_node_ws_client_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    """Node verifies the server too: without the test CA the connection fails on the certificate."""
    async with rtt.load("ws").server(ssl=server_context(certificate_authority())) as server:
        rec = Recorder().listen(server, "connect")
        # A CA file, but of another CA: the process trusts its own CAs and that one.
        env = node_env(certificate_authority(), tmp_path)
        status, result = await run_node(str(NODE_DIR / "ws-interop.mjs"), server.url, env=env)
        assert status == 1, result
        assert "certificate" in str(result["error"]).lower(), result
        assert rec.of("connect") == []


async def test_chromium_over_https_and_wss(https_pages: Pages) -> None:
    """A page on the server's own HTTPS origin loads the client from it and connects over wss://."""
    ca = certificate_authority()
    async with rtt.load("ws").server(ssl=server_context(ca)) as server:
        received: list[str | bytes] = []

        @server.on("message")
        async def echo_back(socket: rtt.Socket, data: str | bytes) -> None:
            received.append(data)
            await server.send(socket.id, data)

        host, port = server.address
        page = await https_pages.classic(f"https://{host}:{port}")
        await https_pages.connect(page, server.url)
        assert await page.evaluate("location.protocol") == "https:"
        await page.evaluate(
            "(all) => all.forEach((message) => client.send(fromPlain(message)))",
            [to_js(message) for message in ROUND_TRIP],
        )
        await wait_for_event(page, "message", len(ROUND_TRIP))
        assert received == list(ROUND_TRIP)
        assert await messages(page) == list(ROUND_TRIP)
        await page.evaluate("client.close()")
        await wait_for_event(page, "close")
    assert https_pages.rtt_errors() == []
