"""The sans-I/O wire rules of resume, ``rtt.resume`` (design of issue 17, sections 2.1-2.4; SPEC 17.2)."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtt
from rtt import TransportError, resume
from rtt.resume import (
    ACK_BYTES,
    ACK_DELAY,
    ACK_EVERY,
    CONTROL_LETTERS,
    CONTROL_LIMIT,
    ENTRY_COST,
    QUERY,
    AckClock,
    Control,
    Data,
    Entry,
    ReplayLog,
    ResumeProtocolError,
    ResumeRequest,
    Welcome,
    ack_text,
    classify,
    escape,
    hello_text,
    identity_digest,
    loss_text,
    wire_limit,
)
from rtt.testing import ROUND_TRIP

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "js" / "resume-vectors.json"

SOCKET_ID = "q1w2e3r4t5y6u7i8o9p0-_"
TOKEN = "Zx-Cv_Bn0123456789abcd"
NONCE = "n0nce-_abcd"


@functools.cache
def _vectors_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_resume_vectors", VECTORS.with_name("make_resume_vectors.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _new(**changes: Any) -> Welcome:
    fields: dict[str, Any] = {
        "status": "new",
        "id": SOCKET_ID,
        "token": TOKEN,
        "nonce": NONCE,
        "window": 120.0,
    }
    fields.update(changes)
    return Welcome(**fields)


# Constants


def test_constants_are_the_designed_ones() -> None:
    assert QUERY == "rtt_resume"
    assert (ACK_EVERY, ACK_BYTES, ACK_DELAY, ENTRY_COST, CONTROL_LIMIT) == (256, 65536, 1.0, 64, 512)
    assert sorted(CONTROL_LETTERS) == ["A", "H", "L", "W"]


# Escape and classify


MESSAGES = (*ROUND_TRIP, "\x00", "\x00\x00", "\x00A", "\x00A12", "\x00W{}", "\x00Hx", "\x00L", "\x00Z")


@pytest.mark.parametrize("message", MESSAGES)
def test_escape_then_classify_gives_the_message_back(message: str | bytes) -> None:
    wire = escape(message)
    assert type(wire) is type(message)
    result = classify(wire)
    assert isinstance(result, Data)
    assert type(result.data) is type(message) and result.data == message


@given(st.one_of(st.text(), st.binary()))
def test_escape_then_classify_round_trips_anything(message: str | bytes) -> None:
    result = classify(escape(message))
    assert isinstance(result, Data)
    assert type(result.data) is type(message) and result.data == message


@given(st.text().filter(lambda s: not s.startswith("\x00")))
def test_plain_text_and_bytes_are_untouched(text: str) -> None:
    assert escape(text) is text
    assert escape(text.encode()) == text.encode()
    assert classify(text) == Data(text)


def test_escape_adds_exactly_one_nul() -> None:
    assert escape("\x00") == "\x00\x00"
    assert escape("\x00\x00") == "\x00\x00\x00"
    assert escape("\x00A") == "\x00\x00A"
    assert escape(b"\x00A") == b"\x00A"


@pytest.mark.parametrize(
    ("wire", "letter", "payload"),
    [
        ("\x00A0", "A", "0"),
        ("\x00A64", "A", "64"),
        ("\x00A9223372036854775807", "A", "9223372036854775807"),
        ("\x00H" + NONCE, "H", NONCE),
        ("\x00Lbroker", "L", "broker"),
        ('\x00W{"v":1}', "W", '{"v":1}'),
    ],
)
def test_every_control_letter_is_classified(wire: str, letter: str, payload: str) -> None:
    assert classify(wire) == Control(letter, payload)


def test_control_builders() -> None:
    assert ack_text(0) == "\x00A0"
    assert ack_text(2**63 - 1) == "\x00A9223372036854775807"
    assert hello_text(NONCE) == "\x00H" + NONCE
    assert loss_text("broker") == "\x00Lbroker"
    assert classify(ack_text(1234)).count == 1234  # type: ignore[union-attr]
    for bad_count in (-1, 2**63, True, 1.0, "1"):
        with pytest.raises(ValueError, match="ack count"):
            ack_text(bad_count)  # type: ignore[arg-type]
    for bad_nonce in ("", "short", NONCE + "x", "n0nce+/abcd"):
        with pytest.raises(ValueError, match="nonce"):
            hello_text(bad_nonce)
    for bad_detail in ("", "Broker", "broker!", "x" * 33):
        with pytest.raises(ValueError, match="detail"):
            loss_text(bad_detail)


def test_only_an_ack_has_a_count() -> None:
    assert Control("A", "17").count == 17
    with pytest.raises(ValueError, match="no count"):
        _ = Control("H", NONCE).count


@pytest.mark.parametrize(
    "wire",
    # The generator's list (also the JS port's vectors), plus cases the port needs no copy of.
    [
        *_vectors_script().INVALID,
        "\x00é",
        "\x00A" + "1" * (CONTROL_LIMIT - 1),
        "\x00L" + "x" * 33,
        "\x00W{é}",
    ],
)
def test_malformed_controls_are_protocol_errors(wire: str) -> None:
    with pytest.raises(ResumeProtocolError):
        classify(wire)


def test_the_protocol_error_is_a_transport_error() -> None:
    # The peer is to blame (errors.py's tree); the core closes with "protocol error".
    assert issubclass(ResumeProtocolError, TransportError)
    assert not issubclass(ResumeProtocolError, ValueError)


def test_a_control_is_at_most_the_limit() -> None:
    longest = "\x00W{" + "x" * (CONTROL_LIMIT - 4) + "}"
    assert len(longest) == CONTROL_LIMIT
    assert classify(longest) == Control("W", longest[2:])
    with pytest.raises(ResumeProtocolError, match="characters"):
        classify(longest[:-1] + "x}")


# Welcome


IDS = f'"id":"{SOCKET_ID}","k":"{TOKEN}","n":"{NONCE}"'
WELCOMES = [
    (_new(), '\x00W{"v":1,"s":"new",' + IDS + ',"r":0,"w":120.0}'),
    (
        _new(status="resumed", handled=7, received=12, window=30),
        '\x00W{"v":1,"s":"resumed",' + IDS + ',"r":7,"o":12,"w":30.0}',
    ),
    (
        _new(status="resumed", received=0, loss="broker"),
        '\x00W{"v":1,"s":"resumed",' + IDS + ',"r":0,"o":0,"w":120.0,"g":"broker"}',
    ),
    (
        _new(status="lost", why="unknown"),
        '\x00W{"v":1,"s":"lost","why":"unknown",' + IDS + ',"r":0,"w":120.0}',
    ),
    (
        _new(status="lost", why="identity", window=0.5),
        '\x00W{"v":1,"s":"lost","why":"identity",' + IDS + ',"r":0,"w":0.5}',
    ),
]


@pytest.mark.parametrize(("welcome", "text"), WELCOMES)
def test_welcome_text_is_the_designed_json(welcome: Welcome, text: str) -> None:
    assert welcome.to_text() == text
    assert Welcome.parse(text) == welcome
    assert classify(text) == Control("W", text[2:])
    assert text.isascii() and len(text) <= CONTROL_LIMIT


@pytest.mark.parametrize(
    "message",
    # The generator's list, plus bytes and trailing text after the JSON.
    [*_vectors_script().NOT_WELCOMES, b'\x00W{"v":1}', "\x00W{} trailing"],
)
def test_other_first_messages_are_not_a_welcome(message: str | bytes) -> None:
    assert Welcome.parse(message) is None


def test_a_first_message_too_deep_for_json_is_not_a_welcome() -> None:
    assert Welcome.parse('\x00W{"a":' + "[" * 100_000 + "]" * 100_000 + "}") is None


def _welcome_text(fields: dict[str, Any]) -> str:
    return "\x00W" + json.dumps(fields, separators=(",", ":"))


GOOD = json.loads(WELCOMES[0][1][2:])
RESUMED = json.loads(WELCOMES[1][1][2:])


@pytest.mark.parametrize(
    "text",
    # The generator's list (also the JS port's vectors), one readable case each; plus a non-ASCII id
    # put into an otherwise good welcome's text.
    [*_vectors_script().BAD_WELCOMES, _welcome_text(GOOD).replace(SOCKET_ID, "é" * 22)],
)
def test_a_broken_version_1_welcome_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ResumeProtocolError):
        Welcome.parse(text)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"status": "old"}, "status"),
        ({"id": "x"}, "id"),
        ({"id": 1}, "id"),
        ({"token": "x" * 22 + "!"}, "token"),
        ({"nonce": "x" * 12}, "nonce"),
        ({"window": 0}, "window"),
        ({"window": -1.0}, "window"),
        ({"window": math.nan}, "window"),
        ({"window": math.inf}, "window"),
        ({"window": True}, "window"),
        ({"window": "1"}, "window"),
        ({"handled": -1}, "handled"),
        ({"handled": 2**63}, "handled"),
        ({"handled": 3}, "handled 3"),
        ({"received": 0}, "received"),
        ({"status": "resumed"}, "received"),
        ({"status": "resumed", "received": -1}, "received"),
        ({"why": "unknown"}, "why"),
        ({"status": "lost"}, "why"),
        ({"status": "lost", "why": "because"}, "why"),
        ({"loss": "broker"}, "loss"),
        ({"status": "resumed", "received": 1, "loss": "other"}, "loss"),
    ],
)
def test_an_invalid_welcome_cannot_be_made(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=f"invalid welcome: {problem}"):
        _new(**changes)


def test_a_welcome_window_may_be_an_int() -> None:
    welcome = _new(window=30)
    assert welcome.to_text().endswith('"w":30.0}')
    assert Welcome.parse(welcome.to_text()) == welcome


# The request


def test_request_values() -> None:
    assert ResumeRequest.parse("1") == ResumeRequest("new")
    request = ResumeRequest.parse(f"{SOCKET_ID}.{TOKEN}.42")
    assert request == ResumeRequest("resume", SOCKET_ID, TOKEN, 42)
    assert request.to_value() == f"{SOCKET_ID}.{TOKEN}.42"
    assert ResumeRequest("new").to_value() == "1"
    assert ResumeRequest.parse(f"{SOCKET_ID}.{TOKEN}.0").received == 0
    top = ResumeRequest.parse(f"{SOCKET_ID}.{TOKEN}.{2**63 - 1}")
    assert top.kind == "resume" and top.received == 2**63 - 1
    with pytest.raises(ValueError, match="unknown"):
        ResumeRequest("unknown").to_value()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0",
        "2",
        "true",
        "11",
        f"{SOCKET_ID}{TOKEN}42",
        f"{SOCKET_ID}.{TOKEN}",
        f"{SOCKET_ID}.{TOKEN}42",
        f"{SOCKET_ID}.{TOKEN}.42.",
        f".{SOCKET_ID}.{TOKEN}.42",
        f"{SOCKET_ID}..{TOKEN}.42",
        f"{SOCKET_ID}.{TOKEN}.",
        f"{SOCKET_ID[:-1]}.{TOKEN}.42",
        f"{SOCKET_ID}x.{TOKEN}.42",
        f"{SOCKET_ID[:-1]}+.{TOKEN}.42",
        f"{SOCKET_ID[:-1]}/.{TOKEN}.42",
        f"{SOCKET_ID[:-1]}=.{TOKEN}.42",
        f"{SOCKET_ID}.{TOKEN[:-1]}é.42",
        f"{SOCKET_ID}.{TOKEN}.-1",
        f"{SOCKET_ID}.{TOKEN}.+1",
        f"{SOCKET_ID}.{TOKEN}.042",
        f"{SOCKET_ID}.{TOKEN}.4 2",
        f"{SOCKET_ID}.{TOKEN}.42\n",
        f"{SOCKET_ID}.{TOKEN}.１２",
        f"{SOCKET_ID}.{TOKEN}.{2**63}",
        f"{SOCKET_ID}.{TOKEN}.{'9' * 19}",
        f"{SOCKET_ID}.{TOKEN}.{'1' * 20}",
        f"{SOCKET_ID}.{TOKEN}.{'1' * 10_000}",
        "." * 66,
    ],
)
def test_a_malformed_request_reads_as_an_unknown_session(value: str) -> None:
    request = ResumeRequest.parse(value)
    assert request.kind == "unknown"
    assert (request.id, request.token, request.received) == (None, None, None)


@given(st.text(max_size=80))
def test_request_parse_never_raises(value: str) -> None:
    assert ResumeRequest.parse(value).kind in ("new", "resume", "unknown")


def test_request_parse_of_a_non_string_is_unknown() -> None:
    assert ResumeRequest.parse(None).kind == "unknown"  # type: ignore[arg-type]


# The replay log


def _entry(size: int) -> Entry:
    return Entry("x" * size, size)


def test_replay_log_counts_append_ack_and_cost() -> None:
    log = ReplayLog(limit=3 * (10 + ENTRY_COST))
    entries = [_entry(10) for _ in range(4)]
    assert [log.append(e) for e in entries[:3]] == [False, False, False]
    assert (log.base, log.out, len(log), log.cost) == (0, 3, 3, 3 * (10 + ENTRY_COST))
    assert log.append(entries[3]) is True  # over the limit: reported, and kept
    assert (log.out, len(log)) == (4, 4)
    assert log.ack(2) == 2
    assert (log.base, len(log), log.cost) == (2, 2, 2 * (10 + ENTRY_COST))
    assert log.ack(1) == 0 and log.ack(2) == 0  # late or repeated acks are ignored
    assert log.base == 2
    assert log.ack(4) == 2
    assert (log.base, len(log), log.cost) == (4, 0, 0)
    with pytest.raises(ResumeProtocolError, match="above"):
        log.ack(5)
    assert repr(entries[0]) == "Entry('xxxxxxxxxx', 10)"


def test_replay_log_since_bounds() -> None:
    log = ReplayLog(limit=1 << 20)
    entries = [_entry(i) for i in range(6)]
    for entry in entries:
        log.append(entry)
    log.ack(2)
    assert log.since(1) is None
    assert log.since(7) is None
    assert list(log.since(2) or ()) == entries[2:]
    assert list(log.since(5) or ()) == entries[5:]
    assert list(log.since(6) or ()) == []
    # A snapshot: appending and acking while it is consumed is safe.
    replay = log.since(3)
    assert replay is not None
    assert next(replay) is entries[3]
    log.append(_entry(9))
    log.ack(5)
    assert list(replay) == entries[4:]


@settings(deadline=None)
@given(
    st.integers(min_value=ENTRY_COST, max_value=4000),
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(min_value=0, max_value=300)),
            st.tuples(st.just("ack"), st.integers(min_value=-5, max_value=60)),
            st.tuples(st.just("since"), st.integers(min_value=-5, max_value=60)),
        ),
        max_size=80,
    ),
)
def test_replay_log_invariants(limit: int, operations: list[tuple[str, int]]) -> None:
    log = ReplayLog(limit)
    sent: list[Entry] = []
    acked = 0
    for operation, value in operations:
        if operation == "append":
            entry = Entry(b"x" * value, value)
            sent.append(entry)
            overflowed = log.append(entry)
            assert overflowed == (log.cost > limit)
        elif operation == "ack":
            if value > len(sent):
                with pytest.raises(ResumeProtocolError):
                    log.ack(value)
            else:
                assert log.ack(value) == max(0, value - acked)
                acked = max(acked, value)
        else:
            replay = log.since(value)
            if acked <= value <= len(sent):
                assert replay is not None
                assert list(replay) == sent[value:]
            else:
                assert replay is None
        assert log.base == acked <= log.out == len(sent)
        assert len(log) == log.out - log.base
        assert log.cost == sum(e.size + ENTRY_COST for e in sent[log.base :])


# Acknowledgement timing


def _state(clock: AckClock) -> tuple[int, int, int, float | None]:
    return clock.count, clock.acked, clock.pending_bytes, clock.due


def test_ack_clock_acks_at_the_message_count() -> None:
    clock = AckClock()
    assert _state(clock) == (0, 0, 0, None)
    assert not clock.expired(1e9)
    assert [clock.received(1, 10.0) for _ in range(ACK_EVERY - 1)] == [False] * (ACK_EVERY - 1)
    assert clock.due == 10.0 + ACK_DELAY
    assert clock.received(1, 10.05) is True
    assert clock.take() == ACK_EVERY
    assert _state(clock) == (ACK_EVERY, ACK_EVERY, 0, None)
    assert clock.received(1, 20.0) is False
    assert clock.due == 20.0 + ACK_DELAY


def test_ack_clock_acks_at_the_byte_count() -> None:
    clock = AckClock(count=100)
    assert clock.received(ACK_BYTES - 1, 0.0) is False
    assert clock.received(1, 0.0) is True
    assert clock.take() == 102
    assert clock.received(ACK_BYTES, 0.0) is True


def test_ack_clock_acks_after_the_delay() -> None:
    clock = AckClock(count=5)
    assert clock.acked == 5
    clock.received(10, 1.0)
    clock.received(10, 1.09)  # the delay runs from the first unacknowledged message
    assert clock.due == 1.0 + ACK_DELAY
    assert not clock.expired(1.0 + ACK_DELAY / 2)
    assert clock.expired(1.0 + ACK_DELAY)
    assert clock.take() == 7
    assert not clock.expired(5.0)


# Sizes and identities


def test_wire_limit() -> None:
    assert wire_limit(1 << 20) == (1 << 20) + 1
    assert wire_limit(CONTROL_LIMIT) == CONTROL_LIMIT + 1
    # A control must pass the library's limit even when messages are smaller than one.
    assert wire_limit(1) == CONTROL_LIMIT
    assert wire_limit(CONTROL_LIMIT - 1) == CONTROL_LIMIT


def test_identity_digest_is_canonical() -> None:
    one = identity_digest({"user": "ana", "roles": ["a", "b"], "org": {"id": 7, "name": "x"}})
    other = identity_digest({"org": {"name": "x", "id": 7}, "roles": ["a", "b"], "user": "ana"})
    assert one == other
    assert one is not None and len(one) == 64 and int(one, 16) >= 0
    assert identity_digest(None) == identity_digest(None) != identity_digest("")
    assert identity_digest({"roles": ["b", "a"]}) != identity_digest({"roles": ["a", "b"]})
    assert identity_digest("ana") != identity_digest("anä")
    assert identity_digest(1) != identity_digest(1.0) != identity_digest(True)
    # JSON's own equalities: a tuple and a list have one form.
    assert identity_digest((1, 2)) == identity_digest([1, 2])
    # The digest is of the documented canonical text.
    import hashlib

    expected = hashlib.sha256(b'{"a":[1,"\\u00e9"],"b":null}').hexdigest()
    assert identity_digest({"b": None, "a": [1, "é"]}) == expected


@pytest.mark.parametrize(
    "identity",
    [
        object(),
        {"user": object()},
        {"score": math.nan},
        [math.inf],
        {1: "a", "b": 2},
        b"bytes",
        {"nested": {1, 2}},
    ],
)
def test_identity_digest_of_a_non_json_identity_is_none(identity: object) -> None:
    assert identity_digest(identity) is None


def test_identity_digest_of_an_unserializable_structure_is_none() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert identity_digest(loop) is None
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert identity_digest(deep) is None


# The JavaScript port's vectors


def test_the_js_vectors_are_up_to_date() -> None:
    script = _vectors_script()
    assert VECTORS.read_text(encoding="utf-8") == script.render(), (
        "tests/js/resume-vectors.json is stale: run python tests/js/make_resume_vectors.py"
    )


def test_the_js_vectors_hold_in_python() -> None:
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    for data, wire in vectors["escape"]:
        assert escape(data) == wire
    for case in vectors["classify"]:
        expected = Data(case["data"]) if "data" in case else Control(*case["control"])
        assert classify(case["wire"]) == expected
    for wire in vectors["invalid"]:
        with pytest.raises(ResumeProtocolError):
            classify(wire)
    for case in vectors["welcomes"]:
        assert Welcome.parse(case["text"]) == Welcome(**case["fields"])
    for text in vectors["not_welcomes"]:
        assert Welcome.parse(text) is None
    for text in vectors["bad_welcomes"]:
        with pytest.raises(ResumeProtocolError):
            Welcome.parse(text)
    for count, text in vectors["acks"]:
        assert ack_text(count) == text and classify(text) == Control("A", str(count))
    for case in vectors["requests"]:
        request = ResumeRequest.parse(case["value"])
        assert request.kind == case["kind"]
        assert (request.id, request.token, request.received) == (
            case.get("id"),
            case.get("token"),
            case.get("received"),
        )


# The module


def test_the_module_is_sans_io() -> None:
    tree = ast.parse(Path(resume.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {
        f"{'.' * node.level}{node.module}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    standard = {"__future__", "collections", "collections.abc", "dataclasses", "hashlib", "itertools", "json"}
    assert imported <= standard | {"math", "re", "typing", ".errors"}, imported


def test_the_module_documents_its_public_names() -> None:
    assert resume.__doc__
    for name in resume.__all__:
        value = getattr(resume, name)
        if callable(value):
            assert value.__doc__, name
    assert "resume" not in rtt.__all__  # wired in and exported by later work packages


def test_per_message_objects_have_slots() -> None:
    for cls in (Data, Control, Entry, ReplayLog, AckClock, Welcome, ResumeRequest):
        assert "__slots__" in vars(cls), cls
        assert not hasattr(cls.__new__(cls), "__dict__"), cls
