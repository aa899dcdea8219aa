"""rtt-engineio passes the conformance kit unchanged, per Engine.IO transport (SPEC.md 11, 12.3)."""

from __future__ import annotations

from typing import Any, ClassVar

import rtt
from rtt.testing import TransportTests


class _EngineioKit(TransportTests):
    #: The Engine.IO transports the kit's clients use.
    transports: ClassVar[tuple[str, ...]] = ("polling", "websocket")

    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("engineio", transports=self.transports, **options)


class TestEngineioWebSocket(_EngineioKit):
    transports = ("websocket",)


class TestEngineioPolling(_EngineioKit):
    transports = ("polling",)


class TestEngineioUpgrade(_EngineioKit):
    """Long-polling first, then the upgrade to WebSocket (the default)."""
