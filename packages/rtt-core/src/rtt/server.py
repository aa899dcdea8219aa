"""The server half of the contract (SPEC.md section 3).

:class:`Server` is a template: its public methods hold every invariant (state,
limits, counters, logging, errors, the order of events) and call a few small
hooks that a plugin implements. A plugin never fires events itself; it reports
what its library saw through the ``_admit`` / ``_opened`` / ``_received`` /
``_closed`` calls below, so every transport behaves alike.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import logging
import secrets
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import CoroutineType, MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from ._emitter import Emitter
from .broker import Broker, BrokerState, Envelope, decode_envelope, encode_envelope
from .codec import check_message, message_size
from .errors import (
    BrokerError,
    ConnectionClosed,
    InvalidCloseError,
    OptionError,
    StateError,
    UnknownSocketError,
)
from .events import SERVER_EVENTS, Close, CloseReason, ServerEvent
from .handshake import Accept, Handshake, Headers, Reject, origin_allowed, through_proxies
from .options import ServerOptions
from .relay import Relay, RelayedRequest, RelayedResponse, fetch_unix, relayed_peer
from .resume import QUERY

if TYPE_CHECKING:
    from ._handoff import Handoff
    from ._sessions import Link, Sessions
    from .transport import Transport

__all__ = ["Server", "ServerState", "ServerStats", "Socket", "new_socket_id"]

#: Longest group name (characters); a group name is any other non-empty string.
MAX_GROUP_NAME = 256

logger = logging.getLogger("rtt.server")

C = TypeVar("C")
H = TypeVar("H", bound=Callable[..., Any])

#: Reasons that count as a drop in :attr:`ServerStats.drops`.
_DROPS = frozenset(
    {
        CloseReason.PING_TIMEOUT,
        CloseReason.MESSAGE_TOO_BIG,
        CloseReason.SLOW_CONSUMER,
        CloseReason.PROTOCOL_ERROR,
        CloseReason.TRANSPORT_ERROR,
    }
)


#: Reasons for which the server drops the connection at once: the peer is not
#: reading, so a closing handshake would only hold its buffers longer.
_ABORT = frozenset({CloseReason.PING_TIMEOUT, CloseReason.SLOW_CONSUMER})


def new_socket_id() -> str:
    """A fresh socket id: 128 random bits from :mod:`secrets`, URL-safe text."""
    return secrets.token_urlsafe(16)


class ServerState(Enum):
    """Lifecycle of a server; each state allows the operations in its row.

    ========  ======================================  ===================
    state     allowed                                 next
    ========  ======================================  ===================
    NEW       start, on, close                        RUNNING, CLOSED
    RUNNING   send, broadcast, disconnect, close, on  CLOSING
    CLOSING   on (sends raise)                        CLOSED
    CLOSED    on                                      (final)
    ========  ======================================  ===================

    A closing server that hands its resumable sessions to its peers still
    allows send, broadcast, disconnect, join and leave (SPEC.md 3.1).
    """

    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class Socket:
    """One connected client as the server sees it. Read-only for applications."""

    id: str
    """Server-made random id (128 bits); never chosen by the client."""
    transport: str
    """Name of the transport that carries it."""
    remote_address: tuple[str, int] | None
    """The client's address: the peer's, or what a trusted proxy's forwarded headers name (SPEC.md 8.5)."""
    headers: Headers
    """Handshake request headers."""
    path: str
    """Handshake request path."""
    query: Mapping[str, str]
    """Handshake query parameters (first value of each name)."""
    query_string: str
    """Raw handshake query string."""
    identity: Any = None
    """What ``authorize`` attached with :class:`~rtt.handshake.Accept`."""
    connected_at: float = field(default_factory=time.time)
    """Wall-clock time the socket was accepted."""
    away_since: float | None = None
    """Wall-clock time its last connection ended while its session waits for the client to
    resume (SPEC.md 17.3), or ``None`` while connected."""
    resumable: bool = False
    """Whether its client negotiated resume (SPEC.md 17)."""
    resumes: int = 0
    """How many times its client resumed it: a generation number for presence stores."""
    # The connection of a wire socket (the one a plugin holds for a resumable socket).
    _link: Link[Any] | None = field(default=None, repr=False)

    @property
    def away(self) -> bool:
        """Whether its connection has ended and its session waits for the client to resume."""
        return self.away_since is not None

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.transport} from {self.remote_address}>"

    @classmethod
    def _opening(
        cls, socket_id: str, transport: str, handshake: Handshake, identity: Any = None, **fields: Any
    ) -> Socket:
        """The socket of a connection that opened with ``handshake`` (its address, headers, path, query)."""
        return cls(
            id=socket_id,
            transport=transport,
            remote_address=handshake.remote_address,
            headers=handshake.headers,
            path=handshake.path,
            query=handshake.query,
            query_string=handshake.query_string,
            identity=identity,
            **fields,
        )


@dataclass(slots=True)
class ServerStats:
    """Counters since the server started. ``connections`` counts accepted sockets."""

    connections: int = 0
    rejected: int = 0
    disconnects: int = 0
    drops: int = 0
    """Sockets closed for ping timeout, size, slow consumer, protocol or transport errors."""
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    broker_published: int = 0
    """Envelopes this process published to its broker (SPEC.md 13)."""
    broker_received: int = 0
    """Envelopes this process received from its broker and acted on."""
    broker_outages: int = 0
    """Times the broker link was lost; messages other processes published meanwhile did not reach this one."""
    resumes: int = 0
    """Sessions a client resumed here (SPEC.md 17.3)."""
    resume_failures: int = 0
    """Resume requests answered ``lost``: a new session instead (SPEC.md 17.3)."""
    moved_out: int = 0
    """Sessions handed over to another process (SPEC.md 17.5)."""
    moved_in: int = 0
    """Sessions taken over from another process (SPEC.md 17.5)."""


