"""rtt-sockjs passes the conformance kit attached to an aiohttp application (``server.attach(app)``),
over the SockJS WebSocket transport (SPEC.md 11, 12.4)."""

from __future__ import annotations

from typing import Any

from mount_support import AiohttpMounted

import rtt
from rtt.testing import TransportTests


class TestSockjsInAiohttp(AiohttpMounted, TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("sockjs", transports=("websocket",), **options)
