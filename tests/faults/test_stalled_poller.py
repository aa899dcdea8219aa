"""Stalled pollers: long-polling sessions that stop polling while the server keeps sending (SPEC.md 6, 7.1).

A session is opened by hand (its handshake request answered) and then never
polled again. Fed faster than ``outbound_limit`` allows, it is closed as a
``slow consumer`` once its unsent data passes the limit; fed a trickle, it
is closed with ``ping timeout`` within ``ping_interval + ping_timeout``.
Either way the server's memory stays bounded and a healthy client beside it
keeps its round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import pytest

import rtt
from rtt.testing import Recorder, echo, eventually

from .wire_support import open_fds, open_session, rss_bytes

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

CHUNK = 1024
OUTBOUND_LIMIT = 64 * 1024
PING_INTERVAL = 1.0
PING_TIMEOUT = 1.0
#: Generous for a loaded 2-core machine.
MARGIN = 5.0
WAIT = 30.0
#: Pace of the trickle: 5 KiB a second, which takes 12 s to reach the limit, past the ping bound.
TRICKLE_PAUSE = 0.2
#: RSS growth allowed: the limits keep every session's queue at 64 KiB.
RSS_BOUND = 32 * 1024 * 1024
#: Stalled sessions of each round of the soak case, fed by broadcasts.
MANY = 500
ROUNDS = 4


async def _feed(server: rtt.Server[Any], socket_id: str, pause: float) -> int:
    """Send ``CHUNK``-byte messages to one socket until it is gone; the bytes sent."""
    sent = 0
    with contextlib.suppress(rtt.errors.UnknownSocketError, rtt.errors.ConnectionClosed):
        while True:
            await server.send(socket_id, "s" * CHUNK)
            sent += CHUNK
            # Pacing, not ordering: the trickle leaves the session alive until its heartbeat fails.
            await asyncio.sleep(pause)
    return sent


async def _round_trips(client: rtt.Client, label: str, count: int = 3) -> None:
    for i in range(count):
        await client.send(f"{label} {i}")
        assert await asyncio.wait_for(client.recv(), 10) == f"{label} {i}"


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("pause", "expected"),
    [(0.0, rtt.CloseReason.SLOW_CONSUMER), (TRICKLE_PAUSE, rtt.CloseReason.PING_TIMEOUT)],
    ids=["flood", "trickle"],
)
async def test_a_stalled_poller_is_closed_in_bounds_and_others_are_served(
    http_wire: Wire, pause: float, expected: rtt.CloseReason
) -> None:
    transport = http_wire.transport()
    server = transport.server(
        port=0,
        max_message_size=4 * CHUNK,
        outbound_limit=OUTBOUND_LIMIT,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
    )
    async with echo(server):
        rec = Recorder().listen(server, "connect", "disconnect")
        healthy = transport.client(server.url, reconnect=False)
        async with healthy:
            ((healthy_socket,),) = await rec.wait("connect", timeout=WAIT)
            baseline = rss_bytes()
            stalled = await open_session(http_wire, server.url)
            opened = time.monotonic()
            try:
                await rec.wait("connect", count=2, timeout=WAIT)
                (stalled_id,) = set(server.sockets) - {healthy_socket.id}
                feeding = asyncio.create_task(_feed(server, stalled_id, pause))
                while not feeding.done():
                    await _round_trips(healthy, "during")
                    assert time.monotonic() - opened < WAIT, "the stalled session is still open"
                sent = feeding.result()
                took = time.monotonic() - opened
            finally:
                stalled.transport.abort()
            ((socket, reason),) = await rec.wait("disconnect", timeout=WAIT)
            assert socket.id == stalled_id
            assert reason is expected, (reason, sent)
            if expected is rtt.CloseReason.SLOW_CONSUMER:
                # Closed after the send that passed the limit (SPEC 3.6): nothing beyond it was queued.
                assert OUTBOUND_LIMIT < sent <= OUTBOUND_LIMIT + CHUNK, sent
            else:
                assert sent < OUTBOUND_LIMIT, sent
                assert took < PING_INTERVAL + PING_TIMEOUT + MARGIN, f"closed after {took:.1f} s"
            assert rss_bytes() - baseline < RSS_BOUND
            assert stalled_id not in server.sockets and server.stats.drops == 1
            await _round_trips(healthy, "after")
            assert list(server.sockets) == [healthy_socket.id]


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_rounds_of_stalled_pollers_fed_by_broadcasts_are_all_cut_and_leave_nothing_behind(
    http_wire: Wire,
) -> None:
    transport = http_wire.transport()
    server = transport.server(
        port=0,
        max_message_size=4 * CHUNK,
        outbound_limit=OUTBOUND_LIMIT,
        # Heartbeats slower than opening a round of sessions on a loaded machine: the limit cuts them.
        ping_interval=5.0,
        ping_timeout=20.0,
    )
    async with echo(server):
        rec = Recorder().listen(server, "connect", "disconnect")
        healthy = transport.client(server.url, reconnect=False)
        async with healthy:
            ((healthy_socket,),) = await rec.wait("connect", timeout=WAIT)
            await _round_trips(healthy, "warm-up")
            baseline = rss_bytes()
            fds = open_fds()
            after_round = []
            for round_ in range(1, ROUNDS + 1):
                stalled = []
                try:
                    for _ in range(MANY):
                        stalled.append(await open_session(http_wire, server.url))
                    await rec.wait("connect", count=round_ * MANY + 1, timeout=WAIT)
                    peak = rss_bytes()
                    # 64 broadcasts of 2 KiB pass the 64 KiB limit of every stalled session.
                    for i in range(64):
                        await server.broadcast("b" * 2 * CHUNK, exclude=healthy_socket.id)
                        peak = max(peak, rss_bytes())
                        if i % 16 == 0:
                            await _round_trips(healthy, f"during {round_} {i}", 1)
                    closed = await rec.wait("disconnect", count=round_ * MANY, timeout=WAIT)
                finally:
                    for writer in stalled:
                        writer.transport.abort()
                assert {reason for _, reason in closed} == {rtt.CloseReason.SLOW_CONSUMER}
                # MANY sessions at 64 KiB each: a queue that kept growing would pass this.
                assert peak - baseline < MANY * OUTBOUND_LIMIT + RSS_BOUND, (peak - baseline) >> 20
                assert list(server.sockets) == [healthy_socket.id]
                await eventually(lambda: open_fds() <= fds + 2, WAIT, "the stalled sessions' descriptors")
                after_round.append(rss_bytes())
            # Memory after the last round is that of the first: nothing kept per cut session.
            assert after_round[-1] - after_round[0] < RSS_BOUND, [r >> 20 for r in after_round]
            assert server.stats.drops == ROUNDS * MANY
            await _round_trips(healthy, "after")
