"""A scripted resume client for the server's tests: the test reads and writes the wire itself.

It speaks to a :class:`~rtt_mock.MockServer` over one mock link, so a test
chooses the handshake's query (``rtt_resume=...``) and sees every frame,
controls included, exactly as rtt's own client would (SPEC.md 17.2).
"""

from __future__ import annotations

import asyncio
import itertools

from rtt import Close, CloseReason
from rtt.resume import Welcome, hello_text
from rtt_mock import Link, MockServer
from rtt_mock.network import PONG, Frame, Request

_ports = itertools.count(61000)


class Closed(Exception):
    """The server ended the connection; ``reason`` and ``close`` are what it sent."""

    def __init__(self, reason: CloseReason | None, close: Close | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close = close


class Raw:
    """One connection to a mock server whose every frame the test handles."""

    def __init__(self, server: MockServer, query: str = "") -> None:
        self.server = server
        self.query = query
        self.link = Link(("127.0.0.1", next(_ports)))
        self.received = 0
        """Data messages read (controls excluded): the client's ``n``."""

    async def open(self) -> None:
        refused = await self.server.accept(self.link, Request("/", self.query, ()))
        assert refused is None, refused

    def send(self, data: str | bytes) -> None:
        self.link.to_server.put(Frame("message", data))

    async def frame(self, timeout: float = 5.0) -> Frame:
        """The next message or close frame (pings are answered)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.link.to_client.get()
                if frame.kind == "ping":
                    self.link.to_server.put(PONG)
                    continue
                if frame.kind == "close":
                    self.link.to_server.put(Frame("close", reason=frame.reason))  # acknowledge
                return frame

    async def recv(self, timeout: float = 5.0) -> str | bytes:
        """The next message, control or data, as it is on the wire."""
        frame = await self.frame(timeout)
        if frame.kind == "close":
            raise Closed(frame.reason, frame.close)
        return frame.data

    async def data(self, timeout: float = 5.0) -> str | bytes:
        """The next data message, unescaped; acks on the way are skipped."""
        while True:
            message = await self.recv(timeout)
            if isinstance(message, str) and message.startswith("\x00"):
                if message.startswith("\x00\x00"):
                    message = message[1:]
                else:
                    assert message.startswith("\x00A"), message
                    continue
            self.received += 1
            return message

    async def closed(self, timeout: float = 5.0) -> Closed:
        """Read until the server closes; what it closed with."""
        while True:
            try:
                await self.recv(timeout)
            except Closed as closed:
                return closed

    async def welcome(self) -> Welcome:
        welcome = Welcome.parse(await self.recv())
        assert welcome is not None
        return welcome

    def hello(self, welcome: Welcome) -> None:
        self.send(hello_text(welcome.nonce))

    def sever(self) -> None:
        self.link.sever()


async def start(server: MockServer, value: str = "1", *, hello: bool = True) -> tuple[Raw, Welcome]:
    """A connection that asks for resume with ``value``; returns it with its welcome (hello sent)."""
    raw = Raw(server, f"rtt_resume={value}")
    await raw.open()
    welcome = await raw.welcome()
    if hello:
        raw.hello(welcome)
    return raw, welcome


def resume_value(welcome: Welcome, received: int, token: str | None = None) -> str:
    """The ``rtt_resume`` value that resumes ``welcome``'s session having read ``received`` messages."""
    return f"{welcome.id}.{token or welcome.token}.{received}"
