"""Fuzzing rtt-engineio's packet decoder and payload splitting (issue 12, SPEC.md 12.3).

``rtt_engineio._wire.decode_packet`` reads every packet the server receives
(a WebSocket frame, or one record of a long-polling payload split at U+001E):
whatever text or bytes a peer sends, it gives a packet or ``None``
(malformed, answered with rtt's ``protocol error``), never an exception.
Packets encoded by python-engineio decode to themselves, one at a time and in
payloads.

Found here and fixed: the packet type was read with ``str.isdigit()``, true
for any Unicode digit: ``"²"`` raised ``ValueError`` out of the decoder, on
the WebSocket reader and on a POST alike, and ``"٣"`` (ARABIC-INDIC DIGIT
THREE) was taken for a ``PONG``.

A text message containing U+001E cannot cross long-polling: the payload is
split there, so ``"4a\\x1eb"`` would arrive as the message ``"a"`` followed by
the packet ``"b"``. Engine.IO v4 has no escape for it, so rtt refuses such a
text at ``send`` whenever long-polling is configured (SPEC.md 12.3):
``check_polling_text`` is that rule, fuzzed below.
"""

from __future__ import annotations

import logging
import time

import aiohttp
import pytest
from engineio import packet, payload  # type: ignore[import-untyped, unused-ignore]
from hypothesis import example, given, settings
from hypothesis import strategies as st

import rtt
from rtt.codec import message_size
from rtt.testing import Recorder
from rtt_engineio import EngineioServer
from rtt_engineio._wire import (
    MESSAGE,
    NOOP,
    OPEN,
    check_polling_text,
    close_from_text,
    decode_packet,
    message_data,
    reason_from_close_text,
    wire_limit,
)

FUZZ = settings(max_examples=200, deadline=None)
#: A refusal here takes milliseconds; a generous bound for a loaded 2-core machine.
MARGIN = 5.0


def check_decoded(encoded: str) -> None:
    """What ``decode_packet`` may do with any text: a packet it reads exactly, or ``None``."""
    pkt = decode_packet(encoded)
    if pkt is None:
        return
    head = encoded[0]
    if head == "b":
        assert pkt.packet_type == MESSAGE and isinstance(pkt.data, bytes)
    else:
        assert head in "0123456" and pkt.packet_type == int(head)
        assert pkt.data == encoded[1:]


@FUZZ
@given(st.binary())
def test_a_binary_frame_is_a_message_of_its_bytes(frame: bytes) -> None:
    pkt = decode_packet(frame)
    assert pkt is not None and (pkt.packet_type, pkt.data) == (MESSAGE, frame)


@FUZZ
@given(
    st.one_of(
        st.text(),
        st.text().map(lambda s: "b" + s),
        st.tuples(st.sampled_from("0123456789b²٣"), st.text()).map("".join),
    )
)
@example("")
@example("7")
@example("b")
@example("b====")
@example("bQR==")
def test_any_text_is_a_packet_or_refused(encoded: str) -> None:
    check_decoded(encoded)


@pytest.mark.parametrize(
    "encoded", ["²", "²x", "٣", "٣x"], ids=["superscript", "superscript-data", "arabic", "arabic-data"]
)
def test_a_non_ascii_digit_is_no_packet_type(encoded: str) -> None:
    # Minimal failing inputs found by the case above before it left them out.
    assert decode_packet(encoded) is None


packets = st.one_of(
    st.builds(packet.Packet, st.integers(min_value=OPEN, max_value=NOOP), st.text()),
    st.builds(packet.Packet, st.just(MESSAGE), st.binary()),
)


@FUZZ
@given(packets)
def test_an_encoded_packet_decodes_to_itself(pkt: packet.Packet) -> None:
    # Long-polling encodes bytes as ``b`` + base64, WebSocket as a binary frame (a fresh packet
    # each: the library caches the first encoding).
    for b64 in (True, False):
        encoded = packet.Packet(pkt.packet_type, pkt.data).encode(b64=b64)
        decoded = decode_packet(encoded)
        assert decoded is not None
        assert (decoded.packet_type, decoded.data) == (pkt.packet_type, pkt.data)


def _split(packets_: list[packet.Packet]) -> list[packet.Packet | None]:
    """A long-polling payload as the library encodes it, decoded as the rtt server reads a POST."""
    return [decode_packet(encoded) for encoded in payload.Payload(packets=packets_).encode().split("\x1e")]


def _same(sent: list[packet.Packet], received: list[packet.Packet | None]) -> bool:
    return [(p.packet_type, p.data) for p in sent] == [
        (p.packet_type, p.data) if p is not None else None for p in received
    ]


