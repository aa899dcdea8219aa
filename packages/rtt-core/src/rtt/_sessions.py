"""The server's resume layer: sessions that outlive their connections (SPEC.md 17.3).

A :class:`Session` is what the application calls a socket; a :class:`Link` is
one transport connection carrying it. The server holds a :class:`Sessions`
as ``self._resume`` when ``resume_window`` is set, and ``None`` otherwise, so
a server without resume runs none of this.

The plugin keeps the socket ``_opened`` returned for a connection, the *wire
socket*: a copy of the session's socket whose ``_link`` names the connection.
Reports about a connection the layer has already detached (late, or
repeated) therefore find a dead link and are ignored, and never touch the
session's new connection. Everything per message is counted here: the replay
log (what the client has not acknowledged), the in-count, and the acks, which
one server-wide ticker sends. One timer, set for the earliest deadline, ends
the away sessions whose window passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import heapq
import hmac
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .codec import message_size
from .errors import ConnectionClosed
from .events import Close, CloseReason
from .resume import (
    ACK_DELAY,
    Control,
    Entry,
    ReplayLog,
    ResumeProtocolError,
    ResumeRequest,
    Welcome,
    ack_text,
    classify,
    escape,
    identity_digest,
)
from .server import _ABORT, _DROPS, ServerState, Socket, new_socket_id

if TYPE_CHECKING:
    from ._handoff import Handoff
    from .handshake import Handshake
    from .server import Server

__all__ = ["RESUMES", "Link", "Session", "Sessions"]

logger = logging.getLogger("rtt.server")

C = TypeVar("C")

#: Connection ends that leave the session away (SPEC.md 17.3): those a client
#: reconnects after, except ``message too big`` and ``protocol error``, which
#: a replay would repeat.
RESUMES = frozenset(
    {
        CloseReason.SHUTDOWN,
        CloseReason.PING_TIMEOUT,
        CloseReason.SLOW_CONSUMER,
        CloseReason.TRANSPORT_ERROR,
    }
)

#: Closes the application chose, which a client coming back still gets.
_KICKS = frozenset({CloseReason.SERVER_CLOSED, CloseReason.APPLICATION})

#: How long the replay waits for a connection's unsent data to drain below ``outbound_limit``.
_REPLAY_PAUSE = 0.01


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an identity whose == raises is not the same identity
        return False


class Session(Generic[C]):
    """One resumable socket: its log, its counts, its credentials and its current link."""

    __slots__ = (
        "adopted",
        "clock",
        "deadline",
        "doomed",
        "handled",
        "link",
        "log",
        "nonce",
        "prev",
        "socket",
        "token",
    )

    def __init__(self, socket: Socket, limit: int) -> None:
        from .resume import AckClock

        self.socket = socket
        self.log = ReplayLog(limit)
        # Its count is the session's in-count: messages passed to the handlers.
        self.clock = AckClock()
        self.token = b""
        """SHA-256 of the current resume token."""
        self.prev: bytes | None = None
        """SHA-256 of the token the client last resumed with, valid until its hello."""
        self.nonce = ""
        self.link: Link[C] | None = None
        self.deadline: float | None = None
        """When an away session ends (loop time)."""
        # Its log overflowed while connected: the connection's end ends the session.
        self.doomed = False
        # Set by a handoff waiting for the running message handler to return (SPEC.md 17.5).
        self.handled: asyncio.Event | None = None
        # Pushed here by a closing process: its identity is the JSON form it travelled in.
        self.adopted = False

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is the current one, or the previous one not yet replaced by a hello."""
        return self.accepts_digest(_digest(token))

    def accepts_digest(self, digest: bytes) -> bool:
        """:meth:`accepts` for a token's SHA-256 (as a takeover from another process carries it)."""
        ok = hmac.compare_digest(digest, self.token)
        if self.prev is not None:
            ok |= hmac.compare_digest(digest, self.prev)
        return ok


class Link(Generic[C]):
    """One connection of a session, and the wire socket the plugin holds for it."""

    __slots__ = ("closing", "conn", "dead", "hello", "replay", "reported", "session", "wire", "written")

    def __init__(self, conn: C, session: Session[C] | None, wire: Socket) -> None:
        self.conn = conn
        self.session = session
        self.wire = wire
        self.hello = False
        """The client has switched to resume framing."""
        self.written = 0
        """The count of the next log entry to write on this connection."""
        self.replay: asyncio.Task[None] | None = None
        self.reported = asyncio.Event()
        """Set when the plugin reports the connection closed."""
        # Nothing more is delivered from it (the server is closing it).
        self.closing = False
        # Detached: nothing it reports counts any more.
        self.dead = session is None


