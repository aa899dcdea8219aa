"""The ws Python client: rtt's reconnecting client over the ``websockets`` client."""

from __future__ import annotations

from typing import Any, cast

from websockets.asyncio.client import ClientConnection as WsClientConnection
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

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

from ._frames import close_reason, speak_rtt_reasons

__all__ = ["WsClient", "WsConnection"]


class _Connection(WsClientConnection):
    """A websockets client connection whose own close frames carry rtt's reasons."""

    def __init__(self, protocol: ClientProtocol, *args: Any, **kwargs: Any) -> None:
        speak_rtt_reasons(protocol)
        super().__init__(protocol, *args, **kwargs)


def _closed(exc: WsConnectionClosed) -> ConnectionClosed:
    """The error for a closed connection; a server's application close keeps its code and text."""
    reason = close_reason(exc.rcvd, exc.sent, exc.rcvd_then_sent, peer_is_client=False)
    if reason is CloseReason.APPLICATION:
        # The frame that decided: the server's, unless this side closed first. The text is
        # taken as sent, not checked against Close.application: any plain server may send it.
        frame = exc.rcvd if exc.rcvd is not None and (exc.sent is None or exc.rcvd_then_sent) else exc.sent
        assert frame is not None  # close_reason says APPLICATION only for a frame with such a code
        return ConnectionClosed(reason, code=frame.code, text=frame.reason)
    return ConnectionClosed(reason)


class WsConnection(ClientConnection):
    """One ``websockets`` client connection."""

    def __init__(self, ws: WsClientConnection) -> None:
        self.ws = ws

    async def recv(self) -> str | bytes:
        try:
            return await self.ws.recv()
        except WsConnectionClosed as exc:
            raise _closed(exc) from None

    async def send(self, data: str | bytes) -> None:
        try:
            await self.ws.send(data)
        except WsConnectionClosed as exc:
            raise _closed(exc) from None

    async def close(self, reason: CloseReason) -> None:
        try:
            await self.ws.close(reason.code, reason.value)
        finally:
            # If the handshake could not finish (or we were cancelled), drop the socket
            # rather than leave it open.
            if self.ws.state is not State.CLOSED:
                self.ws.transport.abort()


class WsClient(Client):
    """A client of ``ws://`` and ``wss://`` URLs; any plain WebSocket server works too."""

    _connection: WsConnection | None = None

    @property
    def websocket(self) -> WsClientConnection | None:
        """The current ``websockets`` connection (an escape hatch, and for fault tests)."""
        return self._connection.ws if self._connection is not None else None

    def pause_reading(self) -> None:
        """Stop reading the socket (SPEC.md 10.3): websockets answers pings only as it reads."""
        conn = cast(WsConnection, self._current_connection())
        conn.ws.transport.pause_reading()

    async def _connect(self) -> ClientConnection:
        options = self.options
        # websockets verifies wss:// against the system's CAs when given no context (ssl=None
        # means "no TLS" to it, which it refuses for wss://).
        tls: dict[str, Any] = {} if options.ssl is None else {"ssl": options.ssl}
        try:
            ws = await connect(
                self.connect_url,
                additional_headers=options.headers,
                compression=None,
                proxy=None,
                open_timeout=None,  # rtt applies connect_timeout to the whole attempt
                close_timeout=options.close_timeout,
                # One byte of slack for resume's escape; the core checks the message itself.
                max_size=wire_limit(options.max_message_size),
                create_connection=_Connection,
                **tls,
            )
        except InvalidStatus as exc:
            response = exc.response
            if 400 <= response.status_code < 600:
                raise RejectedError(
                    response.status_code, refusal_reason(response.body or b"", response.reason_phrase)
                ) from None
            raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
        except (InvalidHandshake, InvalidURI) as exc:
            raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
        self._connection = WsConnection(ws)
        return self._connection
