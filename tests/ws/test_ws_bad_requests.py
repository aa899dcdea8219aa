"""Requests to the ws server that are no WebSocket handshake get an HTTP answer (SPEC.md 3.11, 12.2).

Raw requests over a socket on 127.0.0.1: a request websockets cannot parse is
answered 400 with a short plain-text body (websockets itself closed without a
word), one it parses but that is no upgrade gets a 4xx saying what is wrong,
and each is at most one INFO line, without a traceback or any of its bytes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest
from websockets.http11 import Request

import rtt

pytestmark = pytest.mark.timeout(60)

MARK = "Sekr1tHeaderValue"
UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
ANSWER_TIMEOUT = 10.0
# websockets 15 parses only "GET ... HTTP/1.1" (and decodes a target leniently): another method or
# version is a request it cannot parse, which rtt answers 400 (see SPEC.md 12.2).
PARSES_METHODS = "method" in Request.__dataclass_fields__


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str]
    body: bytes


async def ask(address: tuple[str, int], request: str, *, half_close: bool = False) -> Answer:
    """Send ``request`` (latin-1) and read the whole answer up to the server's EOF.

    ``status`` is ``None`` when the server closed without answering. Fails if
    the server neither answers nor closes within :data:`ANSWER_TIMEOUT`.
    """
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request.encode("latin-1"))
        await writer.drain()
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(ANSWER_TIMEOUT):
            raw = await reader.read()  # until the server closes: it never keeps the connection
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
    return Answer(int(status), headers, body)


def loud(records: list[logging.LogRecord]) -> list[str]:
    """What was logged at INFO or above."""
    return [record.getMessage() for record in records if record.levelno >= logging.INFO]


# Requests websockets cannot parse at all.
UNPARSABLE = {
    "garbage request line": f"{MARK} {MARK}\r\nHost: x\r\n\r\n",
    "one word": f"{MARK}\r\n\r\n",
    "bad HTTP version": f"GET / HTTP/{MARK}\r\nHost: x\r\n{UPGRADE}\r\n",
    "space in a header name": f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}Bad Name: {MARK}\r\n\r\n",
    "header line without a colon": f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}{MARK}\r\n\r\n",
    "control character in a value": f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}X-A: {MARK}\x01z\r\n\r\n",
    "obsolete line folding": f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}X-A: a\r\n {MARK}\r\n\r\n",
    "non-ASCII target": f"GET /\xe9{MARK} HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n",
    "bare LF line ends": f"GET / HTTP/1.1\nHost: x\n{UPGRADE.replace(chr(13), '')}X-A: {MARK}\n\n",
    "a body": f"POST / HTTP/1.1\r\nHost: x\r\n{UPGRADE}Content-Length: 6\r\n\r\n{MARK[:6]}",
    "chunked body": f"POST / HTTP/1.1\r\nHost: x\r\n{UPGRADE}Transfer-Encoding: chunked\r\n\r\nZZ{MARK}\r\n",
}


@pytest.mark.parametrize("case", UNPARSABLE)
async def test_an_unparsable_request_is_answered_400(case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with rtt.load("ws").server("127.0.0.1", 0) as server:
        caplog.clear()
        answer = await ask(server.address, UNPARSABLE[case])
        assert answer.status == 400, answer
        assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert answer.headers["Connection"] == "close"
        expected = b"Failed to open a WebSocket connection: not a valid HTTP request.\n"
        if case == "non-ASCII target" and not PARSES_METHODS:
            expected = b"Failed to open a WebSocket connection: invalid target.\n"
        assert answer.body == expected
        # One INFO line with the status (websockets 15 words it "connection rejected"); no
        # traceback anywhere, no byte of the request above DEBUG.
        (line,) = loud(caplog.records)
        assert line.endswith(" (400 Bad Request)"), line
        assert [record for record in caplog.records if record.exc_info] == []
        assert not [r for r in caplog.records if MARK in r.getMessage() and r.levelno > logging.DEBUG]


# Requests websockets parses that are no WebSocket handshake: (request, status, headers the answer has).
NOT_AN_UPGRADE = {
    "plain GET": ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, {"Upgrade": "websocket"}),
    "Upgrade without Connection": ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 426, {}),
    "no Sec-WebSocket-Key": (
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n",
        400,
        {},
    ),
    "Sec-WebSocket-Version 8": (
        f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE.replace('Version: 13', 'Version: 8')}\r\n",
        426,
        {"Sec-WebSocket-Version": "13"},  # RFC 6455 4.4: name the version the server speaks
    ),
    "no Host": (f"GET / HTTP/1.1\r\n{UPGRADE}\r\n", 400, {}),
    "two Hosts": (f"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n{UPGRADE}\r\n", 400, {}),
    "NUL in the target": (f"GET /a\x00{MARK} HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n", 400, {}),
    "control character in the target": (f"GET /a\x7f{MARK} HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n", 400, {}),
    "POST": (f"POST / HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n", 405, {"Allow": "GET"}),
    "HEAD": ("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 405, {"Allow": "GET"}),
    "HTTP/1.0": (f"GET / HTTP/1.0\r\nHost: x\r\n{UPGRADE}\r\n", 505, {}),
}


@pytest.mark.parametrize("case", NOT_AN_UPGRADE)
async def test_a_request_that_is_no_upgrade_gets_a_clear_status(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    request, status, headers = NOT_AN_UPGRADE[case]
    if case in ("POST", "HEAD", "HTTP/1.0") and not PARSES_METHODS:
        status, headers = 400, {}
    caplog.set_level(logging.DEBUG)
    authorized: list[rtt.Handshake] = []
    async with rtt.load("ws").server("127.0.0.1", 0, authorize=authorized.append) as server:
        caplog.clear()
        answer = await ask(server.address, request)
        assert answer.status == status, answer
        assert headers.items() <= answer.headers.items(), answer.headers
        assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
        body = answer.body.decode()
        assert body.startswith("Failed to open a WebSocket connection: ") and len(body) < 200, body
        assert MARK not in body
        (line,) = loud(caplog.records)
        assert f"({status} " in line, line
        assert MARK not in line
        assert [record for record in caplog.records if record.exc_info] == []
        if case in ("no Host", "two Hosts", "Sec-WebSocket-Version 8") or "target" in case:
            assert authorized == [], "refused before authorize runs"


@pytest.mark.parametrize(
    "sent",
    [pytest.param("", id="nothing"), pytest.param(f"GET / HTTP/1.1\r\nHost: x\r\nX-A: {MARK}", id="part")],
)
async def test_a_peer_leaving_mid_request_is_not_answered(
    sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A TCP health check connects and leaves: no answer, and nothing at INFO for it.
    caplog.set_level(logging.DEBUG)
    async with rtt.load("ws").server("127.0.0.1", 0) as server:
        caplog.clear()
        answer = await ask(server.address, sent, half_close=True)
        assert answer.status is None
        assert loud(caplog.records) == []
        assert [record for record in caplog.records if record.exc_info] == []


async def test_bad_requests_change_nothing_for_real_clients(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    transport = rtt.load("ws")
    async with transport.server("127.0.0.1", 0) as server:

        @server.on("message")
        async def echo(socket: rtt.Socket, data: str | bytes) -> None:
            await server.send(socket.id, data)

        async with transport.client(server.url, reconnect=False) as client:
            for i, request in enumerate([*UNPARSABLE.values(), *(r for r, _, _ in NOT_AN_UPGRADE.values())]):
                assert (await ask(server.address, request)).status is not None
                await client.send(f"message {i}")
                assert await client.recv() == f"message {i}"
        # A WebSocket's own life is not logged at INFO (rtt.server logs its sockets at DEBUG).
        websockets_lines = [r.getMessage() for r in caplog.records if r.name == "websockets.server"]
        assert "connection open" not in websockets_lines and "connection closed" not in websockets_lines
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
