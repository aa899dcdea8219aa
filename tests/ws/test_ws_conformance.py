"""rtt-ws passes the conformance kit unchanged (SPEC.md 11, 12.2)."""

from __future__ import annotations

from typing import Any

import rtt
from rtt.testing import TransportTests


class TestWsConformance(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("ws", **options)
