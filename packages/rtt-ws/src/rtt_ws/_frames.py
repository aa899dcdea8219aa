"""Close frames to rtt close reasons, shared by the ws server and client (SPEC.md 6, 12.2)."""

from __future__ import annotations

from websockets.frames import Close

from rtt import CloseReason


def close_reason(
    received: Close | None, sent: Close | None, received_first: bool | None, *, peer_is_client: bool
) -> CloseReason:
    """Why a connection ended, from the close frames websockets saw on this side.

    The side that sent the first close frame decides. A client's own 1000,
    1001 (a page going away) or 1005 (a close frame without a status, what a
    bare ``close()`` sends) is ``client closed``; a keepalive failure that
    websockets reports with 1011 is ``ping timeout``.
    """
    if received is not None and (sent is None or received_first):
        if peer_is_client and received.code in (1000, 1001, 1005):
            return CloseReason.CLIENT_CLOSED
        return CloseReason.from_wire(received.code, received.reason)
    if sent is not None:
        if sent.code == 1011 and "keepalive" in sent.reason:
            return CloseReason.PING_TIMEOUT
        return CloseReason.from_wire(sent.code, sent.reason)
    return CloseReason.TRANSPORT_ERROR
