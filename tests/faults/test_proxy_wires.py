"""The kit's loopback proxy (rtt.testing.Proxy, SPEC.md 11) in front of every wire rtt serves.

A Python client with reconnect on talks to an echo server through the proxy.
``sever()`` resets its connections: the client closes with ``transport
error`` and reconnects, through the proxy again. ``blackhole()`` makes the
connections silent: the server's heartbeat notices (``ping timeout``) within
``ping_interval + ping_timeout`` and a margin. Issue 17's drop tests rely on
both behaving this way on every wire, long-polling and streaming included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rtt
from rtt.testing import Proxy, Recorder, echo

from .conftest import PROXY_WIRES, Wire

PING_INTERVAL = 0.4
PING_TIMEOUT = 0.4
POLICY = {"min_delay": 0.02, "max_delay": 0.1, "jitter": 0}
#: Generous for a loaded 2-core machine.
MARGIN = 5.0
WAIT = 15.0


@pytest.fixture(params=PROXY_WIRES, ids=[wire.id for wire in PROXY_WIRES])
def proxy_wire(request: pytest.FixtureRequest) -> Wire:
    wire: Wire = request.param
    return wire


class Setup:
    """An echo server, a proxy in front of it and a client through the proxy."""

    def __init__(self, server: rtt.Server[Any], proxy: Proxy, client: rtt.Client) -> None:
        self.server, self.proxy, self.client = server, proxy, client
        self.server_rec = Recorder().listen(server, "connect", "disconnect")
        self.client_rec = Recorder().listen(client, "close", "reconnected")

    async def round_trip(self, text: str) -> None:
        await self.client.send(text)
        assert await asyncio.wait_for(self.client.recv(), WAIT) == text


@pytest.fixture
async def setup(proxy_wire: Wire) -> AsyncIterator[Setup]:
    transport = proxy_wire.transport()
    server = transport.server(port=0, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)
    async with echo(server), Proxy(*server.address) as proxy:
        client = transport.client(proxy.url_for(server.url), reconnect=POLICY, close_timeout=1)
        s = Setup(server, proxy, client)
        try:
            await asyncio.wait_for(client.connect(), WAIT)
            await s.server_rec.wait("connect", timeout=WAIT)
            await s.round_trip("through the proxy")
            yield s
        finally:
            await asyncio.wait_for(client.close(), WAIT)


@pytest.mark.timeout(60)
async def test_sever_closes_the_client_with_transport_error_and_it_reconnects_through_the_proxy(
    setup: Setup,
) -> None:
    accepted = setup.proxy.stats.accepted
    assert setup.proxy.sever() >= 1
    await setup.client_rec.wait("reconnected", timeout=WAIT)
    assert setup.client_rec.of("close") == [(rtt.CloseReason.TRANSPORT_ERROR,)]
    await setup.round_trip("after the sever")
    await setup.server_rec.wait("connect", count=2, timeout=WAIT)
    assert setup.proxy.stats.accepted > accepted  # the new connection came through the proxy again


@pytest.mark.timeout(60)
async def test_blackhole_is_noticed_by_the_servers_heartbeat(setup: Setup) -> None:
    started = time.monotonic()
    setup.proxy.blackhole()
    closed = await setup.server_rec.wait("disconnect", timeout=PING_INTERVAL + PING_TIMEOUT + MARGIN)
    took = time.monotonic() - started
    assert closed[0][1] is rtt.CloseReason.PING_TIMEOUT, closed
    assert took < PING_INTERVAL + PING_TIMEOUT + MARGIN, f"noticed after {took:.1f} s"
    assert setup.proxy.stats.bytes_dropped > 0  # the server's pings went into the hole
    # The network comes back: the client, cut off, reconnects through the proxy.
    setup.proxy.restore()
    setup.proxy.sever()
    await setup.client_rec.wait("reconnected", timeout=WAIT)
    await setup.round_trip("after the blackhole")
