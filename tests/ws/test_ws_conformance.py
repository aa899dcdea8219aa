"""rtt-ws passes the conformance kit unchanged (SPEC.md 11, 12.2)."""

from __future__ import annotations

from typing import Any

import rtt
from rtt.testing import TransportTests
from rtt_ws import WsClient


class TestWsConformance(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("ws", **options)

    async def stall_client(self, client: rtt.Client) -> None:
        # Not reading means not seeing pings either: websockets answers them as it reads.
        assert isinstance(client, WsClient) and client.websocket is not None
        client.websocket.transport.pause_reading()
