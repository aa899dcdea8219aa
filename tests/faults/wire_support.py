"""Shared helpers of the fault suite: a raw RFC 6455 client on asyncio streams, process counters.

The raw client builds every frame by hand, so a case can send what no
well-behaved library would (a bad opcode, an unmasked frame, invalid UTF-8)
to the WebSocket URL of any wire.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def websocket_target(wire: Wire, url: str) -> tuple[str, int, str]:
    """``(host, port, path?query)`` of the WebSocket endpoint of ``wire``'s server at ``url``."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    if wire.name == "engineio":
        path = f"{parts.path or '/'}?EIO=4&transport=websocket"
    elif wire.name == "sockjs":
        path = f"{parts.path.rstrip('/')}/000/{secrets.token_hex(8)}/websocket"
    else:
        path = parts.path or "/"
    return parts.hostname, parts.port, path


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One WebSocket frame as a client would send it (masked unless ``mask`` is false)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head.append(mask_bit | size)
    elif size < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", size)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", size)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@dataclass
class Closed:
    """How the server ended a raw connection: its close frame's code and text, or none (``code`` 0)."""

    code: int
    reason: str
    frames: list[tuple[int, bytes]]


class RawWebSocket:
    """A hand-driven WebSocket client connection on asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, timeout: float = 10.0, *, early: bytes = b""
    ) -> RawWebSocket:
        """Open a TCP connection and complete the opening handshake (101 expected).

        ``early`` is sent in the same write as the request, before the answer (frames a
        client pipelines with its handshake).
        """
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        writer.write(request.encode() + early)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            writer.close()
            raise AssertionError(f"handshake refused: {status!r}")
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (servers never mask); ``IncompleteReadError`` at EOF."""
        b0, b1 = await self.reader.readexactly(2)
        size = b1 & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        key = await self.reader.readexactly(4) if b1 & 0x80 else b""
        payload = await self.reader.readexactly(size)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return b0 & 0x0F, payload

    async def wait_closed(self, timeout: float) -> Closed:
        """Read until the server's close frame or EOF; the frames before it are kept."""
        frames: list[tuple[int, bytes]] = []

        async def run() -> Closed:
            while True:
                try:
                    opcode, payload = await self.read_frame()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return Closed(0, "", frames)
                if opcode == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return Closed(code, payload[2:].decode("utf-8", "replace"), frames)
                frames.append((opcode, payload))

        try:
            return await asyncio.wait_for(run(), timeout)
        finally:
            self.abort()

    def abort(self) -> None:
        if not self.writer.is_closing():
            self.writer.transport.abort()


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    """Resident memory of this process (``VmRSS`` of /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP RST (``SO_LINGER`` 0), as a crashed or hostile peer does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class RawResponse:
    """An HTTP/1.1 response read off a raw connection that stays open."""

    status: int
    headers: dict[str, str]
    body: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def http_request(
    host: str, port: int, method: str, target: str, body: bytes = b"", timeout: float = 10.0
) -> RawResponse:
    """Send one HTTP/1.1 request on a new connection and read a ``Content-Length`` response."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.write(
        f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: text/plain;charset=UTF-8\r\n\r\n".encode()
        + body
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = await asyncio.wait_for(_read_chunked(reader), timeout)
    else:
        data = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
    return RawResponse(int(status_line.split()[1]), headers, data, reader, writer)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return body


async def open_session(wire: Wire, url: str, timeout: float = 10.0) -> asyncio.StreamWriter:
    """Open one session of ``wire`` by hand (its handshake answered) and return the live connection."""
    host, port, target = websocket_target(wire, url)
    if not wire.http:
        raw = await RawWebSocket.connect(host, port, target, timeout)
        if not wire.plain:
            await asyncio.wait_for(raw.read_frame(), timeout)  # Engine.IO's OPEN, SockJS's ``o``
        return raw.writer
    if wire.name == "engineio":
        response = await http_request(
            host, port, "GET", target.replace("websocket", "polling"), timeout=timeout
        )
        assert response.status == 200 and response.body.startswith(b"0{"), (response.status, response.body)
    else:
        response = await http_request(
            host, port, "POST", target.replace("/websocket", "/xhr"), timeout=timeout
        )
        assert response.status == 200 and response.body == b"o\n", (response.status, response.body)
    return response.writer
