"""A silent peer: a client that stops reading is dropped when the ping timeout expires (SPEC.md 6, 7.1).

Issue 12, defect 3: rtt-ws waited for a closing handshake the silent peer
would never answer, so it dropped the peer only after ``ping_interval +
ping_timeout + close_timeout``. SPEC 6 says a ping timeout drops the
connection at once, on every transport.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import pytest

import rtt
from rtt.testing import Recorder, eventually

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

PING_INTERVAL = 1.0
PING_TIMEOUT = 1.0
#: Long enough that waiting for a closing handshake would break the time bound below.
CLOSE_TIMEOUT = 5.0
#: Generous for a loaded 2-core machine, and still well below PING_INTERVAL + PING_TIMEOUT + CLOSE_TIMEOUT.
MARGIN = 2.5


@pytest.mark.timeout(60)
async def test_a_silent_peer_is_dropped_when_the_ping_timeout_expires(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    transport = wire.transport()
    server = transport.server(
        port=0, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, close_timeout=CLOSE_TIMEOUT
    )
    async with server:
        rec = Recorder().listen(server, "disconnect")
        healthy = transport.client(server.url, reconnect=False, close_timeout=1)
        silent = transport.client(server.url, reconnect=False, close_timeout=1)
        async with healthy, silent:
            await eventually(lambda: len(server.sockets) == 2)
            caplog.set_level(logging.INFO)
            silent.pause_reading()
            started = time.monotonic()
            ((socket, reason),) = await rec.wait("disconnect", timeout=PING_INTERVAL + PING_TIMEOUT + 15)
            took = time.monotonic() - started
            assert reason is rtt.CloseReason.PING_TIMEOUT
            assert took < PING_INTERVAL + PING_TIMEOUT + MARGIN, f"dropped after {took:.1f} s"
            assert socket.id not in server.sockets and len(server.sockets) == 1
            assert healthy.state is rtt.ClientState.OPEN
            assert server.stats.drops == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
