"""The tcpline wire: one JSON object per line, shared by both sides."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rtt import CloseReason
from rtt.codec import encode_text, encoded_size_limit

__all__ = [
    "ACCEPT",
    "PING",
    "PONG",
    "close_line",
    "close_reason",
    "dump",
    "line_limit",
    "message_line",
    "parse",
    "read_line",
]

ACCEPT = b'{"accept":true}\n'
PING = b'{"ping":1}\n'
PONG = b'{"pong":1}\n'


def line_limit(max_message_size: int) -> int:
    """The longest line a peer reads: room for a message somewhat over ``max_message_size``.

    JSON writes a control character as six bytes (``\\u0001``), so the limit is
    six times the longest text-wire message, plus room for the envelope. The
    size check itself is the core's (on the decoded message); only a line past
    this limit is refused here, unread.
    """
    return 6 * encoded_size_limit(max_message_size) + 1024


def dump(obj: dict[str, Any]) -> bytes:
    """One line; ASCII-only JSON, so lone surrogates in ``str`` survive the trip."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii") + b"\n"


def message_line(data: str | bytes) -> bytes:
    return dump({"m": encode_text(data)})


def close_line(reason: CloseReason) -> bytes:
    return dump({"close": reason.value})


def parse(line: bytes) -> dict[str, Any] | None:
    """The JSON object on ``line``, or None if it is not one."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def close_reason(value: object) -> CloseReason:
    """The reason a peer's close line names; an unknown one is a protocol error."""
    try:
        return CloseReason(value) if isinstance(value, str) else CloseReason.PROTOCOL_ERROR
    except ValueError:
        return CloseReason.PROTOCOL_ERROR


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line with its newline; ``b""`` at the end of the stream.

    A line longer than the reader's limit is skipped up to its newline and
    returns None, so the connection stays in step for the closing handshake.
    """
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return b""  # end of stream, possibly in the middle of a line
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:
        try:
            await reader.readexactly(consumed)
            await reader.readuntil(b"\n")
            return None
        except asyncio.IncompleteReadError:
            return None  # the next read reports the end of the stream
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed
