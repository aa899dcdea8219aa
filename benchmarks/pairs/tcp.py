"""Demo pair ``tcp``: rtt's server template over plain asyncio TCP vs the same server without rtt.

It needs no realtime library, so it checks the cross-process machinery on any
machine, and its ratios are already meaningful: the wire is identical (each
message is a 4-byte big-endian length then the bytes), so wrapped/raw is the
cost of rtt's core on a real socket (state and size checks, counters, socket
ids, handshake admission, event dispatch). The "transport" below is the
thinnest plugin the template allows, not a product: no heartbeats, no client.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

from harness import HOST, Pair, RttBenchServer, register

import rtt

_LENGTH = struct.Struct(">I")
_STREAM_ERRORS = (asyncio.IncompleteReadError, ConnectionError)


def _frame(data: str | bytes) -> bytes:
    body = data.encode() if isinstance(data, str) else data
    return _LENGTH.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return await reader.readexactly(size)


class RawTcpServer:
    """The raw side: asyncio streams and a set of writers, nothing else."""

    def __init__(self) -> None:
        self._writers: set[asyncio.StreamWriter] = set()
        self._listener: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0."""
        self._listener = await asyncio.start_server(self._serve, HOST, 0)
        return int(self._listener.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                writer.write(_frame(await _read_frame(reader)))
        except _STREAM_ERRORS:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def connections(self) -> int:
        """Open connections."""
        return len(self._writers)

    async def broadcast(self, data: str) -> None:
        """Frame once, write to every connection."""
        frame = _frame(data)
        for writer in self._writers:
            writer.write(frame)

    async def close(self) -> None:
        """Close every connection and the listener."""
        for writer in list(self._writers):
            writer.close()
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()


class _TcpServer(rtt.Server[asyncio.StreamWriter]):
    """rtt's server template over the same framing."""

    _listener: asyncio.Server

    async def _start(self) -> tuple[str, int]:
        self._listener = await asyncio.start_server(self._serve, self.host, self.port)
        host, port = self._listener.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def _url(self) -> str:
        return "tcp://{}:{}/".format(*self.address)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshake = rtt.Handshake(rtt.Headers(), remote_address=writer.get_extra_info("peername"))
        decision = await self._admit(handshake)
        if isinstance(decision, rtt.Reject):
            writer.close()
            return
        socket = await self._opened(writer, handshake, decision.identity)
        try:
            while True:
                await self._received(socket, await _read_frame(reader))
        except _STREAM_ERRORS:
            pass
        finally:
            writer.close()
        await self._closed(socket, rtt.CloseReason.CLIENT_CLOSED)

    async def _send(self, conn: asyncio.StreamWriter, data: str | bytes) -> None:
        conn.write(_frame(data))

    async def _broadcast(self, conns: list[asyncio.StreamWriter], data: str | bytes) -> None:
        frame = _frame(data)
        for conn in conns:
            conn.write(frame)

    def _buffered(self, conn: asyncio.StreamWriter) -> int:
        return conn.transport.get_write_buffer_size()

    async def _close(self, conn: asyncio.StreamWriter, close: rtt.Close) -> None:
        conn.close()  # _serve's pending read then fails and reports _closed

    def _abort(self, conn: asyncio.StreamWriter) -> None:
        conn.transport.abort()

    async def _stop(self) -> None:
        self._listener.close()
        await self._listener.wait_closed()


class _TcpTransport(rtt.Transport):
    name = "bench-tcp"
    capabilities = rtt.Capabilities(binary=True, python_client=False)

    def _create_server(self, options: rtt.ServerOptions, host: str, port: int) -> rtt.Server[Any]:
        return _TcpServer(self, options, host, port)

    def _create_client(self, url: str, options: rtt.ClientOptions) -> rtt.Client:
        raise NotImplementedError("the benchmark drives both servers with TcpClient")


class TcpClient:
    """The load generator's client for both sides."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, data: str) -> None:
        """Write one frame."""
        self._writer.write(_frame(data))
        await self._writer.drain()

    async def recv(self) -> bytes:
        """Read one frame."""
        return await _read_frame(self._reader)

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


async def connect(port: int) -> TcpClient:
    """Open a :class:`TcpClient` to 127.0.0.1:``port``."""
    return TcpClient(*await asyncio.open_connection(HOST, port))


register(
    Pair(
        "tcp",
        wrapped=lambda: RttBenchServer(_TcpTransport()),
        raw=RawTcpServer,
        connect=connect,
        description="rtt Server template over asyncio TCP vs the same framing on bare asyncio",
    )
)
