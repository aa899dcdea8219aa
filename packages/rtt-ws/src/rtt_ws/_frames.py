"""Close frames to and from rtt close reasons, shared by the ws server and client (SPEC.md 6, 12.2)."""

from __future__ import annotations

from websockets.client import ClientProtocol
from websockets.frames import Close, CloseCode
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from rtt import CloseReason


def close_reason(
    received: Close | None, sent: Close | None, received_first: bool | None, *, peer_is_client: bool
) -> CloseReason:
    """Why a connection ended, from the close frames websockets saw on this side.

    The side that sent the first close frame decides: a client's reads as
    :meth:`CloseReason.from_client` says, a server's as ``from_wire``; a
    keepalive failure that websockets reports with 1011 is ``ping timeout``.
    """
    if received is not None and (sent is None or received_first):
        if peer_is_client:
            return CloseReason.from_client(received.code, received.reason)
        return CloseReason.from_wire(received.code, received.reason)
    if sent is not None:
        if sent.code == 1011 and "keepalive" in sent.reason:
            return CloseReason.PING_TIMEOUT
        return CloseReason.from_wire(sent.code, sent.reason)
    return CloseReason.TRANSPORT_ERROR


def _rtt_text(code: int, text: str) -> str:
    # websockets words its own closes its own way ("frame with 1001 bytes exceeds limit of
    # 1000 bytes", "invalid opcode"); the peer must read rtt's reason (SPEC.md 6).
    if code == CloseCode.MESSAGE_TOO_BIG:
        return CloseReason.MESSAGE_TOO_BIG.value
    if code in (CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA):
        return CloseReason.PROTOCOL_ERROR.value
    return text


class _ServerProtocol(ServerProtocol):
    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        super().fail(code, _rtt_text(code, reason))


class _ClientProtocol(ClientProtocol):
    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        super().fail(code, _rtt_text(code, reason))


def speak_rtt_reasons(protocol: Protocol) -> None:
    """Make the close frames websockets sends by itself on ``protocol`` carry rtt's text.

    ``serve()`` and ``connect()`` build their Sans-I/O protocol without a
    factory hook, so the connection (made through ``create_connection``)
    moves its protocol to a subclass that only rewords ``fail()``; the
    subclasses add no state, so the instance is unchanged otherwise.
    """
    if isinstance(protocol, ServerProtocol):
        protocol.__class__ = _ServerProtocol
    elif isinstance(protocol, ClientProtocol):
        protocol.__class__ = _ClientProtocol
