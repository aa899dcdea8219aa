"""An in-memory network: listeners by address, and links with fault injection.

A :class:`Link` is one connection: two ordered pipes of frames. Faults are
injected on a link: ``drop`` loses the next messages, ``delay`` holds each
message back, ``stall`` makes the client stop reading and stop answering
heartbeats (a hung peer), ``sever`` cuts the link abruptly.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import itertools
from dataclasses import dataclass
from typing import Literal, TypeAlias

from rtt import Close, CloseReason
from rtt.codec import message_size

__all__ = ["Frame", "Link", "MockNetwork", "Pipe", "network"]

Direction: TypeAlias = Literal["to_client", "to_server"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit on a pipe: a message, a heartbeat, or the end of the link."""

    kind: Literal["message", "ping", "pong", "close"]
    data: str | bytes = ""
    reason: CloseReason | None = None
    close: Close | None = None
    """An application's close (code and text), on a close frame that carries one."""


PING = Frame("ping")
PONG = Frame("pong")


class Pipe:
    """An ordered, one-way queue of frames that counts the message bytes it holds."""

    def __init__(self) -> None:
        self._frames: collections.deque[tuple[float, int, Frame]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.buffered = 0
        self.drop_next = 0
        self.delay = 0.0
        self.stalled = False
        self.ended: CloseReason | None = None

    def put(self, frame: Frame) -> None:
        if self.ended is not None:
            return
        size = 0
        if frame.kind == "message":
            if self.drop_next:
                self.drop_next -= 1
                return
            size = message_size(frame.data)
            self.buffered += size
        due = asyncio.get_running_loop().time() + self.delay if self.delay else 0.0
        self._frames.append((due, size, frame))
        self._wake()

    async def get(self) -> Frame:
        """The next frame; once the pipe is cut, a close frame with the cut's reason."""
        loop = asyncio.get_running_loop()
        while True:
            if self.ended is not None:
                return Frame("close", reason=self.ended)
            if self._frames and not self.stalled:
                due, size, frame = self._frames[0]
                # Only delayed frames carry a due time, so the clock is read only for them.
                wait = due - loop.time() if due else 0.0
                if wait <= 0:
                    self._frames.popleft()
                    self.buffered -= size
                    return frame
                await asyncio.sleep(wait)
                continue
            self._waiter = loop.create_future()
            await self._waiter

    def cut(self, reason: CloseReason) -> None:
        """End the pipe now: queued frames are lost, readers see ``reason``."""
        if self.ended is None:
            self.ended = reason
            self._frames.clear()
            self.buffered = 0
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Link:
    """One in-memory connection between a mock client and a mock server."""

    def __init__(self, client_address: tuple[str, int]) -> None:
        self.client_address = client_address
        self.to_client = Pipe()
        self.to_server = Pipe()
        self.ping_sent: float | None = None
        self.finished = asyncio.Event()

    def _pipe(self, direction: Direction) -> Pipe:
        return self.to_client if direction == "to_client" else self.to_server

    # Fault injection

    def drop(self, count: int = 1, direction: Direction = "to_client") -> None:
        """Lose the next ``count`` messages travelling in ``direction``."""
        self._pipe(direction).drop_next += count

    def set_delay(self, seconds: float, direction: Direction = "to_client") -> None:
        """Hold each later message in ``direction`` back by ``seconds`` (order is kept)."""
        self._pipe(direction).delay = seconds

    def stall(self) -> None:
        """The client stops reading: messages pile up and heartbeats go unanswered."""
        self.to_client.stalled = True

    def resume(self) -> None:
        """Undo :meth:`stall`."""
        self.to_client.stalled = False
        self.to_client._wake()

    def sever(self) -> None:
        """Cut the link abruptly; both ends see ``transport error``."""
        self.to_client.cut(CloseReason.TRANSPORT_ERROR)
        self.to_server.cut(CloseReason.TRANSPORT_ERROR)

    @property
    def closed(self) -> bool:
        """Whether either direction has ended."""
        return self.to_client.ended is not None or self.to_server.ended is not None


@dataclass(frozen=True, slots=True)
class Request:
    """What a mock client presents when it connects."""

    path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]


class MockNetwork:
    """Listeners by ``(host, port)``; port 0 picks a free one, as the OS would."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, int], object] = {}
        self._ports = itertools.count(40000)
        self._client_ports = itertools.count(50000)

    def bind(self, host: str, port: int, listener: object) -> tuple[str, int]:
        if port == 0:
            port = next(p for p in self._ports if (host, p) not in self._listeners)
        if (host, port) in self._listeners:
            raise OSError(errno.EADDRINUSE, f"address already in use: {host}:{port}")
        self._listeners[(host, port)] = listener
        return host, port

    def unbind(self, address: tuple[str, int]) -> None:
        self._listeners.pop(address, None)

    def listener(self, host: str, port: int) -> object:
        try:
            return self._listeners[(host, port)]
        except KeyError:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"connection refused: {host}:{port}") from None

    def client_address(self) -> tuple[str, int]:
        return "127.0.0.1", next(self._client_ports)


#: The network every :class:`~rtt_mock.MockTransport` uses unless given another.
network = MockNetwork()
