"""The tcpline server: rtt's server template over ``asyncio.start_server``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from rtt import (
    CloseReason,
    ConnectionClosed,
    Handshake,
    Headers,
    Reject,
    Server,
    ServerOptions,
    ServerState,
    Socket,
)
from rtt.codec import decode_text

from .wire import (
    ACCEPT,
    PING,
    PONG,
    close_line,
    close_reason,
    dump,
    line_limit,
    message_line,
    parse,
    read_line,
)

if TYPE_CHECKING:
    from .transport import TcplineTransport

__all__ = ["TcplineServer"]


class Conn:
    """One TCP connection as the server sees it."""

    __slots__ = ("close_sent", "done", "ping_sent", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.done = asyncio.Event()
        """Set when the reader has stopped: the peer closed, or the connection broke."""
        self.ping_sent: float | None = None
        self.close_sent = False

    @property
    def ended(self) -> bool:
        """The reader stopped or the socket is going: nothing written now would arrive."""
        return self.done.is_set() or self.writer.is_closing()

    def write(self, line: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(line)


def _handshake(request: dict[str, Any] | None, peer: object) -> Handshake | None:
    """The handshake a client's first line describes, or None if it is malformed."""
    if request is None:
        return None
    path, query, headers = request.get("path", "/"), request.get("query", ""), request.get("headers", [])
    if not (isinstance(path, str) and isinstance(query, str) and isinstance(headers, list)):
        return None
    pairs: list[tuple[str, str]] = []
    for pair in headers:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            return None
        pairs.append((pair[0], pair[1]))
    remote = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
    return Handshake(headers=Headers(pairs), path=path or "/", query_string=query, remote_address=remote)


class TcplineServer(Server[Conn]):
    """A server at ``tcpline://host:port/``."""

    handshake_timeout = 10.0
    """Seconds a new connection has to send its handshake line."""

    def __init__(self, transport: TcplineTransport, options: ServerOptions, host: str, port: int) -> None:
        super().__init__(transport, options, host, port)
        self._listener: asyncio.Server | None = None
        self._open: set[Conn] = set()  # every connection, including those still in the handshake

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, so the connection's task is the template's and shutdown cancels it.
        if self.state is not ServerState.RUNNING:
            writer.transport.abort()  # accepted while shutting down: refuse like a closed port
            return
        conn = Conn(reader, writer)
        self._open.add(conn)  # now, so _stop aborts it even if its task never gets to run
        self._spawn(self._serve(conn))

    async def _serve(self, conn: Conn) -> None:
        try:
            socket = await self._handshake(conn)
            reason = await self._read(conn, socket) if socket is not None else None
            conn.writer.close()  # flush the last line (a reject, a close reply)
            if socket is not None and reason is not None:
                await self._closed(socket, reason)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.writer.wait_closed(), self.options.close_timeout)
        finally:
            self._open.discard(conn)
            conn.writer.transport.abort()  # no-op once closed

    async def _handshake(self, conn: Conn) -> Socket | None:
        try:
            async with asyncio.timeout(self.handshake_timeout):
                line = await read_line(conn.reader)
        except (TimeoutError, OSError):
            return None
        handshake = _handshake(parse(line) if line else None, conn.writer.get_extra_info("peername"))
        if handshake is None:
            conn.write(dump({"reject": 400, "reason": "Bad handshake"}))
            return None
        decision = await self._admit(handshake)
        if isinstance(decision, Reject):
            conn.write(dump({"reject": decision.status, "reason": decision.reason}))
            return None
        conn.write(ACCEPT)  # before _opened, so lines sent by connect handlers follow it
        return await self._opened(conn, handshake, decision.identity)

    async def _read(self, conn: Conn, socket: Socket) -> CloseReason:
        """Read until the peer's close line or the end of the stream; return the reason seen."""
        try:
            while True:
                try:
                    line = await read_line(conn.reader)
                except OSError:
                    return CloseReason.TRANSPORT_ERROR
                if line is None:
                    self._begin_close(socket.id, CloseReason.MESSAGE_TOO_BIG)
                    continue
                if not line:
                    return CloseReason.TRANSPORT_ERROR
                msg = parse(line) or {}
                text = msg.get("m")
                if isinstance(text, str):
                    await self._received(socket, decode_text(text))
                elif "pong" in msg:
                    conn.ping_sent = None
                elif "ping" in msg:
                    conn.write(PONG)
                elif "close" in msg:
                    reason = close_reason(msg["close"])
                    if not conn.close_sent:
                        conn.close_sent = True
                        conn.write(close_line(reason))
                    return reason
                else:
                    self._begin_close(socket.id, CloseReason.PROTOCOL_ERROR)
        finally:
            conn.done.set()

    async def _heartbeat(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.options.ping_timeout
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for socket_id, conn in list(self._conns.items()):
                if self._handling(socket_id):
                    conn.ping_sent = None  # the pong may be unread behind the message in hand
                elif conn.ping_sent is None:
                    conn.ping_sent = now
                    conn.write(PING)
                elif now - conn.ping_sent > timeout:
                    self._begin_close(socket_id, CloseReason.PING_TIMEOUT)

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        limit = line_limit(self.options.max_message_size)
        self._listener = await asyncio.start_server(
            self._accept, self.host, self.port, limit=limit, reuse_port=self.options.reuse_port
        )
        host, port = self._listener.sockets[0].getsockname()[:2]
        if self.options.ping_interval is not None:
            self._spawn(self._heartbeat(self.options.ping_interval))
        return str(host), int(port)

    def _url(self) -> str:
        host, port = self.address
        return f"tcpline://{f'[{host}]' if ':' in host else host}:{port}/"

    async def _send(self, conn: Conn, data: str | bytes) -> None:
        if conn.ended:
            raise ConnectionClosed(CloseReason.TRANSPORT_ERROR)  # its _closed report is on its way
        conn.write(message_line(data))

    async def _broadcast(self, conns: list[Conn], data: str | bytes) -> None:
        line = message_line(data)
        for conn in conns:
            if not conn.ended:
                conn.write(line)

    def _buffered(self, conn: Conn) -> int:
        return conn.writer.transport.get_write_buffer_size()

    async def _close(self, conn: Conn, reason: CloseReason) -> None:
        # The reader ends the connection and calls _closed; this only asks, then insists.
        # (For ping timeout and slow consumer the core calls _abort instead.)
        if not conn.close_sent:
            conn.close_sent = True
            conn.write(close_line(reason))
        try:
            await asyncio.wait_for(conn.done.wait(), self.options.close_timeout)
        except TimeoutError:
            self._abort(conn)

    def _abort(self, conn: Conn) -> None:
        conn.writer.transport.abort()

    async def _stop_accepting(self) -> None:
        if self._listener is not None:
            self._listener.close()

    async def _stop(self) -> None:
        for conn in list(self._open):
            self._abort(conn)  # Server.wait_closed waits for open connections on 3.12+
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener.wait_closed(), self.options.close_timeout)
