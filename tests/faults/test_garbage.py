"""Garbage on the WebSocket wire: invalid UTF-8, a bad opcode, an unmasked client frame (SPEC.md 6; RFC 6455).

A raw client on asyncio streams sends each hand-built frame to the
WebSocket URL of every wire that has one (rtt-ws, rtt-picows, Engine.IO and SockJS over
WebSocket, and SockJS's raw WebSocket endpoint, ``sockjs-raw``, which no
wire's client uses; the HTTP wires carry no WebSocket frames). The server closes that
connection as a protocol error: its ``disconnect`` says ``protocol error``
and the peer reads RFC 6455's close (1007 for invalid UTF-8, else 1002) with
rtt's ``protocol error`` text, the frame is
never delivered, and a well-behaved client on the same server still gets its
echo. An unmasked frame is refused by every server (RFC 6455 5.1); aiohttp's
reader does not check the mask bit, so rtt-engineio and rtt-sockjs put a
check in front of it (``rtt.rfc6455.MaskCheck``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

import rtt
from rtt.testing import Recorder, echo, eventually

from .conftest import WIRES
from .wire_support import OP_TEXT, RawWebSocket, frame, websocket_target

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

WAIT = 15.0
WEBSOCKET_WIRES = [w for w in WIRES if not w.http]

#: The WebSocket close code of each kind of garbage (RFC 6455 7.4.1), as websockets sends it on rtt-ws.
CLOSE_CODE = {"invalid-utf8": 1007, "bad-opcode": 1002, "unmasked": 1002}


@dataclass(frozen=True)
class Endpoint:
    """A WebSocket endpoint of a wire's server: the wire's own, or SockJS's raw one (``raw``)."""

    wire: Wire
    raw: bool = False

    @property
    def id(self) -> str:
        return "sockjs-raw" if self.raw else self.wire.id

    @property
    def greets(self) -> bool:
        """Whether the server's first frame is the wire's own (Engine.IO's OPEN, SockJS's ``o``)."""
        return not self.wire.plain and not self.raw

    def target(self, url: str) -> tuple[str, int, str]:
        if not self.raw:
            return websocket_target(self.wire, url)
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port, parts.path.rstrip("/") + "/websocket"

    def message(self, text: str) -> bytes:
        """One client message ``text`` in this endpoint's framing."""
        if self.raw or self.wire.plain:
            return text.encode()
        return {"engineio": "4" + text, "sockjs": f'["{text}"]'}[self.wire.name].encode()


def _endpoints() -> list[Endpoint]:
    found = [Endpoint(wire) for wire in WEBSOCKET_WIRES]
    found += [Endpoint(wire, raw=True) for wire in WEBSOCKET_WIRES if wire.name == "sockjs"]
    return found


ENDPOINTS = _endpoints()


