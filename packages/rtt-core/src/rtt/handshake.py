"""What a server knows about a connection before accepting it (SPEC.md section 8).

The origin allow-list and the ``authorize`` hook both run here, before a
socket exists, so every transport rejects with an HTTP status and no
application code ever sees a refused peer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
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
]


class Headers(Mapping[str, str]):
    """Immutable, case-insensitive HTTP headers; ``get_all`` returns repeated ones."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        self._items: tuple[tuple[str, str], ...] = tuple((str(k), str(v)) for k, v in pairs)
        index: dict[str, str] = {}
        for key, value in self._items:
            index.setdefault(key.lower(), value)
        self._index = index

    def __getitem__(self, key: str) -> str:
        return self._index[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, key: str) -> list[str]:
        """Every value sent under ``key``, in order."""
        wanted = key.lower()
        return [v for k, v in self._items if k.lower() == wanted]

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


def parse_query(query_string: str) -> dict[str, str]:
    """Parse a query string; the first value of a repeated name wins."""
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


@dataclass(frozen=True, slots=True)
class Reject:
    """An ``authorize`` result that refuses the handshake with an HTTP status."""

    status: int = 403
    reason: str = "Forbidden"

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"Reject status must be an HTTP error status (400-599), got {self.status}")


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
