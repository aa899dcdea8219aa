"""A flooding client beside a healthy one (SPEC.md 3.6, 7.1: ``outbound_limit``, ``slow consumer``).

The flooder sends as fast as it can to an echo server and never reads, so
the echoes pile up on the server. The server closes it as a ``slow
consumer`` once its unsent data passes ``outbound_limit``, its memory stays
bounded (this process's RSS, the server's and clients' alike, with a
generous bound), and a healthy client's echo round trips keep working
during the flood and after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import pytest

import rtt
from rtt.testing import Recorder, echo, eventually

from .wire_support import rss_bytes

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

CHUNK = 16 * 1024
OUTBOUND_LIMIT = 256 * 1024
#: Bounded flood: 64 MiB of echoes, far past any loopback socket buffer and the limit.
FLOOD_COUNT = 4096
#: RSS growth allowed over the whole case: the flood's bytes are 64 MiB, so a leak would show.
RSS_BOUND = 48 * 1024 * 1024
WAIT = 30.0


@pytest.mark.timeout(120)
async def test_a_flooder_is_cut_as_slow_consumer_and_a_healthy_client_keeps_its_round_trips(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transport = wire.transport()
    server = transport.server(
        port=0, max_message_size=CHUNK, outbound_limit=OUTBOUND_LIMIT, ping_interval=5, ping_timeout=20
    )
    async with echo(server):
        rec = Recorder().listen(server, "disconnect")
        healthy = transport.client(server.url, reconnect=False, max_message_size=CHUNK)
        # It never calls recv(): once its inbox of one message is full, it stops reading by itself.
        flooder = transport.client(server.url, reconnect=False, max_message_size=CHUNK, max_queue=1)
        async with healthy, flooder:
            await eventually(lambda: len(server.sockets) == 2, WAIT, "both sockets")
            await healthy.send("warm-up")
            assert await asyncio.wait_for(healthy.recv(), WAIT) == "warm-up"
            baseline = rss_bytes()
            flooded = asyncio.Event()
            sent = 0

            async def flood() -> None:
                nonlocal sent
                chunk = "x" * CHUNK  # text: every wire carries it as is
                try:
                    for _ in range(FLOOD_COUNT):
                        await flooder.send(chunk)
                        sent += 1
                        if sent == 64:
                            flooded.set()
                except (rtt.errors.TransportError, rtt.errors.StateError):
                    pass  # cut: the end of the flood
                finally:
                    flooded.set()

            flooding = asyncio.create_task(flood())
            round_trips = 0
            peak = baseline
            try:
                await eventually(
                    lambda: flooded.is_set() or rec.of("disconnect"),
                    WAIT,
                    f"the flood to start (sent {sent})",
                )
                if flooding.done() and not flooding.cancelled():
                    flooding.result()  # a failure of the flooder's sends, not the cut, fails the case
                started = time.monotonic()
                # Round trips while the flood goes on, until the flooder is cut.
                while not rec.of("disconnect"):
                    await healthy.send(f"rt {round_trips}")
                    assert await asyncio.wait_for(healthy.recv(), 5) == f"rt {round_trips}"
                    round_trips += 1
                    peak = max(peak, rss_bytes())
                    assert time.monotonic() - started < WAIT, f"the flooder was not cut after {sent} sends"
            finally:
                flooding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flooding
            ((socket, reason),) = await rec.wait("disconnect", timeout=WAIT)
            assert reason is rtt.CloseReason.SLOW_CONSUMER, (reason, sent)
            assert socket.id not in server.sockets
            assert server.stats.drops == 1
            assert peak - baseline < RSS_BOUND, f"RSS grew by {(peak - baseline) >> 20} MiB"
            for i in range(5):
                await healthy.send(f"after {i}")
                assert await asyncio.wait_for(healthy.recv(), 5) == f"after {i}"
            assert healthy.state is rtt.ClientState.OPEN and len(server.sockets) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
