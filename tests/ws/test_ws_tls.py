"""rtt-ws over TLS beyond the kit's Python client (SPEC.md 8.4, 12.2): Node's ``ws`` and Chromium.

The server has a certificate from a throwaway CA (``tls_support``); Node
trusts the CA through ``NODE_EXTRA_CA_CERTS``, Chromium's context ignores
certificate errors for these tests only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import BrowserClient, Pages, https_echo_page, send_all_and_check, wait_for_event
from tls_support import (
    certificate_authority,
    check_node_ws_over_wss,
    check_node_ws_refuses_an_untrusted_certificate,
    server_context,
)

import rtt
from rtt.testing import ROUND_TRIP

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient("ws", exports=("client",))


async def test_node_ws_client_over_wss(tmp_path: Path) -> None:
    await check_node_ws_over_wss("ws", tmp_path)


async def test_node_ws_client_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    await check_node_ws_refuses_an_untrusted_certificate("ws", tmp_path)


async def test_chromium_over_https_and_wss(https_pages: Pages) -> None:
    """A page on the server's own HTTPS origin loads the client from it and connects over wss://."""
    async with rtt.load("ws").server(ssl=server_context(certificate_authority())) as server:
        page, received = await https_echo_page(https_pages, server)
        await https_pages.connect(page, server.url)
        assert await page.evaluate("location.protocol") == "https:"
        await send_all_and_check(page, received, list(ROUND_TRIP))
        await page.evaluate("client.close()")
        await wait_for_event(page, "close")
    assert https_pages.rtt_errors() == []