@FUZZ
@given(
    st.lists(packets, min_size=1, max_size=8).filter(lambda ps: not any("\x1e" in str(p.data) for p in ps))
)
def test_a_payload_splits_into_its_packets(sent: list[packet.Packet]) -> None:
    assert _same(sent, _split(sent))


def test_a_payload_cannot_carry_the_record_separator() -> None:
    # Why rtt refuses such a text: the payload is split there, into other packets.
    sent = [packet.Packet(MESSAGE, "a\x1eb")]
    assert not _same(sent, _split(sent))


_CONFIGURATIONS = [("polling",), ("websocket",), ("polling", "websocket"), ("websocket", "polling")]


@FUZZ
@given(
    st.one_of(st.text(), st.binary(), st.lists(st.sampled_from(["\x1e", "4", "b", "a"])).map("".join)),
    st.sampled_from(_CONFIGURATIONS),
)
@example("a\x1eb", ("polling",))
@example(b"a\x1eb", ("polling",))
def test_a_text_is_refused_exactly_when_a_payload_would_split_it(
    data: str | bytes, transports: tuple[str, ...]
) -> None:
    refused = isinstance(data, str) and "\x1e" in data and "polling" in transports
    if refused:
        with pytest.raises(rtt.InvalidMessageError, match=r"U\+001E"):
            check_polling_text(data, transports)
    else:
        check_polling_text(data, transports)
        if "polling" in transports:  # what is let through crosses a payload whole
            sent = [packet.Packet(MESSAGE, data)]
            assert _same(sent, _split(sent))


@FUZZ
@given(st.integers(min_value=0, max_value=300), st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_the_wire_limit_lets_every_fitting_message_through(limit: int, data: str | bytes) -> None:
    if message_size(data) <= limit:
        longest = packet.Packet(MESSAGE, data).encode(b64=True)
        assert len(longest) <= wire_limit(limit)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(st.one_of(json_values, st.binary()))
def test_message_data_is_always_a_message(data: object) -> None:
    assert isinstance(message_data(data), str | bytes)


@FUZZ
@given(
    st.one_of(
        st.text(),
        json_values,
        st.sampled_from([r.value for r in rtt.CloseReason]),
        st.tuples(st.integers(min_value=2990, max_value=5010), st.text(max_size=130)).map(
            lambda ct: f"{ct[0]} {ct[1]}"
        ),
    )
)
@example("application")
@example("4001 logged in elsewhere")
@example("4001")
@example("5000 out of range")
@example("4001 two\nlines")
def test_a_close_packet_always_gives_a_close(text: object) -> None:
    close = close_from_text(text, rtt.CloseReason.SERVER_CLOSED)
    assert isinstance(close, rtt.Close)
    assert reason_from_close_text(text, rtt.CloseReason.SERVER_CLOSED) is close.reason
    if isinstance(text, str) and text in {r.value for r in rtt.CloseReason} and text != "application":
        assert close == rtt.Close.of(rtt.CloseReason(text))
    elif close.reason is rtt.CloseReason.APPLICATION:
        # Only what Close.application accepts, read back exactly.
        assert close == rtt.Close.application(close.code, close.text)
        assert close.as_text() == text or (text == str(close.code) and close.text == "")
    else:
        assert close == rtt.Close.of(rtt.CloseReason.SERVER_CLOSED)


# -- The fuzz-found inputs on the real server --------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("polling", [False, True], ids=["websocket", "polling"])
async def test_a_non_ascii_digit_packet_is_a_protocol_error(
    polling: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = rtt.load("engineio").server(port=0, close_timeout=2)
    assert isinstance(server, EngineioServer)
    rec = Recorder().listen(server, "disconnect")
    async with server, aiohttp.ClientSession() as session:
        started = time.monotonic()
        if polling:
            async with session.get(server.url + "?EIO=4&transport=polling") as response:
                sid = (await response.text()).split('"sid":"')[1].split('"')[0]
            url = f"{server.url}?EIO=4&transport=polling&sid={sid}"
            async with session.post(url, data="²".encode()) as response:
                assert response.status == 400
        else:
            async with session.ws_connect(server.url + "?EIO=4&transport=websocket") as ws:
                assert (await ws.receive_str(timeout=5)).startswith("0{")
                await ws.send_str("²")
                assert await ws.receive_str(timeout=5) == "1protocol error"
        (event,) = await rec.wait("disconnect", timeout=MARGIN)
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR
        assert time.monotonic() - started < MARGIN
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info is not None]
    assert loud == []
