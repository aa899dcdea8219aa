"""The text-wire encoding of bytes and message sizes (SPEC.md 5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtt import InvalidMessageError, MessageTooBigError
from rtt.codec import check_message, decode_text, encode_text, encoded_size_limit, message_size


@given(st.one_of(st.text(), st.binary()))
def test_round_trip_is_exact(message: str | bytes) -> None:
    encoded = encode_text(message)
    assert isinstance(encoded, str)
    decoded = decode_text(encoded)
    assert type(decoded) is type(message) and decoded == message


@given(st.text().filter(lambda s: not s.startswith("\x00")))
def test_plain_text_is_unchanged_on_the_wire(text: str) -> None:
    assert encode_text(text) == text
    assert decode_text(text) == text


@given(st.binary(max_size=3000))
def test_encoded_size_limit_bounds_the_wire(data: bytes) -> None:
    assert len(encode_text(data)) <= encoded_size_limit(len(data))


def test_documented_forms() -> None:
    assert encode_text(b"\x00\xff") == "\x00bAP8="
    assert encode_text("\x00x") == "\x00\x00x"
    assert decode_text("\x00bAP8=") == b"\x00\xff"
    assert decode_text("\x00\x00x") == "\x00x"
    # Not rtt-encoded: delivered as text, never dropped.
    assert decode_text("\x00b not base64!") == "\x00b not base64!"
    assert decode_text("\x00zzz") == "\x00zzz"
    assert decode_text("\x00") == "\x00"
    # Base64 with non-zero padding bits is no message's encoding (b"A" is "\x00bQQ=="): text too.
    assert decode_text("\x00bQR==") == "\x00bQR=="
    # Nor is padding after a whole group, which the decoder also takes (b"ABC" is "\x00bQUJD").
    assert decode_text("\x00bQUJD=") == "\x00bQUJD="
    assert decode_text("\x00bQUJD==") == "\x00bQUJD=="
    assert decode_text("\x00bAAB=") == "\x00bAAB="


def test_sizes() -> None:
    assert message_size("abc") == 3
    assert message_size("é") == 2
    assert message_size("🚀") == 4
    assert message_size(b"\x00\x01") == 2
    assert check_message("abcd", 4) == 4
    with pytest.raises(MessageTooBigError) as info:
        check_message("é" * 3, 5)
    assert (info.value.size, info.value.limit) == (6, 5)


@pytest.mark.parametrize("bad", [1, None, ["x"], bytearray(b"x"), memoryview(b"x")])
def test_only_str_and_bytes_are_messages(bad: object) -> None:
    with pytest.raises(InvalidMessageError, match="must be str or bytes"):
        check_message(bad, 10)


def test_bytearray_hint() -> None:
    with pytest.raises(InvalidMessageError, match=r"pass bytes\(data\)"):
        check_message(bytearray(b"x"), 10)
