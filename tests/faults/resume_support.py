"""What resume's drop cases share (SPEC.md 17.6): the server's numbered traffic, the drops, waits.

``test_resume_drops.py`` (the Python client) and ``test_resume_browser.py`` (a Chromium page) run
numbered messages both ways through 20 drops of the loopback proxy; both use these.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import rtt
from rtt.testing import Proxy, eventually

DROPS = 20
#: Messages each way per second.
RATE = 50
#: The rate over long-polling and xhr, where each message may cost an HTTP request and a TCP
#: connection (SPEC.md 12.3, 12.4): at 50 a second each way, about 3,500 connections over the
#: drops, too slow under coverage on a loaded machine.
HTTP_RATE = 20
#: The server notices a silent connection within ping_interval + ping_timeout.
PING = 0.4
#: How long after a black hole starts its client side is cut.
CUT_AFTER = 0.3
WAIT = 20.0


async def until(
    check: Callable[[], bool], what: str, timeout: float = WAIT, detail: Callable[[], object] = str
) -> None:
    """:func:`rtt.testing.eventually`, adding ``detail()`` (what is still lacking) when it times out."""
    try:
        await eventually(check, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc} {detail()}") from None


class Traffic:
    """The server's and the client's sides of the numbered traffic."""

    def __init__(self, server: rtt.Server[Any], rate: float = RATE) -> None:
        self.server = server
        self.rate = rate
        self.handled: list[str] = []
        self.ticks_sent: dict[str, int] = {}
        self.errors: list[BaseException] = []
        self.received: list[str | bytes] = []
        self.sent = 0
        server.on("message", self._echo)

    async def _echo(self, socket: rtt.Socket, data: str | bytes) -> None:
        assert isinstance(data, str)
        self.handled.append(data)
        try:
            await self.server.send(socket.id, "e:" + data)
        except Exception as exc:  # recorded: a send to a resumable socket must never fail
            self.errors.append(exc)

    async def push_ticks(self) -> None:
        """A numbered tick to every socket of the server, ``rate`` a second."""
        while True:
            for socket_id in list(self.server.sockets):
                number = self.ticks_sent.get(socket_id, 0) + 1
                try:
                    await self.server.send(socket_id, f"t:{number}")
                except Exception as exc:
                    self.errors.append(exc)
                else:
                    self.ticks_sent[socket_id] = number
            await asyncio.sleep(1 / self.rate)

    async def send_numbers(self, client: rtt.Client) -> None:
        """``c-1``, ``c-2``, ... from the client, ``rate`` a second."""
        while True:
            self.sent += 1
            await client.send(f"c-{self.sent}")
            await asyncio.sleep(1 / self.rate)


@contextlib.asynccontextmanager
async def running(*coroutines: Any) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def drop(proxy: Proxy, number: int) -> None:
    """Attempt number ``number``: a sever on odd numbers, a black hole cut on the client side on even."""
    if number % 2:
        proxy.sever()
        return
    proxy.blackhole(client_side_cut_after=CUT_AFTER)
    # New connections go through again before the cut, so the client's next attempt is not lost.
    await asyncio.sleep(CUT_AFTER * 0.8)
    proxy.restore()
