"""What the aiohttp and ASGI modes share: rtt's outgoing queue in front of a web server's WebSocket.

The web server's WebSocket ``send`` may wait for the peer (aiohttp drains
its write buffer, an ASGI server may do the same), and rtt's ``send`` and
``broadcast`` never wait for one slow peer (SPEC.md 10.2). So each mounted
connection queues what rtt sends and writes it from a task of its own,
started when the queue fills and ended when it is empty (an idle connection
holds no task). The queued bytes, plus what the web server's transport holds
where it says so (aiohttp), are the connection's unsent data for
``outbound_limit``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from rtt import Close, CloseReason, ConnectionClosed, Socket

if TYPE_CHECKING:
    from .server import WsServer

__all__ = ["METHOD_NOT_ALLOWED_TEXT", "UPGRADE_REQUIRED_TEXT", "MountedConn", "Outgoing"]

Outgoing = tuple[Any, int]
"""One message as the mode writes it (prepared once for a broadcast), and its size in bytes."""

UPGRADE_REQUIRED_TEXT = (
    "Failed to open a WebSocket connection: not a WebSocket upgrade request.\n\n"
    "You cannot access a WebSocket server directly with a browser. You need a WebSocket client.\n"
)
"""The body of the 426 a plain request at the WebSocket path gets, in every mode (SPEC.md 12.2)."""
METHOD_NOT_ALLOWED_TEXT = "Failed to open a WebSocket connection: method not allowed.\n"
"""The body of the 405 another method at the WebSocket path gets (with ``Allow: GET``)."""


class MountedConn(abc.ABC):
    """One WebSocket served by the application's web server, as :class:`~rtt_ws.WsServer` drives it."""

    def __init__(self, server: WsServer) -> None:
        self.server = server
        self.socket: Socket | None = None
        self._queue: deque[Outgoing] = deque()
        self._queued = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing: Close | None = None
        #: Set once the connection is over (ended, aborted or its write failed).
        self.ended = False

    # -- what each mode implements -------------------------------------------

    @staticmethod
    @abc.abstractmethod
    def prepare(data: str | bytes) -> Outgoing:
        """``data`` as this mode writes it; done once per broadcast."""

    @abc.abstractmethod
    async def _write(self, item: Any) -> None:
        """Write one prepared message; may wait for the peer."""

    @abc.abstractmethod
    async def _write_close(self, close: Close) -> None:
        """Send the close frame (and, where the web server does it, wait for the peer's)."""

    @abc.abstractmethod
    def _drop(self) -> None:
        """End the connection now, without a closing handshake (as far as the web server allows)."""

    def _transport_buffered(self) -> int:
        """Bytes the web server holds unsent, where it says so."""
        return 0

    # -- what WsServer calls --------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether messages may still be queued: neither ended nor closing."""
        return not self.ended and self._closing is None

    def put(self, item: Outgoing) -> None:
        """Queue one message; never waits. :class:`~rtt.ConnectionClosed` if the connection is over."""
        if not self.open:
            raise ConnectionClosed(CloseReason.TRANSPORT_ERROR)
        self._queue.append(item)
        self._queued += item[1]
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def buffered(self) -> int:
        """Unsent bytes: rtt's queue plus the web server's write buffer (where it tells)."""
        return self._queued + self._transport_buffered()

    async def close(self, close: Close) -> None:
        """Send ``close`` after what is queued; past ``close_timeout``, drop the connection."""
        if self._closing is None:
            self._closing = close
            if self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._drain())
        writer = self._writer
        if writer is None:
            return
        # asyncio.wait, not the task itself: an abort meanwhile cancels the writer, not this close.
        await asyncio.wait({writer}, timeout=self.server.options.close_timeout)
        if not writer.done():
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once; its queue is freed."""
        if self._writer is not None:
            self._writer.cancel()
        self._end()
        self._drop()

    async def finished(self) -> None:
        """Wait for a close in progress to end (bounded by :meth:`close`'s own deadline)."""
        writer = self._writer
        if writer is not None and self._closing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({writer}, timeout=self.server.options.close_timeout)

    def ended_now(self) -> None:
        """The web server reported the end: free the queue, stop writing."""
        if self._writer is not None and self._closing is None:
            self._writer.cancel()
        self._end()

    # -- internals ---------------------------------------------------------

    def _end(self) -> None:
        self.ended = True
        self._queue.clear()
        self._queued = 0

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue:
                item, size = queue[0]
                await self._write(item)
                queue.popleft()
                self._queued -= size
            if self._closing is not None and not self.ended:
                await self._write_close(self._closing)
        except Exception:
            # The web server could not write (the peer left, the transport closed): nothing
            # queued will ever go, so the connection ends now instead of lingering.
            self._end()
            self._drop()
        finally:
            self._writer = None
