"""SockJS's raw WebSocket endpoint, ``{prefix}/websocket`` (SockJS 0.3.3; SPEC.md 12.4).

No SockJS framing: each WebSocket text message is one message, both ways,
and the close is the WebSocket close's code and rtt's reason text (SPEC.md 6).
The clients are plain ``websockets`` clients, as any WebSocket client would
be; a hand-driven one (``faults.wire_support.RawWebSocket``) plays the peer
that never answers a ping. The endpoint is guarded as the framed WebSocket
is: origins, ``authorize``, the size limit, the outbound limit, the
heartbeat, close reasons and shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import websockets
from conftest import echo_server
from faults.wire_support import OP_TEXT, RawWebSocket, frame
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

import rtt
from rtt.testing import Recorder, eventually
from rtt_sockjs import SockjsServer

# sockjs 0.13 stores its state under string keys of the aiohttp application.
pytestmark = [
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
    pytest.mark.timeout(60),
]

WAIT = 10.0


def raw_url(server: rtt.Server[Any], query: str = "") -> str:
    """The raw WebSocket URL of a sockjs server (``ws://host:port/sockjs/websocket``)."""
    return server.url.replace("http", "ws", 1) + "/websocket" + (f"?{query}" if query else "")


@asynccontextmanager
async def plain(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    """A plain ``websockets`` client of ``url``, bounded in time."""
    async with asyncio.timeout(WAIT * 2), connect(url, open_timeout=WAIT, **options) as ws:
        yield ws


async def closed_by_server(ws: ClientConnection) -> tuple[int, str]:
    """Wait for the server's close; its code and reason."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    except websockets.ConnectionClosed:
        pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def test_each_websocket_message_is_one_message_both_ways() -> None:
    async with echo_server("sockjs", kind=SockjsServer, close_timeout=1) as (server, received):
        rec = Recorder().listen(server, "connect")
        async with plain(raw_url(server, "room=a")) as ws:
            for text in ["hello", "", "é ✓ 😀", '["not", "sockjs"]', "a" * 70_000]:
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), WAIT) == text  # no o, a[...], h frames
            ((socket,),) = await rec.wait("connect", timeout=WAIT)
            assert socket.path == server.prefix and socket.query == {"room": "a"}
            # A broadcast reaches the raw socket and an rtt client alike, each in its own wire.
            client = rtt.load("sockjs").client(server.url, reconnect=False)
            async with client:
                await eventually(lambda: len(server.sockets) == 2, WAIT, "both sockets")
                assert await server.broadcast("to all") == 2
                assert await asyncio.wait_for(ws.recv(), WAIT) == "to all"
                assert await asyncio.wait_for(client.recv(), WAIT) == "to all"
            await ws.send(b"binary")  # SockJS carries text only
            assert await closed_by_server(ws) == (1002, "protocol error")
        assert received[-1] == "a" * 70_000 and b"binary" not in received


async def test_a_message_over_the_limit_closes_with_message_too_big() -> None:
    async with echo_server("sockjs", kind=SockjsServer, close_timeout=1, max_message_size=1000) as (
        server,
        received,
    ):
        rec = Recorder().listen(server, "disconnect")
        async with plain(raw_url(server)) as ws:
            await ws.send("x" * 1000)
            assert await asyncio.wait_for(ws.recv(), WAIT) == "x" * 1000
            await ws.send("y" * 1001)
            assert await closed_by_server(ws) == (1009, "message too big")
        ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.MESSAGE_TOO_BIG
        assert received == ["x" * 1000]


async def test_origins_and_authorize_refuse_before_the_upgrade() -> None:
    async def authorize(handshake: rtt.Handshake) -> rtt.Reject | bool:
        return True if handshake.query.get("token") == "ok" else rtt.Reject(401, "Unauthorized")

    async with echo_server(
        "sockjs", kind=SockjsServer, allowed_origins=["https://app.example"], authorize=authorize
    ) as (server, _):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await asyncio.wait_for(
                connect(raw_url(server, "token=ok"), origin=Origin("https://evil.example")), WAIT
            )
        assert refused.value.response.status_code == 403
        with pytest.raises(websockets.InvalidStatus) as refused:
            await asyncio.wait_for(connect(raw_url(server), origin=Origin("https://app.example")), WAIT)
        assert refused.value.response.status_code == 401
        assert refused.value.response.body == b"Unauthorized"
        assert server.manager.sessions == {}, "a refused handshake leaves no session behind"
        async with plain(raw_url(server, "token=ok"), origin=Origin("https://app.example")) as ws:
            await ws.send("in")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "in"
        assert server.stats.rejected == 2 and server.stats.connections == 1


async def test_server_close_and_shutdown_are_websocket_closes_with_rtts_reason() -> None:
    rec = Recorder()
    async with echo_server("sockjs", kind=SockjsServer, close_timeout=1) as (server, _):
        rec.listen(server, "connect", "disconnect")
        async with plain(raw_url(server)) as ws:
            ((socket,),) = await rec.wait("connect", timeout=WAIT)
            await server.disconnect(socket.id)
            assert await closed_by_server(ws) == (1000, "server closed")
        async with plain(raw_url(server)) as ws:
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "still here"
            closing = asyncio.create_task(server.close())
            assert await closed_by_server(ws) == (1001, "shutdown")
            await asyncio.wait_for(closing, WAIT)
    assert [reason for _, reason in rec.of("disconnect")] == [
        rtt.CloseReason.SERVER_CLOSED,
        rtt.CloseReason.SHUTDOWN,
    ]
    assert server.manager.sessions == {}


async def test_heartbeats_are_pings_and_a_peer_that_never_answers_is_dropped() -> None:
    async with echo_server(
        "sockjs", kind=SockjsServer, close_timeout=1, ping_interval=0.3, ping_timeout=0.5
    ) as (server, _):
        rec = Recorder().listen(server, "disconnect")
        # A websockets client answers every ping: it outlives several heartbeats.
        async with plain(raw_url(server), ping_interval=None) as ws:
            silent = await RawWebSocket.connect(*_target(server))
            # The hand-driven peer reads the ping (no "h" frame) and never answers it.
            opcode, _ = await asyncio.wait_for(silent.read_frame(), WAIT)
            assert opcode == 0x9
            ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
            assert reason is rtt.CloseReason.PING_TIMEOUT
            await ws.send("alive")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "alive"
            silent.abort()


async def test_a_client_that_stops_reading_is_cut_as_slow_consumer() -> None:
    async with echo_server(
        "sockjs", kind=SockjsServer, close_timeout=1, outbound_limit=256 * 1024, max_message_size=2**20
    ) as (server, _):
        rec = Recorder().listen(server, "connect", "disconnect")
        stalled = await RawWebSocket.connect(*_target(server))  # never reads
        ((socket,),) = await rec.wait("connect", timeout=WAIT)
        chunk = "z" * 64 * 1024

        async def flood() -> None:
            for _ in range(2000):  # at most ~128 MB, far past any socket buffer
                await server.send(socket.id, chunk)

        with pytest.raises((rtt.ConnectionClosed, rtt.UnknownSocketError)):  # cut, then forgotten
            await flood()
        ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.SLOW_CONSUMER
        stalled.abort()


async def test_an_unmasked_client_frame_is_protocol_error() -> None:
    """RFC 6455 5.1, which aiohttp's reader does not enforce (``rtt.rfc6455.MaskCheck``)."""
    async with echo_server("sockjs", kind=SockjsServer, close_timeout=1) as (server, received):
        rec = Recorder().listen(server, "disconnect")
        raw = await RawWebSocket.connect(*_target(server))
        raw.send(frame(OP_TEXT, b"masked") + frame(OP_TEXT, b"unmasked", mask=False))
        closed = await raw.wait_closed(WAIT)
        assert (closed.code, closed.reason) == (1002, "protocol error")
        ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.PROTOCOL_ERROR
        assert received == ["masked"], "the frame before it is delivered, nothing after"


async def test_the_endpoint_follows_the_transports_option_and_answers_only_get() -> None:
    async with (
        echo_server("sockjs", kind=SockjsServer, transports=("xhr-polling",)) as (without, _),
        echo_server("sockjs", kind=SockjsServer) as (served, _),
        aiohttp.ClientSession() as http,
    ):
        async with http.get(without.url + "/info") as response:
            assert (await response.json())["websocket"] is False
        with pytest.raises(websockets.InvalidStatus) as refused:
            await asyncio.wait_for(connect(raw_url(without)), WAIT)
        assert refused.value.response.status_code == 404
        async with http.post(served.url + "/websocket", data=b"x") as response:
            assert response.status == 405 and response.headers["Allow"] == "GET"
            assert await response.read() == b""
        assert served.stats.connections == 0 and served.manager.sessions == {}


def _target(server: rtt.Server[Any]) -> tuple[str, int, str]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port, parts.path + "/websocket"
