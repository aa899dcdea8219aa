"""Sessions that move between processes through the broker (SPEC.md 17.5).

A session lives in one process, its *holder*. A client that resumes on
another process (the *claimant*) makes it take the session over:

1. the claimant subscribes ``s.<id>`` and from then on *captures* every
   envelope that may concern the session (operations on it, every
   broadcast) instead of acting on it;
2. it publishes ``takeover`` on ``s.<id>``; the holder checks the token
   digest, the identity digest and that the claimant already receives every
   group the session is in (else ``retry``), then *freezes* the session:
   drops its connection, takes it out of ``sockets`` without publishing
   anything, and sends its ``state`` (counts, tokens, groups, the replay log
   and the last stamp it saw from each process) to ``n.<claimant>``;
3. the claimant applies the captured envelopes the holder had not applied
   (a stamp above the holder's for that origin) and installs the session.

Exactly once rests on the broker's total order (``Broker.total_order``):
an envelope published before the takeover reached the holder first, one
published after it reached the claimant, already subscribed, and each
process stamps its socket operations in publish order. A process's own
broadcasts are delivered locally before they are stamped and published, so
one in flight while a session freezes names that session in its ``exclude``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .broker import BrokerState, Envelope, encode_envelope
from .codec import message_size
from .errors import BrokerError
from .events import CloseReason
from .handshake import Headers
from .resume import AckClock, Entry, ReplayLog, ResumeRequest, identity_digest
from .server import ServerState, Socket

if TYPE_CHECKING:
    from ._sessions import Session, Sessions
    from .handshake import Handshake

__all__ = ["Flight", "Handoff", "decode_state", "encode_state"]

logger = logging.getLogger("rtt.server")

C = TypeVar("C")

#: Takeover rounds a claimant makes when joins keep racing it (each round subscribes the groups missing).
ROUNDS = 3

#: Sessions offered in one ``adopt`` envelope when a closing process pushes its sessions.
BATCH = 256


def token_digest(token: str) -> str:
    """The hex SHA-256 of a resume token, as a takeover carries it."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def encode_state(header: dict[str, Any], entries: list[Entry]) -> bytes:
    """A session's state: a JSON header, a newline, then per log entry a kind byte, a length and the data."""
    parts = [json.dumps(header, separators=(",", ":")).encode(), b"\n"]
    for entry in entries:
        data = entry.data
        raw = data.encode() if isinstance(data, str) else bytes(data)
        parts.append((b"\x01" if isinstance(data, str) else b"\x00") + len(raw).to_bytes(4, "big") + raw)
    return b"".join(parts)


def decode_state(payload: bytes) -> tuple[dict[str, Any], list[Entry]]:
    """Parse :func:`encode_state`'s bytes; ``ValueError`` for anything else."""
    end = payload.find(b"\n")
    if end < 0:
        raise ValueError("state has no header")
    header = json.loads(payload[:end])
    if not isinstance(header, dict):
        raise ValueError("state header is not an object")
    entries: list[Entry] = []
    at = end + 1
    while at < len(payload):
        kind = payload[at]
        length = int.from_bytes(payload[at + 1 : at + 5], "big")
        raw = payload[at + 5 : at + 5 + length]
        if len(raw) != length or kind not in (0, 1):
            raise ValueError("state entry is truncated or of an unknown kind")
        data: str | bytes = raw.decode() if kind else raw
        entries.append(Entry(data, message_size(data)))
        at += 5 + length
    return header, entries


class Flight:
    """One of this process's broadcasts while it is delivered here, before it is stamped and published.

    Sessions that leave meanwhile already have it (their new holder must skip
    it); sessions that arrive meanwhile do not (they get it here afterwards).
    """

    __slots__ = ("frozen", "installed")

    def __init__(self) -> None:
        self.frozen: list[str] = []
        self.installed: list[str] = []


