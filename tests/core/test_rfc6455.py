"""rtt.rfc6455.MaskCheck: every client frame masked, told by frame headers alone, in any cut."""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rtt.rfc6455 import MaskCheck


def frame(payload: bytes, *, masked: bool = True) -> bytes:
    size = len(payload)
    if size < 126:
        head = bytes([0x81, (0x80 if masked else 0) | size])
    elif size < 65536:
        head = bytes([0x81, (0x80 if masked else 0) | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, (0x80 if masked else 0) | 127]) + size.to_bytes(8, "big")
    return head + (os.urandom(4) if masked else b"") + payload


class Parser:
    def __init__(self) -> None:
        self.fed = b""
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed += data
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True


def checked() -> tuple[MaskCheck, Parser, list[BaseException]]:
    parser, failures = Parser(), list[BaseException]()
    return MaskCheck(parser, failures.append, lambda: ValueError("unmasked")), parser, failures


def feed_in_pieces(check: MaskCheck, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        check.feed_data(data[start:cut])
        start = cut


@given(st.lists(st.integers(min_value=0, max_value=70000), max_size=8))
def test_masked_frames_pass_unchanged_however_cut(cuts: list[int]) -> None:
    data = frame(b"a") + frame(b"b" * 200) + frame(b"c" * 66000) + frame(b"")
    check, parser, failures = checked()
    feed_in_pieces(check, data, cuts)
    assert parser.fed == data and failures == []


@given(st.lists(st.integers(min_value=0, max_value=700), max_size=6))
@example([309])  # a read ends one byte into the unmasked frame's header
def test_the_first_unmasked_frame_fails_and_nothing_after_it_is_parsed(cuts: list[int]) -> None:
    good = frame(b"x" * 300)
    data = good + frame(b"bad", masked=False) + frame(b"y")
    check, parser, failures = checked()
    feed_in_pieces(check, data, cuts)
    assert parser.fed == good
    assert [str(f) for f in failures] == ["unmasked"]
    assert check.feed_data(frame(b"later")) == (True, b"")


def test_a_parser_that_ended_first_is_not_failed_again() -> None:
    class Ending(Parser):
        def feed_data(self, data: bytes) -> tuple[bool, bytes]:
            return True, b""

    failures: list[BaseException] = []
    check = MaskCheck(Ending(), failures.append, lambda: ValueError("unmasked"))
    assert check.feed_data(frame(b"ok") + frame(b"no", masked=False)) == (True, b"")
    assert failures == []


@pytest.mark.parametrize("at_start", [True, False])
def test_eof_is_passed_on(at_start: bool) -> None:
    check, parser, _ = checked()
    if not at_start:
        check.feed_data(frame(b"z")[:3])
    check.feed_eof()
    assert parser.eof
