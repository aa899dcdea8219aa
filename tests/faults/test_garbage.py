"""Garbage on the WebSocket wire: invalid UTF-8, a bad opcode, an unmasked client frame (SPEC.md 6; RFC 6455).

A raw client on asyncio streams sends each hand-built frame to the
WebSocket URL of every wire that has one (rtt-ws, Engine.IO and SockJS over
WebSocket; the HTTP wires carry no WebSocket frames). The server closes that
connection as a protocol error: its ``disconnect`` says ``protocol error``
and the peer reads a close that maps to it (RFC 6455 1002 or 1007, or the
wire's own ``protocol error`` close), the frame is never delivered, and a
well-behaved client on the same server still gets its echo.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest

import rtt
from rtt.testing import Recorder, echo, eventually

from .conftest import WIRES
from .wire_support import OP_TEXT, RawWebSocket, frame, websocket_target

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

WAIT = 15.0
WEBSOCKET_WIRES = [w for w in WIRES if not w.http]

#: One message in each wire's own framing, so only the frame around it is at fault.
PAYLOAD = {"ws": b"hello", "engineio": b"4hello", "sockjs": b'["hello"]'}
#: The close each wire sends inside the WebSocket for ``protocol error`` (before the WebSocket close).
PROTOCOL_ERROR_FRAME = {"engineio": b"1protocol error", "sockjs": b'c[1002,"protocol error"]'}


def garbage(kind: str, wire: Wire) -> bytes:
    if kind == "invalid-utf8":
        return frame(OP_TEXT, PAYLOAD[wire.name][:-1] + b"\xff\xfe" + PAYLOAD[wire.name][-1:])
    if kind == "bad-opcode":
        return frame(0x3, PAYLOAD[wire.name])  # 0x3-0x7 are reserved non-control opcodes
    return frame(OP_TEXT, PAYLOAD[wire.name], mask=False)  # a client MUST mask (RFC 6455 5.1)


#: Parameters that fail because of a defect of a plugin or its library (issue 12), with the evidence.
KNOWN: dict[tuple[str, str], str] = {
    ("engineio-websocket", "invalid-utf8"): "issue 12: aiohttp's 1007 close is reported as 'transport error'",
    ("engineio-websocket", "bad-opcode"): "issue 12: aiohttp's 1002 close is reported as 'transport error'",
    ("engineio-websocket", "unmasked"): "issue 12: aiohttp takes an unmasked client frame and delivers it",
    ("sockjs-websocket", "invalid-utf8"): "issue 12: aiohttp's 1007 close is reported as 'transport error'",
    ("sockjs-websocket", "bad-opcode"): "issue 12: aiohttp's 1002 close is reported as 'transport error'",
    ("sockjs-websocket", "unmasked"): "issue 12: aiohttp takes an unmasked client frame and delivers it",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("wire", WEBSOCKET_WIRES, ids=[w.id for w in WEBSOCKET_WIRES], indirect=True)
@pytest.mark.parametrize("kind", ["invalid-utf8", "bad-opcode", "unmasked"])
async def test_a_garbage_frame_closes_with_protocol_error_and_the_server_stays_healthy(
    wire: Wire, kind: str, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    if (wire.id, kind) in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN[wire.id, kind]))
    caplog.set_level(logging.INFO)
    transport = wire.transport()
    async with echo(transport.server(port=0, close_timeout=2)) as server:
        received: list[str | bytes] = []
        server.on("message", lambda socket, data: received.append(data))
        rec = Recorder().listen(server, "disconnect")
        healthy = transport.client(server.url, reconnect=False)
        async with healthy:
            await healthy.send("before")
            assert await asyncio.wait_for(healthy.recv(), WAIT) == "before"
            raw = await RawWebSocket.connect(*websocket_target(wire, server.url))
            if wire.name != "ws":
                # Engine.IO's OPEN packet, SockJS's ``o``: the session exists before the garbage arrives.
                await asyncio.wait_for(raw.read_frame(), WAIT)
            await eventually(lambda: len(server.sockets) == 2, WAIT, "the raw client's socket")
            raw.send(garbage(kind, wire))
            closed = await raw.wait_closed(WAIT)
            ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
            assert reason is rtt.CloseReason.PROTOCOL_ERROR
            sent_by_wire = PROTOCOL_ERROR_FRAME.get(wire.name)
            if sent_by_wire is not None and (OP_TEXT, sent_by_wire) in closed.frames:
                pass  # the wire's own protocol-error close, read as such by an rtt client
            else:
                assert closed.code in (1002, 1007), (closed.code, closed.reason)
                assert rtt.CloseReason.from_wire(closed.code, closed.reason) is rtt.CloseReason.PROTOCOL_ERROR
            assert received == ["before"], "nothing of the garbage connection is delivered"
            assert server.stats.drops == 1
            await healthy.send("after")
            assert await asyncio.wait_for(healthy.recv(), WAIT) == "after"
            assert healthy.state is rtt.ClientState.OPEN
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