class Server(abc.ABC, Generic[C]):
    """A transport's server: an async context manager that listens, sends and broadcasts.

    ``C`` is the plugin's own per-connection object; applications never see it.
    """

    #: A plugin whose library signals when a connection's unsent data passes
    #: ``outbound_limit`` sets this and calls :meth:`_slow_consumer` itself;
    #: otherwise the core polls :meth:`_buffered` after every send.
    _reports_slow_consumers: ClassVar[bool] = False

    def __init__(self, transport: Transport, options: ServerOptions, host: str, port: int) -> None:
        self.transport = transport
        self.options = options
        self.host = host
        self.port = port
        self.stats = ServerStats()
        self._state = ServerState.NEW
        self._emitter = Emitter(SERVER_EVENTS, logger, "server")
        self._message_handlers = self._emitter.handlers("message")
        self._sockets: dict[str, Socket] = {}
        self._conns: dict[str, C] = {}
        # Sockets whose message handlers are running (see _handling).
        self._busy: set[str] = set()
        # Sockets the server decided to close, with the reason it chose; they
        # are gone from ``sockets`` but their disconnect event is still owed.
        self._closing: dict[str, tuple[Socket, C, CloseReason]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # The loop the server started on, for _spawn: asyncio.get_running_loop() costs a getpid()
        # system call on Linux (CPython checks for a fork), and plugins spawn a task per message.
        self._loop: asyncio.AbstractEventLoop | None = None
        # Handshakes inside ``_admit`` and the tasks running their async ``authorize``
        # hooks: shutdown refuses them with 503 at once instead of waiting for the hooks.
        self._admitting = 0
        self._admitted = asyncio.Event()
        self._admitted.set()
        self._authorizing: set[asyncio.Future[Any]] = set()
        self._address: tuple[str, int] | None = None
        self._done = asyncio.Event()
        # Groups (SPEC.md 3.10): members held by this process, both ways round.
        self._groups: dict[str, set[str]] = {}
        self._memberships: dict[str, set[str]] = {}
        self.node = new_socket_id()
        """This process's id among the processes sharing a broker."""
        self.broker: Broker | None = None
        """The broker joining this server to others (SPEC.md 13), or ``None``."""
        self._relay: Relay | None = None
        # Operations handed to another process, awaiting its confirmation, by reference.
        self._acks: dict[str, _Answers] = {}
        #: A plugin that can serve relayed requests (SPEC.md 13.8) sets this to
        #: the path of a Unix socket on which its own HTTP server listens.
        self._relay_socket: str | None = None
        # The resume layer (SPEC.md 17), or None: then none of it runs.
        self._resume: Sessions[C] | None = None
        if options.resume_window is not None:
            from ._sessions import Sessions  # it imports this module

            self._resume = Sessions(self)
        if options.broker is not None:
            from .registry import load_broker  # the registry imports this module

            self.broker = load_broker(options.broker)
            assert self.broker is not None
            self.broker.add_listener(self._broker_state)

    # -- Public API ------------------------------------------------------

    @property
    def state(self) -> ServerState:
        """Where the server is in its lifecycle."""
        return self._state

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``; with ``port=0`` the port the OS picked."""
        if self._address is None:
            raise StateError(f"cannot read address in state {self._state.name}; start the server first")
        return self._address

    @property
    def url(self) -> str:
        """The URL a client of this transport connects to."""
        if self._address is None:
            raise StateError(f"cannot read url in state {self._state.name}; start the server first")
        return self._url()

    @property
    def sockets(self) -> Mapping[str, Socket]:
        """Live read-only view of connected sockets by id; with resume, away ones too (SPEC.md 17.3)."""
        return MappingProxyType(self._sockets)

    @overload
    def on(self, event: ServerEvent, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event: ServerEvent, handler: H) -> H: ...
    def on(self, event: ServerEvent, handler: H | None = None) -> H | Callable[[H], H]:
        """Register a handler: ``server.on("message", fn)`` or ``@server.on("message")``.

        ``connect(socket)``, ``message(socket, data)``, ``disconnect(socket, reason)``;
        handlers may be sync or async and run one at a time per socket, in order.
        ``broker(state)`` fires when the broker link goes down or comes back.
        With resume (SPEC.md 17.3): ``away(socket, reason)`` when a resumable
        socket's connection drops, ``back(socket)`` when its client resumes it.
        """
        return self._emitter.on(event, handler)

    def off(self, event: ServerEvent, handler: Callable[..., Any]) -> None:
        """Remove a handler."""
        self._emitter.off(event, handler)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._state is not ServerState.NEW:
            raise StateError(f"cannot start a server in state {self._state.name}")
        self._state = ServerState.RUNNING
        self._loop = asyncio.get_running_loop()
        try:
            if self.broker is not None:
                # Before listening, so no socket exists that other processes cannot reach.
                await self.broker.start(self.node, self._from_broker, self._sockets.__len__)
                await self.broker.subscribe("all")
                await self.broker.subscribe(f"n.{self.node}")
                heartbeat = self.options.ping_interval or 25.0
                timeout = heartbeat + self.options.ping_timeout + 5.0
                self._relay = Relay(
                    self.broker, self.node, self._serve_relayed, timeout, self.options.outbound_limit
                )
            self._address = await self._start()
        except BaseException:
            self._state = ServerState.CLOSED
            if self.broker is not None:
                await self.broker.close()
            self._done.set()
            raise
        logger.info("%s server listening at %s", self.transport.name, self._url())

    async def close(self) -> None:
        """Shut down: close every socket with ``shutdown``, drain, release everything.

        Handshakes still waiting for an async ``authorize`` are refused with
        503 at once (their hooks are cancelled). Waits at most
        ``close_timeout`` for sockets to close cleanly, then aborts the rest.
        Every socket still gets its ``disconnect`` event, except resumable
        sessions handed to a live peer over a broker with ``total_order``
        (SPEC.md 17.5), which get ``moved`` instead.
        """
        if self._state is ServerState.NEW:
            self._state = ServerState.CLOSED
            self._done.set()
        if self._state is not ServerState.RUNNING:
            await self._done.wait()  # another task is closing it, or it is closed
            return
        self._state = ServerState.CLOSING
        try:
            for hook in self._authorizing:
                hook.cancel()  # its handshake is answered 503 (see _decide)
            resume = self._resume
            if resume is not None and resume.handoff is not None:
                broker = self.broker
                assert broker is not None
                if broker.total_order and broker.state is BrokerState.UP:
                    # Its sessions go to live peers after the drain (SPEC.md 17.5); withdrawn first,
                    # a peer closing meanwhile does not pick this one.
                    resume.handoff.pushing = True
                    await broker.withdraw()
            await self._stop_accepting()
            for socket_id in list(self._sockets):
                self._begin_close(socket_id, CloseReason.SHUTDOWN)
            try:
                async with asyncio.timeout(self.options.close_timeout):
                    # The refusals are made before the listener goes, so their 503s are sent.
                    await self._admitted.wait()
                    await self._idle.wait()
            except TimeoutError:
                if self._admitting:
                    # An authorize hook that ignores cancellation (or a plugin stuck around it).
                    logger.warning(
                        "%d handshakes were still being admitted at close_timeout", self._admitting
                    )
                if self._closing:
                    logger.warning("%d sockets did not close in time; aborting them", len(self._closing))
                for _socket, conn, _reason in list(self._closing.values()):
                    self._abort(conn)
                for socket, _conn, reason in list(self._closing.values()):
                    if resume is not None and resume.pushing and socket.id in resume.sessions:
                        link = resume.sessions[socket.id].link
                        assert link is not None
                        await resume.closed(link, reason)  # away, to be handed over
                    else:
                        await self._finish(socket, reason)
            if self._resume is not None:
                await self._resume.shutdown()  # sessions still away end with ``shutdown``
        finally:
            if self._relay is not None:
                await self._relay.close()
            if self.broker is not None:
                await self.broker.close()
            await self._stop()
            await self._cancel_tasks()
            self._state = ServerState.CLOSED
            self._done.set()
            logger.info("%s server closed", self.transport.name)

    async def __aenter__(self) -> Server[C]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, socket_id: str, data: str | bytes) -> None:
        """Send one message to one socket.

        Raises :class:`~rtt.errors.UnknownSocketError` if no such socket is
        connected, :class:`~rtt.errors.MessageTooBigError` or
        :class:`~rtt.errors.InvalidMessageError` for bad data, and
        :class:`~rtt.errors.ConnectionClosed` if the connection ended before
        the message could be queued. A socket whose unsent data passes
        ``outbound_limit`` is closed as a slow consumer.

        With a broker, a socket held by another process is reached through
        it (returning once the holding process has it);
        :class:`~rtt.errors.BrokerError` if the broker cannot carry it.

        A resumable socket keeps the message in its replay log until its
        client acknowledges it, also while away, and never raises
        :class:`~rtt.errors.ConnectionClosed` (SPEC.md 17.3); a log past
        ``resume_buffer`` ends the session.
        """
        if self._state is not ServerState.RUNNING:
            self._require_running("send")
        size = check_message(data, self.options.max_message_size)
        resume = self._resume
        if resume is not None:
            session = resume.sessions.get(socket_id)
            if session is not None:
                await resume.send(session, data, size)  # connected or away: its log keeps it
                return
        conn = self._conns.get(socket_id)
        if conn is None:
            await self._to_holder("send", socket_id, data=data)
            return
        await self._send(conn, data)
        stats = self.stats
        stats.messages_out += 1
        stats.bytes_out += size
        if not self._reports_slow_consumers and self._buffered(conn) > self.options.outbound_limit:
            self._slow_consumer(socket_id)

    async def broadcast(
        self, data: str | bytes, exclude: str | Iterable[str] = (), *, group: str | None = None
    ) -> int:
        """Send one message to every connected socket (or every member of ``group``) except ``exclude``.

        Returns how many sockets of this process it addressed. The message is
        checked and encoded once. Connections that ended but are not yet
        reported are skipped (their ``disconnect`` is on its way); a socket
        whose unsent data passes ``outbound_limit`` is closed as a slow
        consumer instead of buffering without bound.

        With a broker, the message is published once and every other process
        delivers it to its own sockets, skipping ``exclude`` wherever they
        are held. If the broker cannot carry it, the local delivery has been
        made and :class:`~rtt.errors.BrokerError` (``local`` = the count) is raised.
        """
        self._require_running("broadcast")
        size = check_message(data, self.options.max_message_size)
        if isinstance(exclude, str):
            exclude = (exclude,)
        skip = set(exclude)
        if group is not None:
            _check_group(group)
        resume = self._resume
        if resume is not None and resume.handoff is not None:
            return await self._broadcast_moving(resume, resume.handoff, data, size, skip, group)
        count = await self._deliver(data, size, skip, group)
        if self.broker is not None:
            envelope = _envelope("broadcast", origin=self.node, group=group, exclude=tuple(skip), data=data)
            await self._publish_broadcast(envelope, group, count)
        return count

    async def _publish_broadcast(self, envelope: bytes, group: str | None, count: int) -> None:
        assert self.broker is not None
        try:
            await self.broker.publish("all" if group is None else f"g.{group}", envelope)
        except BrokerError as exc:
            raise BrokerError(f"{exc}; delivered to {count} local sockets only", local=count) from exc
        self.stats.broker_published += 1

    async def _broadcast_moving(
        self,
        resume: Sessions[C],
        handoff: Handoff[C],
        data: str | bytes,
        size: int,
        skip: set[str],
        group: str | None,
    ) -> int:
        """:meth:`broadcast` with resume and a broker: stamped; sessions may move meanwhile (SPEC.md 17.5)."""
        count = await self._deliver_moving(handoff, data, size, skip, group)
        # Stamped with no await before the publish, so stamps rise in publish order.
        stamped = Envelope(
            "broadcast", self.node, group=group, exclude=tuple(skip), data=data, seq=resume.stamp()
        )
        if handoff.claims:
            handoff.published(stamped)
        await self._publish_broadcast(encode_envelope(stamped), group, count)
        return count

    async def _deliver_moving(
        self, handoff: Handoff[C], data: str | bytes, size: int, skip: set[str], group: str | None
    ) -> int:
        """:meth:`_deliver` of this process's broadcast while sessions may move in or out (SPEC.md 17.5)."""
        from ._handoff import Flight  # it imports this module

        flight = Flight()
        handoff.flights.append(flight)
        try:
            count = await self._deliver(data, size, skip, group)
        finally:
            handoff.flights.remove(flight)
        # Sessions that left meanwhile have it: their new holder skips it.
        skip.update(flight.frozen)
        resume = handoff.sessions
        for socket_id in flight.installed:
            # Arrived meanwhile: the previous holder froze before this was published, so it is theirs here.
            session = resume.sessions.get(socket_id)
            if session is None or socket_id in skip:
                continue
            if group is None or socket_id in self._groups.get(group, ()):
                await resume.send(session, data, size)
                count += 1
        return count

    async def _deliver(self, data: str | bytes, size: int, skip: set[str], group: str | None) -> int:
        """Queue ``data`` on this process's sockets (all, or a group's members) except ``skip``."""
        resume = self._resume
        if resume is not None and resume.sessions:
            return await resume.deliver(data, size, skip, group)
        conns = self._conns
        if group is None:
            targets = {sid: c for sid, c in conns.items() if sid not in skip} if skip else conns
        else:
            members = self._groups.get(group, ())
            targets = {sid: conns[sid] for sid in members if sid not in skip and sid in conns}
        count = len(targets)
        if not count:
            return 0
        polled = not self._reports_slow_consumers
        snapshot = list(targets.items()) if polled else ()
        await self._broadcast(list(targets.values()), data)
        stats = self.stats
        stats.messages_out += count
        stats.bytes_out += size * count
        if polled:
            limit = self.options.outbound_limit
            buffered = self._buffered
            for socket_id, conn in snapshot:
                if buffered(conn) > limit:
                    self._slow_consumer(socket_id)
        return count

    async def disconnect(self, socket_id: str, code: int | None = None, reason: str | None = None) -> None:
        """Close one socket; its client will not reconnect (SPEC.md 3.4, 6.3).

        Without ``code`` the reason is ``server closed``. With an application
        ``code`` (4000-4999 private use, 3000-3999 registered with IANA) and an
        optional ``reason`` text (at most 123 UTF-8 bytes, no control
        characters), the client reports ``application`` with that code and
        text, and reconnects only if its policy lists the code in
        ``retry_codes``; this server's ``disconnect`` event says ``application``
        too. A code or text rtt cannot send raises
        :class:`~rtt.errors.InvalidCloseError` before anything is closed.

        With a broker, a socket held by another process is closed by that process.
        An away socket's session ends at once; its client, if it comes back
        within ``resume_window``, gets this close (SPEC.md 17.3).
        """
        if code is None:
            if reason is not None:
                raise InvalidCloseError("a close reason text needs an application close code")
            close = None
        else:
            close = Close.application(code, "" if reason is None else reason)
        self._require_running("disconnect")
        if socket_id not in self._conns:
            resume = self._resume
            session = resume.sessions.get(socket_id) if resume is not None else None
            if session is not None:
                assert resume is not None
                await resume.disconnect(session, close)  # away, or its connection closing
                return
            await self._to_holder("disconnect", socket_id, data=close.as_text() if close else None)
            return
        if close is None:
            self._begin_close(socket_id, CloseReason.SERVER_CLOSED)
        else:
            self._begin_close(socket_id, close.reason, close)

    async def join(self, socket_id: str, group: str) -> None:
        """Add a socket to ``group`` (SPEC.md 3.10); joining twice is joining once.

        With a broker the socket may be held by any process. It leaves every
        group when it disconnects.
        """
        self._require_running("join")
        _check_group(group)
        if not self._held(socket_id):
            await self._to_holder("join", socket_id, group=group, confirmed=True)
            return
        await self._join(socket_id, group)

    async def leave(self, socket_id: str, group: str) -> None:
        """Take a socket out of ``group``; leaving a group it is not in does nothing."""
        self._require_running("leave")
        _check_group(group)
        if not self._held(socket_id):
            await self._to_holder("leave", socket_id, group=group, confirmed=True)
            return
        self._leave(socket_id, group)

    def _held(self, socket_id: str) -> bool:
        """Whether this process holds the socket: connected, or a session away or closing."""
        if socket_id in self._conns:
            return True
        return self._resume is not None and socket_id in self._resume.sessions

    def groups(self, socket_id: str) -> frozenset[str]:
        """The groups a socket of this process is in (empty for an unknown id)."""
        return frozenset(self._memberships.get(socket_id, ()))

    def members(self, group: str) -> frozenset[str]:
        """The sockets of this process in ``group``."""
        return frozenset(self._groups.get(group, ()))

    async def socket_count(self) -> int:
        """Sockets connected to this server; with a broker, to every live process of the cluster.

        Other processes' counts are as they last announced them (at most one
        broker ``heartbeat`` old). :class:`~rtt.errors.BrokerError` while the broker is down.
        """
        if self.broker is None:
            return len(self._sockets)
        return await self.broker.count()

    async def is_connected(self, socket_id: str) -> bool:
        """Whether a socket with this id is connected here or, with a broker, to any live process."""
        if socket_id in self._sockets:
            return True
        if self.broker is None or socket_id in self._closing:
            return False
        return await self.broker.receivers(f"s.{socket_id}") > 0

    # -- Calls a plugin makes --------------------------------------------

    async def _admit(self, handshake: Handshake) -> Accept | Reject:
        """Run the origin allow-list and ``authorize`` on a handshake (SPEC.md 8).

        A plugin calls this before it upgrades or starts a session and, on
        :class:`Reject`, refuses with ``status`` so no socket ever exists.
        First, a handshake from a trusted proxy takes the client's address and
        scheme from its forwarded headers, in place (SPEC.md 8.5): ``authorize``,
        the socket and the plugin (a cookie's ``Secure``) all read that.
        """
        relayed = relayed_peer(handshake.headers) if handshake.peer_address is None else None
        if relayed is not None:
            # Relayed from another process (13.8): the connection there is the one that counts.
            object.__setattr__(handshake, "peer_address", relayed[0])
            object.__setattr__(handshake, "remote_address", relayed[0])
            object.__setattr__(handshake, "scheme", relayed[1])
        elif self.options.ssl is not None:
            # A standalone server with TLS: every connection it accepts came over TLS.
            object.__setattr__(handshake, "scheme", "https")
        if self.options.trusted_proxies:
            through_proxies(handshake, self.options.trusted_proxies)
        if QUERY in handshake.query:
            # Reserved (SPEC.md 17.1): neither authorize nor the application sees the token.
            handshake._take_resume()
        self._admitting += 1
        self._admitted.clear()
        try:
            decision = await self._decide(handshake)
        finally:
            self._admitting -= 1
            if not self._admitting:
                self._admitted.set()
        if isinstance(decision, Reject):
            self.stats.rejected += 1
            logger.info(
                "rejected %s handshake from %s: %d %s",
                self.transport.name,
                handshake.remote_address,
                decision.status,
                decision.reason,
            )
        return decision

    def _accepting(self) -> bool:
        return self._state is ServerState.RUNNING

    async def _decide(self, handshake: Handshake) -> Accept | Reject:
        if not self._accepting():
            return Reject(503, "Server shutting down")
        allowed = self.options.allowed_origins
        if allowed is not None and not origin_allowed(handshake.origin, allowed):
            return Reject(403, "Origin not allowed")
        authorize = self.options.authorize
        if authorize is None:
            return Accept()
        try:
            result: Any = authorize(handshake)
            if inspect.isawaitable(result):
                hook = asyncio.ensure_future(result)
                self._authorizing.add(hook)
                try:
                    result = await hook
                except asyncio.CancelledError:
                    # Cancelled by close() (SPEC.md 8.2), not the plugin's handler cancelled.
                    if self._accepting() or _cancelling():
                        raise
                    return Reject(503, "Server shutting down")
                finally:
                    self._authorizing.discard(hook)
        except Exception:
            logger.exception("authorize hook raised; rejecting the handshake")
            return Reject(500, "Authorization failed")
        if not self._accepting():
            return Reject(503, "Server shutting down")  # shutdown began while authorize ran
        if result is None or result is True:
            return Accept()
        if result is False:
            return Reject(403, "Forbidden")
        if isinstance(result, Accept | Reject):
            return result
        logger.error("authorize returned %r; expected bool, None, Accept or Reject", type(result))
        return Reject(500, "Authorization failed")

    async def _opened(self, conn: C, handshake: Handshake, identity: Any = None) -> Socket:
        """Register an accepted connection and fire ``connect``; returns its socket.

        If the server began shutting down meanwhile, the connection is closed
        with ``shutdown`` and the socket is returned already closing.
        With resume on, a handshake that asks for it starts or resumes a
        session instead (SPEC.md 17.3), and the socket returned is the
        connection's own (*wire*) socket: the plugin passes it to
        :meth:`_received` and :meth:`_closed` as always.
        """
        resume = self._resume
        if resume is not None and handshake._resume is not None and self._state is ServerState.RUNNING:
            return await resume.open(conn, handshake, identity)
        socket = Socket._opening(new_socket_id(), self.transport.name, handshake, identity)
        self._sockets[socket.id] = socket
        self._conns[socket.id] = conn
        self._idle.clear()
        self.stats.connections += 1
        if self._state is not ServerState.RUNNING:
            self._begin_close(socket.id, CloseReason.SHUTDOWN)
            return socket
        if self.broker is not None:
            # Confirmed before ``connect``, so the id the app hands out is reachable from anywhere.
            await self.broker.subscribe(f"s.{socket.id}")
            self.broker.count_changed()
        await self._emitter.emit("connect", socket)
        return socket

    async def _received(self, socket: Socket, data: str | bytes) -> None:
        """Deliver one message from ``socket`` to the ``message`` handlers, in order."""
        link = socket._link
        if link is not None:
            assert self._resume is not None
            admitted = self._resume.received(link, data)  # counted, or a control
            if admitted is None:
                return
            session = link.session
            assert session is not None  # only a dead link has none, and it admits nothing
            socket, data = session.socket, admitted  # the handlers see the session's socket, not the wire's
        else:
            session = None
            if socket.id not in self._sockets:
                return  # closing: nothing more is delivered after the server decided to close
            size = message_size(data)
            stats = self.stats
            stats.messages_in += 1
            stats.bytes_in += size
            if size > self.options.max_message_size:
                self._begin_close(socket.id, CloseReason.MESSAGE_TOO_BIG)
                return
        self._busy.add(socket.id)
        try:
            for handler in self._message_handlers:
                try:
                    result = handler(socket, data)
                    # A coroutine is the common case; isawaitable() catches other awaitables.
                    if result is not None and (type(result) is CoroutineType or inspect.isawaitable(result)):
                        await result
                except Exception:
                    logger.exception("server handler %r for 'message' raised", handler)
        finally:
            self._busy.discard(socket.id)
        if session is not None and session.handled is not None:
            session.handled.set()  # a takeover waits for it (SPEC.md 17.5)

    def _handling(self, socket_id: str) -> bool:
        """Whether a ``message`` handler is running for this socket (SPEC.md 10.2).

        The plugin is then not reading that connection (handlers push back on
        the sender), so a heartbeat answer may be waiting behind the message:
        a plugin-side heartbeat restarts its clock instead of timing it out.
        """
        return socket_id in self._busy

    async def _closed(self, socket: Socket, reason: CloseReason) -> None:
        """Report that a connection has ended; fires ``disconnect`` exactly once.

        When the server itself began the close, the reason it chose wins over
        what the library observed. For a resumable socket the session may
        instead go away (SPEC.md 17.3); a report about a connection the core
        has already detached, or a repeated one, is ignored.
        """
        link = socket._link
        if link is not None:
            assert self._resume is not None
            await self._resume.closed(link, reason)
            return
        closing = self._closing.get(socket.id)
        if closing is not None:
            reason = closing[2]
        elif socket.id not in self._sockets:
            return  # already reported
        await self._finish(socket, reason)

    # -- Hooks a plugin implements ------------------------------------------

    @abc.abstractmethod
    async def _start(self) -> tuple[str, int]:
        """Bind to ``self.host``/``self.port`` and return the bound address."""

    @abc.abstractmethod
    def _url(self) -> str:
        """The URL clients connect to (called only once started)."""

    @abc.abstractmethod
    async def _send(self, conn: C, data: str | bytes) -> None:
        """Queue one message on one connection; must not wait for the peer to read.

        Raise :class:`~rtt.errors.ConnectionClosed` if the connection has
        already ended (its ``_closed`` report is on its way).
        """

    async def _broadcast(self, conns: list[C], data: str | bytes) -> None:
        """Queue one message on many connections, skipping ended ones; override to encode once."""
        for conn in conns:
            with contextlib.suppress(ConnectionClosed):
                await self._send(conn, data)

    @abc.abstractmethod
    def _buffered(self, conn: C) -> int:
        """Bytes queued on ``conn`` that the peer has not taken yet."""

    @abc.abstractmethod
    async def _close(self, conn: C, close: Close) -> None:
        """Close ``conn``, sending ``close.code`` and ``close.text``; must end by calling :meth:`_closed`.

        ``close.reason`` is what the server reports; for rtt's own reasons the
        code and text are the reason's, for an application close the
        application's (SPEC.md 6.3).
        """

    @abc.abstractmethod
    def _abort(self, conn: C) -> None:
        """Drop ``conn`` at once, without a closing handshake; must end in :meth:`_closed`."""

    async def _stop_accepting(self) -> None:
        """Stop accepting new connections (first step of shutdown)."""

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Release the listener and every resource of the library (last step of shutdown)."""

    # -- Internals ------------------------------------------------------------

    def _require_running(self, what: str) -> None:
        if self._state is not ServerState.RUNNING and not self._handing_over():
            raise StateError(f"cannot {what} in state {self._state.name}")

    def _handing_over(self) -> bool:
        """Closing, with the sessions going to live peers: the app may still act on them (SPEC.md 17.3).

        A message counted as handled must be handled whole: a handler that was
        running, or that a message arriving before its connection was closed
        started, may still send, broadcast, join, leave or disconnect; what it
        does lands in the sessions that move, or reaches other processes.
        """
        resume = self._resume
        return self._state is ServerState.CLOSING and resume is not None and resume.pushing

    def _refuse_tls_mounted(self, where: str) -> None:
        """Refuse the ``ssl`` option for a server mounted in ``where`` (SPEC.md 8.4).

        The application's web server owns the listener, so only it can speak TLS;
        ignoring the option would serve plain text to a caller who asked for TLS.
        """
        if self.options.ssl is not None:
            raise OptionError(
                f"option ssl is for a standalone server: mounted in {where}, TLS is the job of the "
                f"application's web server (give the context to it, and leave ssl out here)"
            )

    async def _close_on_app_shutdown(self, app: object) -> None:
        """An aiohttp ``on_shutdown`` callback that closes this server (SPEC.md 3.9, 12).

        ``attach(app)`` registers it: aiohttp runs ``on_shutdown`` before it
        waits for and then cancels the request handlers that hold the
        connections, so the sockets still close with ``shutdown``; closed
        only later (from ``cleanup_ctx``), they would already have been dropped.
        """
        await self.close()

    def _begin_close(self, socket_id: str, reason: CloseReason, close: Close | None = None) -> None:
        """Start closing a socket with ``reason`` (plugins call this for reasons only they see).

        ``close`` is the application's close, when the reason is ``application``.
        A resumable socket closed for a reason that resumes stays in
        ``sockets``: its session goes away when the connection has ended.
        """
        resume = self._resume
        if resume is not None and resume.keep(socket_id, reason):
            return
        socket = self._sockets.pop(socket_id, None)
        if socket is None:
            return
        conn = self._conns.pop(socket_id)
        self._closing[socket_id] = (socket, conn, reason)
        self._forget(socket_id)
        if resume is not None:
            resume.ending(socket_id, reason, close)
        if reason in _ABORT:
            self._abort(conn)
        else:
            self._spawn(self._close(conn, close or Close.of(reason)))

    def _closing_reason(self, socket_id: str) -> CloseReason | None:
        """The reason the server chose for a socket it is closing, if it is closing one."""
        closing = self._closing.get(socket_id)
        return closing[2] if closing is not None else None

    def _slow_consumer(self, socket_id: str) -> None:
        """Close a socket whose unsent data passed ``outbound_limit`` (plugins may call it)."""
        if socket_id in self._sockets:
            logger.warning("closing socket %s: slow consumer", socket_id)
            self._begin_close(socket_id, CloseReason.SLOW_CONSUMER)

    async def _finish(self, socket: Socket, reason: CloseReason) -> None:
        if socket.id in self._sockets:
            del self._sockets[socket.id]
            # A resumable socket may be away (no connection) or closing (in _closing) here.
            self._conns.pop(socket.id, None)
            self._closing.pop(socket.id, None)
            self._forget(socket.id)
        elif self._closing.pop(socket.id, None) is None:
            return  # already finished
        if self._resume is not None:
            self._resume.forget(socket.id)
        stats = self.stats
        stats.disconnects += 1
        if reason in _DROPS:
            stats.drops += 1
        self._check_idle()
        logger.debug("socket %s disconnected: %s", socket.id, reason)
        await self._emitter.emit("disconnect", socket, reason)

    def _check_idle(self) -> None:
        # Idle: no connection open or closing (away sessions have none).
        if not self._conns and not self._closing:
            self._idle.set()

    # -- Groups and the broker -------------------------------------------------

    async def _join(self, socket_id: str, group: str) -> None:
        joined = self._memberships.setdefault(socket_id, set())
        if group in joined:
            return
        joined.add(group)
        self._groups.setdefault(group, set()).add(socket_id)
        if self.broker is not None:
            # Confirmed before join returns, so a group broadcast made next from anywhere reaches it.
            await self.broker.subscribe(f"g.{group}")

    def _leave(self, socket_id: str, group: str) -> None:
        joined = self._memberships.get(socket_id)
        if joined is None or group not in joined:
            return
        joined.discard(group)
        if not joined:
            del self._memberships[socket_id]
        members = self._groups[group]
        members.discard(socket_id)
        if not members:
            del self._groups[group]
        if self.broker is not None:
            self._spawn(self.broker.unsubscribe(f"g.{group}"))

    def _forget(self, socket_id: str) -> None:
        """A socket left ``sockets``: it leaves its groups and stops being reachable through the broker."""
        if socket_id in self._memberships:
            for group in list(self._memberships[socket_id]):
                self._leave(socket_id, group)
        if self.broker is not None:
            self._spawn(self.broker.unsubscribe(f"s.{socket_id}"))
            self.broker.count_changed()

    async def _to_holder(
        self,
        op: str,
        socket_id: str,
        *,
        data: str | bytes | None = None,
        group: str | None = None,
        confirmed: bool = False,
    ) -> None:
        """Hand an operation on a socket this process does not hold to the process that does.

        ``confirmed`` waits until the holder has done it (a join is then in
        effect for any broadcast made next, from anywhere).
        """
        broker = self.broker
        if broker is None or socket_id in self._closing:
            raise UnknownSocketError(socket_id)
        ref = secrets.token_urlsafe(9) if confirmed else ""
        resume = self._resume
        stamped = Envelope(
            op, self.node, socket_id, group, data=data, ref=ref, seq=0 if resume is None else resume.stamp()
        )
        handoff = None if resume is None else resume.handoff
        # Kept now, in call order with this process's broadcasts, rather than when it comes back.
        kept = handoff is not None and bool(handoff.claims) and handoff.sent(stamped)
        if confirmed:
            answers = self._acks[ref] = _Answers()
        try:
            try:
                receivers = await broker.publish(f"s.{socket_id}", encode_envelope(stamped))
            except BrokerError:
                if kept and handoff is not None:
                    handoff.unsent(stamped)  # the caller is told it failed: it must not happen
                raise
            if not receivers:
                raise UnknownSocketError(socket_id)
            self.stats.broker_published += 1
            if not confirmed:
                return
            answers.expect(receivers)
            try:
                async with asyncio.timeout(broker.options.timeout):
                    held = await answers.done
            except TimeoutError:
                raise BrokerError(
                    f"the process holding socket {socket_id} did not confirm {op} "
                    f"within {broker.options.timeout} s"
                ) from None
        finally:
            self._acks.pop(ref, None)
        if not held:
            raise UnknownSocketError(socket_id)  # it left between the publish and the holder's turn

    async def _from_broker(self, channel: str, payload: bytes) -> None:
        """Act on one envelope another process published (or this one's own broadcast, ignored)."""
        try:
            envelope = decode_envelope(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            logger.warning(
                "ignored a malformed envelope (%d bytes) on broker channel %s: %s",
                len(payload),
                channel,
                exc,
            )
            return
        resume = self._resume
        if resume is not None:  # with a broker, so with a handoff
            handoff = resume.handoff
            assert handoff is not None
            if envelope.op in _HANDOFF_OPS:
                await handoff.received(envelope)
                return
            if envelope.seq:
                resume.heard[envelope.origin] = envelope.seq
            if handoff.claims and handoff.capture(envelope):
                return  # about a session being taken over here: applied when it is installed
        if envelope.origin == self.node and envelope.op == "broadcast":
            return  # delivered locally before it was published
        if envelope.op in _RELAY_OPS:
            if self._relay is not None:
                self._relay.received(envelope, self._spawn)
            return
        if envelope.op == "ack":
            answers = self._acks.get(envelope.ref)
            if answers is not None:
                answers.answer(envelope.data == "held")
            return
        if self._state is not ServerState.RUNNING and (resume is None or not resume.pushing):
            return  # while pushing, what reaches its sessions lands in the logs that move
        self.stats.broker_received += 1
        await self._act(envelope)

    async def _act(self, envelope: Envelope) -> None:
        op, data = envelope.op, envelope.data
        if op == "broadcast":
            if data is None:
                return
            size = message_size(data)
            if size > self.options.max_message_size:
                logger.warning("dropped a broadcast of %d bytes from another process: too big here", size)
                return
            await self._deliver(data, size, set(envelope.exclude), envelope.group)
            return
        socket_id = envelope.socket
        conn = self._conns.get(socket_id)
        resume = self._resume
        session = resume.sessions.get(socket_id) if resume is not None else None
        if conn is None and session is None:
            if envelope.ref:
                await self._confirm(envelope, held=False)
            return  # gone since the sender published; its disconnect is this process's to report
        if op == "send" and data is not None:
            size = message_size(data)
            if size > self.options.max_message_size:
                logger.warning(
                    "dropped a message of %d bytes for %s from another process: too big here", size, socket_id
                )
                return
            if session is not None:
                assert resume is not None
                await resume.send(session, data, size)
                return
            assert conn is not None
            try:
                await self._send(conn, data)
            except ConnectionClosed:
                return
            self.stats.messages_out += 1
            self.stats.bytes_out += size
            if not self._reports_slow_consumers and self._buffered(conn) > self.options.outbound_limit:
                self._slow_consumer(socket_id)
        elif op == "disconnect":
            close = Close.from_text(envelope.data) if isinstance(envelope.data, str) else None
            if close is not None and close.reason is not CloseReason.APPLICATION:
                close = None
            if conn is None:
                assert resume is not None and session is not None
                await resume.disconnect(session, close)  # away, or its connection closing
            elif close is not None:
                self._begin_close(socket_id, close.reason, close)
            else:
                self._begin_close(socket_id, CloseReason.SERVER_CLOSED)
        elif op == "join" and envelope.group is not None:
            await self._join(socket_id, envelope.group)
        elif op == "leave" and envelope.group is not None:
            self._leave(socket_id, envelope.group)
        if envelope.ref:
            await self._confirm(envelope, held=True)

    async def _confirm(self, envelope: Envelope, *, held: bool) -> None:
        """Tell the process that asked that its operation is done (or that the socket is gone)."""
        assert self.broker is not None
        ack = _envelope("ack", origin=self.node, ref=envelope.ref, data="held" if held else "gone")
        try:
            await self.broker.publish(f"n.{envelope.origin}", ack)
        except BrokerError as exc:  # the asker's wait is bounded and reports it
            logger.debug("could not confirm %s to %s: %s", envelope.op, envelope.origin, exc)

    def _broker_state(self, state: BrokerState) -> None:
        if state is BrokerState.DOWN:
            self.stats.broker_outages += 1
        self._spawn(self._emitter.emit("broker", state))

    # -- HTTP sessions across processes (SPEC.md 13.8) --------------------------------

    async def _hold_session(self, key: str) -> None:
        """(plugins) This process holds HTTP session ``key``: requests for it landing elsewhere come here."""
        if self.broker is not None:
            await self.broker.subscribe(f"h.{key}")

    def _release_session(self, key: str) -> None:
        """(plugins) HTTP session ``key`` has ended here."""
        if self.broker is not None:
            self._spawn(self.broker.unsubscribe(f"h.{key}"))

    async def _relay_session(self, key: str, request: RelayedRequest) -> RelayedResponse | None:
        """(plugins) Relay a request of a session this process does not hold to the one that does.

        ``None`` without a broker or when no process holds ``key`` (serve it
        here: a new session, or an unknown one). Raises
        :class:`~rtt.errors.BrokerError` when the broker cannot carry it.
        """
        if self._relay is None:
            return None
        return await self._relay.forward(key, request)

    async def _serve_relayed(self, request: RelayedRequest) -> RelayedResponse:
        """Serve a request another process relayed here, as if it had arrived here (SPEC.md 13.8).

        The default performs it against the plugin's own HTTP server on the
        Unix socket :attr:`_relay_socket`; plugins that hold sessions with
        :meth:`_hold_session` set that, or override this.
        """
        if self._relay_socket is None:
            raise NotImplementedError(
                f"transport {self.transport.name!r} does not serve relayed HTTP requests"
            )
        return await fetch_unix(self._relay_socket, request)

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, eager: bool = False) -> asyncio.Task[Any]:
        loop = self._loop or asyncio.get_running_loop()
        if eager and _EAGER_TASKS:
            # Runs the coroutine at once, up to its first real wait, still as a task (3.12+).
            task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
            if task.done():
                # Finished inside this call, as most do: nothing to cancel at shutdown, and no done
                # callback to schedule through the loop for it.
                self._task_done(task)
                return task
        else:
            task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("server task failed", exc_info=task.exception())

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


_EAGER_TASKS = sys.version_info >= (3, 12)


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


_RELAY_OPS = frozenset({"relay", "head", "chunk", "end", "cancel"})
_HANDOFF_OPS = frozenset({"takeover", "state", "retry", "refuse", "adopt"})


class _Answers:
    """The confirmations of one operation handed to the process holding a socket.

    While a session moves between processes (SPEC.md 17.5) both may receive
    the operation: one of them says ``held``, the other ``gone``. So the
    asker waits for as many answers as processes received it, and it is done
    when any says ``held``.
    """

    __slots__ = ("done", "expected", "gone")

    def __init__(self) -> None:
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.gone = 0
        self.expected = 0

    def answer(self, held: bool) -> None:
        if self.done.done():
            return
        if held:
            self.done.set_result(True)
            return
        self.gone += 1
        self._settle()

    def expect(self, receivers: int) -> None:
        self.expected = receivers
        self._settle()

    def _settle(self) -> None:
        # Answers may come before the publish's receiver count does.
        if self.expected and self.gone >= self.expected and not self.done.done():
            self.done.set_result(False)


def _check_group(group: object) -> None:
    if not isinstance(group, str) or not group or len(group) > MAX_GROUP_NAME:
        raise ValueError(f"a group name must be a non-empty str of at most {MAX_GROUP_NAME} chars: {group!r}")


def _envelope(
    op: str,
    *,
    origin: str,
    socket: str = "",
    group: str | None = None,
    exclude: tuple[str, ...] = (),
    data: str | bytes | None = None,
    ref: str = "",
    seq: int = 0,
) -> bytes:
    return encode_envelope(Envelope(op, origin, socket, group, exclude, data, ref, seq))
