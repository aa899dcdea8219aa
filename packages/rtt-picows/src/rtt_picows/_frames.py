"""WebSocket messages and closes on picows, shared by the server and the client (SPEC.md 5, 6).

picows hands over single frames: fragmented messages are put together here,
under ``max_message_size``, and text is checked to be UTF-8 once whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, cast

from picows import WSCloseCode, WSFrame, WSMsgType, WSTransport

from rtt import CloseReason

if TYPE_CHECKING:
    from picows.picows import WSCloseHandshake

__all__ = [
    "Assembler",
    "Violation",
    "close_reason",
    "code_of",
    "reply_code",
    "violation_text",
    "whole",
    "wire_code",
]

PROTOCOL_ERROR: Final = 1002
INVALID_TEXT: Final = 1007
MESSAGE_TOO_BIG: Final = 1009


def wire_code(code: int) -> WSCloseCode:
    """A close code as picows takes it.

    At run time ``WSCloseCode`` is an ``IntEnum`` that takes any code (4001
    too); its stub calls it a plain ``Enum``.
    """
    return cast(WSCloseCode, code)


def code_of(code: WSCloseCode) -> int:
    """A close code picows reports, as a plain ``int`` (see :func:`wire_code`)."""
    return int(cast(int, code))


class Violation(Exception):
    """A frame that breaks RFC 6455 or the size limit: the connection ends with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# A connection ended by picows itself (a frame over max_frame_size, a malformed frame) carries
# picows's wording; its code says which rtt reason it is (CloseReason.from_wire).
_PING_TEXT = "peer has not replied to ping"
"""How picows's client keepalive words its close (1001) when a pong does not come."""


class Assembler:
    """Puts one connection's frames together into messages of at most ``limit`` bytes."""

    __slots__ = ("_parts", "_size", "_text", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] | None = None
        self._text = False
        self._size = 0

    def feed(self, frame: WSFrame) -> str | bytes | None:
        """The message ``frame`` completes, or None; raises :class:`Violation`.

        Control frames are the caller's; this takes TEXT, BINARY and CONTINUATION.
        """
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            # RFC 6455 5.2: no extension is negotiated, so a reserved bit fails the connection;
            # picows passes such frames on.
            raise Violation(PROTOCOL_ERROR)
        kind = frame.msg_type
        if kind is WSMsgType.CONTINUATION:
            parts = self._parts
            if parts is None:
                raise Violation(PROTOCOL_ERROR)  # a continuation of nothing
            self._size += frame.payload_size
            if self._size > self.limit:
                raise Violation(MESSAGE_TOO_BIG)
            parts.append(frame.get_payload_as_bytes())
            if not frame.fin:
                return None
            self._parts = None
            data = b"".join(parts)
            return _decode(data) if self._text else data
        if self._parts is not None:
            raise Violation(PROTOCOL_ERROR)  # a new message inside a fragmented one
        if frame.fin:
            return whole(frame, kind, self.limit)
        if frame.payload_size > self.limit:
            raise Violation(MESSAGE_TOO_BIG)
        self._parts = [frame.get_payload_as_bytes()]
        self._size = frame.payload_size
        self._text = kind is WSMsgType.TEXT
        return None


def whole(frame: WSFrame, kind: WSMsgType, limit: int) -> str | bytes:
    """The message of a final data frame of type ``kind`` outside a fragmented message;
    raises :class:`Violation`.

    A connection needs an :class:`Assembler` only once it sends a fragment.
    ``kind`` is the caller's ``frame.msg_type``: each read of it makes a Python enum.
    """
    if frame.rsv1 or frame.rsv2 or frame.rsv3:
        raise Violation(PROTOCOL_ERROR)
    if kind is WSMsgType.CONTINUATION:
        raise Violation(PROTOCOL_ERROR)  # a continuation of nothing
    if frame.payload_size > limit:
        raise Violation(MESSAGE_TOO_BIG)
    if kind is WSMsgType.TEXT:
        try:
            return frame.get_payload_as_utf8_text()
        except UnicodeDecodeError:
            raise Violation(INVALID_TEXT) from None
    return frame.get_payload_as_bytes()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Violation(INVALID_TEXT) from None


def violation_text(code: int) -> str:
    """rtt's text for the close that ends a violating connection (SPEC.md 6.1)."""
    if code == MESSAGE_TOO_BIG:
        return CloseReason.MESSAGE_TOO_BIG.value
    return CloseReason.PROTOCOL_ERROR.value


def reply_code(code: int) -> int:
    """The code to echo in reply to a peer's close (RFC 6455 5.5.1): its own, or 1000 when it sent none."""
    return code if 1000 <= code <= 4999 and code not in (1005, 1006, 1015) else 1000


def close_reason(ws: WSTransport, *, peer_is_client: bool) -> CloseReason:
    """Why a connection ended, from the close frames picows saw on this side.

    The side that sent the first close frame decides: a client's reads as
    :meth:`CloseReason.from_client` says, a server's as ``from_wire``.
    """
    # None until a close frame is sent or received (the stub says otherwise).
    handshake: WSCloseHandshake | None = ws.close_handshake
    if handshake is None:
        return CloseReason.TRANSPORT_ERROR
    received, sent = handshake.recv, handshake.sent
    if received is not None and (sent is None or handshake.recv_then_sent):
        if peer_is_client:
            return CloseReason.from_client(code_of(received.code), received.reason or "")
        return CloseReason.from_wire(code_of(received.code), received.reason or "")
    if sent is not None:
        if (sent.reason or "").startswith(_PING_TEXT):
            return CloseReason.PING_TIMEOUT
        return CloseReason.from_wire(code_of(sent.code), sent.reason or "")
    return CloseReason.TRANSPORT_ERROR
