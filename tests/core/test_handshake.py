"""Headers, query parsing, origins and authorize results (SPEC.md 8)."""

from __future__ import annotations

import pytest

from rtt import Handshake, Headers, Reject
from rtt.handshake import normalise_origin, origin_allowed, parse_query


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    headers = Headers([("Origin", "https://a.example"), ("X-Tag", "1"), ("x-tag", "2")])
    assert headers["origin"] == headers["ORIGIN"] == "https://a.example"
    assert headers["X-TAG"] == "1"
    assert headers.get_all("x-tag") == ["1", "2"]
    assert "x-tag" in headers
    assert 3 not in headers  # type: ignore[comparison-overlap]
    assert sorted(headers) == ["origin", "x-tag"] and len(headers) == 2
    assert "X-Tag" in repr(headers)
    assert Headers({"A": "b"})["a"] == "b"


def test_query_first_value_wins_and_blanks_are_kept() -> None:
    assert parse_query("a=1&a=2&b=&c=x%20y") == {"a": "1", "b": "", "c": "x y"}


def test_handshake_parses_query_and_origin() -> None:
    hs = Handshake(Headers({"Origin": "https://x.example"}), "/p", "t=1", ("127.0.0.1", 5))
    assert hs.query == {"t": "1"} and hs.origin == "https://x.example"
    assert Handshake(Headers()).origin is None


def test_origin_allow_list() -> None:
    allowed = (normalise_origin("https://Good.example/"),)
    assert origin_allowed("https://good.example", allowed)
    assert not origin_allowed("https://evil.example", allowed)
    assert not origin_allowed("null", allowed)
    assert origin_allowed(None, allowed), "non-browser clients send no Origin"
    assert origin_allowed("https://anything", None)
    assert origin_allowed("https://anything", ("*",))


def test_reject_needs_an_error_status() -> None:
    assert Reject().status == 403
    with pytest.raises(ValueError, match="400-599"):
        Reject(200)


@pytest.mark.parametrize("reason", ["two\r\nSet-Cookie: x=1", "tab\there", "x" * 201, "\x00", 401])
def test_a_refusal_reason_is_one_short_line(reason: object) -> None:
    # It reaches a response body and the status line: nothing may split or extend a response.
    with pytest.raises(ValueError, match="one line of printable text of at most 200"):
        Reject(401, reason)  # type: ignore[arg-type]


def test_a_refusal_reason_may_be_any_printable_text() -> None:
    assert Reject(401, "Jeton expiré — réessayez").reason == "Jeton expiré — réessayez"
    assert Reject(401, "x" * 200).reason == "x" * 200
    assert Reject(401, "").reason == ""


def test_headers_from_raw_pairs_decode_when_first_read() -> None:
    raw = [(b"Origin", b"https://a.example"), (b"X-Tag", b"1"), (b"x-tag", b"\xe9")]
    headers = Headers.from_raw(raw)
    assert headers["origin"] == "https://a.example"
    assert headers.get_all("X-TAG") == ["1", "\xe9"]
    assert list(headers) == ["origin", "x-tag"] and len(headers) == 2
    assert "x-tag" in headers and "nope" not in headers
