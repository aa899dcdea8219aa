"""rtt-sockjs passes the conformance kit unchanged over each Python client transport (SPEC 11, 12.4)."""

from __future__ import annotations

from typing import Any, ClassVar

import rtt
from rtt.testing import TransportTests


class _SockjsKit(TransportTests):
    #: The SockJS transports the kit's clients use.
    transports: ClassVar[tuple[str, ...]] = ("websocket",)

    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("sockjs", transports=self.transports, **options)


class TestSockjsWebSocket(_SockjsKit):
    transports = ("websocket",)


class TestSockjsXhrStreaming(_SockjsKit):
    transports = ("xhr-streaming",)


class TestSockjsXhrPolling(_SockjsKit):
    transports = ("xhr-polling",)
