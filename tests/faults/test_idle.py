"""Hundreds of idle connections (SPEC.md 3.9, 6, 7.1: heartbeats keep them, shutdown ends them in time).

A bounded number of rtt clients connect and stay idle across two
heartbeats: none is dropped. ``server.close()`` then ends every one of them
with ``shutdown`` within ``close_timeout`` and a margin, and each client
reads ``shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import pytest

import rtt
from rtt.testing import Recorder, eventually

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

COUNT = 300
BATCH = 50
PING_INTERVAL = 1.0
PING_TIMEOUT = 3.0
CLOSE_TIMEOUT = 3.0
#: Generous for 300 connections on a loaded 2-core machine.
MARGIN = 10.0
WAIT = 60.0


# A soak case: 300 connections per wire, too many beside the fault suite's Chromium and drop cases
# on its parallel workers (connecting them over Engine.IO long-polling then passed a minute).
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_idle_connections_survive_two_heartbeats_and_close_at_shutdown(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transport = wire.transport()
    server = transport.server(
        port=0, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, close_timeout=CLOSE_TIMEOUT
    )
    await server.start()
    clients: list[rtt.Client] = [
        transport.client(server.url, reconnect=False, connect_timeout=WAIT, close_timeout=1)
        for _ in range(COUNT)
    ]
    try:
        rec = Recorder().listen(server, "disconnect")
        for start in range(0, COUNT, BATCH):
            await asyncio.gather(*(client.connect() for client in clients[start : start + BATCH]))
        await eventually(lambda: len(server.sockets) == COUNT, WAIT, f"{COUNT} sockets")
        # Idle across two heartbeats: the waiting is the case itself, not an ordering of actions.
        await asyncio.sleep(2 * PING_INTERVAL + 0.5)
        assert not rec.events, rec.events[:3]
        assert len(server.sockets) == COUNT
        assert all(client.state is rtt.ClientState.OPEN for client in clients)
        started = time.monotonic()
        await asyncio.wait_for(server.close(), CLOSE_TIMEOUT + MARGIN)
        took = time.monotonic() - started
        assert took < CLOSE_TIMEOUT + MARGIN, f"close() took {took:.1f} s"
        reasons = {reason for _, reason in rec.of("disconnect")}
        assert len(rec.of("disconnect")) == COUNT and reasons == {rtt.CloseReason.SHUTDOWN}, reasons
        assert server.stats.drops == 0
        closed = await asyncio.wait_for(asyncio.gather(*(client.wait_closed() for client in clients)), WAIT)
        assert set(closed) == {rtt.CloseReason.SHUTDOWN}, set(closed)
    finally:
        await server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(client.close() for client in clients)), WAIT)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
