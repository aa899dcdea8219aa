"""A reverse proxy at the TCP level for the forwarded-header tests (SPEC.md 8.5).

It listens on 127.0.0.1 and opens each connection to the server from
another loopback address (127.0.0.2 by default), so the server sees a peer
it may be told to trust; the headers a proxy would add are the client's to
send (``ClientOptions.headers``). Bytes pass through untouched, so every
transport and every HTTP fallback works through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: The address the relay connects from: a loopback alias, playing the proxy.
PROXY_HOST = "127.0.0.2"


class TcpRelay:
    """Forwards every connection it accepts to ``target``, connecting from ``source``."""

    def __init__(self, target: tuple[str, int], source: str = PROXY_HOST) -> None:
        self.target = target
        self.source = source
        self.connections = 0
        self._listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.address: tuple[str, int] = ("", 0)

    def url(self, server_url: str) -> str:
        """``server_url`` with the relay's address in place of the server's."""
        parts = urlsplit(server_url)
        return urlunsplit(parts._replace(netloc=f"{self.address[0]}:{self.address[1]}"))

    async def __aenter__(self) -> TcpRelay:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        host, port = self._listener.sockets[0].getsockname()[:2]
        self.address = (host, port)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._listener is not None
        self._listener.close()
        # Dropping both ends ends every pipe: each connection's handler returns on its own.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._listener.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            async with asyncio.timeout(10):
                up_reader, up_writer = await asyncio.open_connection(
                    *self.target, local_addr=(self.source, 0)
                )
        except (OSError, TimeoutError):
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until the end of ``reader``, then half-close ``writer``, as a proxy passes a FIN on."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
