"""A third-party plugin, installed from the test tree, passes the conformance kit (SPEC.md 11, 14).

This file is all a third party writes: a factory and a stall hook.
"""

from __future__ import annotations

from typing import Any

import rtt
from rtt.testing import TransportTests
from rtt_tcpline import TcplineClient


class TestTcplineConformance(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("tcpline", **options)

    async def stall_client(self, client: rtt.Client) -> None:
        assert isinstance(client, TcplineClient) and client.connection is not None
        client.connection.stall()


def test_text_only_wire_is_declared() -> None:
    # The kit's byte round trips then go through rtt.codec's text encoding (SPEC.md 5.5).
    assert not rtt.load("tcpline").capabilities.binary
