"""Requests to the picows server that are no WebSocket handshake get an HTTP answer (SPEC.md 3.11, 12).

rtt reads the upgrade request itself before picows sees it: each request that
is not a valid upgrade is answered with its status and a short plain-text body,
the connection is closed, nothing is logged at INFO or above, and the server
keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import connect

import rtt
from rtt.listener import HEADER_TIMEOUT

pytestmark = pytest.mark.timeout(60)

MARK = "Sekr1tHeaderValue"
UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
FAILED = b"Failed to open a WebSocket connection: "


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str]
    body: bytes


async def ask(address: tuple[str, int], request: bytes) -> Answer:
    """Send ``request`` and read the whole answer up to the server's EOF (``status`` None: no answer)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(HEADER_TIMEOUT + 5):
            raw = await reader.read()
    finally:
        writer.close()
    if not raw:
        return Answer(None, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body), raw
    assert headers["Connection"] == "close"
    return Answer(int(status), headers, body)


CASES: dict[str, tuple[str, int, bytes, dict[str, str]]] = {
    "garbage request line": (f"{MARK} {MARK}\r\nHost: x\r\n\r\n", 400, b"not a valid HTTP request.", {}),
    "one word": (f"{MARK}\r\n\r\n", 400, b"not a valid HTTP request.", {}),
    "bad HTTP version": (f"GET / HTTP/{MARK}\r\nHost: x\r\n{UPGRADE}\r\n", 400, b"not a valid", {}),
    "space in a header name": (
        f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}Bad Name: {MARK}\r\n\r\n",
        400,
        b"",
        {},
    ),
    "header without a colon": (f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}{MARK}\r\n\r\n", 400, b"", {}),
    "control character": (f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}X-A: {MARK}\x01z\r\n\r\n", 400, b"", {}),
    "bare LF line ends": (f"GET / HTTP/1.1\nHost: x\n{UPGRADE}\n".replace("\r\n", "\n"), 400, b"", {}),
    "a body": (f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}Content-Length: 3\r\n\r\nabc", 400, b"", {}),
    "NUL in the target": (f"GET /\x00x HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n", 400, b"invalid target.", {}),
    "no Host": (f"GET / HTTP/1.1\r\n{UPGRADE}\r\n", 400, b"missing or repeated Host header.", {}),
    "two Hosts": (f"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n{UPGRADE}\r\n", 400, b"Host", {}),
    "version 8": (
        f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE.replace('Version: 13', 'Version: 8')}\r\n",
        426,
        b"unsupported WebSocket version, use 13.",
        {"Sec-WebSocket-Version": "13"},
    ),
    "POST": (f"POST / HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n", 405, b"only GET", {"Allow": "GET"}),
    "HTTP/1.0": (f"GET / HTTP/1.0\r\nHost: x\r\n{UPGRADE}\r\n", 505, b"HTTP/1.1", {}),
    "plain GET": ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, b"expected a WebSocket upgrade.", {}),
    "no key": (
        f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE.replace('Sec-WebSocket-Key', 'X-Key')}\r\n",
        400,
        b"Sec-WebSocket-Key",
        {},
    ),
    "short key": (
        f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE.replace('dGhlIHNhbXBsZSBub25jZQ==', 'c2hvcnQ=')}\r\n",
        400,
        b"Sec-WebSocket-Key",
        {},
    ),
    "non-ASCII key": (
        "GET / HTTP/1.1\r\nHost: x\r\n" + UPGRADE.replace("ZQ==", "ZQ\xe9=") + "\r\n",
        400,
        b"Sec-WebSocket-Key",
        {},
    ),
    "no version": (
        f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE.replace('Sec-WebSocket-Version: 13', 'X-V: 1')}\r\n",
        400,
        b"Sec-WebSocket-Version",
        {},
    ),
    "too many headers": (
        "GET / HTTP/1.1\r\nHost: x\r\n" + "X-A: b\r\n" * 200 + f"{UPGRADE}\r\n",
        431,
        b"too many headers.",
        {},
    ),
    "huge header": (f"GET / HTTP/1.1\r\nHost: x\r\nX-A: {'a' * 20000}\r\n{UPGRADE}\r\n", 431, b"large", {}),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_requests_get_an_answer(name: str, caplog: pytest.LogCaptureFixture) -> None:
    request, status, text, headers = CASES[name]
    caplog.set_level(logging.DEBUG)
    async with rtt.load("picows").server() as server:
        answer = await ask(server.address, request.encode("latin-1"))
        assert answer.status == status
        assert answer.body.startswith(FAILED) and text in answer.body and answer.body.endswith(b"\n")
        assert MARK.encode() not in answer.body
        for key, value in headers.items():
            assert answer.headers[key] == value
        assert not server.sockets and server.stats.connections == 0
        # The server keeps serving.
        async with connect(server.url, compression=None, proxy=None) as conn:
            await conn.send("still here")
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert not [r for r in loud if r.name.startswith("picows") or MARK in r.getMessage()]
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_slow_request_is_closed_without_an_answer_after_the_header_timeout() -> None:
    async with rtt.load("picows").server() as server:
        reader, writer = await asyncio.open_connection(*server.address)
        started = time.monotonic()
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            async with asyncio.timeout(HEADER_TIMEOUT + 5):
                assert await reader.read() == b""
        finally:
            writer.close()
        assert time.monotonic() - started >= HEADER_TIMEOUT - 0.5
        assert not server.sockets


async def test_a_request_still_in_authorize_at_shutdown_gets_503() -> None:
    entered = asyncio.Event()

    async def authorize(handshake: rtt.Handshake) -> bool:
        entered.set()
        await asyncio.Event().wait()
        return True

    server = rtt.load("picows", authorize=authorize).server()
    await server.start()
    request = f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n".encode()
    pending = asyncio.ensure_future(ask(server.address, request))
    await entered.wait()
    await server.close()
    answer = await pending
    assert answer.status == 503 and answer.body == b"Server shutting down\n"


async def test_an_upgrade_among_other_connection_tokens_is_accepted() -> None:
    """``Connection: keep-alive, Upgrade`` (Firefox) opens a socket; its headers are kept as sent."""
    opened: list[rtt.Socket] = []
    connected = asyncio.Event()

    def on_connect(socket: rtt.Socket) -> None:
        opened.append(socket)
        connected.set()

    async with rtt.load("picows").server() as server:
        server.on("connect", on_connect)
        request = (
            "GET /room?x=1 HTTP/1.1\r\nHost: x\r\n"
            + UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive, Upgrade")
            + "X-Extra: yes\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection(*server.address)
        try:
            writer.write(request.encode())
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101 ")
                assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
                await connected.wait()
        finally:
            writer.close()
        socket = opened[0]
        assert socket.path == "/room" and socket.query == {"x": "1"}
        assert socket.headers["Connection"] == "keep-alive, Upgrade" and socket.headers["X-Extra"] == "yes"
