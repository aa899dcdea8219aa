"""The events a transport emits and the close reasons it reports (SPEC.md sections 4, 5, 6).

Handlers receive positional arguments, not event objects, because the message
path runs once per message and should allocate nothing it does not need:

=================  ===================================  ==========================
side / event       handler arguments                    fires
=================  ===================================  ==========================
server connect     ``(socket)``                         once per accepted socket
server message     ``(socket, data)``                   per message, in order
server disconnect  ``(socket, reason)``                 once per socket, last
server broker      ``(state)``                          the broker link went down or came back
client open        ``()``                               each time a connection opens
client message     ``(data)``                           per message, in order
client close       ``(reason)``                         each time a connection ends
client reconnecting ``(attempt, delay)``                before each reconnect wait
client reconnected ``(attempt)``                        after ``open`` on a reconnect
client reconnect_failed ``(attempts)``                  when reconnection gives up
client error       ``(exception)``                      a failed attempt, a raising handler
=================  ===================================  ==========================

Handlers may be plain functions or coroutine functions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = ["CLIENT_EVENTS", "SERVER_EVENTS", "ClientEvent", "CloseReason", "ServerEvent"]

ServerEvent = Literal["connect", "message", "disconnect", "broker"]
ClientEvent = Literal["open", "message", "close", "reconnecting", "reconnected", "reconnect_failed", "error"]

SERVER_EVENTS: tuple[ServerEvent, ...] = ("connect", "message", "disconnect", "broker")
CLIENT_EVENTS: tuple[ClientEvent, ...] = (
    "open",
    "message",
    "close",
    "reconnecting",
    "reconnected",
    "reconnect_failed",
    "error",
)


class CloseReason(StrEnum):
    """Why a connection ended: one vocabulary for every transport (SPEC.md section 6).

    The string value is also the WebSocket close reason text rtt sends, so a
    peer can recover the exact member with :meth:`from_wire`.
    """

    CLIENT_CLOSED = "client closed"
    """The client closed deliberately (``Client.close()``)."""
    SERVER_CLOSED = "server closed"
    """The server closed this one socket deliberately (``Server.disconnect()``)."""
    SHUTDOWN = "shutdown"
    """The server is going away; clients should reconnect."""
    PING_TIMEOUT = "ping timeout"
    """The peer did not answer heartbeats within ``ping_timeout``."""
    MESSAGE_TOO_BIG = "message too big"
    """The peer sent a message larger than ``max_message_size``."""
    SLOW_CONSUMER = "slow consumer"
    """The peer did not read; its unsent data passed ``outbound_limit``."""
    REJECTED = "rejected"
    """The handshake was refused (origin not allowed, ``authorize`` said no)."""
    PROTOCOL_ERROR = "protocol error"
    """The peer sent something the transport's protocol does not allow."""
    TRANSPORT_ERROR = "transport error"
    """The connection broke without a clean close (network error, abrupt cut)."""

    @property
    def code(self) -> int:
        """The WebSocket close code (RFC 6455 section 7.4) that carries this reason."""
        return _CODES[self]

    @property
    def reconnect(self) -> bool:
        """Whether a client reconnects after losing its connection for this reason.

        Deliberate closes by either side and rejections are final; everything
        else (shutdown, timeouts, errors, limits) is worth another attempt.
        """
        return self not in _FINAL

    @classmethod
    def from_wire(cls, code: int | None, text: str = "") -> CloseReason:
        """Map a received WebSocket close code and reason text to a reason.

        The text wins when it is one of ours; otherwise the code decides, and
        a connection that ended without a close frame is a transport error.
        """
        try:
            return cls(text)
        except ValueError:
            pass
        return _FROM_CODE.get(code if code is not None else 1006, cls.TRANSPORT_ERROR)

    @classmethod
    def from_client(cls, code: int | None, text: str = "") -> CloseReason:
        """Map the close frame a server received from its client to a reason (the server side of 6).

        The text wins when it is one of ours (a browser cannot send 1009, so
        rtt's browser client says ``message too big`` with an application
        code). Otherwise a client that closes on purpose sends 1000, 1001 (a
        page going away), a close frame without a status (which libraries
        report as 1005, 0 or ``None``) or an application code (3000-4999):
        all ``client closed``. Any other code reads as :meth:`from_wire` reads it.
        """
        try:
            return cls(text)
        except ValueError:
            pass
        if code is None or code in _CLIENT_CLOSE_CODES or 3000 <= code <= 4999:
            return cls.CLIENT_CLOSED
        return cls.from_wire(code, text)


# What a client's deliberate close looks like to a server's library: 1005 is
# "no status" in RFC 6455, and aiohttp reports the same as 0.
_CLIENT_CLOSE_CODES = frozenset({0, 1000, 1001, 1005})

_CODES: dict[CloseReason, int] = {
    CloseReason.CLIENT_CLOSED: 1000,
    CloseReason.SERVER_CLOSED: 1000,
    CloseReason.SHUTDOWN: 1001,
    CloseReason.PING_TIMEOUT: 1011,
    CloseReason.MESSAGE_TOO_BIG: 1009,
    CloseReason.SLOW_CONSUMER: 1008,
    CloseReason.REJECTED: 1008,
    CloseReason.PROTOCOL_ERROR: 1002,
    CloseReason.TRANSPORT_ERROR: 1006,
}

# Codes a client may receive without rtt's reason text (a plain WebSocket
# server, or a library that drops the text); 1000 from a server means the
# server closed this socket on purpose.
_FROM_CODE: dict[int, CloseReason] = {
    1000: CloseReason.SERVER_CLOSED,
    1001: CloseReason.SHUTDOWN,
    1002: CloseReason.PROTOCOL_ERROR,
    1003: CloseReason.PROTOCOL_ERROR,
    1007: CloseReason.PROTOCOL_ERROR,
    1009: CloseReason.MESSAGE_TOO_BIG,
    1011: CloseReason.TRANSPORT_ERROR,
    1012: CloseReason.SHUTDOWN,
    1013: CloseReason.SHUTDOWN,
}

_FINAL = frozenset({CloseReason.CLIENT_CLOSED, CloseReason.SERVER_CLOSED, CloseReason.REJECTED})
