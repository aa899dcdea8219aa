"""The tcpline client: rtt's reconnecting client over ``asyncio.open_connection``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from rtt import (
    Client,
    ClientConnection,
    ClientOptions,
    CloseReason,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    RejectedError,
)
from rtt.codec import decode_text, message_size

from .wire import PONG, close_line, close_reason, dump, line_limit, message_line, parse, read_line

if TYPE_CHECKING:
    from .transport import TcplineTransport

__all__ = ["TcplineClient", "TcplineConnection"]


class TcplineConnection(ClientConnection):
    """One open tcpline connection.

    There is no background reader: heartbeats are answered inside :meth:`recv`,
    so a client that stops reading stops answering, and the server sees it.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, options: ClientOptions
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_size = options.max_message_size
        self._close_timeout = options.close_timeout
        self._ended: CloseReason | None = None
        self._reading = False
        self._stalled = False

    async def recv(self) -> str | bytes:
        while self._ended is None:
            self._reading = True
            try:
                line = await read_line(self._reader)
            except OSError:
                line = b""
            finally:
                self._reading = False
            if self._is_ended():
                break  # close() ran while we waited
            if line is None:
                await self.close(CloseReason.MESSAGE_TOO_BIG)
                break
            if not line:
                self._end(CloseReason.TRANSPORT_ERROR)
                break
            msg = parse(line) or {}
            text = msg.get("m")
            if isinstance(text, str):
                data = decode_text(text)
                if message_size(data) <= self._max_size:
                    return data
                await self.close(CloseReason.MESSAGE_TOO_BIG)
            elif "ping" in msg:
                self._write(PONG)
            elif "close" in msg:
                reason = close_reason(msg["close"])
                self._write(close_line(reason))  # answer, then hang up
                self._end(reason)
            elif "pong" not in msg:
                await self.close(CloseReason.PROTOCOL_ERROR)
        raise ConnectionClosed(self._ended or CloseReason.TRANSPORT_ERROR)

    async def send(self, data: str | bytes) -> None:
        if self._ended is not None:
            raise ConnectionClosed(self._ended)
        if self._writer.is_closing():
            raise ConnectionClosed(CloseReason.TRANSPORT_ERROR)
        self._writer.write(message_line(data))
        try:
            await self._writer.drain()
        except OSError as exc:
            raise ConnectionClosed(CloseReason.TRANSPORT_ERROR, str(exc)) from exc

    async def close(self, reason: CloseReason) -> None:
        if self._ended is not None:
            return
        self._ended = reason
        self._write(close_line(reason))
        finished = self._reading  # a recv() in progress reads the answer; do not race it
        if self._stalled:
            self._stalled = False
            self._read_transport().resume_reading()
        try:
            if not finished:
                async with asyncio.timeout(self._close_timeout):
                    finished = await self._await_close()
        except (TimeoutError, OSError):
            pass
        finally:
            if finished:
                self._writer.close()
            else:
                self._writer.transport.abort()

    async def _await_close(self) -> bool:
        """Skip lines until the peer's close line or the end of the stream."""
        while (line := await read_line(self._reader)) != b"":
            if line is not None and b'"close"' in line and "close" in (parse(line) or {}):
                break
        return True

    def stall(self) -> None:
        """Test hook: stop reading the socket (so heartbeats go unanswered), leaving it open."""
        self._stalled = True
        self._read_transport().pause_reading()

    def _read_transport(self) -> asyncio.ReadTransport:
        transport = self._writer.transport
        assert isinstance(transport, asyncio.ReadTransport)
        return transport

    def _is_ended(self) -> bool:
        return self._ended is not None

    def _write(self, line: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(line)

    def _end(self, reason: CloseReason) -> None:
        self._ended = reason
        self._writer.close()


class TcplineClient(Client):
    """A client of ``tcpline://host:port/path?query`` URLs."""

    def __init__(self, transport: TcplineTransport, url: str, options: ClientOptions) -> None:
        super().__init__(transport, url, options)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"invalid tcpline URL {url!r}: {exc}") from None
        if parts.scheme != "tcpline" or not parts.hostname or port is None:
            raise ConfigError(f"the tcpline transport connects to tcpline://host:port/ URLs, got {url!r}")
        self.connection: TcplineConnection | None = None
        """The current connection (the last one opened), for tests."""
        self._host = parts.hostname
        self._port = port
        self._request = dump(
            {
                "path": parts.path or "/",
                "query": parts.query,
                "headers": [[k, v] for k, v in options.headers.items()],
            }
        )

    def pause_reading(self) -> None:
        """Stall the current connection (SPEC.md 10.3): no reading, so no pongs, socket left open."""
        cast(TcplineConnection, self._current_connection()).stall()

    async def _connect(self) -> TcplineConnection:
        limit = line_limit(self.options.max_message_size)
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=limit)
        try:
            writer.write(self._request)
            line = await read_line(reader)
        except BaseException:
            writer.transport.abort()
            raise
        reply = parse(line) if line else None
        if reply is not None and reply.get("accept") is True:
            self.connection = TcplineConnection(reader, writer, self.options)
            return self.connection
        writer.transport.abort()
        status = reply.get("reject") if reply is not None else None
        if isinstance(status, int) and 400 <= status <= 599:
            raise RejectedError(status, str(reply.get("reason", "")) if reply is not None else "")
        raise ConnectError(f"{self.url}: the server did not complete the tcpline handshake")
