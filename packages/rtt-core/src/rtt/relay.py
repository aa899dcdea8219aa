"""HTTP sessions across processes, without sticky sessions (SPEC.md 13.8).

Long-polling and streaming transports spread one session over many HTTP
requests, and a load balancer (or ``SO_REUSEPORT``) sends each to any
process. The process holding a session subscribes to its channel
``h.<key>``; a process that gets a request for a session it does not hold
publishes the request there (:meth:`Relay.forward`), the holder serves it
exactly as if it had arrived itself (the plugin's
:meth:`rtt.Server._serve_relayed`) and publishes the response back in
pieces (head, chunks, end) on the forwarder's channel ``n.<node>``. The
broker's per-sender order keeps the pieces in order; a forwarder that stops
reading (its client left) sends ``cancel``. Every wait is bounded.

This is the design Phoenix's long-poll transport uses over its PubSub; it
needs nothing from the load balancer and works across machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .broker import Envelope, encode_envelope
from .errors import BrokerError

if TYPE_CHECKING:
    from .broker import Broker
    from .handshake import Headers

__all__ = [
    "HOP_BY_HOP",
    "RelayedRequest",
    "RelayedResponse",
    "fetch_unix",
    "peer_of",
    "relay_headers",
    "relayed_peer",
]

logger = logging.getLogger("rtt.relay")

#: Headers that describe one connection, not the request or response: never relayed.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "host",
    }
)


@dataclass(frozen=True, slots=True)
class RelayedRequest:
    """An HTTP request of a session held by another process, as relayed to it."""

    method: str
    target: str
    """Path and query string, exactly as received."""
    headers: tuple[tuple[str, str], ...]
    """Request headers, repeats kept, hop-by-hop ones left out."""
    body: bytes = b""
    peer: tuple[str, int] | None = None
    """The peer of the connection the request came on, at the process that relays it."""
    scheme: str = "http"
    """That connection's scheme (``https`` over TLS)."""

    @classmethod
    def of(cls, request: Any, body: bytes) -> RelayedRequest:
        """The relayed form of an aiohttp ``web.Request`` (what the aiohttp-based plugins relay).

        Read by attribute (``method``, ``path_qs``, ``headers``, ``transport``,
        ``secure``), so rtt-core needs no aiohttp.
        """
        return cls(
            request.method,
            request.path_qs,
            relay_headers(request.headers),
            body,
            peer_of(request.transport),
            "https" if request.secure else "http",
        )

    def encode(self) -> bytes:
        head: dict[str, Any] = {"m": self.method, "t": self.target, "h": [list(h) for h in self.headers]}
        if self.peer is not None:
            head["p"] = list(self.peer)
        head["s"] = self.scheme
        return json.dumps(head, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, data: bytes) -> RelayedRequest:
        end = data.index(b"\n")
        head = json.loads(data[:end])
        headers = tuple((str(k), str(v)) for k, v in head["h"])
        peer = head.get("p")
        return cls(
            str(head["m"]),
            str(head["t"]),
            headers,
            data[end + 1 :],
            (str(peer[0]), int(peer[1])) if peer else None,
            "https" if head.get("s") == "https" else "http",
        )


@dataclass(slots=True)
class RelayedResponse:
    """The response to a relayed request: status and headers, then the body in chunks."""

    status: int
    headers: tuple[tuple[str, str], ...]
    """Response headers, repeats kept (``Set-Cookie``), hop-by-hop ones left out."""
    body: AsyncGenerator[bytes, None]
    """The body as it comes; a streaming response yields for as long as it lasts."""


#: Bytes of status line and headers a relayed response may have.
HEAD_LIMIT = 64 * 1024

#: The header that carries a relayed request's peer and scheme to this process's own server.
PEER_HEADER = "Rtt-Relayed-Peer"
#: Vouches for :data:`PEER_HEADER`: random, and never leaves the process (a process relays a
#: request to its own server only), so no client can forge the header.
_VOUCH = secrets.token_urlsafe(16)
_PEER_LOWER = PEER_HEADER.lower()


