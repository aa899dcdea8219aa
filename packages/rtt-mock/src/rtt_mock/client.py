"""The mock client: rtt's reconnecting client over in-memory links."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from rtt import (
    Client,
    ClientConnection,
    ClientOptions,
    Close,
    CloseReason,
    ConnectionClosed,
    RejectedError,
)

from .network import PONG, Frame, Link, MockNetwork, Request

if TYPE_CHECKING:
    from .server import MockServer
    from .transport import MockTransport

__all__ = ["MockClient", "MockConnection"]


class MockConnection(ClientConnection):
    """The client end of one :class:`~rtt_mock.network.Link`."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._ended: CloseReason | None = None
        self._received: Close | None = None

    async def recv(self) -> str | bytes:
        link = self.link
        while self._ended is None:
            frame = await link.to_client.get()
            if frame.kind == "message":
                return frame.data
            if frame.kind == "ping":
                link.to_server.put(PONG)
            elif frame.kind == "close":
                self._ended = frame.reason or CloseReason.TRANSPORT_ERROR
                self._received = frame.close
                link.to_server.put(Frame("close", reason=self._ended))  # acknowledge
        if self._received is not None:
            raise ConnectionClosed.of(self._received)
        raise ConnectionClosed(self._ended)

    async def send(self, data: str | bytes) -> None:
        ended = self._ended or self.link.to_server.ended
        if ended is not None:
            raise ConnectionClosed(ended)
        self.link.to_server.put(Frame("message", data))

    async def close(self, reason: CloseReason) -> None:
        if self._ended is None:
            self._ended = reason
            self.link.to_server.put(Frame("close", reason=reason))
            self.link.to_client.cut(reason)


class MockClient(Client):
    """A client of ``mock://host:port/path?query`` URLs."""

    def __init__(
        self, transport: MockTransport, url: str, options: ClientOptions, network: MockNetwork
    ) -> None:
        super().__init__(transport, url, options)
        self._network = network
        self._connection: MockConnection | None = None

    @property
    def link(self) -> Link | None:
        """The link of the current connection, for fault injection."""
        return self._connection.link if self._connection is not None else None

    def pause_reading(self) -> None:
        """Stall the current link: frames pile up, pings go unanswered (SPEC.md 10.3)."""
        cast(MockConnection, self._current_connection()).link.stall()

    async def _connect(self) -> ClientConnection:
        # Each attempt has its own URL: its query carries the resume parameter (SPEC.md 10.3).
        parts = urlsplit(self.connect_url)
        listener = self._network.listener(parts.hostname or "127.0.0.1", parts.port or 0)
        server: MockServer = listener  # type: ignore[assignment]
        link = Link(self._network.client_address())
        request = Request(parts.path or "/", parts.query, tuple(self.options.headers.items()))
        rejected = await server.accept(link, request)
        if rejected is not None:
            raise RejectedError(rejected.status, rejected.reason)
        self._connection = MockConnection(link)
        return self._connection
