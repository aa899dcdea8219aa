"""rtt-mock is the conformance kit's first user (SPEC.md 11)."""

from __future__ import annotations

from typing import Any

import rtt
from rtt.testing import TransportTests


class TestMockConformance(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("mock", **options)
