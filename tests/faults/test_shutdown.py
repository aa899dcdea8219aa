"""Shutdown under fault: a handshake stuck in a slow ``authorize`` (SPEC.md 3.9, 8.2; issue 12, defect 2).

A handshake still in ``authorize`` when shutdown begins is refused with 503
at once, and ``close()`` stays within ``close_timeout`` however long the hook
would have taken.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

import rtt
from rtt import RejectedError, ServerState

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

CLOSE_TIMEOUT = 2.0
#: Far longer than the shutdown may take: were the hook awaited, ``close()`` would overrun.
AUTHORIZE_TIME = 30.0
#: Generous for a loaded 2-core machine; still far below AUTHORIZE_TIME.
MARGIN = 3.0


@pytest.mark.timeout(60)
async def test_a_handshake_in_a_slow_authorize_is_refused_503_at_shutdown(wire: Wire) -> None:
    authorizing = asyncio.Event()
    finished: list[str] = []

    async def slow_authorize(handshake: rtt.Handshake) -> bool:
        authorizing.set()
        try:
            await asyncio.sleep(AUTHORIZE_TIME)
        except asyncio.CancelledError:
            finished.append("cancelled")
            raise
        finished.append("returned")
        return True

    transport = wire.transport()
    server = transport.server(port=0, authorize=slow_authorize, close_timeout=CLOSE_TIMEOUT)
    await server.start()
    try:
        client = transport.client(server.url, reconnect=False, connect_timeout=AUTHORIZE_TIME + 10)
        connecting = asyncio.ensure_future(client.connect())
        await asyncio.wait_for(authorizing.wait(), 10)
        started = time.monotonic()
        await asyncio.wait_for(server.close(), CLOSE_TIMEOUT + MARGIN)
        took = time.monotonic() - started
        with pytest.raises(RejectedError) as refused:
            await asyncio.wait_for(connecting, MARGIN)
        assert refused.value.status == 503
    finally:
        await server.close()
    assert server.state is ServerState.CLOSED
    assert took < CLOSE_TIMEOUT + MARGIN
    assert finished == ["cancelled"]  # the hook's task did not outlive the server
    assert server.stats.rejected == 1
    assert server.stats.connections == 0
