"""What a server knows about a connection before accepting it (SPEC.md section 8).

The origin allow-list and the ``authorize`` hook both run here, before a
socket exists, so every transport rejects with an HTTP status and no
application code ever sees a refused peer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

__all__ = [
    "Accept",
    "AuthResult",
    "Authorize",
    "Handshake",
    "Headers",
    "Reject",
    "normalise_origin",
    "origin_allowed",
    "refusal_reason",
]


class Headers(Mapping[str, str]):
    """Immutable, case-insensitive HTTP headers; ``get_all`` returns repeated ones.

    Every socket keeps its handshake headers for its whole life, so this holds
    only the pairs (reusing the library's own tuples) and finds a name by
    scanning them: a handshake has a few dozen headers at most. Servers that
    keep the raw ``(bytes, bytes)`` pairs anyway (aiohttp, ASGI) pass them to
    :meth:`from_raw`, which decodes them only when first read.
    """

    __slots__ = ("_pairs", "_raw")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._raw: Sequence[tuple[bytes, bytes]] | None = None
        self._pairs: tuple[tuple[str, str], ...] = tuple(
            pair
            if type(pair) is tuple and type(pair[0]) is str and type(pair[1]) is str
            else (str(pair[0]), str(pair[1]))
            for pair in pairs
        )

    @classmethod
    def from_raw(cls, raw: Sequence[tuple[bytes, bytes]]) -> Headers:
        """Headers over raw latin-1 ``(name, value)`` byte pairs, decoded on first use."""
        headers = cls()
        headers._raw = raw
        return headers

    @property
    def _items(self) -> tuple[tuple[str, str], ...]:
        raw = self._raw
        if raw is not None:
            self._pairs = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
            self._raw = None
        return self._pairs

    def __getitem__(self, key: str) -> str:
        wanted = key.lower()
        for name, value in self._items:
            if name.lower() == wanted:
                return value
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        wanted = key.lower()
        return any(name.lower() == wanted for name, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name.lower() for name, _ in self._items))

    def __len__(self) -> int:
        return len({name.lower() for name, _ in self._items})

    def get_all(self, key: str) -> list[str]:
        """Every value sent under ``key``, in order."""
        wanted = key.lower()
        return [v for k, v in self._items if k.lower() == wanted]

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


_NO_QUERY: Mapping[str, str] = MappingProxyType({})


def parse_query(query_string: str) -> Mapping[str, str]:
    """Parse a query string; the first value of a repeated name wins."""
    if not query_string:
        return _NO_QUERY  # shared: most sockets have no query, and each keeps its own
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(key, value)
    return query


@dataclass(frozen=True, slots=True)
class Handshake:
    """The opening request of a connection, as ``authorize`` and ``Socket`` see it."""

    headers: Headers
    """Request headers, case-insensitive."""
    path: str = "/"
    """Request path, without the query string."""
    query_string: str = ""
    """Raw query string, for names that repeat."""
    remote_address: tuple[str, int] | None = None
    """The peer's address as the server's socket sees it (not a forwarded header)."""
    query: Mapping[str, str] = field(init=False)
    """Parsed query; the first value of a repeated name wins."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "query", parse_query(self.query_string))

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header, or ``None`` when the client sent none."""
        return self.headers.get("origin")


@dataclass(frozen=True, slots=True)
class Accept:
    """An ``authorize`` result that accepts and attaches ``identity`` to the socket."""

    identity: Any = None


#: The longest reason a refusal may give (SPEC.md 8.2).
REASON_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Reject:
    """An ``authorize`` result that refuses the handshake with an HTTP status."""

    status: int = 403
    reason: str = "Forbidden"

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"Reject status must be an HTTP error status (400-599), got {self.status}")
        # The reason goes into a response body and, where it can, the status line: one short
        # line, so no refusal can add a header or split a response.
        reason = self.reason
        if not isinstance(reason, str) or not reason.isprintable() or len(reason) > REASON_LIMIT:
            raise ValueError(
                f"Reject reason must be one line of printable text of at most {REASON_LIMIT} characters, "
                f"got {self.reason!r:.60}"
            )


AuthResult: TypeAlias = bool | Accept | Reject | None
Authorize: TypeAlias = Callable[[Handshake], AuthResult | Awaitable[AuthResult]]


def normalise_origin(origin: str) -> str:
    """Lower-case an origin and drop a trailing slash, as browsers' serialisation does."""
    return origin.strip().rstrip("/").lower()


def origin_allowed(origin: str | None, allowed: Collection[str] | None) -> bool:
    """Whether a handshake's ``Origin`` passes the allow-list.

    ``allowed=None`` turns the check off. A request without ``Origin`` is not
    a browser (browsers always send it on WebSocket and cross-origin
    requests), so cross-site hijacking cannot come from it: it passes.
    ``"*"`` in the list allows every origin.
    """
    if allowed is None or origin is None:
        return True
    return "*" in allowed or normalise_origin(origin) in allowed


def refusal_reason(body: bytes | bytearray, phrase: str) -> str:
    """The reason a client reads from a refusal: the body's first line, else the status phrase.

    rtt servers send the :class:`Reject` reason as the body (SPEC.md 8.2);
    other servers' bodies are cut to one line of at most :data:`REASON_LIMIT`
    characters, so a page of HTML cannot become an error message.
    """
    lines = body[: 4 * REASON_LIMIT].decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip()[:REASON_LIMIT] if lines else phrase
