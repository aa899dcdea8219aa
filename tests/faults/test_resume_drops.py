"""Resume through 20 drops on every wire: nothing lost, nothing repeated, order kept (SPEC.md 17).

The issue's case (issue 17). A server with ``resume_window`` echoes each
message and pushes a numbered tick to each of its sockets at a steady rate; a
Python client reaches it through the loopback proxy (``rtt.testing.Proxy``)
and sends numbered messages at the same rate. The proxy drops the connection
20 times, alternating a reset of both sides (``sever``) and a black hole whose
client side is cut a moment later while the server side stays silent (the
client comes back before the server has noticed its old connection died).
Afterwards the server has handled every message once and in order, the client
has received every echo and every tick once and in order, the socket kept its
id, and neither side saw the session end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import rtt
from rtt.testing import Proxy, Recorder

from .conftest import PROXY_WIRES, Wire

DROPS = 20
#: Messages each way per second, and the pause between drops.
RATE = 50
BETWEEN = 0.5
#: The server notices a silent connection within ping_interval + ping_timeout.
PING = 0.4
#: How long after a black hole starts its client side is cut.
CUT_AFTER = 0.3
POLICY = {"min_delay": 0.02, "max_delay": 0.1, "jitter": 0}
WAIT = 20.0


@pytest.fixture(params=PROXY_WIRES, ids=[wire.id for wire in PROXY_WIRES])
def drop_wire(request: pytest.FixtureRequest) -> Wire:
    wire: Wire = request.param
    return wire


async def until(
    check: Callable[[], bool], what: str, timeout: float = WAIT, detail: Callable[[], object] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} {detail()}")
        await asyncio.sleep(0.01)


class Traffic:
    """The server's and the client's sides of the numbered traffic."""

    def __init__(self, server: rtt.Server[Any]) -> None:
        self.server = server
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
        """A numbered tick to every socket of the server, RATE a second."""
        while True:
            for socket_id in list(self.server.sockets):
                number = self.ticks_sent.get(socket_id, 0) + 1
                try:
                    await self.server.send(socket_id, f"t:{number}")
                except Exception as exc:
                    self.errors.append(exc)
                else:
                    self.ticks_sent[socket_id] = number
            await asyncio.sleep(1 / RATE)

    async def send_numbers(self, client: rtt.Client) -> None:
        """``c-1``, ``c-2``, ... from the client, RATE a second."""
        while True:
            self.sent += 1
            await client.send(f"c-{self.sent}")
            await asyncio.sleep(1 / RATE)


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


# Long-polling takes the longest: up to 3 attempts a drop, a TCP connection per poll (SPEC.md 12.3).
@pytest.mark.timeout(240)
async def test_twenty_drops_lose_and_repeat_nothing_in_either_direction(drop_wire: Wire) -> None:
    transport = drop_wire.transport()
    server = transport.server(port=0, resume_window=30, ping_interval=PING, ping_timeout=PING)
    traffic = Traffic(server)
    server_events = Recorder().listen(server, "connect", "away", "back", "disconnect")
    async with server, Proxy(*server.address) as proxy:
        client = transport.client(proxy.url_for(server.url), reconnect=POLICY, close_timeout=1)
        client_events = Recorder().listen(client, "close", "reconnected", "session_lost")
        client.on("message", traffic.received.append)
        async with client:
            ((socket,),) = await server_events.wait("connect", timeout=WAIT)
            await until(lambda: client.socket_id == socket.id, "the client's welcome")
            async with running(traffic.push_ticks(), traffic.send_numbers(client)):
                attempts = 0
                while len(client_events.of("close")) < DROPS:
                    drops = len(client_events.of("close"))
                    attempts += 1
                    assert attempts <= 3 * DROPS, f"{attempts} attempts made only {drops} drops"
                    await asyncio.sleep(BETWEEN)
                    await drop(proxy, attempts)
                    # Between two polls no connection may be open, and an idle keep-alive connection
                    # cut is only opened again: such an attempt drops nothing, and the next one tries.
                    with contextlib.suppress(AssertionError):
                        await client_events.wait("close", count=drops + 1, timeout=CUT_AFTER + 1.0)
                    closes = len(client_events.of("close"))
                    await client_events.wait("reconnected", count=closes, timeout=WAIT)
                await asyncio.sleep(BETWEEN)
            # The traffic stopped: everything sent arrives, once.
            sent, ticks = traffic.sent, traffic.ticks_sent.get(socket.id, 0)
            await until(lambda: len(traffic.handled) >= sent, f"the server to handle {sent} messages")
            expected = {f"e:c-{k}" for k in range(1, sent + 1)} | {f"t:{k}" for k in range(1, ticks + 1)}

            def missing() -> list[str | bytes]:
                return sorted(expected - set(traffic.received), key=str)

            await until(lambda: not missing(), "every echo and tick at the client", detail=missing)
            await asyncio.sleep(0.2)  # a duplicate would arrive now
            assert client.socket_id == socket.id
        await server_events.wait("disconnect", timeout=WAIT)
    assert traffic.errors == []
    assert traffic.handled == [f"c-{k}" for k in range(1, sent + 1)]
    echoes = [m for m in traffic.received if isinstance(m, str) and m.startswith("e:")]
    tick_list = [m for m in traffic.received if isinstance(m, str) and m.startswith("t:")]
    assert echoes == [f"e:c-{k}" for k in range(1, sent + 1)]
    assert tick_list == [f"t:{k}" for k in range(1, ticks + 1)]
    assert len(traffic.received) == len(echoes) + len(tick_list)
    # One session throughout: every drop was an away and a back, and nothing ended it.
    drops = len(client_events.of("close")) - 1  # the last is the client's own close
    assert drops >= DROPS
    assert len(client_events.of("reconnected")) == drops
    assert len(server_events.of("connect")) == 1
    # A resume attempt that dropped after the server took it is resumed again: more backs than drops.
    assert len(server_events.of("back")) >= drops
    assert len(server_events.of("away")) >= drops
    assert [reason for (_socket, reason) in server_events.of("disconnect")] == [rtt.CloseReason.CLIENT_CLOSED]
    assert client_events.of("session_lost") == []
