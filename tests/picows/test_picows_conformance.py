"""rtt-picows passes the conformance kit unchanged (SPEC.md 11, 12)."""

from __future__ import annotations

from typing import Any

import rtt
from rtt.testing import TransportTests


class TestPicowsConformance(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("picows", **options)
