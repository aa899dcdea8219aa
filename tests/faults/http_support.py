"""Raw HTTP requests to a standalone server of each transport, for the HTTP-level fault cases.

A case here is about the HTTP server in front of the transport (SPEC.md
3.11), not about a wire, so it runs once per transport: the request goes to
the URL where each server takes a handshake (a WebSocket upgrade for ws and
picows, a poll for engineio, ``/info`` for sockjs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any
from urllib.parse import urlsplit

import rtt

TRANSPORTS = ("ws", "picows", "engineio", "sockjs")
#: The transports whose server is a plain WebSocket server (no HTTP of its own but the upgrade).
PLAIN_TRANSPORTS = ("ws", "picows")
#: The transports that close a frame their WebSocket library's own parser rejects (an unmasked frame,
#: a reserved opcode, a single frame over ``max_message_size``) with RFC 6455's code but the
#: library's text, not rtt's: picows has no hook to word them (SPEC.md 12.5). rtt's ``from_wire``
#: reads the code alone, so an rtt client sees the same reason on every wire.
NATIVE_CLOSE_TEXT = ("picows",)
AIOHTTP_TRANSPORTS = ("engineio", "sockjs")
ANSWER_TIMEOUT = 10.0

UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def handshake_target(name: str, url: str) -> tuple[str, str]:
    """``(path?query, extra header lines)`` of a request each server would take as a handshake."""
    path = urlsplit(url).path or "/"
    if name in PLAIN_TRANSPORTS:
        return path, UPGRADE
    if name == "engineio":
        return path + "?EIO=4&transport=polling", ""
    return path + "/info", ""


async def status_of(address: tuple[str, int], request: bytes) -> int | None:
    """The status the server answers ``request`` with, or ``None`` if it closed without one.

    Fails if neither happens within :data:`ANSWER_TIMEOUT` (a hang).
    """
    reader, writer = await asyncio.open_connection(*address)
    try:
        try:
            writer.write(request)
            await writer.drain()
        except ConnectionError:
            pass  # the server may refuse before the whole request is in; its answer is still there
        async with asyncio.timeout(ANSWER_TIMEOUT):
            try:
                line = await reader.readline()
            except ConnectionError:
                return None
        if not line:
            return None
        version, status, *_ = line.decode("latin-1").split(" ", 2)
        assert version.startswith("HTTP/1."), line
        return int(status)
    finally:
        writer.close()


async def each_at_once(cases: Mapping[str, Awaitable[None]]) -> None:
    """Await every case at once; fail with each one's failure, named after its key.

    The cases that use it wait out a deadline of :data:`rtt.listener.HEADER_TIMEOUT`
    (10 s) each: one after the other they cost that per transport, at once they cost
    it once. None stops another: each runs to its end, and every failure is reported.
    """
    results = await asyncio.gather(*cases.values(), return_exceptions=True)
    failures: list[BaseException] = []
    for name, result in zip(cases, results, strict=True):
        if isinstance(result, BaseException):
            result.add_note(f"(in the case of {name})")
            failures.append(result)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise BaseExceptionGroup(f"{len(failures)} of {len(results)} cases failed", failures)


async def echo_once(transport: rtt.Transport, url: str, text: str, timeout: float = 10.0) -> None:
    """A real client connects, sends ``text`` and gets it back."""
    async with asyncio.timeout(timeout):
        async with transport.client(url, reconnect=False) as client:
            await client.send(text)
            assert await client.recv() == text


def echo(server: rtt.Server[Any]) -> None:
    """Make ``server`` send every message back to its sender."""

    @server.on("message")
    async def send_back(socket: rtt.Socket, data: str | bytes) -> None:
        await server.send(socket.id, data)


def text_of(record: logging.LogRecord) -> str:
    """Everything a record would print: its message and its traceback."""
    text = record.getMessage()
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text


#: Seconds between two bytes of a trickling body (:func:`trickle_post`).
TRICKLE = 2.0


async def trickle_post(
    url: str, content_type: str, filler: bytes, *, first: bytes = b"", give_up: float = 15.0
) -> tuple[int | None, float, bool]:
    """POST to ``url`` a body announced as 1000 bytes: ``first``, then ``filler`` every :data:`TRICKLE` s.

    Returns the answer's status (``None`` if none came within ``give_up``
    seconds), the seconds it took, and whether the server then closed the
    connection (within 5 s).
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    start = time.monotonic()
    try:
        writer.write(
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n".encode()
            + first
        )
        line = b""
        while time.monotonic() - start < give_up:
            with contextlib.suppress(TimeoutError):
                line = await asyncio.wait_for(reader.readline(), TRICKLE)
                break
            with contextlib.suppress(ConnectionError):
                writer.write(filler)
        elapsed = time.monotonic() - start
        if not line:
            return None, elapsed, False
        status = int(line.split(b" ", 2)[1])
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionError):
                while await reader.read(65536):
                    pass
        return status, elapsed, True
    finally:
        writer.close()
