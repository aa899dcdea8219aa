"""Reconnect storms (issue 12, section 4; SPEC.md 4.4): a server that drops every connection at once.

A connection that opens and dies at once must not restart the backoff, or a
crash-looping server is hammered at ``min_delay`` forever. With
``stable_after`` longer than any of these connections lives, the attempts go
on counting across them, the delays keep growing and ``max_attempts`` ends it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

import rtt
from rtt import CloseReason
from rtt.testing import Recorder

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

POLICY = {
    "min_delay": 0.05,
    "max_delay": 0.4,
    "factor": 2,
    "jitter": 0,
    "max_attempts": 5,
    "stable_after": 60,  # longer than the whole test: no connection here counts as stable
}
DELAYS = [0.05, 0.1, 0.2, 0.4, 0.4]
#: Seconds the whole storm may take beyond its delays: six handshakes on a loaded machine.
MARGIN = 20.0


@pytest.mark.timeout(60)
async def test_a_server_dropping_every_connection_is_retried_ever_more_slowly(wire: Wire) -> None:
    transport = wire.transport()
    async with transport.server(port=0) as server:

        def drop_at_once(socket: rtt.Socket) -> None:
            # As a crash-looping or restarting server does: the client is told ``shutdown``,
            # a reason that reconnects (SPEC.md 6). The core's own hook, as a plugin calls it.
            server._begin_close(socket.id, CloseReason.SHUTDOWN)

        server.on("connect", drop_at_once)
        client = transport.client(server.url, reconnect=POLICY)
        rec = Recorder()
        rec.listen(client, "close", "reconnecting", "reconnected", "reconnect_failed")
        started = time.monotonic()
        await client.connect()
        assert await rec.wait("reconnect_failed", timeout=sum(DELAYS) + MARGIN) == [(len(DELAYS),)]
        took = time.monotonic() - started
        assert [attempt for attempt, _ in rec.of("reconnecting")] == [1, 2, 3, 4, 5]
        assert [delay for _, delay in rec.of("reconnecting")] == pytest.approx(DELAYS)
        assert rec.of("reconnected") == [(n,) for n in range(1, 6)]
        assert rec.of("close") == [(CloseReason.SHUTDOWN,)] * 6
        assert client.close_reason is CloseReason.TRANSPORT_ERROR
        assert took >= sum(DELAYS)  # the delays were waited, not skipped
        assert server.stats.connections == 6