def garbage(kind: str, endpoint: Endpoint) -> bytes:
    """One message ``hello`` in the endpoint's own framing, so only the frame around it is at fault."""
    payload = endpoint.message("hello")
    if kind == "invalid-utf8":
        return frame(OP_TEXT, payload[:-1] + b"\xff\xfe" + payload[-1:])
    if kind == "bad-opcode":
        return frame(0x3, payload)  # 0x3-0x7 are reserved non-control opcodes
    return frame(OP_TEXT, payload, mask=False)  # a client MUST mask (RFC 6455 5.1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("wire", "endpoint"),
    [pytest.param(e.wire, e, id=e.id) for e in ENDPOINTS],
    indirect=["wire"],
)
@pytest.mark.parametrize("kind", ["invalid-utf8", "bad-opcode", "unmasked"])
async def test_a_garbage_frame_closes_with_protocol_error_and_the_server_stays_healthy(
    wire: Wire, endpoint: Endpoint, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
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
            raw = await RawWebSocket.connect(*endpoint.target(server.url))
            if endpoint.greets:
                # Engine.IO's OPEN packet, SockJS's ``o``: the session exists before the garbage arrives.
                await asyncio.wait_for(raw.read_frame(), WAIT)
            await eventually(lambda: len(server.sockets) == 2, WAIT, "the raw client's socket")
            raw.send(garbage(kind, endpoint))
            closed = await raw.wait_closed(WAIT)
            ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
            assert reason is rtt.CloseReason.PROTOCOL_ERROR
            # The frame is refused at the WebSocket level, before any wire framing: every wire
            # closes with RFC 6455's code, and an rtt client reads it as ``protocol error``.
            assert closed.code == CLOSE_CODE[kind], (closed.code, closed.reason)
            assert rtt.CloseReason.from_wire(closed.code, closed.reason) is rtt.CloseReason.PROTOCOL_ERROR
            if not wire.native_close_text or kind == "invalid-utf8":
                # rtt checks UTF-8 itself on every wire; picows's parser finds the other two and
                # words their close frames itself (SPEC.md 12.5).
                assert closed.reason == rtt.CloseReason.PROTOCOL_ERROR.value, closed.reason
            assert not [f for f in closed.frames if b"hello" in f[1]], "the garbage frame is never echoed"
            assert received == ["before"], "nothing of the garbage connection is delivered"
            assert server.stats.drops == 1
            await healthy.send("after")
            assert await asyncio.wait_for(healthy.recv(), WAIT) == "after"
            assert healthy.state is rtt.ClientState.OPEN
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def in_pieces(data: bytes) -> list[bytes]:
    """``data`` cut at uneven places, so that frame headers arrive split across reads."""
    pieces: list[bytes] = []
    start, sizes = 0, (1, 2, 3, 5, 7, 1, 11, 4096)
    while start < len(data):
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(data[start : start + size])
        start += size
    return pieces


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("wire", "endpoint"),
    [pytest.param(e.wire, e, id=e.id) for e in ENDPOINTS],
    indirect=["wire"],
)
async def test_masked_frames_cut_anywhere_arrive_whole_and_in_order(wire: Wire, endpoint: Endpoint) -> None:
    """Every length encoding (7 bits, 16 bits, 64 bits), header and payload cut across TCP reads."""
    transport = wire.transport()
    texts = ["a", "b" * 125, "c" * 126, "d" * 300, "e" * 70_000, "f"]
    async with echo(transport.server(port=0, close_timeout=2)) as server:
        received: list[str | bytes] = []
        server.on("message", lambda socket, data: received.append(data))
        raw = await RawWebSocket.connect(*endpoint.target(server.url))
        if endpoint.greets:
            await asyncio.wait_for(raw.read_frame(), WAIT)
        stream = b"".join(frame(OP_TEXT, endpoint.message(text)) for text in texts)
        sock = raw.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in in_pieces(stream):
            raw.send(piece)
            await raw.writer.drain()
        await eventually(lambda: len(received) == len(texts), WAIT, "every message")
        assert received == texts
        raw.abort()


#: Where the unmasked frame comes; rtt-ws is not sent one with its handshake (see the test).
UNMASKED_CASES = [
    pytest.param(e.wire, e, when, id=f"{when}-{e.id}")
    for when in ("after-good-frames", "with-the-handshake", "header-split")
    for e in ENDPOINTS
    if not (e.wire.name == "ws" and when == "with-the-handshake")
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("wire", "endpoint", "when"), UNMASKED_CASES, indirect=["wire"])
async def test_an_unmasked_frame_is_refused_wherever_it_comes(
    wire: Wire, endpoint: Endpoint, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Frames before it are delivered; it and everything after are not (RFC 6455 5.1).

    ``with-the-handshake``: a client that does not wait for the 101 (RFC 6455
    4.1 says it must) pipelines its frames with the request; aiohttp keeps
    them until its frame parser exists, and rtt checks them there too. Not
    on rtt-ws: websockets reads them during the handshake and half-closes
    the connection before its 101, without a close frame.
    """
    caplog.set_level(logging.INFO)
    transport = wire.transport()
    async with transport.server(port=0, close_timeout=2) as server:
        received: list[str | bytes] = []
        server.on("message", lambda socket, data: received.append(data))
        rec = Recorder().listen(server, "disconnect")
        good = frame(OP_TEXT, endpoint.message("one")) + frame(OP_TEXT, endpoint.message("two" * 100))
        bad = frame(OP_TEXT, endpoint.message("bad"), mask=False) + frame(OP_TEXT, endpoint.message("after"))
        target = endpoint.target(server.url)
        if when == "with-the-handshake":
            raw = await RawWebSocket.connect(*target, early=good + bad)
        else:
            raw = await RawWebSocket.connect(*target)
        if endpoint.greets and when != "with-the-handshake":
            await asyncio.wait_for(raw.read_frame(), WAIT)
        if when == "after-good-frames":
            raw.send(good + bad)
        elif when == "header-split":
            raw.send(good + bad[:1])
            await eventually(lambda: len(received) == 2, WAIT, "the good frames")
            raw.send(bad[1:])
        closed = await raw.wait_closed(WAIT)
        ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.PROTOCOL_ERROR
        assert closed.code == 1002, (closed.code, closed.reason)
        assert received == ["one", "two" * 100]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
