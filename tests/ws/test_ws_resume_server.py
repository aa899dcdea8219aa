"""The resume server over a real WebSocket (SPEC.md 17.3): a raw `websockets` client speaks the wire by hand.

The core's own cases run over rtt-mock (tests/core/test_resume_server.py);
these check that a real plugin's reports (``_received``/``_closed`` with the
wire socket, its library's aborts) carry a session across a dropped TCP
connection.
"""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

import rtt
from rtt import CloseReason
from rtt.resume import Welcome, ack_text, hello_text
from rtt.testing import Recorder, eventually

pytestmark = pytest.mark.timeout(60)


def raw(url: str) -> Any:
    """A plain `websockets` client: no rtt code on the client side."""
    return connect(url, compression=None, proxy=None)


async def welcome_of(conn: ClientConnection) -> Welcome:
    welcome = Welcome.parse(await conn.recv())
    assert welcome is not None
    return welcome


async def test_a_session_survives_a_dropped_tcp_connection() -> None:
    ws = rtt.load("ws")
    async with ws.server(resume_window=30, close_timeout=1) as server:
        rec = Recorder().listen(server, "connect", "away", "back", "disconnect")
        handled: list[str | bytes] = []
        server.on("message", lambda socket, data: handled.append(data))
        async with raw(server.url + "?room=1&rtt_resume=1") as conn:
            welcome = await welcome_of(conn)
            assert welcome.status == "new"
            await conn.send(hello_text(welcome.nonce))
            await conn.send("\x00\x00c1")
            await conn.send(b"c2")
            await server.send(welcome.id, "\x00s1")
            assert await conn.recv() == "\x00\x00s1"
            await eventually(lambda: len(handled) == 2)
            assert await conn.recv() == ack_text(2)  # within ACK_DELAY
            socket = server.sockets[welcome.id]
            assert socket.query == {"room": "1"} and socket.resumable
            conn.transport.abort()  # the TCP connection drops, no closing handshake
            await rec.wait("away")
        assert rec.of("away")[0][1] is CloseReason.TRANSPORT_ERROR and socket.away
        await server.send(welcome.id, "while away")
        await server.send(welcome.id, b"\x00bytes")
        async with raw(f"{server.url}?rtt_resume={welcome.id}.{welcome.token}.1") as conn:
            resumed = await welcome_of(conn)
            assert (resumed.status, resumed.id, resumed.handled, resumed.received) == (
                "resumed",
                welcome.id,
                2,
                1,
            )
            await conn.send(hello_text(resumed.nonce))
            assert [await conn.recv(), await conn.recv()] == ["while away", b"\x00bytes"]
            await conn.send("c3")
            await eventually(lambda: len(handled) == 3)
            assert handled == ["\x00c1", b"c2", "c3"]
            back = server.sockets[welcome.id]
            assert back is socket and not back.away and back.resumes == 1
        # A client that closes ends its session, as without resume.
        await rec.wait("disconnect")
        assert [e[0] for e in rec.events] == ["connect", "away", "back", "disconnect"]
        assert rec.of("disconnect")[0][1] is CloseReason.CLIENT_CLOSED and not server.sockets


async def test_a_websocket_client_without_rtt_resume_is_plain() -> None:
    ws = rtt.load("ws")
    async with ws.server(resume_window=30) as server:
        server.on("message", lambda socket, data: server.send(socket.id, data))
        async with raw(server.url + "?x=1") as conn:
            await conn.send("\x00plain")
            assert await conn.recv() == "\x00plain"
            (socket,) = server.sockets.values()
            assert not socket.resumable
