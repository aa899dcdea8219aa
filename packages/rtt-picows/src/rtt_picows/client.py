"""The picows Python client: rtt's reconnecting client over ``picows.ws_connect``."""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Final, cast

from picows import (
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSInvalidURL,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from rtt import (
    Client,
    ClientConnection,
    CloseReason,
    ConnectError,
    ConnectionClosed,
    RejectedError,
)
from rtt.handshake import refusal_reason
from rtt.resume import wire_limit

from ._frames import Assembler, Violation, close_reason, code_of, reply_code, violation_text, wire_code

__all__ = ["PicowsClient", "PicowsConnection"]

_QUEUE: Final = 16
"""Messages read ahead of ``recv()`` before the socket is no longer read (SPEC.md 10.3)."""
_KEEPALIVE: Final = 20.0
"""picows's client keepalive: a ping after this many idle seconds, and as long for the pong."""


class _Listener(WSListener):
    """Receives picows's frames for one connection and keeps up to :data:`_QUEUE` messages."""

    __slots__ = ("assembler", "drained", "items", "paused", "waiter", "writing_paused", "ws")

    def __init__(self, limit: int) -> None:
        self.assembler = Assembler(limit)
        self.items: collections.deque[str | bytes] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.ws: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.ws = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(wire_code(reply_code(code_of(frame.get_close_code()))))
            transport.disconnect()
            return
        if kind is WSMsgType.PING or kind is WSMsgType.PONG:
            return  # picows answers pings and times its own
        if transport.is_close_frame_sent:
            return
        try:
            data = self.assembler.feed(frame)
        except Violation as exc:
            transport.send_close(wire_code(exc.code), violation_text(exc.code).encode())
            transport.disconnect()
            self._wake()
            return
        if data is None:
            return
        self.items.append(data)
        if len(self.items) >= _QUEUE and not self.paused:
            self.paused = True
            transport.underlying_transport.pause_reading()
        self._wake()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._wake()
        self._drain()

    def pause_writing(self) -> None:
        # A client always writes with the transport's write() (it masks each frame into picows's
        # own buffer), which calls this on every Python version: send() waits until resume_writing.
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._drain()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def settled(self, ws: WSTransport) -> None:
        """Wait until writing may go on (not paused, socket not closing) or the connection is gone."""
        while (self.writing_paused or ws.underlying_transport.is_closing()) and not ws.is_disconnected:
            drained = self.drained
            if drained is None:
                drained = self.drained = asyncio.get_running_loop().create_future()
            # Shared by every task that sends; shielded so one cancelled sender leaves the rest waiting.
            await asyncio.shield(drained)

    def _drain(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)


def _closed(ws: WSTransport) -> ConnectionClosed:
    """The error for a closed connection; a server's application close keeps its code and text."""
    reason = close_reason(ws, peer_is_client=False)
    handshake = ws.close_handshake
    if reason is CloseReason.APPLICATION and handshake is not None:
        # The frame that decided: the server's, unless this side closed first. The text is
        # taken as sent, not checked against Close.application: any plain server may send it.
        received, sent = handshake.recv, handshake.sent
        frame = received if received is not None and (sent is None or handshake.recv_then_sent) else sent
        assert frame is not None  # close_reason says APPLICATION only for a frame with such a code
        return ConnectionClosed(reason, code=code_of(frame.code), text=frame.reason or "")
    return ConnectionClosed(reason)


class PicowsConnection(ClientConnection):
    """One picows client connection."""

    def __init__(self, ws: WSTransport, listener: _Listener, close_timeout: float) -> None:
        self.ws = ws
        self._listener = listener
        self._close_timeout = close_timeout

    async def recv(self) -> str | bytes:
        listener = self._listener
        items = listener.items
        while not items:
            if self.ws.is_disconnected or self.ws.is_close_frame_sent:
                raise _closed(self.ws)
            listener.waiter = asyncio.get_running_loop().create_future()
            try:
                await listener.waiter
            finally:
                listener.waiter = None
        data = items.popleft()
        if listener.paused and len(items) < _QUEUE // 2:
            listener.paused = False
            if not self.ws.is_disconnected:
                self.ws.underlying_transport.resume_reading()
        return data

    async def send(self, data: str | bytes) -> None:
        ws = self.ws
        listener = self._listener
        if ws.is_disconnected or ws.is_close_frame_sent:
            raise _closed(ws)
        if ws.underlying_transport.is_closing():
            # The socket failed (a reset) and picows hears of it only in a callback to come: a
            # write now would be dropped with a warning, and a send loop that never yields would
            # never let that callback run.
            await listener.settled(ws)
            raise _closed(ws)
        ws.send(WSMsgType.TEXT if type(data) is str else WSMsgType.BINARY, data)
        if listener.writing_paused:
            # picows's send() only buffers: wait, as websockets does, until the write buffer is
            # back under its low-water mark, so that a send loop yields and its memory stays
            # bounded. A server that stops reading for good is ended by the keepalive.
            await listener.settled(ws)
            if ws.is_disconnected:
                raise _closed(ws)

    async def close(self, reason: CloseReason) -> None:
        ws = self.ws
        try:
            if not ws.is_disconnected:
                if not ws.is_close_frame_sent:
                    ws.send_close(wire_code(reason.code), reason.value.encode())
                # The server answers with its close frame and closes the TCP connection.
                async with asyncio.timeout(self._close_timeout):
                    await ws.wait_disconnected()
        except TimeoutError:
            pass
        finally:
            # If the handshake could not finish (or we were cancelled), drop the socket.
            if not ws.is_disconnected:
                ws.disconnect(graceful=False)
            self._listener._wake()


class _ClientLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows's client logger, quiet about the server: its INFO lines and a peer's bad frame at DEBUG.

    rtt.client logs its own connections; a malformed frame from the server
    (picows's ``WS parser error`` at ERROR) ends the connection as a protocol
    error the application sees, and is the peer's mistake, not the client's.
    """

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if level == logging.INFO or (isinstance(msg, str) and msg.startswith("WS parser error")):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


_LOG = _ClientLog(logging.getLogger("picows.client"), {})


def _phrase(raw_header: bytes | None) -> str:
    """The reason phrase of a response's status line."""
    line = (raw_header or b"").split(b"\r\n", 1)[0].split(b" ", 2)
    return line[2].decode("latin-1").strip() if len(line) == 3 else ""


class PicowsClient(Client):
    """A client of ``ws://`` and ``wss://`` URLs; any plain WebSocket server works too."""

    _connection: PicowsConnection | None = None

    @property
    def websocket(self) -> WSTransport | None:
        """The current picows transport (an escape hatch, and for fault tests)."""
        return self._connection.ws if self._connection is not None else None

    def pause_reading(self) -> None:
        """Stop reading the socket (SPEC.md 10.3): picows answers pings only as it reads."""
        conn = cast(PicowsConnection, self._current_connection())
        conn.ws.underlying_transport.pause_reading()

    async def _connect(self) -> ClientConnection:
        options = self.options
        # One byte of slack for resume's escape; the core checks the message itself.
        limit = wire_limit(options.max_message_size)
        try:
            ws, listener = await ws_connect(
                lambda: _Listener(limit),
                self.connect_url,
                extra_headers=dict(options.headers),
                # None: for a wss:// URL picows takes asyncio's default context (the system's
                # CAs, verification on); a ws:// URL with a context is refused before this.
                ssl_context=options.ssl,
                # rtt bounds the whole attempt with connect_timeout; picows's own bound only makes
                # sure a cancelled attempt does not leave its socket open.
                websocket_handshake_timeout=options.connect_timeout,
                enable_auto_ping=True,
                auto_ping_idle_timeout=_KEEPALIVE,
                auto_ping_reply_timeout=_KEEPALIVE,
                max_frame_size=limit,
                max_redirects=0,
                logger_name=_LOG,
                use_aiofastnet=False,  # asyncio's own transports: pause_reading, write buffer size
            )
        except WSInvalidStatusError as exc:
            response = exc.response
            assert response is not None
            status = int(response.status)
            if 400 <= status < 600:
                reason = refusal_reason(
                    exc.raw_body or b"", _phrase(exc.raw_header) or response.status.phrase
                )
                raise RejectedError(status, reason) from None
            raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
        except (WSError, WSInvalidURL) as exc:
            raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
        if not isinstance(listener, _Listener):
            # picows returns no listener, and no error, when the connection ends before the
            # server's answer (a TLS server that refuses the client's certificate closes then).
            ws.disconnect()
            raise ConnectError(f"cannot connect to {self.url}: the connection closed during the handshake")
        self._connection = PicowsConnection(ws, listener, options.close_timeout)
        return self._connection
