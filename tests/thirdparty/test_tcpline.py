"""A third-party plugin, written by ``rtt new tcpline`` and installed by tox, passes the kit (SPEC.md 11, 14).

This file is all a third party writes: a factory (``rtt check tcpline`` runs the same kit without it).
"""

from __future__ import annotations

from typing import Any

import rtt
from rtt.testing import TransportTests


class TestTcplineConformance(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("tcpline", **options)


def test_text_only_wire_is_declared() -> None:
    # The kit's byte round trips then go through rtt.codec's text encoding (SPEC.md 5.5).
    assert not rtt.load("tcpline").capabilities.binary
