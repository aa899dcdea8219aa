"""The events a transport emits and the close reasons it reports (SPEC.md sections 4, 5, 6).

Handlers receive positional arguments, not event objects, because the message
path runs once per message and should allocate nothing it does not need:

=================  ===================================  ==========================
side / event       handler arguments                    fires
=================  ===================================  ==========================
server connect     ``(socket)``                         once per accepted socket
server message     ``(socket, data)``                   per message, in order
server disconnect  ``(socket, reason)``                 once per socket (session), last
server broker      ``(state)``                          the broker link went down or came back
server away        ``(socket, reason)``                 a resumable socket's connection ended (SPEC 17)
server back        ``(socket)``                         its client resumed here
server moved       ``(socket)``                         the session went to another process
client open        ``()``                               each time a connection opens
client message     ``(data)``                           per message, in order
client close       ``(reason)``                         each time a connection ends
client reconnecting ``(attempt, delay)``                before each reconnect wait
client reconnected ``(attempt)``                        after ``open`` on a reconnect
client reconnect_failed ``(attempts)``                  when reconnection gives up
client error       ``(exception)``                      a failed attempt, a raising handler
client session_lost ``(detail)``                        a reconnection could not resume (SPEC 17)
=================  ===================================  ==========================

Handlers may be plain functions or coroutine functions.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from .errors import InvalidCloseError

__all__ = [
    "APPLICATION_CODES",
    "CLIENT_EVENTS",
    "MAX_CLOSE_TEXT",
    "SERVER_EVENTS",
    "ClientEvent",
    "Close",
    "CloseReason",
    "ServerEvent",
]

ServerEvent = Literal["connect", "message", "disconnect", "broker", "away", "back", "moved"]
ClientEvent = Literal[
    "open", "message", "close", "reconnecting", "reconnected", "reconnect_failed", "error", "session_lost"
]

SERVER_EVENTS: tuple[ServerEvent, ...] = (
    "connect",
    "message",
    "disconnect",
    "broker",
    "away",
    "back",
    "moved",
)
CLIENT_EVENTS: tuple[ClientEvent, ...] = (
    "open",
    "message",
    "close",
    "reconnecting",
    "reconnected",
    "reconnect_failed",
    "error",
    "session_lost",
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
    APPLICATION = "application"
    """The server closed this socket with the application's own code and text
    (``Server.disconnect(socket_id, code=..., reason=...)``, SPEC.md 6.3); the client
    finds them in ``close_code`` and ``close_text``. Final unless the code is one of
    the reconnect policy's ``retry_codes``."""
    SESSION_LOST = "session lost"
    """A resumable session ended because its client did not come back within
    ``resume_window``, or its replay log passed ``resume_buffer`` (SPEC.md 17). Only a
    server's ``disconnect`` event reports it; it never crosses the wire."""

    @property
    def code(self) -> int:
        """The WebSocket close code (RFC 6455 section 7.4) that carries this reason.

        An application close has no code of its own: its :class:`Close` has the
        application's, and this says 4000, the first private-use code.
        """
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

        An application code (3000-4999) is an application close whatever the
        text says. Otherwise the text wins when it is one of ours, then the
        code decides, and a connection that ended without a close frame is a
        transport error.
        """
        if code is not None and code in APPLICATION_CODES:
            return cls.APPLICATION
        try:
            return cls(text)
        except ValueError:
            pass
        return _FROM_CODE.get(code if code is not None else 1006, cls.TRANSPORT_ERROR)

    @classmethod
    def from_client(cls, code: int | None, text: str = "", *, resumable: bool = False) -> CloseReason:
        """Map the close frame a server received from its client to a reason (the server side of 6).

        The text wins when it is one of ours (a browser cannot send 1009, so
        rtt's browser client says ``message too big`` with an application
        code). Otherwise a client that closes on purpose sends 1000, 1001 (a
        page going away), a close frame without a status (which libraries
        report as 1005, 0 or ``None``) or an application code (3000-4999):
        all ``client closed``. Any other code reads as :meth:`from_wire` reads it.

        With ``resumable`` (the socket negotiated resume, SPEC.md 17), the
        client is rtt's, which always closes with its reason text: an end
        without a status then reads as ``transport error``, a drop that the
        session outlives. Some servers report a reset so (uvicorn: 1005).
        """
        try:
            return cls(text)
        except ValueError:
            pass
        if resumable and (code is None or code in _NO_STATUS_CODES):
            return cls.TRANSPORT_ERROR
        if code is None or code in _CLIENT_CLOSE_CODES or 3000 <= code <= 4999:
            return cls.CLIENT_CLOSED
        return cls.from_wire(code, text)


# What a client's deliberate close looks like to a server's library: 1005 is
# "no status" in RFC 6455, and aiohttp reports the same as 0.
_CLIENT_CLOSE_CODES = frozenset({0, 1000, 1001, 1005})
_NO_STATUS_CODES = frozenset({0, 1005})

APPLICATION_CODES = range(3000, 5000)
"""Close codes an application may send (SPEC.md 6.3): 4000-4999 are for private use
(RFC 6455 7.4.2); 3000-3999 are registered with IANA for libraries and frameworks
(SockJS applications use 3000 "Go away!")."""

MAX_CLOSE_TEXT = 123
"""The longest close text in UTF-8 bytes: a WebSocket close frame's payload is at most
125 bytes, two of which are the code."""

_CODES: dict[CloseReason, int] = {
    CloseReason.APPLICATION: 4000,
    CloseReason.SESSION_LOST: 1000,
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

_FINAL = frozenset(
    {
        CloseReason.CLIENT_CLOSED,
        CloseReason.SERVER_CLOSED,
        CloseReason.REJECTED,
        CloseReason.APPLICATION,
        CloseReason.SESSION_LOST,
    }
)

# "4001" or "4001 some text": an application close written as text (Close.as_text).
_TEXT_FORM = re.compile(r"([34][0-9]{3})(?: (.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Close:
    """One close as it crosses the wire: the reason rtt reports, and the code and text sent.

    For rtt's own reasons the code and text are the reason's (:meth:`of`); an
    application close (:meth:`application`) carries the application's code and
    text with the reason :attr:`CloseReason.APPLICATION`. A plugin's
    ``Server._close`` receives one and sends :attr:`code` and :attr:`text` in
    its protocol's close (a WebSocket close frame, SockJS ``c[code,"text"]``);
    a protocol whose close carries only text sends :meth:`as_text` and reads
    it back with :meth:`from_text`.
    """

    reason: CloseReason
    code: int
    text: str

    @classmethod
    def of(cls, reason: CloseReason) -> Close:
        """The close rtt sends for one of its own reasons."""
        return _OWN[reason]

    @classmethod
    def application(cls, code: object, text: object = "") -> Close:
        """An application's close; raise :class:`~rtt.errors.InvalidCloseError` if rtt cannot send it.

        ``code`` must be an int in 3000-4999 (:data:`APPLICATION_CODES`);
        ``text`` a str of at most :data:`MAX_CLOSE_TEXT` UTF-8 bytes with no
        control characters (every protocol carries it, and a log line shows it).
        """
        if isinstance(code, bool) or not isinstance(code, int):
            raise InvalidCloseError(f"close code must be an int in 3000-4999, got {code!r}")
        if code not in APPLICATION_CODES:
            raise InvalidCloseError(
                f"close code {code} is not an application code: use 4000-4999 "
                "(or 3000-3999 for a code registered with IANA); rtt's own reasons have their own codes"
            )
        if not isinstance(text, str):
            raise InvalidCloseError(f"close reason must be a str, got {type(text).__name__}")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_CLOSE_TEXT:
            raise InvalidCloseError(
                f"close reason is {size} bytes in UTF-8; a close frame holds at most {MAX_CLOSE_TEXT}"
            )
        for char in text:
            if unicodedata.category(char) in ("Cc", "Cs"):
                raise InvalidCloseError(f"close reason must not contain control characters, got {char!r}")
        return cls(CloseReason.APPLICATION, code, text)

    def as_text(self) -> str:
        """This close as one string, for protocols whose close carries only text.

        rtt's own reasons are their value (``"server closed"``); an application
        close is its code, a space and its text (``"4001 logged in elsewhere"``).
        """
        if self.reason is CloseReason.APPLICATION:
            return f"{self.code} {self.text}"
        return self.reason.value

    @classmethod
    def from_text(cls, text: str) -> Close | None:
        """Read back :meth:`as_text`; ``None`` if ``text`` is neither rtt's reason nor an app close."""
        own = _OWN_BY_TEXT.get(text)
        if own is not None:
            return own
        match = _TEXT_FORM.fullmatch(text)
        if match is None:
            return None
        try:
            return cls.application(int(match[1]), match[2] or "")
        except InvalidCloseError:
            return None


_OWN = {reason: Close(reason, reason.code, reason.value) for reason in CloseReason}
# What from_text reads back as rtt's own: "application" alone is no close an rtt peer sends.
_OWN_BY_TEXT = {close.text: close for close in _OWN.values() if close.reason is not CloseReason.APPLICATION}
