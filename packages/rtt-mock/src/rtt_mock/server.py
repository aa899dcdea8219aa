"""The mock server: rtt's server template over in-memory links."""

from __future__ import annotations

import asyncio
import errno
from typing import TYPE_CHECKING

from rtt import (
    Accept,
    Close,
    CloseReason,
    ConnectionClosed,
    Handshake,
    Headers,
    Reject,
    Server,
    ServerOptions,
)

from .network import PING, Frame, Link, MockNetwork, Request

if TYPE_CHECKING:
    from .transport import MockTransport


class MockServer(Server[Link]):
    """A server reachable at ``mock://host:port/`` on a :class:`~rtt_mock.MockNetwork`."""

    def __init__(
        self, transport: MockTransport, options: ServerOptions, host: str, port: int, network: MockNetwork
    ) -> None:
        super().__init__(transport, options, host, port)
        self._network = network
        # Every link not yet finished, including ones whose socket is not
        # registered yet, so shutdown can cut them all.
        self._links: set[Link] = set()
        # What the kit's drops do to new links (LinkDrops): reset them, or accept and ignore them.
        self._refusing = False
        self._silent = False

    def link(self, socket_id: str) -> Link:
        """The link of a connected socket, for fault injection."""
        return self._conns[socket_id]

    def kit_drops(self) -> LinkDrops:
        """The conformance kit's drops for this server (SPEC.md 11): its links cut as a proxy would."""
        return LinkDrops(self)

    async def accept(self, link: Link, request: Request) -> Reject | None:
        """Called by a connecting mock client; None means accepted."""
        if self._refusing:
            raise ConnectionResetError(errno.ECONNRESET, "connection reset by peer")
        if self._silent:
            return None  # accepted, and never heard from: the network ate it
        handshake = Handshake(
            headers=Headers(request.headers),
            path=request.path,
            query_string=request.query_string,
            remote_address=link.client_address,
        )
        decision = await self._admit(handshake)
        if isinstance(decision, Reject):
            return decision
        self._links.add(link)
        self._spawn(self._serve(link, handshake, decision))
        return None

    async def _serve(self, link: Link, handshake: Handshake, decision: Accept) -> None:
        socket = await self._opened(link, handshake, decision.identity)
        try:
            while True:
                frame = await link.to_server.get()
                if frame.kind == "message":
                    await self._received(socket, frame.data)
                elif frame.kind == "pong":
                    link.ping_sent = None
                elif frame.kind == "close":
                    reason = frame.reason or CloseReason.TRANSPORT_ERROR
                    break
        finally:
            link.to_client.cut(CloseReason.TRANSPORT_ERROR)
            link.finished.set()
            self._links.discard(link)
        await self._closed(socket, reason)

    async def _heartbeat(self, interval: float, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for socket_id, link in list(self._conns.items()):
                if self._handling(socket_id):
                    link.ping_sent = None  # the pong may be queued behind the message in hand
                elif link.ping_sent is None:
                    link.ping_sent = now
                    link.to_client.put(PING)
                elif now - link.ping_sent > timeout:
                    self._begin_close(socket_id, CloseReason.PING_TIMEOUT)

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        address = self._network.bind(self.host, self.port, self)
        if self.options.ping_interval is not None:
            self._spawn(self._heartbeat(self.options.ping_interval, self.options.ping_timeout))
        return address

    def _url(self) -> str:
        host, port = self.address
        return f"mock://{host}:{port}/"

    async def _send(self, conn: Link, data: str | bytes) -> None:
        if conn.to_client.ended is not None:
            raise ConnectionClosed(conn.to_client.ended)
        conn.to_client.put(Frame("message", data))

    def _buffered(self, conn: Link) -> int:
        return conn.to_client.buffered

    async def _close(self, conn: Link, close: Close) -> None:
        conn.to_client.put(Frame("close", reason=close.reason, close=close))
        try:
            await asyncio.wait_for(conn.finished.wait(), self.options.close_timeout)
        except TimeoutError:
            self._abort(conn)

    def _abort(self, conn: Link) -> None:
        conn.to_client.cut(CloseReason.TRANSPORT_ERROR)
        conn.to_server.cut(CloseReason.TRANSPORT_ERROR)

    async def _stop_accepting(self) -> None:
        if self._address is not None:
            self._network.unbind(self._address)

    async def _stop(self) -> None:
        await self._stop_accepting()
        for link in list(self._links):
            # A link accepted but not yet opened as a socket was never asked to close: like a
            # real server going away, it tells the client ``shutdown`` before the link is cut.
            # (Links that did not close in time were already cut by _abort; put() ignores them.)
            link.to_client.put(Frame("close", reason=CloseReason.SHUTDOWN))
            link.to_server.cut(CloseReason.TRANSPORT_ERROR)


class LinkDrops:
    """What :class:`rtt.testing.Proxy` does to TCP connections, done to a mock server's links.

    The conformance kit's resume cases cut connections with it (``Kit.drops``,
    SPEC.md 11): a server on the in-memory network has no TCP address for a
    proxy to stand in front of.
    """

    def __init__(self, server: MockServer) -> None:
        self._server = server
        self._timers: list[asyncio.TimerHandle] = []

    def url_for(self, server_url: str) -> str:
        """Clients reach the server directly: the faults are injected on its links."""
        return server_url

    def _open(self) -> list[Link]:
        return [link for link in self._server._links if not link.closed]

    def sever(self) -> int:
        """Cut every open link; both ends see ``transport error``."""
        links = self._open()
        for link in links:
            link.sever()
        return len(links)

    def blackhole(self, *, client_side_cut_after: float | None = None) -> None:
        """Stop delivery both ways on every open link, and ignore new ones until :meth:`restore`.

        With ``client_side_cut_after``, the client's end of each of those links
        is cut that many seconds later; the server's end stays silent (its pings
        go unanswered).
        """
        self._server._silent = True
        links = self._open()
        for link in links:
            link.to_client.stalled = link.to_server.stalled = True
        if client_side_cut_after is not None:

            def cut() -> None:
                for link in links:
                    link.to_client.cut(CloseReason.TRANSPORT_ERROR)

            self._timers.append(asyncio.get_running_loop().call_later(client_side_cut_after, cut))

    def restore(self) -> None:
        """Serve new links again; black-holed ones stay silent."""
        self._server._silent = False

    def refuse(self, on: bool = True) -> None:
        """Reset each new link at once (``on=False``: accept them again)."""
        self._server._refusing = on

    async def close(self) -> None:
        """Cancel a pending cut and serve new links as before."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._server._silent = self._server._refusing = False


__all__ = ["LinkDrops", "MockServer"]
