"""The Python client half of the contract (SPEC.md section 4).

Reconnection, the offline queue, inbound flow control and event order live
here, once, for every transport. A plugin supplies one thing: a coroutine that
opens a :class:`ClientConnection` (recv / send / close over its library).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import inspect
import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from enum import Enum
from types import CoroutineType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._client_session import ClientSession, resume_url
from ._emitter import Emitter
from .codec import check_message, message_size
from .errors import (
    ConnectError,
    ConnectionClosed,
    OfflineQueueFullError,
    RejectedError,
    StateError,
)
from .events import CLIENT_EVENTS, ClientEvent, CloseReason
from .options import ClientOptions
from .resume import ACK_EVERY, Control, ResumeProtocolError, Welcome, ack_text, classify, escape, hello_text

if TYPE_CHECKING:
    from .transport import Transport

__all__ = ["Client", "ClientConnection", "ClientState", "Inbox"]

logger = logging.getLogger("rtt.client")

H = TypeVar("H", bound=Callable[..., Any])


class ClientState(Enum):
    """Lifecycle of a client.

    ============  ==================================  =======================
    state         ``send()`` does                     next
    ============  ==================================  =======================
    IDLE          raises (call ``connect()`` first)   CONNECTING, CLOSED
    CONNECTING    queues                              OPEN, CLOSED
    OPEN          sends                               RECONNECTING, CLOSED
    RECONNECTING  queues (raises when queue is full)  OPEN, CLOSED
    CLOSED        raises                              (final)
    ============  ==================================  =======================
    """

    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class ClientConnection(abc.ABC):
    """One open wire connection of a client: the part a plugin writes."""

    @abc.abstractmethod
    async def recv(self) -> str | bytes:
        """Wait for the next message; raise :class:`~rtt.errors.ConnectionClosed` at the end."""

    @abc.abstractmethod
    async def send(self, data: str | bytes) -> None:
        """Send one message; raise :class:`~rtt.errors.ConnectionClosed` if it cannot."""

    @abc.abstractmethod
    async def close(self, reason: CloseReason) -> None:
        """Close with ``reason``; idempotent; must return within the client's ``close_timeout``."""


class Inbox:
    """Bounded FIFO of received messages that the reader blocks on when full.

    Blocking the reader stops it pulling from the wire, so a client that does
    not consume its messages pushes back on the server (SPEC.md 4.5). One
    task puts and one task gets; plugins use it for their connections too.
    Once closed it takes nothing more, and ``get`` drains what is left, then
    returns None.
    """

    __slots__ = ("_getter", "_items", "_maxsize", "_putter", "closed")

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque[str | bytes] = collections.deque()
        self._maxsize = maxsize
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None
        self.closed = False

    async def put(self, item: str | bytes) -> None:
        while len(self._items) >= self._maxsize and not self.closed:
            self._putter = asyncio.get_running_loop().create_future()
            await self._putter
        if not self.closed:
            self._items.append(item)
            _wake(self._getter)

    async def get(self) -> str | bytes | None:
        """Next message, or None once closed and empty."""
        while not self._items:
            if self.closed:
                return None
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter
        item = self._items.popleft()
        _wake(self._putter)
        return item

    def close(self) -> None:
        """Take no more messages; wake a waiting reader and writer."""
        self.closed = True
        _wake(self._getter)
        _wake(self._putter)


