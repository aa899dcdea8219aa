"""Oversize messages: the limit is delivered, one byte more closes with ``message too big`` (SPEC.md 5.2, 6).

Both directions, every wire: a server receiving more than its
``max_message_size`` and a client receiving more than its own both close
with ``message too big``, and the message is never delivered. Issue 12,
defect 7: rtt-ws closed with websockets' own text (``frame with 1001 bytes
exceeds limit of 1000 bytes``) instead of rtt's reason, which a plain
WebSocket peer reads as is.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import pytest
from websockets.asyncio.server import ServerConnection, serve

import rtt
from rtt.codec import message_size
from rtt.testing import Recorder, eventually

from .http_support import NATIVE_CLOSE_TEXT, PLAIN_TRANSPORTS

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

LIMIT = 1000
#: One bound for every wait; nothing here should take more than a second or two.
WAIT = 15.0


def message(size: int, kind: type[str | bytes]) -> str | bytes:
    """A message of ``size`` bytes (UTF-8 bytes for text, the size rtt measures)."""
    if kind is bytes:
        return bytes(i % 256 for i in range(size))
    # Two-byte characters in the middle: the limit counts bytes, not characters.
    return "é" * ((size - 1) // 2) + "x" * ((size - 1) % 2 + 1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", [str, bytes], ids=["text", "binary"])
async def test_the_server_takes_the_limit_and_closes_on_one_byte_more(
    wire: Wire, kind: type[str | bytes]
) -> None:
    transport = wire.transport()
    async with transport.server(port=0, max_message_size=LIMIT) as server:
        received: list[str | bytes] = []
        server.on("message", lambda socket, data: received.append(data))
        rec = Recorder().listen(server, "disconnect")
        client = transport.client(server.url, reconnect=False)
        closes = Recorder().listen(client, "close")
        async with client:
            at_limit, over = message(LIMIT, kind), message(LIMIT + 1, kind)
            assert message_size(at_limit) == LIMIT and message_size(over) == LIMIT + 1
            await client.send(at_limit)
            await eventually(lambda: received, WAIT, "the message of exactly max_message_size")
            assert received == [at_limit]
            await client.send(over)
            ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
            assert reason is rtt.CloseReason.MESSAGE_TOO_BIG
            ((client_reason,),) = await closes.wait("close", timeout=WAIT)
            assert client_reason is rtt.CloseReason.MESSAGE_TOO_BIG
            assert client.close_reason is rtt.CloseReason.MESSAGE_TOO_BIG
        assert received == [at_limit], "the oversize message must never be delivered"
        assert server.stats.drops == 1


#: What the server reports when its client closes for ``message too big``: what the wire can tell it.
SERVER_SEES: dict[str, frozenset[rtt.CloseReason]] = {
    # A WebSocket close frame carries the client's code and text (SPEC 12.2, 12.5).
    "ws": frozenset({rtt.CloseReason.MESSAGE_TOO_BIG}),
    "picows": frozenset({rtt.CloseReason.MESSAGE_TOO_BIG}),
    "sockjs-websocket": frozenset({rtt.CloseReason.MESSAGE_TOO_BIG}),
    # Engine.IO's CLOSE packet carries no reason: it is ``client closed`` (SPEC 12.3).
    "engineio-websocket": frozenset({rtt.CloseReason.CLIENT_CLOSED}),
    # Over HTTP the client just stops polling; the server drops the session at its heartbeat deadline.
    "engineio-polling": frozenset({rtt.CloseReason.PING_TIMEOUT, rtt.CloseReason.TRANSPORT_ERROR}),
    "sockjs-xhr-polling": frozenset({rtt.CloseReason.PING_TIMEOUT, rtt.CloseReason.TRANSPORT_ERROR}),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", [str, bytes], ids=["text", "binary"])
async def test_a_client_takes_its_own_limit_and_closes_on_one_byte_more(
    wire: Wire, kind: type[str | bytes]
) -> None:
    transport = wire.transport()
    # The server may send ten times more: only the client's own max_message_size applies (SPEC 5.2). Its
    # short heartbeat bounds how long an HTTP session outlives a client that left without a word.
    async with transport.server(
        port=0, max_message_size=10 * LIMIT, ping_interval=1, ping_timeout=1
    ) as server:
        rec = Recorder().listen(server, "disconnect")
        client = transport.client(server.url, reconnect=False, max_message_size=LIMIT)
        closes = Recorder().listen(client, "close")
        received: list[str | bytes] = []
        client.on("message", received.append)
        async with client:
            await eventually(lambda: server.sockets, WAIT, "the server's socket")
            (socket_id,) = server.sockets
            at_limit, over = message(LIMIT, kind), message(LIMIT + 1, kind)
            await server.send(socket_id, at_limit)
            await eventually(lambda: received, WAIT, "the message of exactly max_message_size")
            await server.send(socket_id, over)
            ((client_reason,),) = await closes.wait("close", timeout=WAIT)
            assert client_reason is rtt.CloseReason.MESSAGE_TOO_BIG
            assert client.close_reason is rtt.CloseReason.MESSAGE_TOO_BIG
            ((_, server_reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert received == [at_limit], "the oversize message must never be delivered"
        assert server_reason in SERVER_SEES[wire.id]


# -- What a plain WebSocket peer reads (SPEC 6, 12.2, 12.5: rtt's code; rtt's text but on picows) ----------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", PLAIN_TRANSPORTS)
async def test_plain_server_closes_an_oversize_frame_with_rtts_code_and_text(name: str) -> None:
    transport = rtt.load(name)
    async with transport.server(port=0, max_message_size=LIMIT) as server:
        rec = Recorder().listen(server, "disconnect")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.url, max_msg_size=0, autoclose=False) as ws,
        ):
            await ws.send_bytes(b"\x00" * (LIMIT + 1))
            msg = await asyncio.wait_for(ws.receive(), WAIT)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert msg.data == 1009, (msg.data, msg.extra)
            if name not in NATIVE_CLOSE_TEXT:  # picows's parser words this close itself (SPEC.md 12.5)
                assert msg.extra == "message too big"
            await ws.close()
        ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.MESSAGE_TOO_BIG


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", PLAIN_TRANSPORTS)
async def test_plain_client_closes_an_oversize_frame_with_rtts_code_and_text(name: str) -> None:
    seen: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(conn: ServerConnection) -> None:
        await conn.send("x" * (LIMIT + 1))
        await conn.wait_closed()
        received = conn.protocol.close_rcvd
        seen.set_result((received.code, received.reason) if received is not None else (0, "no close frame"))

    async with serve(handler, "127.0.0.1", 0, compression=None) as plain_server:
        port = next(iter(plain_server.sockets)).getsockname()[1]
        client = rtt.load(name).client(f"ws://127.0.0.1:{port}/", reconnect=False, max_message_size=LIMIT)
        closes = Recorder().listen(client, "close")
        async with client:
            code, text = await asyncio.wait_for(seen, WAIT)
            assert code == 1009, (code, text)
            if name not in NATIVE_CLOSE_TEXT:  # picows's parser words this close itself (SPEC.md 12.5)
                assert text == "message too big"
            ((reason,),) = await closes.wait("close", timeout=WAIT)
            assert reason is rtt.CloseReason.MESSAGE_TOO_BIG
