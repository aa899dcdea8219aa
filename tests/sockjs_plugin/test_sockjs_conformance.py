"""rtt-sockjs passes the conformance kit unchanged over each Python client transport (SPEC 11, 12.4)."""

from __future__ import annotations

from typing import Any, ClassVar

import rtt
from rtt.testing import TransportTests
from rtt_sockjs import SockjsClient


class _SockjsKit(TransportTests):
    #: The SockJS transports the kit's clients use.
    transports: ClassVar[tuple[str, ...]] = ("websocket",)

    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("sockjs", transports=self.transports, **options)

    async def stall_client(self, client: rtt.Client) -> None:
        # A paused connection reads nothing: a WebSocket stops answering pings, an HTTP
        # transport stops polling or reading its stream.
        assert isinstance(client, SockjsClient) and client.connection is not None
        client.connection.pause_reading()


class TestSockjsWebSocket(_SockjsKit):
    transports = ("websocket",)


class TestSockjsXhrStreaming(_SockjsKit):
    transports = ("xhr-streaming",)


class TestSockjsXhrPolling(_SockjsKit):
    transports = ("xhr-polling",)
