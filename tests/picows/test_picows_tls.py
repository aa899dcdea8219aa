"""rtt-picows over TLS (SPEC.md 8.4, 12.5): the Python client, Node's ``ws``, Chromium, raw requests.

The server has a certificate from a throwaway CA (``tls_support``); the
Python client trusts it through its ``ssl`` option, Node through
``NODE_EXTRA_CA_CERTS``, and Chromium's context ignores certificate errors for
this test only. The kit's TLS cases run in test_picows_conformance.py.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from browser_support import BrowserClient, Pages, https_echo_page, send_all_and_check, wait_for_event
from tls_support import (
    certificate_authority,
    check_node_ws_over_wss,
    check_node_ws_refuses_an_untrusted_certificate,
    client_context,
    server_context,
)

import rtt
from rtt.testing import ROUND_TRIP, Recorder, echo
from rtt_picows import PicowsClient

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient("picows", exports=("client",))


async def test_python_client_over_tls() -> None:
    ca = certificate_authority()
    picows = rtt.load("picows")
    async with picows.server(ssl=server_context(ca)) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        rec = Recorder().listen(echo(server), "connect", "disconnect")
        async with picows.client(server.url, ssl=client_context(ca), reconnect=False) as client:
            assert isinstance(client, PicowsClient)
            assert client.websocket is not None and client.websocket.is_secure
            for message in ROUND_TRIP:
                await client.send(message)
                assert await client.recv() == message
            # Larger than a TLS record (16 KiB) and than picows's first read buffer, both ways.
            big = "é" * 100_000
            await client.send(big)
            assert await client.recv() == big
            ((socket,),) = await rec.wait("connect")
            await server.disconnect(socket.id, 4001, "bye")
            with pytest.raises(rtt.ConnectionClosed) as closed:
                await client.recv()
            assert (closed.value.code, closed.value.text) == (4001, "bye")
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.APPLICATION


async def test_an_untrusted_certificate_is_a_connect_error() -> None:
    picows = rtt.load("picows")
    async with picows.server(ssl=server_context(certificate_authority())) as server:
        rec = Recorder().listen(server, "connect")
        client = picows.client(server.url, ssl=client_context(certificate_authority()), reconnect=False)
        with pytest.raises(rtt.ConnectError, match="certificate") as refused:
            await client.connect()
        assert not isinstance(refused.value, rtt.RejectedError)
        assert client.state is rtt.ClientState.CLOSED
        assert rec.of("connect") == [] and not server.sockets


async def test_ssl_with_a_plain_url_is_a_config_error() -> None:
    picows = rtt.load("picows")
    with pytest.raises(rtt.ConfigError, match="ssl"):
        picows.client("ws://127.0.0.1:1/", ssl=client_context(certificate_authority()))


async def test_a_bad_request_over_tls_gets_its_http_answer() -> None:
    """rtt reads the upgrade request on the TLS connection as on a plain one (SPEC.md 12.5)."""
    ca = certificate_authority()
    async with rtt.load("picows").server(ssl=server_context(ca)) as server:
        host, port = server.address
        reader, writer = await asyncio.open_connection(host, port, ssl=client_context(ca))
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(10):
                answer = await reader.read()
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 426 ")
        assert answer.endswith(b"Failed to open a WebSocket connection: expected a WebSocket upgrade.\n")
        assert not server.sockets and server.stats.connections == 0


async def test_a_stalled_client_over_tls_is_a_slow_consumer() -> None:
    """The write buffer's high-water mark holds over TLS too (SPEC.md 7.1)."""
    ca = certificate_authority()
    limit, chunk = 256 * 1024, b"\xab" * 65536
    picows = rtt.load("picows")
    async with picows.server(
        ssl=server_context(ca), outbound_limit=limit, max_message_size=len(chunk)
    ) as server:
        rec = Recorder().listen(server, "connect", "disconnect")
        client = picows.client(
            server.url, ssl=client_context(ca), max_message_size=len(chunk), reconnect=False
        )
        await client.connect()
        ((socket,),) = await rec.wait("connect")
        assert isinstance(client, PicowsClient)
        client.pause_reading()
        try:
            for _ in range(2000):  # 128 MiB at most, far past any kernel buffer
                await server.send(socket.id, chunk)
        except rtt.UnknownSocketError:
            pass
        else:
            pytest.fail("a client that never reads was not disconnected")
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.SLOW_CONSUMER
        await client.close()


async def test_node_ws_client_over_wss(tmp_path: Path) -> None:
    await check_node_ws_over_wss("picows", tmp_path)


async def test_node_ws_client_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    await check_node_ws_refuses_an_untrusted_certificate("picows", tmp_path)


async def test_chromium_over_https_and_wss(https_pages: Pages) -> None:
    """A page on the server's own HTTPS origin loads the client from it (assets_path) and uses wss://."""
    async with rtt.load("picows").server(ssl=server_context(certificate_authority())) as server:
        page, received = await https_echo_page(https_pages, server)
        await https_pages.connect(page, server.url)
        assert await page.evaluate("location.protocol") == "https:"
        await send_all_and_check(page, received, list(ROUND_TRIP))
        await page.evaluate("client.close()")
        await wait_for_event(page, "close")
    assert https_pages.rtt_errors() == []


async def test_the_server_context_is_used_as_given() -> None:
    """``ssl`` must be a server-side context: a client one is refused when the options are made."""
    with pytest.raises(rtt.OptionError):
        rtt.load("picows").server(ssl=ssl.create_default_context())
