"""Fuzzing rtt-core's own parsers: the text codec and the message checks (issue 12, SPEC.md 5).

Hypothesis feeds ``rtt.codec`` whatever text and objects it likes. Every
message survives the text wire exactly; every wire text decodes to the one
message whose encoding it is, or is delivered unchanged as ``str`` (5.5);
the checks raise only rtt's documented errors; the wire bound a transport
cuts at never refuses a message that fits. The last case sends the hard
texts through every real wire.

Defect found here: ``decode_text`` accepted base64 with non-zero padding bits
(``"\\x00bQR=="``) as the bytes ``b"A"``, whose encoding is ``"\\x00bQQ=="``, so
two wire texts gave one message and a native peer's text, which matches
neither form of 5.5, was not delivered unchanged.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import rtt
from rtt import InvalidMessageError, MessageTooBigError
from rtt.codec import BYTES_PREFIX, check_message, decode_text, encode_text, encoded_size_limit, message_size
from rtt.testing import Recorder, eventually

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

FUZZ = settings(max_examples=200, deadline=None)

#: Text a wire might mangle: rtt's own escapes, separators of other protocols, lone surrogates.
_hard_chars = st.sampled_from(
    ["\x00", "b", "=", "\x1e", "\n", "\r", '"', "\\", "\ud800", "\ufffd", "🚀", "A"]
)
hard_text = st.one_of(st.text(), st.lists(_hard_chars).map("".join), st.text(alphabet=_hard_chars))
#: Text that looks like rtt's bytes form: the prefix, then base64-ish characters.
bytes_like = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n -_", max_size=40
)
wire_text = st.one_of(
    hard_text, bytes_like.map(lambda s: BYTES_PREFIX + s), st.text().map(lambda s: "\x00" + s)
)
messages = st.one_of(hard_text, st.binary())


@FUZZ
@given(messages)
def test_every_message_survives_the_text_wire(message: str | bytes) -> None:
    decoded = decode_text(encode_text(message))
    assert type(decoded) is type(message) and decoded == message


@FUZZ
@given(wire_text)
@example("\x00bQR==")  # non-zero padding bits: b"A" is "\x00bQQ=="
@example("\x00bQUJD=")  # padding after a whole group: b"ABC" is "\x00bQUJD"
@example("\x00bAB==")
@example("\x00bAAB=")
def test_every_wire_text_is_one_message_or_delivered_unchanged(text: str) -> None:
    decoded = decode_text(text)  # never raises, whatever a native peer sends
    if isinstance(decoded, bytes):
        # The one text that carries these bytes (5.5: decoding reverses the table exactly).
        assert text.startswith(BYTES_PREFIX) and encode_text(decoded) == text
    elif text.startswith("\x00\x00"):
        assert decoded == text[1:] and encode_text(decoded) == text
    else:  # plain text, or a native peer's text that matches neither form
        assert decoded == text


@FUZZ
@given(messages, st.integers(min_value=0, max_value=200))
def test_the_wire_bound_never_refuses_a_message_that_fits(message: str | bytes, limit: int) -> None:
    # A transport cuts wire text longer than encoded_size_limit(limit) before decoding it.
    if message_size(message) <= limit:
        assert len(encode_text(message)) <= encoded_size_limit(limit)


@FUZZ
@given(wire_text, st.integers(min_value=0, max_value=200))
def test_wire_text_within_the_bound_decodes_to_a_sized_message(text: str, limit: int) -> None:
    decoded = decode_text(text)
    if message_size(decoded) <= limit:  # what the core then accepts must have been let through
        assert len(text) <= encoded_size_limit(limit)


anything = st.one_of(
    messages,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary().map(bytearray),
    st.binary().map(lambda b: memoryview(b)),
    st.lists(st.text(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


@FUZZ
@given(anything, st.integers(min_value=0, max_value=64))
def test_check_message_returns_the_size_or_raises_rtts_errors(data: object, limit: int) -> None:
    if not isinstance(data, str | bytes):
        with pytest.raises(InvalidMessageError, match="must be str or bytes"):
            check_message(data, limit)
    elif isinstance(data, str) and any("\ud800" <= char <= "\udfff" for char in data):
        with pytest.raises(InvalidMessageError, match="lone surrogate"):
            check_message(data, limit)
    elif message_size(data) > limit:
        with pytest.raises(MessageTooBigError) as info:
            check_message(data, limit)
        assert (info.value.size, info.value.limit) == (message_size(data), limit)
    else:
        assert check_message(data, limit) == message_size(data)


@FUZZ
@given(hard_text)
def test_message_size_is_the_utf8_length(text: str) -> None:
    assert message_size(text) == len(text.encode("utf-8", "surrogatepass"))


def test_base64_decoder_accepts_what_the_codec_must_refuse() -> None:
    # Why the codec re-checks: the standard library ignores non-zero padding bits even when validating.
    assert base64.b64decode("QR==", validate=True) == b"A" == base64.b64decode("QQ==", validate=True)


#: Texts near every wire's escapes and separators (lone surrogates excepted: not UTF-8, no wire carries them).
HARD = [
    "",
    "\x00",
    "\x00\x00",
    "\x00b",
    "\x00bQQ==",
    "\x00bQR==",
    "\x1e",
    "a\x1eb",
    "4x",
    "b",
    '"x"',
    "[1]",
    "é🚀",
]


def _refused(wire: Wire, text: str) -> bool:
    """Whether ``wire`` refuses ``text`` at ``send``: Engine.IO's long-polling payload separates
    packets with U+001E and has no escape for it, so a configuration with long-polling refuses
    such a text with InvalidMessageError (SPEC.md 12.3) rather than deliver it cut."""
    return wire.name == "engineio" and wire.http and "\x1e" in text


@pytest.mark.timeout(60)
async def test_hard_texts_cross_every_wire_unchanged(wire: Wire) -> None:
    carried = [text for text in HARD if not _refused(wire, text)]
    transport = wire.transport()
    async with transport.server(port=0, close_timeout=0.5) as server:
        received = Recorder().listen(server, "message")

        @server.on("message")
        async def echo(socket: rtt.Socket, data: str | bytes) -> None:
            await server.send(socket.id, data)

        client = transport.client(server.url, reconnect=False)
        echoed = Recorder().listen(client, "message", "close")
        async with client:
            for text in HARD:
                if _refused(wire, text):
                    with pytest.raises(InvalidMessageError, match=r"U\+001E"):
                        await client.send(text)
                    with pytest.raises(InvalidMessageError, match=r"U\+001E"):
                        await server.broadcast(text)
                else:
                    await client.send(text)
            # All echoed, or the connection lost (then the lists below say what went wrong).
            await eventually(
                lambda: len(echoed.of("message")) == len(carried) or echoed.of("close"), 20, "echoes"
            )
        assert [args[1] for args in received.of("message")] == carried
        assert [args[0] for args in echoed.of("message")] == carried
