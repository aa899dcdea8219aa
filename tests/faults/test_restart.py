"""A server killed (SIGKILL) and restarted on its port under reconnecting clients (SPEC.md 4.4, 7.2).

Each rtt client reconnects with its policy's backoff: the attempts are
counted, and their delays are the policy's (no jitter, so they are exact;
nothing here measures time). Messages sent while the server is down wait in
the offline queue and arrive first after the reconnection; every message
sent after it arrives too, in order.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import rtt
from rtt.testing import Recorder, eventually

from .process_support import ServeProcess

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

#: stable_after=0: each outage starts again at attempt 1, however soon the last one came (SPEC 4.4).
POLICY = rtt.ReconnectPolicy(min_delay=0.05, max_delay=0.4, factor=2.0, jitter=0.0, stable_after=0.0)
#: Failed attempts each client must have made before the server comes back.
FAILED_ATTEMPTS = 2
OFFLINE = 5
AFTER = 20
WAIT = 60.0


def _expected_delays(count: int) -> list[float]:
    """The policy's first ``count`` delays, by its formula (SPEC 7.2) with no jitter."""
    return [min(POLICY.max_delay, POLICY.min_delay * POLICY.factor**n) for n in range(count)]


async def _round_trip(client: rtt.Client, text: str) -> None:
    await client.send(text)
    assert await asyncio.wait_for(client.recv(), 10) == text


async def _outages(wire: Wire, tmp_path: Path, count: int, outages: int) -> None:
    server = ServeProcess(wire, tmp_path, close_timeout=2.0)
    url = await server.start()
    transport = wire.transport()
    clients = [
        transport.client(url, reconnect=POLICY, connect_timeout=10, offline_queue_size=OFFLINE)
        for _ in range(count)
    ]
    recorders: list[Recorder] = []
    try:
        for client in clients:
            recorders.append(Recorder().listen(client, "reconnecting", "reconnected", "error", "close"))
            await client.connect()
        for i, client in enumerate(clients):
            await _round_trip(client, f"{i} before")
        for outage in range(1, outages + 1):
            marks = [len(rec.events) for rec in recorders]
            server.signal(signal.SIGKILL)
            assert await server.wait(WAIT) == -signal.SIGKILL
            await eventually(
                functools.partial(_all_failed, recorders, marks), WAIT, "failed attempts of every client"
            )
            assert all(client.state is rtt.ClientState.RECONNECTING for client in clients)
            for i, client in enumerate(clients):
                for n in range(OFFLINE):
                    await client.send(f"{i} offline {outage} {n}")  # the offline queue keeps them
            await server.start(server.port)
            await eventually(
                functools.partial(_all_reconnected, recorders, outage), WAIT, "every client reconnected"
            )
            for i, (client, rec) in enumerate(zip(clients, recorders, strict=True)):
                events = rec.events[marks[i] :]
                _check_backoff(events)
                for n in range(OFFLINE):
                    assert await _recv(client, rec) == f"{i} offline {outage} {n}"
            # After the reconnection: every message arrives, in order.
            await asyncio.gather(*(_burst(i, client, outage) for i, client in enumerate(clients)))
            assert all(client.state is rtt.ClientState.OPEN and not client.unsent for client in clients)
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        await server.kill()
    assert "Traceback" not in server.stderr.decode()


def _all_failed(recorders: list[Recorder], marks: list[int]) -> bool:
    """Whether every client failed FAILED_ATTEMPTS attempts since its mark."""
    pairs = zip(recorders, marks, strict=True)
    return all(_errors(rec.events[mark:]) >= FAILED_ATTEMPTS for rec, mark in pairs)


def _all_reconnected(recorders: list[Recorder], outages: int) -> bool:
    return all(len(rec.of("reconnected")) == outages for rec in recorders)


def _errors(events: list[tuple[Any, ...]]) -> int:
    return len([e for e in events if e[0] == "error"])


def _check_backoff(events: list[tuple[Any, ...]]) -> None:
    """One outage's events: close, then attempts 1..n with the policy's delays, n-1 errors, reconnected(n)."""
    assert events[0] == ("close", rtt.CloseReason.TRANSPORT_ERROR), events[:2]
    attempts = [e[1:] for e in events if e[0] == "reconnecting"]
    count = len(attempts)
    assert count > FAILED_ATTEMPTS
    assert [a for a, _ in attempts] == list(range(1, count + 1))
    assert [d for _, d in attempts] == pytest.approx(_expected_delays(count))
    assert _errors(events) == count - 1
    assert [e for e in events if e[0] == "reconnected"] == [("reconnected", count)]


async def _recv(client: rtt.Client, rec: Recorder) -> str | bytes:
    """The next message; a client that ended instead fails the case with its events."""
    try:
        return await asyncio.wait_for(client.recv(), 10)
    except rtt.errors.ConnectionClosed as exc:
        raise AssertionError(f"the client ended ({exc.reason}) after {rec.events}") from exc


async def _burst(i: int, client: rtt.Client, outage: int) -> None:
    sent = [f"{i} after {outage} {n}" for n in range(AFTER)]
    for text in sent:
        await client.send(text)
    received = [await asyncio.wait_for(client.recv(), 10) for _ in itertools.repeat(None, AFTER)]
    assert received == sent


@pytest.mark.timeout(120)
async def test_clients_reconnect_with_backoff_to_a_restarted_server_and_lose_nothing_sent_after(
    wire: Wire, tmp_path: Path
) -> None:
    await _outages(wire, tmp_path, count=10, outages=1)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_many_clients_ride_out_three_kills_and_restarts(wire: Wire, tmp_path: Path) -> None:
    await _outages(wire, tmp_path, count=50, outages=3)
