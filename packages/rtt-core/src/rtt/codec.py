"""Message sizes and the text-wire encoding of bytes (SPEC.md section 5).

A transport whose wire carries only text (SockJS) still carries ``bytes``
between rtt peers: :func:`encode_text` turns any message into a ``str`` and
:func:`decode_text` turns it back, exactly. Plain text that does not start with
U+0000 passes through unchanged, so the transport's native clients see and send
ordinary strings.

=================================  ==========================================
message                            text on the wire
=================================  ==========================================
``bytes`` ``b``                    ``"\\x00b" + base64(b)`` (standard alphabet, padded)
``str`` starting with U+0000       ``"\\x00" + s`` (one more U+0000 in front)
any other ``str``                  ``s`` unchanged
=================================  ==========================================

Decoding reverses the table; text that starts with U+0000 but matches neither
form (only a non-rtt peer can send it) is delivered unchanged as ``str``.
"""

from __future__ import annotations

import base64
import binascii
import string

from .errors import InvalidMessageError, MessageTooBigError

__all__ = [
    "BYTES_PREFIX",
    "check_message",
    "decode_text",
    "encode_text",
    "encoded_size_limit",
    "message_size",
]

BYTES_PREFIX = "\x00b"
#: The value of each base64 digit, to read the bits a padded ending leaves over.
_B64_DIGITS = {
    digit: value
    for value, digit in enumerate(string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/")
}
_ESCAPE = "\x00"


def message_size(data: str | bytes) -> int:
    """Size of a message in bytes: its length, or its UTF-8 length for ``str``."""
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
    return len(data)


def check_message(data: object, limit: int) -> int:
    """Return the size of ``data``, raising if it is not a message or too big.

    A ``str`` must be Unicode text: one with a lone surrogate (U+D800-U+DFFF,
    which Python strings can hold) has no UTF-8 form, so no wire can carry it.
    """
    if not isinstance(data, str | bytes):
        if isinstance(data, bytearray | memoryview):
            raise InvalidMessageError(
                f"message must be str or bytes, got {type(data).__name__}; pass bytes(data)"
            )
        raise InvalidMessageError(f"message must be str or bytes, got {type(data).__name__}")
    if isinstance(data, bytes) or data.isascii():
        size = len(data)
    else:
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidMessageError(
                f"message contains a lone surrogate ({data[exc.start]!r} at index {exc.start}), "
                "which is not Unicode text: no wire carries it"
            ) from None
    if size > limit:
        raise MessageTooBigError(size, limit)
    return size


def encode_text(data: str | bytes) -> str:
    """Encode a message for a text-only wire."""
    if isinstance(data, bytes):
        return BYTES_PREFIX + base64.b64encode(data).decode("ascii")
    if data.startswith(_ESCAPE):
        return _ESCAPE + data
    return data


def decode_text(text: str) -> str | bytes:
    """Decode a message received from a text-only wire."""
    if not text.startswith(_ESCAPE):
        return text
    if text.startswith(_ESCAPE, 1):
        return text[1:]
    if text.startswith(BYTES_PREFIX):
        encoded = text[2:]
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return text
        # The decoder takes spellings no encoder writes: non-zero spare bits ("QR==" gives b"A"
        # like "QQ==") and padding after a whole group ("QUJD=" gives b"ABC"). Such text is no
        # message's encoding, so it is a native peer's text, delivered as it came. The length
        # and the last digit's spare bits (4 before "==", 2 before "=") tell them apart without
        # encoding the message again.
        if len(encoded) != -(-len(data) // 3) * 4:
            return text
        padding = len(encoded) - len(encoded.rstrip("="))
        if padding and _B64_DIGITS[encoded[-padding - 1]] & (0x0F if padding == 2 else 0x03):
            return text
        return data
    return text


def encoded_size_limit(limit: int) -> int:
    """The longest wire text that can carry a message of ``limit`` bytes."""
    return len(BYTES_PREFIX) + 4 * ((limit + 2) // 3)
