"""Engine.IO v4 packets as rtt needs them, shared by the server and the client (SPEC.md 12.3).

python-engineio decodes every text packet as JSON when it can (``'"a"'``
arrives as ``'a'``, ``'[1]'`` as a list), which would change rtt messages.
The server decodes the packets it receives itself (:func:`decode_packet`,
text stays text); the client has the library keep text raw
(``_library.raw_text``).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Collection
from http.cookies import CookieError, SimpleCookie

from engineio import packet  # type: ignore[import-untyped, unused-ignore]

from rtt import Close, CloseReason, InvalidMessageError

__all__ = [
    "BINDING_COOKIE",
    "BINDING_REFUSED",
    "CLOSE",
    "MESSAGE",
    "NOOP",
    "OPEN",
    "PING",
    "PONG",
    "RECORD_SEPARATOR",
    "UPGRADE",
    "binding_cookie",
    "binding_key",
    "check_polling_text",
    "close_from_text",
    "decode_packet",
    "message_data",
    "owns",
    "presented_key",
    "reason_from_close_text",
    "wire_limit",
]

OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = (
    packet.OPEN,
    packet.CLOSE,
    packet.PING,
    packet.PONG,
    packet.MESSAGE,
    packet.UPGRADE,
    packet.NOOP,
)
#: The characters that start a text packet: its type, one ASCII digit.
_PACKET_TYPES = frozenset(str(kind) for kind in range(OPEN, NOOP + 1))


def decode_packet(encoded: str | bytes) -> packet.Packet | None:
    """One Engine.IO v4 packet, with text data kept verbatim; ``None`` if malformed.

    A binary frame is a message of bytes; ``b`` + base64 (long-polling) is too.
    """
    if isinstance(encoded, bytes):
        return packet.Packet(MESSAGE, encoded)
    if not encoded:
        return None
    head = encoded[0]
    if head == "b":
        try:
            return packet.Packet(MESSAGE, base64.b64decode(encoded[1:], validate=True))
        except (binascii.Error, ValueError):
            return None
    # Only the ASCII digits of Engine.IO's packet types: str.isdigit() is true for any
    # Unicode digit ("²" made int() raise, "٣" read as a PONG).
    if head not in _PACKET_TYPES:
        return None
    return packet.Packet(int(head), encoded[1:])


#: Separates the packets of a long-polling payload; Engine.IO v4 has no escape for it.
RECORD_SEPARATOR = "\x1e"


def check_polling_text(data: object, transports: Collection[str]) -> None:
    """Refuse a text message long-polling cannot carry, when ``transports`` allow long-polling.

    A payload joins its packets with U+001E, so a text containing it would reach
    the peer cut in two (or as two messages). Decided by configuration, not by
    the transport a connection happens to use now, so that the same call
    always succeeds or always fails (SPEC.md 12.3).
    """
    if isinstance(data, str) and RECORD_SEPARATOR in data and "polling" in transports:
        raise InvalidMessageError(
            "message contains U+001E (record separator), which separates Engine.IO long-polling "
            "packets and cannot be escaped: send it as bytes, or use transports=['websocket']"
        )


def message_data(data: object) -> str | bytes:
    """A received message as rtt delivers it (JSON a library decoded anyway goes back to text)."""
    if isinstance(data, str | bytes):
        return data
    return json.dumps(data, separators=(",", ":"))


def close_from_text(text: object, default: CloseReason) -> Close:
    """The close a ``CLOSE`` packet's data stands for (:meth:`rtt.Close.as_text`).

    rtt writes its reason (``"shutdown"``), or an application's code and text
    (``"4001 logged in elsewhere"``); a bare ``CLOSE``, or data rtt did not write
    (another server), means ``default``.
    """
    close = Close.from_text(text) if isinstance(text, str) and text else None
    return close if close is not None else Close.of(default)


def reason_from_close_text(text: object, default: CloseReason) -> CloseReason:
    """The reason of :func:`close_from_text`."""
    return close_from_text(text, default).reason


def wire_limit(max_message_size: int) -> int:
    """Longest Engine.IO packet that can carry a message of ``max_message_size`` bytes.

    ``4`` + text (at most ``max_message_size`` characters), or ``b`` + base64
    of the bytes on long-polling.
    """
    return 2 + 4 * ((max_message_size + 2) // 3)


# -- Session binding (the session_binding option, SPEC.md 8.3) ----------------

#: Cookie that binds a long-polling session to the client whose handshake opened it.
BINDING_COOKIE = "rtt_engineio"
#: Body of the 403 a request without its session's binding key gets.
BINDING_REFUSED = "Session binding"
#: Length of a key (``secrets.token_urlsafe(16)``).
_KEY_LENGTH = 22


def presented_key(cookie_header: str | None) -> str:
    """The binding key a request's ``Cookie`` header carries (``""`` without one, or if unreadable)."""
    if not cookie_header:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return ""
    morsel = jar.get(BINDING_COOKIE)
    return morsel.value if morsel is not None else ""


def binding_key(cookie_header: str | None) -> tuple[str, bool]:
    """The key a handshake binds its session to, and whether it is new (its answer must set it).

    A well-formed key the client already holds is kept, so that several
    sessions of one browser (tabs) share the cookie instead of overwriting
    each other's.
    """
    key = presented_key(cookie_header)
    if len(key) == _KEY_LENGTH:
        return key, False
    return secrets.token_urlsafe(16), True


def binding_cookie(key: str, path: str, secure: bool) -> str:
    """The ``Set-Cookie`` value of a binding key: ``HttpOnly``, ``Path`` = the endpoint.

    Over HTTPS ``SameSite=None; Secure; Partitioned``, so a page on another site
    keeps its session where the browser allows third-party (partitioned)
    cookies; over plain HTTP ``SameSite=Lax`` (browsers refuse ``None`` without
    ``Secure``). ``secure`` is the handshake's scheme: the web server's, or a
    trusted proxy's ``X-Forwarded-Proto`` (SPEC.md 8.5), never an untrusted peer's.
    """
    same_site = "SameSite=None; Secure; Partitioned" if secure else "SameSite=Lax"
    return f"{BINDING_COOKIE}={key}; Path={path}; HttpOnly; {same_site}"


def owns(key: str | None, cookie_header: str | None) -> bool:
    """Whether a request with ``cookie_header`` may use a session bound to ``key`` (None: not bound)."""
    if key is None:
        return True
    return secrets.compare_digest(key.encode(), presented_key(cookie_header).encode())
