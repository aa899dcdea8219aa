"""SockJS frames as rtt needs them, shared by the server and the client (SPEC.md 12.4).

Server to client, every frame is one of::

    o                      the session is open
    h                      heartbeat
    a["m1","m2",...]       messages (a JSON array of strings)
    c[code,"reason"]       the session is closed

Client to server, a WebSocket frame or an ``xhr_send`` body is a JSON array
of strings (a WebSocket frame may also be one JSON string). rtt parses both
directions strictly: anything else is a :class:`FrameError`, never a guess.

Messages are text: rtt peers carry ``bytes`` with :mod:`rtt.codec`. The
text ``"\\x00c"`` (:data:`CLIENT_CLOSING`), which ``encode_text`` never
produces, is rtt's notice that a client is closing on purpose: SockJS has no
client close frame, and over HTTP a server cannot otherwise tell a
deliberate close from a lost client.
"""

from __future__ import annotations

import json
from typing import Any, Final

from rtt import Close, CloseReason
from rtt.codec import encoded_size_limit
from rtt.events import APPLICATION_CODES

__all__ = [
    "BINDING_COOKIE",
    "BINDING_REFUSED",
    "CLIENT_CLOSING",
    "FrameError",
    "close_frame",
    "encode_payload",
    "frame_limit",
    "load_json",
    "messages_frame",
    "parse_client_payload",
    "parse_server_frame",
    "received_close",
]

#: Cookie that binds an HTTP session to the client that opened it (``session_binding``, SPEC.md 8.3).
BINDING_COOKIE: Final = "rtt_sockjs"
#: Body of the 403 a message POST without its session's binding key gets.
BINDING_REFUSED: Final = "Session binding"
#: Message an rtt client sends just before it closes on purpose.
CLIENT_CLOSING: Final = "\x00c"

#: A server puts consecutive messages into one ``a[...]`` frame only up to this
#: many characters of message text (plus 3 per message for the JSON around it).
BATCH_CHARS: Final = 64 * 1024

OPEN_FRAME: Final = "o"
HEARTBEAT_FRAME: Final = "h"

# Codes of the SockJS protocol itself below the application range (no rtt reason
# text): 2010 a second receiving request for a session that has one, 1002 an
# interrupted session. SockJS's 3000 "Go away!" is an application's close (the
# code a SockJS server's application closes with by default), as every 3000-4999.
_SOCKJS_CODES: Final = {
    2010: CloseReason.PROTOCOL_ERROR,
    1002: CloseReason.TRANSPORT_ERROR,
}

_dumps = json.JSONEncoder(separators=(",", ":")).encode  # ASCII only, as SockJS servers send


class FrameError(ValueError):
    """A SockJS frame or payload that does not follow the protocol."""


def load_json(text: str | bytes) -> Any:
    """``json.loads``, with nesting too deep to decode as a ``ValueError`` like any other bad JSON.

    A payload or frame rtt accepts nests one level (an array of strings), but the
    decoder meets the depth before the shape: ``[`` x 50000 raises RecursionError.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def frame_limit(max_message_size: int) -> int:
    """The longest frame a peer with this ``max_message_size`` must accept (and may send).

    A frame holds one message of up to ``encoded_size_limit(max)`` characters,
    or several that together stay under :data:`BATCH_CHARS`; JSON may escape
    each character into six (``\\u0000``).
    """
    return 6 * max(encoded_size_limit(max_message_size), BATCH_CHARS) + 1024


def messages_frame(messages: list[str]) -> str:
    """``a[...]`` carrying ``messages`` (already encoded with :func:`rtt.codec.encode_text`)."""
    return "a" + _dumps(messages)


def encode_payload(messages: list[str]) -> str:
    """A client's WebSocket frame or ``xhr_send`` body carrying ``messages``."""
    return _dumps(messages)


def close_frame(close: Close | CloseReason) -> str:
    """``c[code,"reason text"]`` for a close, or for one of rtt's close reasons."""
    if isinstance(close, CloseReason):
        close = Close.of(close)
    return "c" + _dumps([close.code, close.text])


def received_close(code: int, text: str, *, websocket: bool = False) -> Close:
    """The close a received ``c[code, text]`` frame (or, with ``websocket``, a WebSocket close) carries.

    An application code (3000-4999) is the application's close, kept as sent
    whatever its text says (another SockJS server's text is not checked against
    rtt's limits); otherwise rtt's reason text wins, then SockJS's own codes
    (2010, 1002; a WebSocket close's 1002 is RFC 6455's protocol error instead),
    then the WebSocket meaning of the code.
    """
    if code in APPLICATION_CODES:
        return Close(CloseReason.APPLICATION, code, text)
    try:
        own: CloseReason | None = CloseReason(text)
    except ValueError:
        own = None
    if own is None or own is CloseReason.APPLICATION:
        # Outside 3000-4999 nothing is an application's close, whatever the text says.
        own = (None if websocket else _SOCKJS_CODES.get(code)) or CloseReason.from_wire(code, "")
    return Close.of(own)


def parse_client_payload(text: str) -> list[str]:
    """Messages in a client's WebSocket frame or POST body; raise :class:`FrameError` if malformed."""
    try:
        value: Any = load_json(text)
    except ValueError:
        raise FrameError(f"payload is not JSON: {text[:60]!r}") from None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(type(item) is str for item in value):
        return value
    raise FrameError(f"payload must be a JSON array of strings: {text[:60]!r}")


def parse_server_frame(frame: str) -> tuple[str, list[str] | tuple[int, str] | None]:
    """Split a server frame into its kind (``o``, ``h``, ``a``, ``c``) and content.

    ``a`` gives the list of messages, ``c`` the ``(code, reason)`` pair, ``o``
    and ``h`` give ``None``. Raises :class:`FrameError` for anything else.
    """
    if frame in (OPEN_FRAME, HEARTBEAT_FRAME):
        return frame, None
    kind, body = frame[:1], frame[1:]
    if kind not in ("a", "c"):
        raise FrameError(f"unknown SockJS frame: {frame[:60]!r}")
    try:
        value: Any = load_json(body)
    except ValueError:
        raise FrameError(f"SockJS {kind!r} frame is not JSON: {frame[:60]!r}") from None
    if kind == "a":
        if isinstance(value, list) and all(type(item) is str for item in value):
            return kind, value
        raise FrameError(f"SockJS 'a' frame must hold an array of strings: {frame[:60]!r}")
    if isinstance(value, list) and len(value) == 2 and type(value[0]) is int and type(value[1]) is str:
        return kind, (value[0], value[1])
    raise FrameError(f"SockJS 'c' frame must hold [code, reason]: {frame[:60]!r}")
