"""rtt-engineio passes the conformance kit unchanged, per Engine.IO transport (SPEC.md 11, 12.3)."""

from __future__ import annotations

from typing import Any, ClassVar

import rtt
from rtt.testing import TransportTests
from rtt_engineio import EngineioClient


class _EngineioKit(TransportTests):
    #: The Engine.IO transports the kit's clients use.
    transports: ClassVar[tuple[str, ...]] = ("polling", "websocket")

    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("engineio", transports=self.transports, **options)

    async def stall_client(self, client: rtt.Client) -> None:
        # The library answers heartbeats in the same loop that takes packets: pausing
        # it stops both (a WebSocket is no longer read; long-polling stops polling).
        assert isinstance(client, EngineioClient) and client.connection is not None
        client.connection.pause_reading()


class TestEngineioWebSocket(_EngineioKit):
    transports = ("websocket",)


class TestEngineioPolling(_EngineioKit):
    transports = ("polling",)


class TestEngineioUpgrade(_EngineioKit):
    """Long-polling first, then the upgrade to WebSocket (the default)."""
