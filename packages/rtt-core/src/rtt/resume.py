"""The wire rules of resume, apart from I/O (design of issue 17, sections 2.1-2.4).

This module is the sans-I/O core that the server's session layer and both
clients share, as :mod:`rtt.codec` is for the text-wire encoding: it knows how
messages and control messages look on a resume connection, how they are
counted and acknowledged, and what a replay log holds, and it does no I/O and
reads no clock (times are passed in). Nothing uses it yet: the server, the
Python client and the options wire it in by later work packages, which is why
:mod:`rtt` does not export it.

On a connection in resume framing (only there) text is escaped like SPEC 5.5:

=================================  ==========================================
message                            on the wire
=================================  ==========================================
``bytes`` ``b``                    ``b`` unchanged
``str`` not starting with U+0000   unchanged
``str`` starting with U+0000       ``"\\x00" + s`` (one more U+0000)
control                            ``"\\x00"`` + a letter ``A``-``Z`` + an ASCII payload
=================================  ==========================================

Controls (:data:`CONTROL_LETTERS`): ``W`` welcome (JSON, :class:`Welcome`),
``H`` hello (the welcome's nonce), ``A`` ack (a decimal count), ``L`` loss
while connected (a detail such as ``broker``). A control is ASCII, at most
:data:`CONTROL_LIMIT` characters and never contains U+001E (the Engine.IO
long-polling separator). Anything else that starts with U+0000 is a
:class:`ResumeProtocolError`, which the core maps to ``protocol error``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, Literal

from .errors import TransportError

__all__ = [
    "ACK_BYTES",
    "ACK_DELAY",
    "ACK_EVERY",
    "CONTROL_LETTERS",
    "CONTROL_LIMIT",
    "ENTRY_COST",
    "QUERY",
    "AckClock",
    "Control",
    "Data",
    "Entry",
    "ReplayLog",
    "ResumeProtocolError",
    "ResumeRequest",
    "Welcome",
    "ack_text",
    "classify",
    "escape",
    "hello_text",
    "identity_digest",
    "loss_text",
    "wire_limit",
]

# Negotiation
QUERY: Final = "rtt_resume"
"""The reserved query parameter: ``1`` (start a session) or ``<id>.<token>.<n>`` (resume one)."""

# Acknowledgements: a receiver acks at whichever threshold it reaches first (design 2.4).
ACK_EVERY: Final = 256
"""Unacknowledged messages that make a receiver acknowledge at once.

An ack reaches its peer as a received message, which costs a server far more than
sending one socket its copy of a broadcast (on Engine.IO at most an echo round trip,
about 120 µs, against about 8 µs per delivery): clients acking every 64 broadcasts
could add up to about 2 µs per delivery, every 256 about 0.5 (SPEC.md 17.3). What the
sender keeps stays small: a broadcast's entry is one object for every log it is in."""
ACK_BYTES: Final = 64 * 1024
"""Unacknowledged bytes (message sizes) that make a receiver acknowledge at once."""
ACK_DELAY: Final = 1.0
"""Seconds after the first unacknowledged message by which a receiver acknowledges.

Acks only let the sender forget what it keeps (replay never depends on them: a resume
names the receiver's own count), and the two thresholds above bound what is kept at any
rate, so the delay matters only at low rates, where a short one would cost an ack for
every few messages: at 20 messages a second, 0.1 s meant one ack per 2 messages."""

# Limits
ENTRY_COST: Final = 64
"""Bytes a replay log counts per entry on top of the message size, so tiny messages are bounded too."""
CONTROL_LIMIT: Final = 512
"""The longest control message, in characters (all ASCII, so also in bytes)."""
CONTROL_LETTERS: Final = frozenset("WHAL")
"""The control letters this version knows; any other letter is a protocol error."""

_ESCAPE: Final = "\x00"
_RECORD_SEPARATOR: Final = "\x1e"
_WELCOME_PREFIX: Final = "\x00W{"
_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{11}")
_COUNT = re.compile(r"0|[1-9][0-9]{0,18}")
_DETAIL = re.compile(r"[a-z]{1,32}")
_MAX_COUNT: Final = 2**63 - 1
# <id>.<token>.<n> with n of at most 19 digits: anything longer is malformed before it is split.
_REQUEST_LIMIT: Final = 22 + 1 + 22 + 1 + 19


class ResumeProtocolError(TransportError):
    """The peer broke the resume wire rules; the connection ends with ``protocol error``.

    Only a broken rtt peer causes it: a native client never negotiates resume,
    so it never gets to speak resume framing.
    """


# Messages and controls


def escape(data: str | bytes) -> str | bytes:
    """The wire form of an application message on a resume connection."""
    if isinstance(data, str) and data.startswith(_ESCAPE):
        return _ESCAPE + data
    return data