def _certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind ``exc`` (itself, its causes or contexts), if any.

    Libraries wrap it (aiohttp's ``ClientConnectorCertificateError`` subclasses it without
    the details): the innermost one that says why is preferred.
    """
    found: ssl.SSLCertVerificationError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) and (
            found is None or getattr(current, "verify_message", None)
        ):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class _FinalClose(Exception):
    """A resume attempt ended with a final close before its welcome: the session is over."""

    def __init__(self, closed: ConnectionClosed) -> None:
        super().__init__(str(closed))
        self.closed = closed


class Client(abc.ABC):
    """A Python client that reconnects by itself; an async context manager and iterator.

    Events: ``open()``, ``message(data)``, ``close(reason)``,
    ``reconnecting(attempt, delay)``, ``reconnected(attempt)``,
    ``reconnect_failed(attempts)``, ``error(exception)`` and, with a server
    that offers resume, ``session_lost(detail)`` (SPEC.md 17.4). Received
    messages go to ``message`` handlers if any are registered, otherwise to
    ``recv()`` and ``async for``.
    """

    def __init__(self, transport: Transport, url: str, options: ClientOptions) -> None:
        self.transport = transport
        self.url = url
        self.options = options
        self._state = ClientState.IDLE
        self._emitter = Emitter(CLIENT_EVENTS, logger, "client")
        self._message_handlers = self._emitter.handlers("message")
        self._conn: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inbox = Inbox(options.max_queue)
        self._offline: collections.deque[str | bytes] = collections.deque()
        self._closing = False
        self._close_reason: CloseReason | None = None
        self._close_code: int | None = None
        self._close_text: str | None = None
        self._closed = asyncio.Event()
        self._rng = random.Random()
        # The backoff of the current run of outages and the attempts made in it: kept
        # across a connection that did not stay up ``stable_after`` seconds (SPEC.md 4.4).
        self._delays: Iterator[float] | None = None
        self._attempts = 0
        self._opened_at = 0.0
        # Resume (SPEC.md 17.4): the session, the current connection's mode, and what a
        # resume attempt read before the connection was handed to the reader.
        self._session: ClientSession | None = None
        self._framed = False  # the current connection speaks resume framing (after the welcome)
        self._expect_welcome = False  # a first connection that asked: its first message may be one
        self._resumed = False
        self._signalled = False  # session_lost fired for the current connection
        self._loss: str | None = None  # session_lost to fire at the next open
        self._lost: tuple[str | bytes, ...] = ()
        self._welcome: Welcome | None = None
        self._first: asyncio.Future[str | bytes] | None = None
        self._ack_timer: asyncio.TimerHandle | None = None
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Public API ------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """Where the client is in its lifecycle."""
        return self._state

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the client ended up CLOSED; ``None`` before that."""
        return self._close_reason

    @property
    def close_code(self) -> int | None:
        """The application's close code when the last connection ended with an application close.

        Set before the ``close`` event fires (so a handler reads it), and back
        to ``None`` when a connection ends for one of rtt's own reasons.
        """
        return self._close_code

    @property
    def close_text(self) -> str | None:
        """The application's close text, alongside :attr:`close_code`; ``None`` when that is."""
        return self._close_text

    @property
    def unsent(self) -> tuple[str | bytes, ...]:
        """Messages in the offline queue, oldest first; once CLOSED, those never sent."""
        return tuple(self._offline)

    @property
    def socket_id(self) -> str | None:
        """The server's id for this client's session (SPEC.md 17.4); ``None`` until a welcome.

        It stays the same across resumed connections and changes when a
        session is lost. Without a server that offers resume it stays ``None``.
        """
        session = self._session
        return session.id if session is not None else None

    @property
    def resumed(self) -> bool:
        """Whether the current connection continues the previous connection's session."""
        return self._resumed

    @property
    def unconfirmed(self) -> tuple[str | bytes, ...]:
        """Messages written before the last loss of a session whose fate is unknown, oldest first.

        The server may or may not have handled them; they are not sent again.
        Set when ``session_lost`` fires (and when the client ends CLOSED holding
        a session); kept until the next loss.
        """
        return self._lost

    @property
    def connect_url(self) -> str:
        """The URL a connection attempt opens: :attr:`url` plus this attempt's resume parameter.

        A plugin's ``_connect()`` opens this one (SPEC.md 10.3). With the
        ``resume`` option off it is :attr:`url` itself. It may carry a secret
        token, so error messages and logs name :attr:`url` instead.
        """
        if not self.options.resume:
            return self.url
        return resume_url(self.url, self._session)

    @overload
    def on(self, event: ClientEvent, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event: ClientEvent, handler: H) -> H: ...
    def on(self, event: ClientEvent, handler: H | None = None) -> H | Callable[[H], H]:
        """Register a handler: ``client.on("message", fn)`` or ``@client.on("message")``."""
        return self._emitter.on(event, handler)

    def off(self, event: ClientEvent, handler: Callable[..., Any]) -> None:
        """Remove a handler."""
        self._emitter.off(event, handler)

    async def connect(self) -> None:
        """Open the first connection; raises :class:`~rtt.errors.ConnectError` if it fails.

        Only reconnections retry; the first attempt fails fast so a
        misconfigured URL is reported at once.
        """
        if self._state is not ClientState.IDLE:
            raise StateError(f"cannot connect in state {self._state.name}")
        self._state = ClientState.CONNECTING
        conn: ClientConnection | None = None
        try:
            conn = await self._attempt()
            await self._flush(conn)
        except BaseException as exc:
            if conn is not None:
                # Opened, then lost while the offline queue was written: the plugin's connection
                # still holds its resources (an HTTP session, a socket) until it is closed.
                await self._abandon(conn, CloseReason.TRANSPORT_ERROR)
            reason = CloseReason.REJECTED if isinstance(exc, RejectedError) else CloseReason.TRANSPORT_ERROR
            self._finalise(reason)
            raise
        self._conn = conn
        self._state = ClientState.OPEN
        self._opened_at = asyncio.get_running_loop().time()
        self._reader = asyncio.get_running_loop().create_task(self._run(conn))
        await self._emit("open")

    async def send(self, data: str | bytes) -> None:
        """Send a message; while reconnecting, queue it (SPEC.md 4.4).

        Raises :class:`~rtt.errors.OfflineQueueFullError` when the queue is
        full, :class:`~rtt.errors.StateError` before ``connect()`` or after
        the client closed. In a resumed session (SPEC.md 17.4) a message is kept
        until the server confirms it, and while OPEN a send beyond the bound
        waits for a confirmation.
        """
        check_message(data, self.options.max_message_size)
        while True:
            state = self._state
            conn = self._conn
            if state is ClientState.OPEN and conn is not None:
                session = self._session
                wire = data
                if session is not None:
                    if self._framed:
                        if len(session.unconfirmed) >= session.limit:
                            self._room.clear()
                            await self._room.wait()
                            continue  # the state may have changed meanwhile
                        wire = escape(data)
                    # Kept before the write, so the order of concurrent sends is the wire's.
                    session.wrote(data)
                try:
                    await conn.send(wire)
                    return
                except ConnectionClosed:
                    ending = self.options.reconnect is None or self._closing
                    if session is not None:
                        if session.id is not None and not ending:
                            return  # kept as unconfirmed: sent again if the server has not handled it
                        session.unwrite(data)
                    if ending:
                        raise
                    # Not written: keep it for after the reconnection the reader is about to start.
            elif state is ClientState.IDLE or state is ClientState.CLOSED:
                raise StateError(f"cannot send in state {state.name}")
            self._enqueue(data)
            return

    async def recv(self) -> str | bytes:
        """Wait for the next message; raise :class:`~rtt.errors.ConnectionClosed` once closed."""
        if self._message_handlers:
            raise StateError("messages go to the 'message' handlers; recv() and iteration are unavailable")
        if self._state is ClientState.IDLE:
            raise StateError("cannot recv in state IDLE; call connect() first")
        data = await self._inbox.get()
        if data is None:
            raise ConnectionClosed(
                self._close_reason or CloseReason.CLIENT_CLOSED, code=self._close_code, text=self._close_text
            )
        return data

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Close deliberately: never reconnects; queued messages stay in :attr:`unsent`."""
        if self._state is ClientState.CLOSED:
            return
        self._closing = True
        was_open = self._state is ClientState.OPEN
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        conn = self._conn
        if conn is not None:
            try:
                # The plugin applies close_timeout itself; this only guards against a hang.
                await asyncio.wait_for(conn.close(CloseReason.CLIENT_CLOSED), self.options.close_timeout + 1)
            except (TimeoutError, OSError, ConnectionClosed) as exc:
                logger.debug("closing handshake did not complete: %r", exc)
        self._finalise(CloseReason.CLIENT_CLOSED)
        if was_open:
            await self._emit("close", CloseReason.CLIENT_CLOSED)

    async def wait_closed(self) -> CloseReason:
        """Wait until the client is CLOSED for good; return why."""
        await self._closed.wait()
        assert self._close_reason is not None
        return self._close_reason

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def pause_reading(self) -> None:
        """Freeze the current connection, for fault tests (SPEC.md 10.3).

        The connection stays open but the client stops reading from it and
        stops answering heartbeats, so data piles up on the server and the
        server's ping timeout eventually drops it. The conformance kit's
        ping-timeout case (and ``rtt check``) uses it. Raises
        :class:`~rtt.errors.StateError` when there is no open connection.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement Client.pause_reading() (SPEC.md 10.3): "
            "the conformance kit's ping-timeout case needs it to freeze a connected client"
        )

    def _current_connection(self) -> ClientConnection:
        """The open connection, for a plugin's own methods such as ``pause_reading`` (SPEC.md 10.3).

        It is the object the last successful ``_connect()`` returned, while
        the client is OPEN. Raises :class:`~rtt.errors.StateError` in any
        other state (no connection, or one that is ending or gone).
        """
        conn = self._conn
        if conn is None or self.state is not ClientState.OPEN:
            raise StateError(f"no open connection in state {self.state.name}")
        return conn

    # -- Hook a plugin implements -------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> ClientConnection:
        """Make one connection attempt to :attr:`connect_url` with ``self.options``.

        Raise :class:`~rtt.errors.RejectedError` if the server refused the
        handshake and :class:`~rtt.errors.ConnectError` for anything else;
        messages name ``self.url`` (``connect_url`` may carry a secret token).
        """

    # -- Internals ------------------------------------------------------------

    async def _attempt(self) -> ClientConnection:
        options = self.options
        session = self._session
        resuming = session is not None and session.id is not None
        if options.resume and not resuming:
            # A first connection of a session: what is written before its welcome counts once it comes.
            self._session = ClientSession(max(options.offline_queue_size, ACK_EVERY))
        self._framed = self._resumed = self._signalled = False
        self._expect_welcome = options.resume and not resuming
        conn: ClientConnection | None = None
        try:
            try:
                async with asyncio.timeout(options.connect_timeout):
                    conn = await self._connect()
                    if resuming:
                        self._welcome = await self._await_welcome(conn)
            except TimeoutError:
                if conn is None:
                    raise ConnectError(
                        f"connecting to {self.url} timed out after {options.connect_timeout} s"
                    ) from None
                # Open, but no welcome within connect_timeout: the server no longer offers
                # resume. What the first read returns later is the connection's first message.
                self._welcome = None
            except ConnectError as exc:
                certificate = None if isinstance(exc, RejectedError) else _certificate_failure(exc)
                if certificate is not None:
                    raise self._untrusted(certificate) from exc
                raise
            except OSError as exc:
                certificate = _certificate_failure(exc)
                if certificate is not None:
                    raise self._untrusted(certificate) from exc
                raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
        except BaseException:
            if conn is not None:
                await self._abandon(conn, CloseReason.CLIENT_CLOSED)
            raise
        return conn

    async def _await_welcome(self, conn: ClientConnection) -> Welcome | None:
        """Read a resume attempt's first message: the welcome, or ``None`` (kept in ``_first``).

        The read is a task of its own that a timeout does not cancel, so a
        message it returns after the timeout is still the connection's first.
        """
        first = asyncio.get_running_loop().create_task(conn.recv())
        self._first = first
        try:
            message = await asyncio.shield(first)
        except ConnectionClosed as exc:
            self._first = None
            self._close_code, self._close_text = exc.code, exc.text
            if not self._reconnects_after(exc.reason):
                raise _FinalClose(exc) from None
            if exc.reason is CloseReason.APPLICATION:
                # The server ended the session with a code the client retries: it retries
                # without the token, in a new session.
                self._lose("unknown")
            raise ConnectError(f"{self.url} closed the connection before its welcome: {exc}") from None
        try:
            welcome = Welcome.parse(message)
        except ResumeProtocolError as exc:
            self._first = None
            await self._abandon(conn, CloseReason.PROTOCOL_ERROR)
            raise ConnectError(f"{self.url} sent a broken welcome: {exc}") from None
        if welcome is not None:
            self._first = None
        return welcome

    async def _abandon(self, conn: ClientConnection, reason: CloseReason) -> None:
        """Close a connection that will not be used, ignoring how it fails."""
        first, self._first = self._first, None
        if first is not None:
            first.cancel()
        # Nothing was delivered from it: how its close fails does not matter.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(reason), self.options.close_timeout + 1)

    async def _greet(self, conn: ClientConnection) -> None:
        """A resume attempt's steps after its welcome (SPEC.md 17.4): hello, then what to resend.

        Raises :class:`ConnectionClosed` if a write fails and
        :class:`~rtt.resume.ResumeProtocolError` if the welcome does not
        continue the session.
        """
        session = self._session
        if session is None or session.id is None or self._expect_welcome:
            return  # a first connection: its welcome, if any, comes to the reader
        welcome, self._welcome = self._welcome, None
        if welcome is None:
            self._lose("unsupported")
            # A first message still to come is read as a first connection's: a welcome that
            # comes after all (a server slower than connect_timeout) is refused, not delivered.
            self._expect_welcome = True
            return
        if welcome.status == "resumed":
            loss = session.resume(welcome)
            self._resumed = True
        else:
            self._lose(welcome.why or "unknown")
            session = ClientSession(session.limit)
            self._session = session
            session.start(welcome)
            loss = None
        self._framed = True
        await conn.send(hello_text(session.nonce))
        for data in tuple(session.unconfirmed):
            await conn.send(escape(data))
        if loss is not None:
            self._loss = loss

    def _lose(self, detail: str) -> None:
        """The session is lost: remember what may be missing, report ``detail`` at the next open."""
        session = self._session
        self._session = None
        if session is not None and session.id is not None:
            self._lost = tuple(session.unconfirmed)
            self._loss = detail

    def _untrusted(self, failure: ssl.SSLCertVerificationError) -> ConnectError:
        """The one error for a server certificate that failed verification, on every transport."""
        detail = getattr(failure, "verify_message", None) or str(failure)
        return ConnectError(
            f"cannot connect to {self.url}: the server's TLS certificate failed verification ({detail}); "
            f"the client trusts the system's CAs, or those of its ssl option"
        )

    def _enqueue(self, data: str | bytes) -> None:
        size = self.options.offline_queue_size
        session = self._session
        # The bound counts the messages of a session kept for a resend too (SPEC.md 17.4).
        held = len(session.unconfirmed) if session is not None and session.id is not None else 0
        if len(self._offline) + held >= size:
            raise OfflineQueueFullError(size)
        self._offline.append(data)

    async def _flush(self, conn: ClientConnection) -> None:
        # State is still CONNECTING/RECONNECTING here, so concurrent sends
        # join the queue's tail and order is kept.
        offline = self._offline
        session = self._session
        if session is None:
            while offline:
                await conn.send(offline[0])
                offline.popleft()
            return
        framed = self._framed
        while offline:
            data = offline.popleft()
            session.wrote(data)
            try:
                await conn.send(escape(data) if framed else data)
            except ConnectionClosed:
                if not framed:
                    # Before a welcome the write counts for nothing: back to the queue.
                    session.unwrite(data)
                    offline.appendleft(data)
                raise

    async def _emit(self, event: str, *args: Any) -> None:
        if not await self._emitter.emit(event, *args) and event != "error":
            await self._emitter.emit("error", RuntimeError(f"a handler for {event!r} raised"))

    async def _deliver(self, data: str | bytes) -> None:
        handlers = self._message_handlers
        if not handlers:
            await self._inbox.put(data)
            return
        for handler in handlers:
            try:
                result = handler(data)
                if result is not None and (type(result) is CoroutineType or inspect.isawaitable(result)):
                    await result
            except Exception as exc:
                logger.exception("client handler %r for 'message' raised", handler)
                await self._emitter.emit("error", exc)

    async def _run(self, conn: ClientConnection) -> None:
        """Read until the connection ends, then reconnect or finish."""
        limit = self.options.max_message_size
        loop = asyncio.get_running_loop()
        while True:
            first, self._first = self._first, None
            try:
                while True:
                    if first is None:
                        data = await conn.recv()
                    else:
                        data, first = await first, None
                    session = self._session
                    if self._framed:
                        assert session is not None
                        if type(data) is str and data[:1] == "\x00":
                            item = classify(data)
                            if isinstance(item, Control):
                                await self._control(conn, session, item)
                                continue
                            data = item.data
                    elif self._expect_welcome:
                        self._expect_welcome = False
                        welcome = Welcome.parse(data)
                        if welcome is not None:
                            await self._welcomed(conn, welcome)
                            continue
                        self._session = None  # the server does not offer resume: a plain connection
                        session = None
                    # A plugin's library should refuse it first (on the wire, with 1009); this
                    # keeps the promise of 5.2 for every plugin: never delivered, closed.
                    # len() first: a str's UTF-8 size is at most 4 per character.
                    if len(data) * 4 > limit and message_size(data) > limit:
                        await self._refuse(conn, CloseReason.MESSAGE_TOO_BIG)
                        reason = CloseReason.MESSAGE_TOO_BIG
                        break
                    if self._framed:
                        assert session is not None
                        clock = session.clock
                        # Characters stand for bytes here: the byte bound only needs to be close.
                        if clock.received(len(data), loop.time()):
                            await self._send_control(conn, ack_text(clock.take()))
                        elif self._ack_timer is None and clock.due is not None:
                            self._ack_timer = loop.call_at(clock.due, self._ack_due, conn)
                    await self._deliver(data)
            except ConnectionClosed as exc:
                reason = exc.reason
                self._close_code, self._close_text = exc.code, exc.text
            except ResumeProtocolError as exc:
                logger.warning("the server broke the resume protocol: %s", exc)
                await self._refuse(conn, CloseReason.PROTOCOL_ERROR)
                reason = CloseReason.PROTOCOL_ERROR
                # What the server holds no longer matches: the next connection starts anew.
                self._lose("unknown")
            except Exception as exc:
                logger.warning("client connection failed: %r", exc)
                reason = CloseReason.TRANSPORT_ERROR
            self._connection_ended(first)
            if reason is not CloseReason.APPLICATION:
                self._close_code = self._close_text = None
            if self._stopping():
                return
            self._conn = None
            if not self._reconnects_after(reason):
                self._finalise(reason)
                await self._emit("close", reason)
                return
            if reason is CloseReason.APPLICATION:
                # The server ended the session and the client retries: in a new session.
                self._lose("unknown")
            self._state = ClientState.RECONNECTING
            await self._emit("close", reason)
            if self._stopping():
                return  # a close handler called close()
            new_conn = await self._reconnect()
            if new_conn is None:
                return
            conn = new_conn

    async def _welcomed(self, conn: ClientConnection, welcome: Welcome) -> None:
        """The welcome of a first connection: the session starts (SPEC.md 17.4)."""
        session = self._session
        if session is None or welcome.status != "new":
            raise ResumeProtocolError(f"an unexpected welcome {welcome.status!r}")
        session.start(welcome)
        self._framed = True
        await self._send_control(conn, hello_text(welcome.nonce))

    async def _control(self, conn: ClientConnection, session: ClientSession, control: Control) -> None:
        letter = control.letter
        if letter == "A":
            session.confirm(control.count)
            self._room.set()
        elif letter == "L":
            await self._signal(control.payload)
        else:
            raise ResumeProtocolError(f"a {letter!r} control after the welcome")

    async def _signal(self, detail: str) -> None:
        """Fire ``session_lost(detail)``, at most once per connection."""
        if not self._signalled:
            self._signalled = True
            await self._emit("session_lost", detail)

    async def _send_control(self, conn: ClientConnection, text: str) -> None:
        # A failed write is the end of the connection, which the reader sees at its next read.
        with contextlib.suppress(ConnectionClosed):
            await conn.send(text)

    def _ack_due(self, conn: ClientConnection) -> None:
        # The timer is cancelled when its connection ends, so the session is the one it was armed for.
        self._ack_timer = None
        session = self._session
        assert session is not None
        clock = session.clock
        if clock.due is None:
            return  # acknowledged at a threshold meanwhile
        loop = asyncio.get_running_loop()
        if not clock.expired(loop.time()):
            self._ack_timer = loop.call_at(clock.due, self._ack_due, conn)
            return
        task = loop.create_task(self._send_control(conn, ack_text(clock.take())))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _connection_ended(self, first: asyncio.Future[str | bytes] | None) -> None:
        if first is not None:
            first.cancel()
        timer, self._ack_timer = self._ack_timer, None
        if timer is not None:
            timer.cancel()
        self._framed = self._expect_welcome = False
        self._room.set()  # senders waiting for room go to the offline queue now

    def _reconnects_after(self, reason: CloseReason) -> bool:
        policy = self.options.reconnect
        if policy is None:
            return False
        if reason is CloseReason.APPLICATION:
            return self._close_code in policy.retry_codes
        return reason.reconnect

    async def _refuse(self, conn: ClientConnection, reason: CloseReason) -> None:
        try:
            await asyncio.wait_for(conn.close(reason), self.options.close_timeout + 1)
        except Exception as exc:  # the connection may be broken already; the reason stands
            logger.debug("closing with %s: %r", reason, exc)

    async def _reconnect(self) -> ClientConnection | None:
        policy = self.options.reconnect
        assert policy is not None
        loop = asyncio.get_running_loop()
        if self._delays is None or loop.time() - self._opened_at >= policy.stable_after:
            self._delays = policy.delays(self._rng)
            self._attempts = 0
        final = CloseReason.TRANSPORT_ERROR
        # Handlers run in this task and may call close(): after each event the
        # loop checks ``_closing`` and stops, leaving close() to finish the client.
        for delay in self._delays:
            if self._stopping():
                return None
            self._attempts += 1
            attempt = self._attempts
            await self._emit("reconnecting", attempt, delay)
            if self._stopping():
                return None
            await asyncio.sleep(delay)
            try:
                conn = await self._attempt()
            except _FinalClose as exc:
                # The server ended the session while the client was away (SPEC.md 17.4): as
                # if the close had come on the old connection.
                reason = exc.closed.reason
                self._finalise(reason)
                await self._emit("close", reason)
                return None
            except RejectedError as exc:
                await self._emitter.emit("error", exc)
                if exc.status >= 500:
                    continue  # the server is restarting or overloaded: worth another attempt
                final = CloseReason.REJECTED
                break
            except Exception as exc:
                await self._emitter.emit("error", exc)
                if _certificate_failure(exc) is not None:
                    # Retrying cannot make a certificate trusted; it only keeps knocking on
                    # a server that is misconfigured or not the one meant (SPEC.md 8.4).
                    break
                continue
            try:
                await self._greet(conn)
                await self._flush(conn)
            except ConnectionClosed as exc:
                self._connection_ended(self._first)
                self._first = None
                # Ended while the hello, the resend or the queue was written: released as any
                # connection the client will not use (an HTTP session, a socket).
                await self._abandon(conn, CloseReason.TRANSPORT_ERROR)
                await self._emitter.emit("error", exc)
                continue
            except ResumeProtocolError as exc:
                # The counts of the two sides no longer match: a new session on the next attempt.
                self._lose("unknown")
                await self._abandon(conn, CloseReason.PROTOCOL_ERROR)
                self._connection_ended(None)
                await self._emitter.emit("error", exc)
                continue
            except BaseException:
                await self._abandon(conn, CloseReason.CLIENT_CLOSED)
                raise
            self._conn = conn
            self._state = ClientState.OPEN
            self._opened_at = loop.time()
            await self._emit("open")
            if self._stopping():
                return None
            loss, self._loss = self._loss, None
            if loss is not None:
                await self._signal(loss)
                if self._stopping():
                    return None
            await self._emit("reconnected", attempt)
            return conn
        self._finalise(final)
        await self._emit("reconnect_failed", self._attempts)
        return None

    def _stopping(self) -> bool:
        """Whether close() was called (a method, so checks after awaits are not narrowed away)."""
        return self._closing

    def _finalise(self, reason: CloseReason) -> None:
        if self._offline:
            logger.warning(
                "client closed (%s) with %d queued messages unsent; see Client.unsent",
                reason,
                len(self._offline),
            )
        session = self._session
        if session is not None and session.id is not None and session.unconfirmed:
            self._lost = tuple(session.unconfirmed)
        self._state = ClientState.CLOSED
        self._close_reason = reason
        self._conn = None
        self._inbox.close()
        self._closed.set()
        self._connection_ended(None)