class Claim:
    """A takeover this process is making: what it captured meanwhile, and the holder's answer."""

    __slots__ = ("buffer", "done", "id", "queued", "ref", "reply")

    def __init__(self, socket_id: str) -> None:
        self.id = socket_id
        self.ref = secrets.token_urlsafe(9)
        self.done = asyncio.Event()
        """Set when the takeover is over, whether the session was installed or not."""
        self.buffer: collections.deque[Envelope] = collections.deque()
        """What arrived about the session, and every broadcast: this process's own as it published them
        (one may come back from the broker only after the session is installed)."""
        self.queued: list[Envelope] = []
        """Takeovers of the same session by a third process, answered once this one is done."""
        self.reply: asyncio.Future[Envelope] | None = None


class Handoff(Generic[C]):
    """Both sides of a takeover for one server (it exists only with a broker)."""

    def __init__(self, sessions: Sessions[C]) -> None:
        self.sessions = sessions
        self.server = sessions.server
        self.claims: dict[str, Claim] = {}
        self._by_ref: dict[str, Claim] = {}
        self.flights: list[Flight] = []
        """This process's broadcasts being delivered here."""
        self.pushing = False
        """This server is closing and hands its sessions to its peers (SPEC.md 17.5)."""
        self.offered: dict[str, tuple[str, str]] = {}
        """Sessions offered to a peer while pushing: id -> (node, adopt ref)."""
        self._pushed: asyncio.Event | None = None

    # -- Envelopes from the broker ------------------------------------------------

    def capture(self, envelope: Envelope) -> bool:
        """Keep an envelope that may concern a session being claimed; ``True`` if it is only that's."""
        op = envelope.op
        if op == "broadcast":
            if envelope.origin != self.server.node:  # kept by published() instead
                for claim in self.claims.values():
                    claim.buffer.append(envelope)
            return False
        # Every other envelope here names no socket (acks, the relay's), or one not being claimed.
        claimed = self.claims.get(envelope.socket)
        if claimed is None:
            return False
        if envelope.origin != self.server.node or envelope.ref:
            claimed.buffer.append(envelope)
        # else: kept by sent() as it was published
        return True

    def published(self, envelope: Envelope) -> None:
        """This process publishes a broadcast while it claims sessions (it delivered it here without them)."""
        for claim in self.claims.values():
            claim.buffer.append(envelope)

    def sent(self, envelope: Envelope) -> bool:
        """This process publishes an operation on a socket; ``True`` if kept: claimed here, not confirmed.

        A confirmed one (join, leave) is kept when it comes back, so that it is
        confirmed from there like anyone's.
        """
        claim = self.claims.get(envelope.socket)
        if claim is None or envelope.ref:
            return False
        claim.buffer.append(envelope)
        return True

    def unsent(self, envelope: Envelope) -> None:
        """Forget what :meth:`sent` kept: its publish failed."""
        claim = self.claims.get(envelope.socket)
        if claim is not None:
            with contextlib.suppress(ValueError):
                claim.buffer.remove(envelope)

    async def received(self, envelope: Envelope) -> None:
        """A handoff envelope: a takeover to answer, or the answer to one of ours."""
        if envelope.op == "takeover":
            if envelope.origin != self.server.node and (
                self.server._state is ServerState.RUNNING or self.pushing
            ):
                await self.on_takeover(envelope)
            return
        if envelope.op == "adopt":
            if self.server._state is ServerState.RUNNING:
                # Its takeovers are answered through this same delivery loop: not awaited here.
                self.server._spawn(self.adopt(envelope))
            return
        claim = self._by_ref.get(envelope.ref)
        if claim is not None and claim.reply is not None and not claim.reply.done():
            claim.reply.set_result(envelope)

    # -- The claimant -------------------------------------------------------------

    async def claim(self, request: ResumeRequest, identity: Any, handshake: Handshake) -> str | None:
        """Take session ``request.id`` over from its holder: ``None`` once it is held here, else why not.

        ``"down"`` while the broker link is down: the session stays with its holder.
        """
        server = self.server
        broker = server.broker
        assert broker is not None and request.id is not None and request.token is not None
        if not broker.total_order:
            return "unknown"
        if broker.state is not BrokerState.UP:
            return "down"
        digest = identity_digest(identity)
        if digest is None:
            return "identity"
        ongoing = self.claims.get(request.id)
        if ongoing is not None:
            # Taken over already, by an earlier attempt of its client or by an adoption at a peer's
            # shutdown (which its clients race in a rolling restart): resume here once it is in.
            # A takeover ends by itself (each of its rounds is bounded by the broker's timeout).
            await ongoing.done.wait()
            return None if request.id in self.sessions.sessions else "unknown"
        body = {"tok": token_digest(request.token), "idd": digest}
        return await self._take(Claim(request.id), body, (), identity, handshake)

    async def adopt(self, envelope: Envelope) -> None:
        """A closing holder offers its sessions (``adopt``): take each over, to hold it here as away."""
        try:
            assert isinstance(envelope.data, str)
            items = [(str(item[0]), [str(g) for g in item[1]]) for item in json.loads(envelope.data)]
        except (AssertionError, ValueError, TypeError, IndexError, KeyError):
            logger.warning("ignored a malformed adopt from %s", envelope.origin)
            return
        body = {"adopt": envelope.ref}
        takes = [
            self._take(Claim(socket_id), body, groups, None, None)
            for socket_id, groups in items
            if socket_id not in self.sessions.sessions and socket_id not in self.claims
        ]
        await asyncio.gather(*takes)

    async def _take(
        self,
        claim: Claim,
        body: dict[str, Any],
        groups: Collection[str],
        identity: Any,
        handshake: Handshake | None,
    ) -> str | None:
        """Subscribe, publish takeovers (retrying with the groups asked for) and install the state."""
        server = self.server
        broker = server.broker
        assert broker is not None
        socket_id = claim.id
        self.claims[socket_id] = claim
        self._by_ref[claim.ref] = claim
        channel = f"s.{socket_id}"
        extra: set[str] = set()
        installed = False
        try:
            await broker.subscribe(channel)
            for group in groups:
                if f"g.{group}" not in broker.channels:
                    await broker.subscribe(f"g.{group}")
                    extra.add(group)
            for _ in range(ROUNDS):
                joined = sorted(c[2:] for c in broker.channels if c.startswith("g."))
                claim.reply = asyncio.get_running_loop().create_future()
                data = json.dumps({**body, "grp": joined}, separators=(",", ":"))
                takeover = Envelope("takeover", server.node, socket_id, data=data, ref=claim.ref)
                if await broker.publish(channel, encode_envelope(takeover)) <= 1:
                    return "unknown"  # only this process listens: nobody holds it
                async with asyncio.timeout(broker.options.timeout):
                    reply = await claim.reply
                if reply.op == "retry":
                    assert isinstance(reply.data, str)
                    for group in json.loads(reply.data):
                        if f"g.{group}" not in broker.channels:
                            await broker.subscribe(f"g.{group}")
                            extra.add(group)
                    continue
                if reply.op == "refuse":
                    return "identity" if reply.data == "identity" else "unknown"
                assert isinstance(reply.data, bytes)
                await self._install(claim, reply.data, identity, handshake)
                installed = True
                return None
            return "unknown"
        except (BrokerError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            logger.warning("socket %s: taking its session over failed: %s", socket_id, exc)
            return "unknown"
        finally:
            claim.done.set()
            self.claims.pop(socket_id, None)
            del self._by_ref[claim.ref]
            for group in extra:
                await broker.unsubscribe(f"g.{group}")
            if not installed:
                await broker.unsubscribe(channel)
                for envelope in claim.buffer:
                    if envelope.ref and envelope.op in ("join", "leave"):
                        await server._confirm(envelope, held=False)
            for envelope in claim.queued:
                server._spawn(self.on_takeover(envelope))

    async def _install(
        self, claim: Claim, payload: bytes, identity: Any, handshake: Handshake | None
    ) -> None:
        """Make the session from the holder's state plus what was captured; it is then held here.

        Without a handshake (a push) the socket is the holder's, from the state, and stays away.
        """
        from ._sessions import Session

        server = self.server
        broker = server.broker
        assert broker is not None
        header, entries = decode_state(payload)
        if handshake is None:
            shaken = header["hs"]
            address = shaken["ra"]
            socket = Socket(
                id=claim.id,
                transport=server.transport.name,
                remote_address=None if address is None else (str(address[0]), int(address[1])),
                headers=Headers((str(k), str(v)) for k, v in shaken["h"]),
                path=str(shaken["p"]),
                query={str(k): str(v) for k, v in shaken["q"].items()},
                query_string=str(shaken["qs"]),
                identity=header["idn"],
                connected_at=float(header["at"]),
                resumable=True,
                resumes=int(header["resumes"]),
            )
        else:
            socket = Socket._opening(
                claim.id,
                server.transport.name,
                handshake,
                identity,
                connected_at=float(header["at"]),
                resumable=True,
                resumes=int(header["resumes"]),
            )
        session: Session[C] = Session(socket, self.sessions.limit)
        session.adopted = handshake is None
        log = session.log = ReplayLog(self.sessions.limit)
        for entry in entries:
            log.append(entry)
        log.base = int(header["base"])
        log.out = log.base + len(entries)
        session.clock = AckClock(int(header["inn"]))
        tokens = header["tok"]
        session.token = bytes.fromhex(tokens[0])
        session.prev = bytes.fromhex(tokens[1]) if len(tokens) > 1 else None
        seen: dict[str, int] = header["V"]
        membership: set[str] = set(header["grp"])
        confirms: list[Envelope] = []
        ended: Envelope | None = None
        overflowed = False
        # In arrival order, only what the holder had not applied (a stamp above the holder's).
        # Nothing awaits from here to the end of the installation: every envelope is applied or captured.
        while claim.buffer:
            envelope = claim.buffer.popleft()
            if envelope.seq and envelope.seq <= seen.get(envelope.origin, 0):
                continue
            op, data = envelope.op, envelope.data
            if op == "broadcast":
                if (
                    data is None
                    or claim.id in envelope.exclude
                    or (envelope.group is not None and envelope.group not in membership)
                ):
                    continue
                overflowed |= log.append(Entry(data, message_size(data)))
            elif op == "send" and data is not None:
                overflowed |= log.append(Entry(data, message_size(data)))
            elif op == "join" and envelope.group is not None:
                membership.add(envelope.group)
            elif op == "leave" and envelope.group is not None:
                membership.discard(envelope.group)
            elif op == "disconnect":  # pragma: no branch  # only socket operations are captured
                ended = ended or envelope
            if envelope.ref:
                confirms.append(envelope)
        socket_id = claim.id
        del self.claims[socket_id]  # what arrives from now on is applied to the session directly
        self.sessions.sessions[socket_id] = session
        server._sockets[socket_id] = socket
        if membership:
            server._memberships[socket_id] = set(membership)
            for group in membership:
                server._groups.setdefault(group, set()).add(socket_id)
        ttl = header.get("ttl")
        if ttl is None and handshake is None:
            ttl = self.sessions.window  # it was still connected when its holder froze it
        if ttl:
            socket.away_since = time.time()
            session.deadline = asyncio.get_running_loop().time() + float(ttl)
            self.sessions._expire_at(session.deadline, "s", socket_id)
        for flight in self.flights:
            flight.installed.append(socket_id)
        server.stats.moved_in += 1
        broker.count_changed()
        for group in membership:
            # This holder's own reference; confirmed before the joins are, so a group broadcast made
            # next from anywhere arrives.
            await broker.subscribe(f"g.{group}")
        for envelope in confirms:
            await server._confirm(envelope, held=True)
        if overflowed:
            await self.sessions.end(session, CloseReason.SESSION_LOST)
        elif ended is not None:
            await server._act(ended)

    # -- The holder ---------------------------------------------------------------

    async def on_takeover(self, envelope: Envelope) -> None:
        """Another process claims a session: refuse, ask it to retry, or freeze and hand the state over."""
        server = self.server
        broker = server.broker
        assert broker is not None
        socket_id = envelope.socket
        session = self.sessions.sessions.get(socket_id)
        if session is None:
            claim = self.claims.get(socket_id)
            if claim is not None:
                claim.queued.append(envelope)
            return  # not held here (any more): its holder answers
        try:
            body = json.loads(envelope.data) if isinstance(envelope.data, str) else None
            tok = bytes.fromhex(body.get("tok", "")) if isinstance(body, dict) else b""
        except (ValueError, KeyError, TypeError):
            body, tok = None, b""
        adopt = body.get("adopt") if isinstance(body, dict) else None
        if adopt is not None:
            # A peer takes what this closing process offered it: the offer stands for the token.
            if self.offered.get(socket_id) != (envelope.origin, adopt) or session.doomed:
                await self._answer(envelope, "refuse", "unknown")
                return
        elif not isinstance(body, dict) or not session.accepts_digest(tok) or session.doomed:
            await self._answer(envelope, "refuse", "unknown")
            return
        else:
            digest = identity_digest(session.socket.identity)
            if digest is None or not hmac.compare_digest(digest, str(body.get("idd", ""))):
                await self._answer(envelope, "refuse", "identity")
                return
        assert isinstance(body, dict)
        groups = server._memberships.get(socket_id, set())
        if not groups <= set(body.get("grp", ())):
            await self._answer(envelope, "retry", json.dumps(sorted(groups)))
            return
        await self._freeze(session, envelope, adopt is not None)

    async def _answer(self, envelope: Envelope, op: str, data: str | bytes) -> bool:
        broker = self.server.broker
        assert broker is not None
        answer = Envelope(op, self.server.node, envelope.socket, data=data, ref=envelope.ref)
        try:
            return await broker.publish(f"n.{envelope.origin}", encode_envelope(answer)) > 0
        except BrokerError as exc:
            logger.warning("socket %s: answering a takeover failed: %s", envelope.socket, exc)
            return False

    async def _freeze(self, session: Session[C], envelope: Envelope, pushed: bool) -> None:
        server = self.server
        broker = server.broker
        assert broker is not None
        socket = session.socket
        socket_id = socket.id
        link = session.link
        connected = link is not None
        reason = CloseReason.TRANSPORT_ERROR
        if link is not None:
            # Its connection is dropped now: nothing more it sends is handled here.
            link.dead = link.closing = True  # a running replay stops at its next entry
            session.link = None
            conn = server._conns.pop(socket_id, None)
            closing = server._closing.pop(socket_id, None)
            if closing is not None:
                conn, reason = closing[1], closing[2]
            assert conn is not None
            server._abort(conn)
            server._check_idle()
        # A running handler finishes here first, so handling stays in order across processes.
        loop = asyncio.get_running_loop()
        if server._handling(socket_id):
            session.handled = asyncio.Event()
            try:
                async with asyncio.timeout(broker.options.timeout / 2):
                    await session.handled.wait()
            except TimeoutError:
                logger.warning("socket %s: moving on while its message handler still runs", socket_id)
            session.handled = None
        if self.sessions.sessions.get(socket_id) is not session:
            await self._answer(envelope, "refuse", "unknown")  # it ended meanwhile
            return
        # From here to the publish nothing awaits: the stamps say exactly what the log holds.
        sessions = self.sessions
        seen = dict(sessions.heard)
        seen[server.node] = sessions.stamped
        for flight in self.flights:
            flight.frozen.append(socket_id)
        log = session.log
        entries = log.since(log.base)
        assert entries is not None
        ttl = None if session.deadline is None else max(session.deadline - loop.time(), 0.001)
        tokens = [session.token.hex()] + ([] if session.prev is None else [session.prev.hex()])
        header = {
            "id": socket_id,
            "tok": tokens,
            "grp": sorted(server._memberships.get(socket_id, ())),
            "inn": session.clock.count,
            "base": log.base,
            "resumes": socket.resumes,
            "at": socket.connected_at,
            "ttl": ttl,
            "V": seen,
        }
        if pushed:
            # Nobody's handshake makes the socket there: it is this one, until its client resumes.
            header["idn"] = socket.identity
            header["hs"] = {
                "ra": socket.remote_address,
                "h": [list(pair) for pair in socket.headers._items],
                "p": socket.path,
                "q": dict(socket.query),
                "qs": socket.query_string,
            }
        payload = encode_state(header, list(entries))
        del sessions.sessions[socket_id]
        del server._sockets[socket_id]
        sessions._dirty.discard(session)
        server._forget(socket_id)  # leaves its groups here and unsubscribes, publishing nothing
        try:
            await self._shipped(socket, envelope, payload, connected, reason)
        finally:
            self.left(socket_id)  # a push waits until its state is out and its events fired

    async def _shipped(
        self, socket: Socket, envelope: Envelope, payload: bytes, connected: bool, reason: CloseReason
    ) -> None:
        server = self.server
        socket_id = socket.id
        sent = await self._answer(envelope, "state", payload)
        if connected:
            socket.away_since = time.time()
            await server._emitter.emit("away", socket, reason)
        if sent:
            server.stats.moved_out += 1
            await server._emitter.emit("moved", socket)
            return
        # Frozen for good, and nobody will install it: it ends here, once.
        logger.warning("socket %s: its state reached no process; its session is lost", socket_id)
        server.stats.disconnects += 1
        await server._emitter.emit("disconnect", socket, CloseReason.SESSION_LOST)

    # -- Push at shutdown -----------------------------------------------------------

    async def push(self) -> None:
        """Hand every session held here to the live peers (round-robin), for at most ``broker.timeout``.

        The server is closing and has withdrawn from the broker's nodes. Each
        peer takes what it is offered over as a takeover; sessions not taken
        in time stay here (they end with ``shutdown``).
        """
        server = self.server
        broker = server.broker
        assert broker is not None
        portable = [
            session
            for session in self.sessions.sessions.values()
            if identity_digest(session.socket.identity) is not None
        ]
        if not portable:
            return
        try:
            peers = sorted(node for node in await broker.nodes() if node != server.node)
        except BrokerError as exc:
            logger.warning("cannot hand sessions over at shutdown: %s", exc)
            return
        if not peers:
            logger.info("no live peer to hand %d sessions to; they end with shutdown", len(portable))
            return
        offers: dict[str, list[list[Any]]] = {}
        for index, session in enumerate(portable):
            socket_id = session.socket.id
            groups = sorted(server._memberships.get(socket_id, ()))
            offers.setdefault(peers[index % len(peers)], []).append([socket_id, groups])
        done = self._pushed = asyncio.Event()
        try:
            async with asyncio.timeout(broker.options.timeout):
                for node, items in offers.items():
                    for start in range(0, len(items), BATCH):
                        batch = items[start : start + BATCH]
                        ref = secrets.token_urlsafe(9)
                        for socket_id, _groups in batch:
                            self.offered[socket_id] = (node, ref)
                        data = json.dumps(batch, separators=(",", ":"))
                        adopt = Envelope("adopt", server.node, "", data=data, ref=ref)
                        if not await broker.publish(f"n.{node}", encode_envelope(adopt)):
                            for socket_id, _groups in batch:
                                self.left(socket_id)
                if self.offered:
                    await done.wait()
        except (BrokerError, TimeoutError) as exc:
            logger.warning(
                "%d sessions were not handed over at shutdown: %s", len(self.offered), exc or "timeout"
            )
        finally:
            self.offered.clear()
            self._pushed = None

    def left(self, socket_id: str) -> None:
        """A session left this process (moved or ended): no longer waited for by a push."""
        if self.offered.pop(socket_id, None) is not None and not self.offered and self._pushed is not None:
            self._pushed.set()