class _Tomb:
    """A session the application ended while its client may still come back."""

    __slots__ = ("close", "deadline", "tokens")

    def __init__(self, tokens: tuple[bytes, ...], close: Close, deadline: float) -> None:
        self.tokens = tokens
        self.close = close
        self.deadline = deadline

    def accepts(self, token: str) -> bool:
        digest = _digest(token)
        return any(hmac.compare_digest(digest, t) for t in self.tokens)


class Sessions(Generic[C]):
    """The resume layer of one server (design 3.1): sessions by id, tombstones, acks, expiry."""

    def __init__(self, server: Server[C]) -> None:
        self.server = server
        window = server.options.resume_window
        assert window is not None
        self.window = float(window)
        self.limit = server.options.resume_buffer
        self.sessions: dict[str, Session[C]] = {}
        self.tombs: dict[str, _Tomb] = {}
        # Sessions with messages handled but not acknowledged; one ticker serves them all.
        self._dirty: set[Session[C]] = set()
        self._ticker: asyncio.TimerHandle | None = None
        # (deadline, sequence, kind, id): away sessions ("s") and tombstones ("t"), one timer.
        self._deadlines: list[tuple[float, int, str, str]] = []
        self._sequence = 0
        self._timer: asyncio.TimerHandle | None = None
        # Broker envelope stamps (SPEC.md 17.5): this process's last one, and the last one
        # received from each other process, which together say what a handoff's state already holds.
        self.stamped = 0
        self.heard: dict[str, int] = {}
        self.handoff: Handoff[C] | None = None
        """Moving sessions between processes (SPEC.md 17.5): only with a broker."""
        if server.options.broker is not None:
            from ._handoff import Handoff  # it imports this module

            self.handoff = Handoff(self)

    @property
    def pushing(self) -> bool:
        """Whether this closing server hands its sessions to its peers (SPEC.md 17.5)."""
        return self.handoff is not None and self.handoff.pushing

    def stamp(self) -> int:
        """The next stamp for a socket operation this process publishes (call right before publishing)."""
        self.stamped += 1
        return self.stamped

    # -- Opening a connection -------------------------------------------------

    async def open(self, conn: C, handshake: Handshake, identity: Any) -> Socket:
        """Start or resume the session a resume handshake asks for; returns the wire socket."""
        assert handshake._resume is not None
        request = ResumeRequest.parse(handshake._resume)
        if request.kind == "new":
            return await self._start(conn, handshake, identity, None)
        why: Any = "unknown"
        if request.kind == "resume":
            assert request.id is not None and request.token is not None and request.received is not None
            tomb = self.tombs.get(request.id)
            if tomb is not None and tomb.accepts(request.token):
                return self._refuse(conn, handshake, request.id, tomb.close)
            session = self.sessions.get(request.id)
            if session is None and self.handoff is not None:
                claimed = await self.handoff.claim(request, identity, handshake)
                if claimed is None:
                    return await self.open(conn, handshake, identity)  # held here now
                if claimed == "down":
                    # The session stays with its holder; the client retries with backoff.
                    return self._refuse(conn, handshake, request.id, Close.of(CloseReason.SHUTDOWN))
                why = claimed
            elif session is not None and session.accepts(request.token):
                if not _same(identity, session.socket.identity) and not (
                    session.adopted and identity_digest(identity) == identity_digest(session.socket.identity)
                ):
                    why = "identity"
                elif session.link is not None:
                    # Its old connection is still attached (the server has not noticed the drop):
                    # detach it, let a running handler finish, then decide again.
                    await self._detach(session)
                    return await self.open(conn, handshake, identity)
                elif not session.log.base <= request.received <= session.log.out:
                    # The client lacks messages the log no longer has: it cannot resume, ever.
                    await self.end(session, CloseReason.SESSION_LOST)
                else:
                    return await self._resume(conn, handshake, session, request.token, request.received)
        self.server.stats.resume_failures += 1
        return await self._start(conn, handshake, identity, why)

    def _wire(self, socket: Socket, link: Link[C]) -> Socket:
        # A copy of the session's socket (attached, so not away) that carries this connection.
        return dataclasses.replace(socket, away_since=None, resumable=True, _link=link)

    def _attach(self, session: Session[C], conn: C) -> Link[C]:
        server = self.server
        socket = session.socket
        link: Link[C] = Link(conn, session, socket)
        link.wire = self._wire(socket, link)
        session.link = link
        session.nonce = secrets.token_urlsafe(8)
        server._conns[socket.id] = conn
        server._idle.clear()
        server.stats.connections += 1
        return link

    async def _welcome(self, link: Link[C], welcome: Welcome) -> None:
        with contextlib.suppress(ConnectionClosed):  # its _closed report is on its way
            await self.server._send(link.conn, welcome.to_text())

    async def _start(self, conn: C, handshake: Handshake, identity: Any, why: Any) -> Socket:
        server = self.server
        if server._state is not ServerState.RUNNING:
            # Shutdown began while the old connection of the session it asked for was detached.
            return self._refuse(conn, handshake, new_socket_id(), Close.of(CloseReason.SHUTDOWN))
        socket = Socket._opening(new_socket_id(), server.transport.name, handshake, identity, resumable=True)
        session: Session[C] = Session(socket, self.limit)
        token = secrets.token_urlsafe(16)
        session.token = _digest(token)
        self.sessions[socket.id] = session
        server._sockets[socket.id] = socket
        link = self._attach(session, conn)
        status: Any = "new" if why is None else "lost"
        # The welcome goes first, before any await: a broadcast delivered meanwhile (during the
        # subscribe below) would otherwise reach the client ahead of it, which then cannot resume.
        await self._welcome(link, Welcome(status, socket.id, token, session.nonce, self.window, why=why))
        if server.broker is not None:
            # Confirmed before ``connect``, so the id the app hands out is reachable from anywhere.
            await server.broker.subscribe(f"s.{socket.id}")
            server.broker.count_changed()
        await server._emitter.emit("connect", socket)
        return link.wire

    async def _resume(
        self, conn: C, handshake: Handshake, session: Session[C], token: str, received: int
    ) -> Socket:
        server = self.server
        socket = session.socket
        log = session.log
        log.ack(received)
        fresh = secrets.token_urlsafe(16)
        session.prev = _digest(token)  # what the client holds until its hello confirms the new one
        session.token = _digest(fresh)
        socket.remote_address = handshake.remote_address
        socket.headers = handshake.headers
        socket.path = handshake.path
        socket.query = handshake.query
        socket.query_string = handshake.query_string
        socket.away_since = None
        session.deadline = None
        socket.resumes += 1
        link = self._attach(session, conn)
        link.written = received
        server.stats.resumes += 1
        # The welcome's ``r`` acknowledges everything handled so far.
        self._dirty.discard(session)
        handled = session.clock.take()
        await self._welcome(
            link,
            Welcome(
                "resumed", socket.id, fresh, session.nonce, self.window, handled=handled, received=received
            ),
        )
        logger.debug("socket %s resumed (%d to replay)", socket.id, log.out - received)
        await server._emitter.emit("back", socket)
        self._pace(link)
        return link.wire

    def _refuse(self, conn: C, handshake: Handshake, socket_id: str, close: Close) -> Socket:
        """Close a connection with ``close`` and no socket or event at all.

        For a resume of a session the application ended (its stored close), or
        one that arrives as the server shuts down.
        """
        server = self.server
        wire = Socket._opening(socket_id, server.transport.name, handshake)
        wire._link = Link(conn, None, wire)  # dead from the start: its reports are ignored
        server._spawn(server._close(conn, close))
        return wire

    async def _detach(self, session: Session[C]) -> None:
        """Drop a session's connection because its client came back; wait for its report."""
        link = session.link
        assert link is not None
        if not link.closing:
            self.begin_close(session, CloseReason.TRANSPORT_ERROR, abort=True)
        try:
            async with asyncio.timeout(self.server.options.close_timeout):
                await link.reported.wait()
        except TimeoutError:
            logger.warning("socket %s: its old connection was not reported closed in time", link.wire.id)
            await self.closed(link, CloseReason.TRANSPORT_ERROR)

    # -- Closing ----------------------------------------------------------------

    def keep(self, socket_id: str, reason: CloseReason) -> bool:
        """For ``Server._begin_close``: whether the session layer takes this close (keeping the session)."""
        session = self.sessions.get(socket_id)
        if session is None:
            return False
        link = session.link
        if link is None or link.closing:
            return True  # away, or already closing: nothing to begin
        if reason not in RESUMES or session.doomed:
            return False
        self.begin_close(session, reason, abort=reason in _ABORT)
        return True

    def begin_close(self, session: Session[C], reason: CloseReason, *, abort: bool) -> None:
        """Close a session's connection for a reason that resumes; the session stays in ``sockets``."""
        server = self.server
        link = session.link
        assert link is not None
        socket_id = session.socket.id
        link.closing = True
        conn = server._conns.pop(socket_id)
        server._closing[socket_id] = (session.socket, conn, reason)
        if abort:
            server._abort(conn)
        else:
            server._spawn(server._close(conn, Close.of(reason)))

    def ending(self, socket_id: str, reason: CloseReason, close: Close | None) -> None:
        """For ``Server._begin_close``: a session's connection closes for a reason that ends it."""
        session = self.sessions.pop(socket_id, None)
        if session is None:
            return
        assert session.link is not None  # keep() takes every close of an away session
        session.link.closing = True
        if reason in _KICKS:
            self._bury(session, close or Close.of(reason))

    async def closed(self, link: Link[C], reason: CloseReason) -> None:
        """The plugin reports a connection ended: the session goes away, or ends."""
        link.reported.set()
        if link.dead:
            return  # detached, or reported before
        link.dead = True
        session = link.session
        assert session is not None
        if link.replay is not None:
            link.replay.cancel()
        server = self.server
        socket = session.socket
        closing = server._closing.get(socket.id)
        if closing is not None and closing[1] is link.conn:
            reason = closing[2]  # the reason the server chose wins
        resumes = reason in RESUMES and not session.doomed and self.sessions.get(socket.id) is session
        if resumes and server._state is not ServerState.RUNNING and not self.pushing:
            resumes = False
            reason = CloseReason.SHUTDOWN  # it would have gone away, but every session ends now
        if resumes:
            server._closing.pop(socket.id, None)
            server._conns.pop(socket.id, None)
            session.link = None
            socket.away_since = time.time()
            session.deadline = asyncio.get_running_loop().time() + self.window
            self._expire_at(session.deadline, "s", socket.id)
            if reason in _DROPS:
                server.stats.drops += 1
            server._check_idle()
            logger.debug("socket %s away: %s", socket.id, reason)
            await server._emitter.emit("away", socket, reason)
            return
        session.link = None  # a link replaced by another is dead: it never gets here
        await server._finish(socket, reason)

    async def end(self, session: Session[C], reason: CloseReason) -> None:
        """End a session that is away (or whose connection is closing) now, with ``reason``."""
        link = session.link
        if link is not None:
            link.dead = True
            link.closing = True
        await self.server._finish(session.socket, reason)

    async def disconnect(self, session: Session[C], close: Close | None) -> None:
        """``Server.disconnect`` of a session that is away or closing: end it, keep a tombstone."""
        close = close or Close.of(CloseReason.SERVER_CLOSED)
        self._bury(session, close)
        await self.end(session, close.reason)

    def forget(self, socket_id: str) -> None:
        """For ``Server._finish``: the session has ended."""
        session = self.sessions.pop(socket_id, None)
        if session is not None:
            if session.link is not None:
                session.link.closing = True
            self._dirty.discard(session)
            if self.handoff is not None:
                self.handoff.left(socket_id)

    def _bury(self, session: Session[C], close: Close) -> None:
        tokens = (session.token,) if session.prev is None else (session.token, session.prev)
        deadline = asyncio.get_running_loop().time() + self.window
        socket_id = session.socket.id
        self.tombs[socket_id] = _Tomb(tokens, close, deadline)
        self._expire_at(deadline, "t", socket_id)

    async def shutdown(self) -> None:
        """Hand the sessions to live peers if pushing; end every one left with ``shutdown``."""
        if self.handoff is not None and self.handoff.pushing:
            await self.handoff.push()
        for handle in (self._ticker, self._timer):
            if handle is not None:
                handle.cancel()
        self._ticker = self._timer = None
        self.tombs.clear()
        for session in list(self.sessions.values()):
            await self.end(session, CloseReason.SHUTDOWN)

    # -- Expiry ------------------------------------------------------------------

    def _expire_at(self, deadline: float, kind: str, socket_id: str) -> None:
        self._sequence += 1
        heapq.heappush(self._deadlines, (deadline, self._sequence, kind, socket_id))
        # Every deadline is now + window, so a new one is never earlier than the timer's.
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, _, kind, socket_id = heapq.heappop(deadlines)
            if kind == "t":
                self.tombs.pop(socket_id, None)  # a session is buried once
                continue
            session = self.sessions.get(socket_id)
            # A session that came back (and maybe went away again since) has another deadline.
            if session is not None and session.link is None and session.deadline == deadline:
                logger.debug("socket %s: resume window passed", socket_id)
                self.server._spawn(self.end(session, CloseReason.SESSION_LOST))
        if deadlines:
            self._timer = loop.call_at(deadlines[0][0], self._expire)

    # -- Messages from the client --------------------------------------------------

    def received(self, link: Link[C], data: str | bytes) -> str | bytes | None:
        """A message from a session's connection: the data for the handlers, or ``None`` (a control, dropped).

        Not a coroutine, and the handlers are run by ``Server._received`` itself:
        one echo is two messages, and a coroutine frame per message is a
        measurable share of what resume costs a round trip (benchmarks/README.md).
        """
        if link.dead or link.closing:
            return None  # detached, or the server is closing it: nothing more is delivered
        session = link.session
        assert session is not None
        if type(data) is str and data.startswith("\x00"):
            if link.hello:
                try:
                    message = classify(data)
                except ResumeProtocolError as exc:
                    self._violation(session, str(exc))
                    return None
                if isinstance(message, Control):
                    self._control(link, session, message)
                    return None
                data = message.data
            elif data.startswith("\x00H"):
                # Before the hello the client's messages are raw: only the hello itself is a control.
                try:
                    message = classify(data)
                except ResumeProtocolError:
                    pass  # raw text that merely starts like a hello
                else:
                    assert type(message) is Control
                    if message.payload != session.nonce:
                        self._violation(session, "hello with a wrong nonce")
                    else:
                        link.hello = True
                        session.prev = None  # the client has the new token
                    return None
        server = self.server
        size = message_size(data)
        stats = server.stats
        stats.messages_in += 1
        stats.bytes_in += size
        if size > server.options.max_message_size:
            server._begin_close(session.socket.id, CloseReason.MESSAGE_TOO_BIG)
            return None
        # Counted before the handlers run: a message whose handler is running counts as handled.
        clock = session.clock
        if clock.received(size, time.monotonic()):
            self._dirty.discard(session)
            server._spawn(self._send_ack(link, clock.take()))
        else:
            self._dirty.add(session)
            if self._ticker is None:
                self._ticker = asyncio.get_running_loop().call_later(ACK_DELAY, self._tick)
        return data

    def _control(self, link: Link[C], session: Session[C], message: Control) -> None:
        if message.letter != "A":
            self._violation(session, f"unexpected {message.letter!r} control from a client")
            return
        count = message.count
        if count > link.written:
            # Stricter than the log's own check (above ``out``): the client cannot have received
            # what is still waiting for the replay.
            self._violation(session, f"ack {count} is above the {link.written} messages sent")
            return
        session.log.ack(count)

    def _violation(self, session: Session[C], problem: str) -> None:
        logger.warning("closing socket %s: protocol error: %s", session.socket.id, problem)
        self.server._begin_close(session.socket.id, CloseReason.PROTOCOL_ERROR)

    # -- Acknowledgements ----------------------------------------------------------

    async def _send_ack(self, link: Link[C], count: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.server._send(link.conn, ack_text(count))

    def _tick(self) -> None:
        self._ticker = None
        now = time.monotonic()
        due: list[tuple[Link[C], int]] = []
        for session in list(self._dirty):
            link = session.link
            clock = session.clock
            if link is None or link.closing:
                self._dirty.discard(session)  # the next welcome's ``r`` acknowledges them
            elif clock.expired(now):
                self._dirty.discard(session)
                due.append((link, clock.take()))
        if due:
            self.server._spawn(self._send_acks(due))
        if self._dirty:
            self._ticker = asyncio.get_running_loop().call_later(ACK_DELAY, self._tick)

    async def _send_acks(self, due: list[tuple[Link[C], int]]) -> None:
        for link, count in due:
            await self._send_ack(link, count)

    # -- Messages to the client ----------------------------------------------------

    async def send(self, session: Session[C], data: str | bytes, size: int) -> None:
        """``Server.send`` to a resumable socket: into its log, and onto its connection if caught up."""
        server = self.server
        stats = server.stats
        stats.messages_out += 1
        stats.bytes_out += size
        log = session.log
        link = session.link
        caught_up = link is not None and not link.closing and link.written == log.out
        if log.append(Entry(data, size)):
            await self._overflow(session)
            return
        if not caught_up:
            return  # away, closing or replaying: the log has it
        assert link is not None
        link.written += 1
        conn = link.conn
        try:
            await server._send(conn, escape(data))
        except ConnectionClosed:
            return  # the log has it, for the client's resume
        if not server._reports_slow_consumers and server._buffered(conn) > server.options.outbound_limit:
            server._slow_consumer(session.socket.id)

    async def deliver(self, data: str | bytes, size: int, skip: set[str], group: str | None) -> int:
        """``Server._deliver`` while sessions exist: logs every resumable target, away ones too."""
        server = self.server
        if group is None:
            ids: Any = [sid for sid in server._sockets if sid not in skip] if skip else list(server._sockets)
        else:
            ids = [sid for sid in server._groups.get(group, ()) if sid not in skip]
        if not ids:
            return 0
        sessions = self.sessions
        conns = server._conns
        entry = Entry(data, size)
        # Connections written to now, in one call per form of the data (a resume connection gets a
        # text that starts with U+0000 escaped); a bare list each, as ``Server._deliver`` passes.
        # The ids of those written to, in step with the lists: only they are polled for slow consumers
        # (a log being replayed keeps its own connection within the limit).
        escaping = type(data) is str and data.startswith("\x00")
        plain: list[C] = []
        plain_ids: list[str] = []
        linked, linked_ids = ([], []) if escaping else (plain, plain_ids)
        overflowed: list[Session[C]] = []
        for sid in ids:
            session = sessions.get(sid)
            if session is None:
                plain.append(conns[sid])
                plain_ids.append(sid)
                continue
            log = session.log
            link = session.link
            caught_up = link is not None and not link.closing and link.written == log.out
            if log.append(entry):
                overflowed.append(session)
            elif caught_up:
                assert link is not None
                link.written += 1
                linked.append(link.conn)
                linked_ids.append(sid)
        if plain:
            await server._broadcast(plain, data)
        if escaping and linked:
            await server._broadcast(linked, escape(data))
        count = len(ids)
        stats = server.stats
        stats.messages_out += count
        stats.bytes_out += size * count
        if not server._reports_slow_consumers:
            limit = server.options.outbound_limit
            if escaping:
                plain_ids, plain = plain_ids + linked_ids, plain + linked
            for sid, conn in zip(plain_ids, plain, strict=True):
                if server._buffered(conn) > limit:
                    server._slow_consumer(sid)
        for session in overflowed:
            await self._overflow(session)
        return count

    async def _overflow(self, session: Session[C]) -> None:
        """A log passed ``resume_buffer``: the session can no longer be resumed, so it ends."""
        socket_id = session.socket.id
        logger.warning("socket %s: replay log passed resume_buffer; ending its session", socket_id)
        link = session.link
        if link is None or link.closing:
            await self.end(session, CloseReason.SESSION_LOST)
        else:
            session.doomed = True
            self.server._begin_close(socket_id, CloseReason.SLOW_CONSUMER)

    def _pace(self, link: Link[C]) -> None:
        session = link.session
        assert session is not None
        if link.written < session.log.out:
            link.replay = self.server._spawn(self._replay(link, session))

    async def _replay(self, link: Link[C], session: Session[C]) -> None:
        """Write the log from the link's cursor, keeping unsent data within ``outbound_limit``.

        Live sends only append meanwhile (the link is not caught up), so order
        holds; a client that stops reading is caught by the ping timeout.
        """
        server = self.server
        log = session.log
        limit = server.options.outbound_limit
        conn = link.conn
        # A connection that ends meanwhile raises ConnectionClosed; its _closed report is on its way.
        with contextlib.suppress(ConnectionClosed):
            while not link.closing and link.written < log.out:
                # Acks never pass what was written (see _control), so the cursor is within the log.
                entries = log.since(link.written)
                assert entries is not None
                for entry in entries:
                    buffered = server._buffered(conn)
                    if buffered and buffered + entry.size > limit:
                        await asyncio.sleep(_REPLAY_PAUSE)
                        break
                    link.written += 1
                    await server._send(conn, escape(entry.data))
        link.replay = None