# Not frozen: a frozen dataclass costs twice as much to make, and one is made per message.
@dataclass(slots=True)
class Data:
    """A received application message, unescaped."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Control:
    """A received control message: its letter and its ASCII payload."""

    letter: str
    payload: str

    @property
    def count(self) -> int:
        """The count an ack (``A``) carries; ``ValueError`` for another letter."""
        if self.letter != "A":
            raise ValueError(f"a {self.letter!r} control carries no count")
        return int(self.payload)


def classify(message: str | bytes) -> Data | Control:
    """Tell a message received on a resume connection apart: data (unescaped) or a control.

    A hot path may skip the call for ``bytes`` and for text that does not start
    with U+0000: both are data, unchanged. Raises :class:`ResumeProtocolError`
    for text that starts with U+0000 and is neither an escape nor a well-formed
    control of a known letter.
    """
    if not isinstance(message, str) or not message.startswith(_ESCAPE):
        return Data(message)
    if message.startswith(_ESCAPE, 1):
        return Data(message[1:])
    letter = message[1:2]
    if letter not in CONTROL_LETTERS:
        shown = repr(letter) if letter else "nothing"
        raise ResumeProtocolError(f"U+0000 followed by {shown} is neither an escape nor a known control")
    payload = message[2:]
    if len(message) > CONTROL_LIMIT:
        raise ResumeProtocolError(
            f"{letter!r} control of {len(message)} characters (at most {CONTROL_LIMIT})"
        )
    if not payload.isascii() or _RECORD_SEPARATOR in payload:
        raise ResumeProtocolError(f"{letter!r} control with a payload that is not plain ASCII")
    if letter == "A":
        if _COUNT.fullmatch(payload) is None:
            raise ResumeProtocolError(f"ack {payload[:40]!r} is not a decimal count")
    elif letter == "H":
        if _NONCE.fullmatch(payload) is None:
            raise ResumeProtocolError("hello without an 11-character nonce")
    elif letter == "L":
        if _DETAIL.fullmatch(payload) is None:
            raise ResumeProtocolError(f"loss with detail {payload[:40]!r}")
    elif not payload.startswith("{"):
        raise ResumeProtocolError("welcome without a JSON object")
    return Control(letter, payload)


def ack_text(count: int) -> str:
    """The ack control for a cumulative ``count``."""
    if type(count) is not int or not 0 <= count <= _MAX_COUNT:
        raise ValueError(f"an ack count is an int in [0, 2**63), got {count!r}")
    return f"\x00A{count}"


def hello_text(nonce: str) -> str:
    """The hello control that answers a welcome with this ``nonce``."""
    if _NONCE.fullmatch(nonce) is None:
        raise ValueError(f"a nonce is 11 URL-safe characters, got {nonce!r}")
    return "\x00H" + nonce


def loss_text(detail: str) -> str:
    """The loss control (sent while connected) with this ``detail``, such as ``broker``."""
    if _DETAIL.fullmatch(detail) is None:
        raise ValueError(f"a loss detail is 1-32 lowercase letters, got {detail!r}")
    return "\x00L" + detail


# The welcome

WelcomeStatus = Literal["new", "resumed", "lost"]
LostWhy = Literal["unknown", "identity"]
_STATUSES: Final = ("new", "resumed", "lost")
_WHYS: Final = ("unknown", "identity")
_KEYS: Final = {
    "new": frozenset({"v", "s", "id", "k", "n", "r", "w"}),
    "resumed": frozenset({"v", "s", "id", "k", "n", "r", "o", "w"}),
    "lost": frozenset({"v", "s", "why", "id", "k", "n", "r", "w"}),
}


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_COUNT


@dataclass(frozen=True, slots=True)
class Welcome:
    """The server's first message on a resume connection (design 2.3).

    ``status`` is ``new`` (a first connection), ``resumed`` or ``lost`` (a
    resume attempt that started a new session, ``why`` says why). ``handled``
    is how many client messages the server has handled (the JSON's ``r``: the
    client resends from there); ``received`` echoes the client's count (``o``,
    ``resumed`` only); ``loss`` is ``"broker"`` when a resumed session may miss
    messages (``g``); ``window`` is the server's ``resume_window``, for logs.
    """

    status: WelcomeStatus
    id: str
    token: str
    nonce: str
    window: float
    handled: int = 0
    received: int | None = None
    why: LostWhy | None = None
    loss: Literal["broker"] | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(f"invalid welcome: {problem}")

    def _problem(self) -> str:
        if self.status not in _STATUSES:
            return f"status {self.status!r}"
        if type(self.id) is not str or _ID.fullmatch(self.id) is None:
            return "id is not 22 URL-safe characters"
        if type(self.token) is not str or _ID.fullmatch(self.token) is None:
            return "token is not 22 URL-safe characters"
        if type(self.nonce) is not str or _NONCE.fullmatch(self.nonce) is None:
            return "nonce is not 11 URL-safe characters"
        if type(self.window) not in (int, float) or not math.isfinite(self.window) or self.window <= 0:
            return f"window {self.window!r}"
        if not _is_count(self.handled):
            return f"handled {self.handled!r}"
        resumed = self.status == "resumed"
        if resumed != (self.received is not None) or not (self.received is None or _is_count(self.received)):
            return f"received {self.received!r} with status {self.status!r}"
        if (self.status == "lost") != (self.why is not None) or self.why not in (None, *_WHYS):
            return f"why {self.why!r} with status {self.status!r}"
        if self.loss not in (None, "broker") or (self.loss is not None and not resumed):
            return f"loss {self.loss!r} with status {self.status!r}"
        if not resumed and self.handled:
            return f"handled {self.handled} in a {self.status!r} welcome"
        return ""

    def to_text(self) -> str:
        """The welcome control as the server sends it."""
        fields: dict[str, Any] = {"v": 1, "s": self.status}
        if self.why is not None:
            fields["why"] = self.why
        fields.update(id=self.id, k=self.token, n=self.nonce, r=self.handled)
        if self.received is not None:
            fields["o"] = self.received
        fields["w"] = float(self.window)
        if self.loss is not None:
            fields["g"] = self.loss
        return "\x00W" + json.dumps(fields, separators=(",", ":"))

    @classmethod
    def parse(cls, message: str | bytes) -> Welcome | None:
        """Read a client's first message: the welcome, or ``None`` when it is none.

        ``None`` (the server does not offer resume) for ``bytes``, any text that
        does not start with ``"\\x00W{"``, text that is not a JSON object, and an
        object whose ``"v"`` is not 1. A version 1 welcome that breaks the rules
        raises :class:`ResumeProtocolError`: only a broken rtt server sends one.
        """
        if not isinstance(message, str) or not message.startswith(_WELCOME_PREFIX):
            return None
        try:
            fields = json.loads(message[2:])
        except (ValueError, RecursionError):
            return None
        # The text starts with "{", so what json.loads returns is a dict.
        if type(fields.get("v")) is not int or fields["v"] != 1:
            return None
        if len(message) > CONTROL_LIMIT or not message.isascii():
            raise ResumeProtocolError("welcome too long or not ASCII")
        status: Any = fields.get("s")
        keys = _KEYS.get(status) if type(status) is str else None
        if keys is None or set(fields) - {"g"} != keys:
            raise ResumeProtocolError(f"welcome with fields {sorted(fields)} for status {status!r}")
        try:
            return cls(
                status=status,
                id=fields["id"],
                token=fields["k"],
                nonce=fields["n"],
                window=fields["w"],
                handled=fields["r"],
                received=fields.get("o"),
                why=fields.get("why"),
                loss=fields.get("g"),
            )
        except ValueError as exc:
            raise ResumeProtocolError(str(exc)) from None


# The request


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    """What a client asked for in the :data:`QUERY` parameter.

    ``kind`` is ``new`` (the value ``1``), ``resume`` (``<id>.<token>.<n>``,
    with ``id``, ``token`` and ``received`` set), or ``unknown`` for any
    malformed value, which the server answers as a resume of a session nobody
    holds (welcome ``lost``, ``why`` ``unknown``).
    """

    kind: Literal["new", "resume", "unknown"]
    id: str | None = None
    token: str | None = None
    received: int | None = None

    @classmethod
    def parse(cls, value: str) -> ResumeRequest:
        """Read the query value; never raises."""
        if value == "1":
            return _NEW
        if type(value) is not str or len(value) > _REQUEST_LIMIT:
            return _UNKNOWN
        parts = value.split(".")
        if len(parts) != 3:
            return _UNKNOWN
        socket_id, token, count = parts
        if (
            _ID.fullmatch(socket_id) is None
            or _ID.fullmatch(token) is None
            or _COUNT.fullmatch(count) is None
        ):
            return _UNKNOWN
        received = int(count)
        if received > _MAX_COUNT:
            return _UNKNOWN
        return cls("resume", socket_id, token, received)

    def to_value(self) -> str:
        """The query value a client sends for this request."""
        if self.kind == "resume":
            return f"{self.id}.{self.token}.{self.received}"
        if self.kind == "new":
            return "1"
        raise ValueError("an unknown request has no value to send")


_NEW: Final = ResumeRequest("new")
_UNKNOWN: Final = ResumeRequest("unknown")


# The replay log


class Entry:
    """One message sent to sockets: kept once, shared by the log of every recipient."""

    __slots__ = ("data", "size")

    def __init__(self, data: str | bytes, size: int) -> None:
        self.data = data
        self.size = size

    def __repr__(self) -> str:
        return f"Entry({self.data!r}, {self.size})"


class ReplayLog:
    """The messages sent to a socket that its client has not acknowledged.

    It holds the entries with counts ``[base, out)``: ``out`` is the socket's
    out-count (every message appended), ``base`` the highest count its client
    acknowledged. ``cost`` is the sum of ``size + ENTRY_COST`` over the
    entries, bounded by ``limit`` (the server's ``resume_buffer``).
    """

    __slots__ = ("_entries", "base", "cost", "limit", "out")

    def __init__(self, limit: int) -> None:
        self._entries: deque[Entry] = deque()
        self.base = 0
        self.out = 0
        self.cost = 0
        self.limit = limit

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry: Entry) -> bool:
        """Append ``entry`` (its count is the old ``out``); return whether ``cost`` now exceeds ``limit``.

        The entry is kept either way: an overflow ends the session, so what the
        log holds afterwards no longer matters.
        """
        self._entries.append(entry)
        self.out += 1
        self.cost += entry.size + ENTRY_COST
        return self.cost > self.limit

    def ack(self, count: int) -> int:
        """Apply a cumulative ack: drop the entries below ``count``; return how many.

        An ack at or below ``base`` is ignored (acks may arrive late). One above
        ``out`` acknowledges messages never sent: :class:`ResumeProtocolError`.
        """
        if count > self.out:
            raise ResumeProtocolError(f"ack {count} is above the {self.out} messages sent")
        dropped = count - self.base
        if dropped <= 0:
            return 0
        entries = self._entries
        cost = 0
        for _ in range(dropped):
            cost += entries.popleft().size
        self.cost -= cost + dropped * ENTRY_COST
        self.base = count
        return dropped

    def since(self, n: int) -> Iterator[Entry] | None:
        """The entries with counts ``n`` to ``out - 1``, or ``None`` if ``n`` is outside ``[base, out]``.

        The iterator is a snapshot: appending or acking while it is consumed is safe.
        """
        if not self.base <= n <= self.out:
            return None
        return iter(tuple(islice(self._entries, n - self.base, None)))


# Acknowledgement timing


class AckClock:
    """When a receiver acknowledges: at :data:`ACK_EVERY` messages, :data:`ACK_BYTES` bytes,
    or :data:`ACK_DELAY` seconds after the first unacknowledged message.

    Pure: the caller passes the time and does the sending. Per message it calls
    :meth:`received`; ``True`` means "ack now", otherwise an ack is due at
    :attr:`due` (``None`` when nothing is pending). To ack it sends
    ``ack_text(clock.take())``.
    """

    __slots__ = ("acked", "count", "due", "pending_bytes")

    def __init__(self, count: int = 0) -> None:
        self.count = count
        """Messages received (or handled) in the session."""
        self.acked = count
        """The count last acknowledged."""
        self.pending_bytes = 0
        self.due: float | None = None
        """When the pending messages must be acknowledged at the latest."""

    def received(self, size: int, now: float) -> bool:
        """Count one message of ``size`` bytes received at ``now``; ``True`` when an ack is due now."""
        self.count += 1
        self.pending_bytes += size
        if self.due is None:
            self.due = now + ACK_DELAY
        return self.count - self.acked >= ACK_EVERY or self.pending_bytes >= ACK_BYTES

    def expired(self, now: float) -> bool:
        """Whether the delay of the pending messages has run out at ``now``."""
        return self.due is not None and now >= self.due

    def take(self) -> int:
        """Mark everything received as acknowledged; return the count to send."""
        self.acked = self.count
        self.pending_bytes = 0
        self.due = None
        return self.count


# Sizes and identities


def wire_limit(max_message_size: int) -> int:
    """The size limit a transport library needs for messages of ``max_message_size`` bytes.

    The escape adds one byte to a text that starts with U+0000, and a control
    (at most :data:`CONTROL_LIMIT`) must pass even when messages are smaller.
    The core still refuses a decoded message above ``max_message_size``.
    """
    return max(max_message_size + 1, CONTROL_LIMIT)


def identity_digest(identity: object) -> str | None:
    """SHA-256 (hex) of ``identity`` as canonical JSON, or ``None`` if it has no JSON form.

    Canonical: sorted keys, no spaces, ASCII, no NaN or infinity. Two processes
    compare identities by digest, so an identity must be JSON-serializable for
    a session to move between processes; JSON's own equalities apply (a tuple
    and a list, or the key ``1`` and ``"1"``, have the same form).
    """
    try:
        text = json.dumps(identity, sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    return hashlib.sha256(text.encode("ascii")).hexdigest()
