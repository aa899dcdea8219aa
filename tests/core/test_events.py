"""Close reasons: codes, reconnect policy and mapping from the wire (SPEC.md 6)."""

from __future__ import annotations

import pytest

from rtt import CloseReason
from rtt.events import CLIENT_EVENTS, SERVER_EVENTS


def test_event_names_are_fixed() -> None:
    assert SERVER_EVENTS == ("connect", "message", "disconnect", "broker")
    assert CLIENT_EVENTS == (
        "open",
        "message",
        "close",
        "reconnecting",
        "reconnected",
        "reconnect_failed",
        "error",
    )


@pytest.mark.parametrize("reason", list(CloseReason))
def test_text_round_trips_through_from_wire(reason: CloseReason) -> None:
    assert CloseReason.from_wire(reason.code, reason.value) is reason
    assert 1000 <= reason.code <= 4999


def test_codes_without_text() -> None:
    assert CloseReason.from_wire(1000) is CloseReason.SERVER_CLOSED
    assert CloseReason.from_wire(1001) is CloseReason.SHUTDOWN
    assert CloseReason.from_wire(1009, "too big") is CloseReason.MESSAGE_TOO_BIG
    assert CloseReason.from_wire(1002) is CloseReason.PROTOCOL_ERROR
    assert CloseReason.from_wire(None) is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_wire(1006) is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_wire(4321, "custom") is CloseReason.TRANSPORT_ERROR


@pytest.mark.parametrize("code", [1000, 1001, 1005, 0, None, 3000, 4000, 4999])
def test_a_deliberate_client_close_is_client_closed_whatever_the_library_reports(
    code: int | None,
) -> None:
    # 1005 and 0 are how websockets and aiohttp report a close frame without a status.
    assert CloseReason.from_client(code) is CloseReason.CLIENT_CLOSED
    assert CloseReason.from_client(code, "bye") is CloseReason.CLIENT_CLOSED
    if code is not None and code >= 3000:
        # rtt's own text wins: a browser cannot send 1009 and says so with an application code.
        assert CloseReason.from_client(code, "message too big") is CloseReason.MESSAGE_TOO_BIG


def test_other_client_codes_read_as_from_wire() -> None:
    assert CloseReason.from_client(1009, "message too big") is CloseReason.MESSAGE_TOO_BIG
    assert CloseReason.from_client(1002) is CloseReason.PROTOCOL_ERROR
    assert CloseReason.from_client(1007, "bad utf-8") is CloseReason.PROTOCOL_ERROR
    assert CloseReason.from_client(1011) is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_client(2999) is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_client(5000) is CloseReason.TRANSPORT_ERROR


def test_which_reasons_reconnect() -> None:
    final = {r for r in CloseReason if not r.reconnect}
    assert final == {CloseReason.CLIENT_CLOSED, CloseReason.SERVER_CLOSED, CloseReason.REJECTED}
    assert str(CloseReason.SLOW_CONSUMER) == "slow consumer"
