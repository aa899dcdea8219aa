"""What a server knows about a connection before accepting it (SPEC.md section 8).

The origin allow-list and the ``authorize`` hook both run here, before a
socket exists, so every transport rejects with an HTTP status and no
application code ever sees a refused peer. So does the reading of the
forwarded headers a trusted reverse proxy adds (SPEC.md 8.5): once, in the
core, for every transport.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import parse_qsl, unquote_plus

from .resume import QUERY

__all__ = [
    "Accept",
    "AuthResult",
    "Authorize",
    "Forwarded",
    "Handshake",
    "Headers",
    "Reject",
    "TrustedProxies",
    "forwarded_client",
    "normalise_origin",
    "origin_allowed",
    "refusal_reason",
    "through_proxies",
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
    """The client's address: the peer's, or, when the peer is a trusted proxy, the one its
    forwarded headers name (SPEC.md 8.5; port 0 when they name none)."""
    peer_address: tuple[str, int] | None = None
    """The address of the peer of the server's own socket (a proxy's, behind one); a plugin
    leaves it out and gives ``remote_address``: it defaults to that."""
    scheme: str = "http"
    """``"http"`` or ``"https"``: how the client reached the server (a WebSocket handshake is an
    HTTP request), from a trusted proxy's forwarded headers where they say (SPEC.md 8.5)."""
    query: Mapping[str, str] = field(init=False)
    """Parsed query; the first value of a repeated name wins."""
    # The value of the reserved ``rtt_resume`` parameter (SPEC.md 17), taken out of
    # ``query`` and ``query_string`` before ``authorize`` sees them (see take_resume).
    _resume: str | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "query", parse_query(self.query_string))
        if self.peer_address is None:
            object.__setattr__(self, "peer_address", self.remote_address)
        if self.scheme not in _SCHEMES:
            raise ValueError(f"Handshake scheme must be 'http' or 'https', got {self.scheme!r}")

    def _take_resume(self) -> None:
        """Move the reserved ``rtt_resume`` parameter out of ``query`` and ``query_string``.

        The core calls it before ``authorize`` runs, only when ``query`` has the
        name, so the token never reaches applications (SPEC.md 17.3).
        """
        value = self.query[QUERY]
        kept = "&".join(
            pair for pair in self.query_string.split("&") if unquote_plus(pair.partition("=")[0]) != QUERY
        )
        object.__setattr__(self, "_resume", value)
        object.__setattr__(self, "query_string", kept)
        object.__setattr__(self, "query", parse_query(kept))

    @property
    def secure(self) -> bool:
        """Whether the client reached the server over TLS (``scheme == "https"``)."""
        return self.scheme == "https"

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


# -- Reverse proxies (SPEC.md 8.5) -------------------------------------------------

logger = logging.getLogger("rtt.server")

_SCHEMES = ("http", "https")
#: What a forwarded protocol may say, and the scheme it means (``ws``/``wss`` from some proxies).
_PROTOS = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

_Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> _Address:
    """An address as one value: a scope id dropped, an IPv4-mapped IPv6 address as its IPv4 one."""
    address = ipaddress.ip_address(text.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies(Collection[str]):
    """The reverse proxies whose forwarded headers a server believes (``ServerOptions.trusted_proxies``).

    A collection of exact IP addresses and CIDR networks, IPv4 and IPv6, in
    canonical form (``"10.0.0.0/8"``, ``"2001:db8::1"``), parsed once when
    built. :meth:`trusts` asks whether a peer's address is one of them. An
    entry that is neither an address nor a network, or a network with host
    bits set (``10.0.0.1/8``), raises :class:`ValueError` naming it.
    """

    __slots__ = ("_exact", "_names", "_networks")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        names: list[str] = []
        exact: set[_Address] = set()
        networks: list[_Network] = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ValueError(f"a trusted proxy must be an IP address or network as a str, got {entry!r}")
            text = entry.strip()
            try:
                if "/" in text:
                    network = ipaddress.ip_network(text, strict=True)
                    if network.num_addresses > 1:
                        networks.append(network)
                        names.append(str(network))
                        continue
                    text = str(network.network_address)
                address = _ip(text)
            except ValueError as exc:
                raise ValueError(
                    f"a trusted proxy must be an IP address or network, got {entry!r}: {exc}"
                ) from None
            exact.add(address)
            names.append(str(address))
        self._names = tuple(dict.fromkeys(names))
        self._exact = frozenset(exact)
        self._networks = tuple(networks)

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (an address as a socket reports it) is one of the trusted proxies."""
        if not self._names:
            return False
        try:
            address = _ip(host)
        except ValueError:
            return False  # a Unix socket's peer, say: never a trusted proxy
        return address in self._exact or any(address in network for network in self._networks)

    def __contains__(self, entry: object) -> bool:
        return entry in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TrustedProxies):
            return self._names == other._names
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"TrustedProxies({list(self._names)!r})"


class Forwarded(NamedTuple):
    """What the forwarded headers of one request say (:func:`forwarded_client`)."""

    remote_address: tuple[str, int] | None
    scheme: str
    problem: str | None
    """Why a header was not used (malformed, a hidden client), for a DEBUG line; ``None`` if none."""


#: RFC 7239 section 4 over RFC 7230's ``token`` and ``quoted-string``.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR = re.compile(rf"""[ \t]*({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*""")
_PORT = re.compile(r"[0-9]{1,5}")
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")


def _elements(value: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` value, each a mapping of lower-case names; None if malformed."""
    elements: list[dict[str, str]] = [{}]
    at, end = 0, len(value)
    while at < end:
        char = value[at]
        if char in " \t":
            at += 1
        elif char == ",":
            elements.append({})
            at += 1
        elif char == ";":
            at += 1
        else:
            match = _PAIR.match(value, at)
            if match is None:
                return None
            name, raw = match.group(1).lower(), match.group(2)
            if name in elements[-1]:
                return None  # "MUST NOT occur more than once" in an element (RFC 7239 section 4)
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            elements[-1][name] = raw
            at = match.end()
            if at < end and value[at] not in ",;":
                return None
    return [element for element in elements if element]


class _Hidden(NamedTuple):
    """A hop a proxy named ``unknown`` or with an obfuscated identifier (RFC 7239 section 6)."""


def _node(text: str, *, forwarded: bool) -> tuple[str, int] | _Hidden | None:
    """A hop's address and port (0 if not given or obfuscated); ``_Hidden``; None if malformed.

    ``forwarded`` is the syntax of RFC 7239 (IPv6 in brackets, ``unknown``,
    ``_obfuscated``); otherwise that of ``X-Forwarded-For``, which also takes
    a bare IPv6 address.
    """
    text = text.strip()
    port = "0"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        if rest:
            port = rest[1:]
        if ":" not in host:
            return None  # brackets hold IPv6 only
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif ":" in text and forwarded:
        return None  # RFC 7239 puts IPv6 in brackets
    else:
        host = text
    if _OBFUSCATED.fullmatch(port) and forwarded:
        port = "0"
    if not _PORT.fullmatch(port) or int(port) > 65535:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if forwarded and (host.lower() == "unknown" or _OBFUSCATED.fullmatch(host)):
            return _Hidden()
        return None
    return (str(address), int(port))


def _pick(
    hops: Sequence[str], proxies: TrustedProxies, *, forwarded: bool
) -> tuple[int, tuple[str, int]] | str:
    """The right-most hop that is not a trusted proxy (the left-most if all are), with its index.

    A string when no address can be taken: the reason. Hops left of a
    malformed or hidden one are never read: they are the client's to write.
    """
    for index in range(len(hops) - 1, -1, -1):
        node = _node(hops[index], forwarded=forwarded)
        if node is None:
            return f"a malformed hop {hops[index].strip()!r:.60}"
        if isinstance(node, _Hidden):
            return "the client's address is hidden (unknown or obfuscated)"
        if index == 0 or not proxies.trusts(node[0]):
            return index, node
    return "no hop"  # pragma: no cover - the loop returns at index 0


def _proto(value: str) -> str | None:
    return _PROTOS.get(value.strip().lower())


def forwarded_client(
    headers: Headers, peer: tuple[str, int] | None, scheme: str, proxies: TrustedProxies
) -> Forwarded:
    """The client's address and scheme, as a request's forwarded headers say (SPEC.md 8.5).

    Only a ``peer`` that ``proxies`` trusts is believed; otherwise, or when
    the headers say nothing usable, the answer is ``peer`` and ``scheme``.

    - ``X-Forwarded-For`` / ``X-Forwarded-Proto`` (what nginx, HAProxy and the
      cloud load balancers write) win when either is present, and
      ``Forwarded`` is then ignored: nginx passes a client's own ``Forwarded``
      through untouched. Otherwise ``Forwarded`` (RFC 7239), ``for=`` and
      ``proto=`` of one element.
    - The client is the right-most hop that is not a trusted proxy (the
      left-most if every hop is one): hops to its left are whatever the client
      wrote. Repeated header lines are one list, in order.
    - A port given with the address is kept; none (or an obfuscated one) is 0.
    - The scheme is the chosen hop's ``proto=``; with ``X-Forwarded-Proto``,
      the chosen hop's value if it lists one per ``X-Forwarded-For`` hop, else
      its right-most value. ``ws``/``wss`` mean ``http``/``https``.
    - A malformed value, an ``unknown`` or obfuscated client, or an unknown
      protocol leave the peer's address (or the connection's scheme) in
      place and are told in :attr:`Forwarded.problem`; nothing raises.
    """
    if peer is None or not proxies.trusts(peer[0]):
        return Forwarded(peer, scheme, None)
    problems: list[str] = []
    remote = peer
    fors = ",".join(headers.get_all("x-forwarded-for")).strip()
    xprotos = ",".join(headers.get_all("x-forwarded-proto")).strip()
    if fors or xprotos:
        hops = fors.split(",") if fors else []
        chosen: int | None = None
        if hops:
            picked = _pick(hops, proxies, forwarded=False)
            if isinstance(picked, str):
                problems.append(f"X-Forwarded-For: {picked}")
            else:
                chosen, remote = picked
        if xprotos:
            protos = xprotos.split(",")
            # One value per hop (every proxy appended): the client's hop's. Otherwise the
            # right-most, which the proxy next to this server wrote.
            value = protos[chosen] if chosen is not None and len(protos) == len(hops) else protos[-1]
            proto = _proto(value)
            if proto is None:
                problems.append(f"X-Forwarded-Proto: an unknown protocol {value.strip()!r:.30}")
            else:
                scheme = proto
    else:
        value = ",".join(headers.get_all("forwarded")).strip()
        if value:
            elements = _elements(value)
            if elements is None:
                problems.append("Forwarded: malformed")
            else:
                with_for = [element for element in elements if "for" in element]
                hops = [element["for"] for element in with_for]
                picked = _pick(hops, proxies, forwarded=True) if hops else "no for="
                if isinstance(picked, str):
                    problems.append(f"Forwarded: {picked}")
                else:
                    index, remote = picked
                    given = with_for[index].get("proto")
                    if given is not None:
                        proto = _proto(given)
                        if proto is None:
                            problems.append(f"Forwarded: an unknown protocol {given!r:.30}")
                        else:
                            scheme = proto
    return Forwarded(remote, scheme, "; ".join(problems) or None)


def through_proxies(handshake: Handshake, proxies: Collection[str]) -> None:
    """Set ``handshake``'s client address and scheme from a trusted proxy's headers, in place.

    The core calls this in ``Server._admit``, before anything else sees the
    handshake (the plugin's own object), so ``authorize``, the socket and the
    plugin read the same answer. A problem is one DEBUG line on ``rtt.server``.
    """
    trusted = proxies if isinstance(proxies, TrustedProxies) else TrustedProxies(proxies)
    result = forwarded_client(handshake.headers, handshake.peer_address, handshake.scheme, trusted)
    if result.problem is not None:
        logger.debug(
            "forwarded headers from proxy %s not used (%s); the client is taken as the proxy",
            handshake.peer_address,
            result.problem,
        )
    object.__setattr__(handshake, "remote_address", result.remote_address)
    object.__setattr__(handshake, "scheme", result.scheme)
