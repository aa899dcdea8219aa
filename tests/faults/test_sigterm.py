"""SIGTERM under load: a real ``rtt serve`` process shuts down gracefully (SPEC.md 3.9, 6, 16.2).

Many clients keep echo round trips going; SIGTERM then closes every socket
with ``shutdown`` (which each client reads as its close reason), the process
exits with status 0 within ``close_timeout`` and a margin, says ``rtt:
shutting down`` and prints no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import rtt

from .process_support import ServeProcess

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

CLOSE_TIMEOUT = 2.0
#: Interpreter teardown and a loaded 2-core machine.
MARGIN = 8.0
WAIT = 60.0


async def _under_load(wire: Wire, tmp_path: Path, count: int) -> None:
    server = ServeProcess(wire, tmp_path, close_timeout=CLOSE_TIMEOUT, ping_interval=5, ping_timeout=10)
    url = await server.start()
    transport = wire.transport()
    clients = [
        transport.client(url, reconnect=False, connect_timeout=WAIT, close_timeout=CLOSE_TIMEOUT)
        for _ in range(count)
    ]
    busy = asyncio.Event()
    trips = [0] * count

    async def talk(index: int, client: rtt.Client) -> None:
        """Round trips until the connection ends; each client counts as busy after its third."""
        with contextlib.suppress(rtt.errors.ConnectionClosed, rtt.errors.StateError):
            while True:
                await client.send(f"{index} {trips[index]}")
                assert await client.recv() == f"{index} {trips[index]}"
                trips[index] += 1
                if trips[index] == 3 and min(trips) >= 3:
                    busy.set()

    talking: list[asyncio.Task[None]] = []
    try:
        for start in range(0, count, 50):
            await asyncio.gather(*(client.connect() for client in clients[start : start + 50]))
        talking = [asyncio.create_task(talk(i, client)) for i, client in enumerate(clients)]
        await asyncio.wait_for(busy.wait(), WAIT)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        status = await server.wait(CLOSE_TIMEOUT + MARGIN)
        took = time.monotonic() - started
        reasons = await asyncio.wait_for(asyncio.gather(*(c.wait_closed() for c in clients)), WAIT)
        await asyncio.wait_for(asyncio.gather(*talking), WAIT)
    finally:
        for task in talking:
            task.cancel()
        await asyncio.gather(*talking, return_exceptions=True)
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        await server.kill()
    stderr = server.stderr.decode()
    assert status == 0, stderr
    assert took < CLOSE_TIMEOUT + MARGIN, f"exited {took:.1f} s after SIGTERM"
    assert "rtt: shutting down" in stderr
    assert "Traceback" not in stderr, stderr
    assert set(reasons) == {rtt.CloseReason.SHUTDOWN}, {r: reasons.count(r) for r in set(reasons)}


@pytest.mark.timeout(120)
async def test_sigterm_under_load_closes_every_client_with_shutdown_and_exits_0_in_time(
    wire: Wire, tmp_path: Path
) -> None:
    await _under_load(wire, tmp_path, 30)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_sigterm_under_heavy_load_closes_every_client_with_shutdown_and_exits_0_in_time(
    wire: Wire, tmp_path: Path
) -> None:
    await _under_load(wire, tmp_path, 200)
