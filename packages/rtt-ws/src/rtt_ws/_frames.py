"""Close frames to and from rtt close reasons, shared by the ws server and client (SPEC.md 6, 12.2).

Also the one change to websockets' server protocol besides the wording of its
closes: a request it cannot parse is answered with 400 (SPEC.md 3.11).
"""

from __future__ import annotations

from http import HTTPStatus

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidMessage
from websockets.frames import Close, CloseCode
from websockets.protocol import CONNECTING, Protocol
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


BAD_REQUEST_TEXT = "Failed to open a WebSocket connection: not a valid HTTP request.\n"
"""The body of the 400 that answers a request websockets cannot parse."""


class _ServerProtocol(ServerProtocol):
    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        super().fail(code, _rtt_text(code, reason))

    def send_eof(self) -> None:
        # websockets ends a request it cannot parse (a garbage request line, a malformed
        # header, a body) by setting handshake_exc to an InvalidMessage and sending EOF,
        # without a response; RFC 9112 (2.2, 3) says 400. A peer that has itself sent
        # EOF (it left mid-request, or a TCP health check that never sent one) is not
        # answered: reader.eof is websockets' own, SPEC.md 12.2 names the coupling.
        exc = self.handshake_exc
        if self.state is CONNECTING and type(exc) is InvalidMessage and not self.reader.eof:
            # send_response() sends EOF through this method again: let it through that time,
            # and keep websockets' record of why the handshake failed.
            self.handshake_exc = None
            try:
                self.send_response(self.reject(HTTPStatus.BAD_REQUEST, BAD_REQUEST_TEXT))
            finally:
                self.handshake_exc = exc
            return
        super().send_eof()


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
