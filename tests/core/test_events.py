"""Close reasons: codes, reconnect policy and mapping from the wire (SPEC.md 6)."""

from __future__ import annotations

import pytest

from rtt import Close, CloseReason, ConnectionClosed, InvalidCloseError
from rtt.events import CLIENT_EVENTS, MAX_CLOSE_TEXT, SERVER_EVENTS


def test_event_names_are_fixed() -> None:
    assert SERVER_EVENTS == ("connect", "message", "disconnect", "broker", "away", "back", "moved")
    assert CLIENT_EVENTS == (
        "open",
        "message",
        "close",
        "reconnecting",
        "reconnected",
        "reconnect_failed",
        "error",
        "session_lost",
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
    assert CloseReason.from_wire(2999, "custom") is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_wire(5000) is CloseReason.TRANSPORT_ERROR


@pytest.mark.parametrize("code", [3000, 4000, 4321, 4999])
def test_an_application_code_from_a_server_is_an_application_close(code: int) -> None:
    assert CloseReason.from_wire(code, "custom") is CloseReason.APPLICATION
    # Even with rtt's own text: the code says the application chose it.
    assert CloseReason.from_wire(code, "shutdown") is CloseReason.APPLICATION


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


@pytest.mark.parametrize("code", [1005, 0, None])
def test_an_end_without_a_status_on_a_resumable_socket_is_a_drop(code: int | None) -> None:
    # rtt's clients close with their reason text; uvicorn reports a reset as 1005 (SPEC 6.2).
    assert CloseReason.from_client(code, resumable=True) is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_client(code, "client closed", resumable=True) is CloseReason.CLIENT_CLOSED


def test_a_resumable_socket_closed_with_a_status_reads_as_usual() -> None:
    assert CloseReason.from_client(1000, resumable=True) is CloseReason.CLIENT_CLOSED
    assert CloseReason.from_client(1001, resumable=True) is CloseReason.CLIENT_CLOSED
    assert CloseReason.from_client(1009, "message too big", resumable=True) is CloseReason.MESSAGE_TOO_BIG


def test_other_client_codes_read_as_from_wire() -> None:
    assert CloseReason.from_client(1009, "message too big") is CloseReason.MESSAGE_TOO_BIG
    assert CloseReason.from_client(1002) is CloseReason.PROTOCOL_ERROR
    assert CloseReason.from_client(1007, "bad utf-8") is CloseReason.PROTOCOL_ERROR
    assert CloseReason.from_client(1011) is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_client(2999) is CloseReason.TRANSPORT_ERROR
    assert CloseReason.from_client(5000) is CloseReason.TRANSPORT_ERROR


def test_which_reasons_reconnect() -> None:
    final = {r for r in CloseReason if not r.reconnect}
    assert final == {
        CloseReason.CLIENT_CLOSED,
        CloseReason.SERVER_CLOSED,
        CloseReason.REJECTED,
        CloseReason.SESSION_LOST,
        CloseReason.APPLICATION,
    }
    assert str(CloseReason.SLOW_CONSUMER) == "slow consumer"


@pytest.mark.parametrize("reason", [r for r in CloseReason if r is not CloseReason.APPLICATION])
def test_close_of_a_reason_is_its_code_and_text(reason: CloseReason) -> None:
    close = Close.of(reason)
    assert (close.reason, close.code, close.text) == (reason, reason.code, reason.value)
    assert close.as_text() == reason.value
    assert Close.from_text(close.as_text()) == close


@pytest.mark.parametrize(
    ("code", "text"),
    [(4001, "logged in elsewhere"), (3000, "Go away!"), (4999, ""), (4000, "é" * 61), (4002, " 4003 x ")],
)
def test_application_close_round_trips_as_text(code: int, text: str) -> None:
    close = Close.application(code, text)
    assert (close.reason, close.code, close.text) == (CloseReason.APPLICATION, code, text)
    assert close.as_text() == f"{code} {text}"
    assert Close.from_text(close.as_text()) == close
    assert Close.from_text(str(code)) == Close.application(code)


@pytest.mark.parametrize("text", ["", "bye", "1000 normal", "5000 x", "2999", "40011 x", "4001x", "x 4001"])
def test_from_text_refuses_what_is_not_a_close(text: str) -> None:
    assert Close.from_text(text) is None


@pytest.mark.parametrize(
    ("code", "text", "says"),
    [
        (1000, "", "not an application code"),
        (2999, "", "not an application code"),
        (5000, "", "not an application code"),
        (True, "", "must be an int"),
        (4001.0, "", "must be an int"),
        (4001, b"bytes", "must be a str"),
        (4001, "x" * (MAX_CLOSE_TEXT + 1), "at most 123"),
        (4001, "é" * 62, "124 bytes"),
        (4001, "a\x00b", "control characters"),
        (4001, "tab\there", "control characters"),
        (4001, "\ud800", "control characters"),
    ],
)
def test_application_close_refuses_what_cannot_be_sent(code: object, text: object, says: str) -> None:
    with pytest.raises(InvalidCloseError, match=says) as info:
        Close.application(code, text)
    assert isinstance(info.value, ValueError)


def test_connection_closed_keeps_an_application_close() -> None:
    error = ConnectionClosed.of(Close.application(4001, "bye"))
    assert (error.reason, error.code, error.text) == (CloseReason.APPLICATION, 4001, "bye")
    assert str(error) == "connection closed: application 4001 'bye'"
    plain = ConnectionClosed.of(Close.of(CloseReason.SHUTDOWN), "restarting")
    assert (plain.reason, plain.code, plain.text) == (CloseReason.SHUTDOWN, None, None)
    assert str(plain) == "connection closed: shutdown (restarting)"