def peer_of(transport: asyncio.BaseTransport | None) -> tuple[str, int] | None:
    """The ``(host, port)`` peer of a TCP connection; ``None`` for a Unix socket or none."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None


def relayed_peer(headers: Headers) -> tuple[tuple[str, int], str] | None:
    """The peer and scheme :func:`fetch_unix` vouched for in ``headers``; ``None`` if it did not.

    So a socket opened by a relayed request keeps the client's address, not
    this process's (SPEC.md 8.5, 13.8); a value this process did not write is
    ignored.
    """
    for value in headers.get_all(PEER_HEADER):
        vouch, _, rest = value.partition(" ")
        if secrets.compare_digest(vouch.encode(), _VOUCH.encode()):
            scheme, host, port = rest.split(" ", 2)
            return (host, int(port)), "https" if scheme == "https" else "http"
    return None


#: Bytes read from a relayed response body at a time.
READ_SIZE = 64 * 1024


async def fetch_unix(path: str, request: RelayedRequest) -> RelayedResponse:
    """Perform ``request`` against this process's own HTTP server on the Unix socket ``path``.

    The holder of a session serves a relayed request through its own server,
    so the request takes exactly the path it would have taken had it arrived
    here (SPEC.md 13.8). The socket is the process's own, its peer is that
    process's own HTTP library, so this small HTTP/1.1 exchange (one request,
    ``Connection: close``, a body by length, chunks or until the end) is all
    it takes; rtt-core depends on no HTTP library (SPEC.md 15). The request's
    ``peer`` and ``scheme`` go along in a header only this process can write
    (:func:`relayed_peer`), so a socket the request opens has the client's address.
    """
    reader, writer = await asyncio.open_unix_connection(path, limit=HEAD_LIMIT)
    try:
        lines = [
            f"{request.method} {request.target} HTTP/1.1",
            "Host: rtt-relay",
            "Connection: close",
            f"Content-Length: {len(request.body)}",
            *(f"{name}: {value}" for name, value in request.headers if name.lower() != _PEER_LOWER),
        ]
        if request.peer is not None:
            host, port = request.peer
            lines.append(f"{PEER_HEADER}: {_VOUCH} {request.scheme} {host} {port}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + request.body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    except BaseException:
        writer.close()
        raise
    status_line, *header_lines = head[:-4].split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: list[tuple[str, str]] = []
    chunked, length = False, None
    for line in header_lines:
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        lower = name.lower()
        if lower == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif lower == "content-length":
            length = int(value)
        if lower not in HOP_BY_HOP:
            headers.append((name, value))
    return RelayedResponse(status, tuple(headers), _read_body(reader, writer, chunked, length))


async def _read_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunked: bool, length: int | None
) -> AsyncGenerator[bytes, None]:
    try:
        if chunked:
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                yield await reader.readexactly(size)
                await reader.readexactly(2)
        elif length is not None:
            while length > 0:
                data = await reader.read(min(length, READ_SIZE))
                if not data:
                    raise ConnectionError("relayed response ended early")
                length -= len(data)
                yield data
        else:
            while data := await reader.read(READ_SIZE):
                yield data
    finally:
        writer.close()


def relay_headers(headers: Any) -> tuple[tuple[str, str], ...]:
    """``(name, value)`` pairs of a header multimap, hop-by-hop ones left out."""
    return tuple((str(k), str(v)) for k, v in headers.items() if str(k).lower() not in HOP_BY_HOP)


class _Pending:
    """What a forwarder has received of one relayed response and not yet passed on."""

    __slots__ = ("broken", "owner", "pieces", "queued", "ready")

    def __init__(self) -> None:
        self.pieces: list[Envelope] = []
        self.queued = 0
        self.ready = asyncio.Event()
        self.broken = False
        self.owner = ""

    async def next(self, timeout: float) -> Envelope:
        async with asyncio.timeout(timeout):
            while not self.pieces:
                self.ready.clear()
                await self.ready.wait()
        piece = self.pieces.pop(0)
        if piece.op == "chunk" and isinstance(piece.data, bytes):
            self.queued -= len(piece.data)
        return piece


class Relay:
    """Both ends of the relay for one server: the requests it forwards and those it serves."""

    def __init__(
        self,
        broker: Broker,
        node: str,
        serve: Callable[[RelayedRequest], Awaitable[RelayedResponse]],
        timeout: float,
        limit: int,
    ) -> None:
        self.broker = broker
        self.node = node
        self.serve = serve
        self.timeout = timeout
        """Seconds a forwarder waits for the next piece (a long poll's whole wait fits in it)."""
        self.limit = limit
        """Bytes of response a forwarder may hold unsent before it gives the request up."""
        self._pending: dict[str, _Pending] = {}
        self._serving: dict[tuple[str, str], asyncio.Task[None]] = {}

    # -- The forwarder ------------------------------------------------------------

    async def forward(self, key: str, request: RelayedRequest) -> RelayedResponse | None:
        """Relay ``request`` to the process holding session ``key``; ``None`` if no process does.

        Raises :class:`~rtt.errors.BrokerError` if the broker is down or the
        holder does not answer within :attr:`timeout`.
        """
        ref = secrets.token_urlsafe(12)
        pending = self._pending[ref] = _Pending()
        envelope = Envelope("relay", origin=self.node, socket=key, ref=ref, data=request.encode())
        try:
            if not await self.broker.publish(f"h.{key}", encode_envelope(envelope)):
                self._pending.pop(ref, None)
                return None
            head = await pending.next(self.timeout)
        except TimeoutError:
            self._pending.pop(ref, None)
            raise BrokerError(
                f"the process holding session {key} did not answer within {self.timeout} s"
            ) from None
        except BaseException:
            self._pending.pop(ref, None)
            raise
        if head.op != "head" or not isinstance(head.data, bytes):
            self._pending.pop(ref, None)
            raise BrokerError(f"the process holding session {key} answered out of order")
        pending.owner = head.origin
        meta = json.loads(head.data)
        headers = tuple((str(k), str(v)) for k, v in meta["h"])
        return RelayedResponse(int(meta["s"]), headers, self._body(ref, pending))

    async def _body(self, ref: str, pending: _Pending) -> AsyncGenerator[bytes, None]:
        finished = False
        try:
            while True:
                try:
                    piece = await pending.next(self.timeout)
                except TimeoutError:
                    logger.warning("relayed response %s stalled for %s s; giving it up", ref, self.timeout)
                    return
                if piece.op == "end":
                    finished = not pending.broken
                    return
                if piece.op == "chunk" and isinstance(piece.data, bytes):
                    yield piece.data
        finally:
            self._pending.pop(ref, None)
            if not finished and pending.owner:
                # The client left (or fell behind): the holder stops serving it.
                cancel = Envelope("cancel", origin=self.node, ref=ref)
                with contextlib.suppress(BrokerError):
                    await self.broker.publish(f"n.{pending.owner}", encode_envelope(cancel))

    # -- Both ends: what arrives from the broker ------------------------------------

    def received(self, envelope: Envelope, spawn: Callable[[Any], asyncio.Task[Any]]) -> None:
        """Handle one relay envelope addressed to this process."""
        op = envelope.op
        if op == "relay":
            key = (envelope.origin, envelope.ref)
            self._serving[key] = spawn(self._serve(envelope))
            return
        if op == "cancel":
            task = self._serving.pop((envelope.origin, envelope.ref), None)
            if task is not None:
                task.cancel()
            return
        pending = self._pending.get(envelope.ref)
        if pending is None or pending.broken:
            return  # given up already; its holder has been told
        if op == "chunk" and isinstance(envelope.data, bytes):
            pending.queued += len(envelope.data)
        if pending.queued > self.limit:
            logger.warning(
                "relayed response %s outgrew %d bytes unsent; giving it up", envelope.ref, self.limit
            )
            pending.broken = True
            pending.pieces.append(Envelope("end"))
        else:
            pending.pieces.append(envelope)
        pending.ready.set()

    # -- The holder ----------------------------------------------------------------

    async def _serve(self, envelope: Envelope) -> None:
        reply = f"n.{envelope.origin}"
        ref = envelope.ref
        head_sent = False
        try:
            if not isinstance(envelope.data, bytes):
                raise ValueError("a relayed request must carry bytes")
            response = await self.serve(RelayedRequest.decode(envelope.data))
            meta = {"s": response.status, "h": [list(h) for h in response.headers]}
            await self._reply(reply, "head", ref, json.dumps(meta, separators=(",", ":")).encode())
            head_sent = True
            async for chunk in response.body:
                if chunk:
                    await self._reply(reply, "chunk", ref, chunk)
            await self._reply(reply, "end", ref)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("serving relayed request %s failed: %s", ref, exc)
            with contextlib.suppress(BrokerError):
                if not head_sent:
                    meta = {"s": 502, "h": [["Content-Type", "text/plain; charset=utf-8"]]}
                    await self._reply(reply, "head", ref, json.dumps(meta).encode())
                    await self._reply(reply, "chunk", ref, b"relay failed\n")
                await self._reply(reply, "end", ref)
        finally:
            self._serving.pop((envelope.origin, ref), None)

    async def _reply(self, channel: str, op: str, ref: str, data: bytes | None = None) -> None:
        await self.broker.publish(
            channel, encode_envelope(Envelope(op, origin=self.node, ref=ref, data=data))
        )

    async def close(self) -> None:
        """Stop serving relayed requests and give up the forwarded ones."""
        for task in list(self._serving.values()):
            task.cancel()
        for pending in self._pending.values():
            pending.broken = True
            pending.pieces.append(Envelope("end"))
            pending.ready.set()
