"""The Python client half of the contract (SPEC.md section 4).

Reconnection, the offline queue, inbound flow control and event order live
here, once, for every transport. A plugin supplies one thing: a coroutine that
opens a :class:`ClientConnection` (recv / send / close over its library).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import inspect
import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from enum import Enum
from types import CoroutineType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

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


class Client(abc.ABC):
    """A Python client that reconnects by itself; an async context manager and iterator.

    Events: ``open()``, ``message(data)``, ``close(reason)``,
    ``reconnecting(attempt, delay)``, ``reconnected(attempt)``,
    ``reconnect_failed(attempts)``, ``error(exception)``. Received messages go
    to ``message`` handlers if any are registered, otherwise to ``recv()`` and
    ``async for``.
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
        try:
            conn = await self._attempt()
            await self._flush(conn)
        except BaseException as exc:
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
        the client closed.
        """
        check_message(data, self.options.max_message_size)
        state = self._state
        if state is ClientState.OPEN and self._conn is not None:
            try:
                await self._conn.send(data)
                return
            except ConnectionClosed:
                if self.options.reconnect is None or self._closing:
                    raise
                # Not written: keep it for after the reconnection the reader is about to start.
        elif state is ClientState.IDLE or state is ClientState.CLOSED:
            raise StateError(f"cannot send in state {state.name}")
        self._enqueue(data)

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
        """Make one connection attempt to ``self.url`` with ``self.options``.

        Raise :class:`~rtt.errors.RejectedError` if the server refused the
        handshake and :class:`~rtt.errors.ConnectError` for anything else.
        """

    # -- Internals ------------------------------------------------------------

    async def _attempt(self) -> ClientConnection:
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                return await self._connect()
        except TimeoutError:
            raise ConnectError(
                f"connecting to {self.url} timed out after {self.options.connect_timeout} s"
            ) from None
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

    def _untrusted(self, failure: ssl.SSLCertVerificationError) -> ConnectError:
        """The one error for a server certificate that failed verification, on every transport."""
        detail = getattr(failure, "verify_message", None) or str(failure)
        return ConnectError(
            f"cannot connect to {self.url}: the server's TLS certificate failed verification ({detail}); "
            f"the client trusts the system's CAs, or those of its ssl option"
        )

    def _enqueue(self, data: str | bytes) -> None:
        size = self.options.offline_queue_size
        if len(self._offline) >= size:
            raise OfflineQueueFullError(size)
        self._offline.append(data)

    async def _flush(self, conn: ClientConnection) -> None:
        # State is still CONNECTING/RECONNECTING here, so concurrent sends
        # join the queue's tail and order is kept.
        offline = self._offline
        while offline:
            await conn.send(offline[0])
            offline.popleft()

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
        while True:
            try:
                while True:
                    data = await conn.recv()
                    # A plugin's library should refuse it first (on the wire, with 1009); this
                    # keeps the promise of 5.2 for every plugin: never delivered, closed.
                    # len() first: a str's UTF-8 size is at most 4 per character.
                    if len(data) * 4 > limit and message_size(data) > limit:
                        await self._refuse_too_big(conn)
                        reason = CloseReason.MESSAGE_TOO_BIG
                        break
                    await self._deliver(data)
            except ConnectionClosed as exc:
                reason = exc.reason
                self._close_code, self._close_text = exc.code, exc.text
            except Exception as exc:
                logger.warning("client connection failed: %r", exc)
                reason = CloseReason.TRANSPORT_ERROR
            if reason is not CloseReason.APPLICATION:
                self._close_code = self._close_text = None
            if self._stopping():
                return
            self._conn = None
            if not self._reconnects_after(reason):
                self._finalise(reason)
                await self._emit("close", reason)
                return
            self._state = ClientState.RECONNECTING
            await self._emit("close", reason)
            if self._stopping():
                return  # a close handler called close()
            new_conn = await self._reconnect()
            if new_conn is None:
                return
            conn = new_conn

    def _reconnects_after(self, reason: CloseReason) -> bool:
        policy = self.options.reconnect
        if policy is None:
            return False
        if reason is CloseReason.APPLICATION:
            return self._close_code in policy.retry_codes
        return reason.reconnect

    async def _refuse_too_big(self, conn: ClientConnection) -> None:
        try:
            await asyncio.wait_for(conn.close(CloseReason.MESSAGE_TOO_BIG), self.options.close_timeout + 1)
        except Exception as exc:  # the connection may be broken already; the reason stands
            logger.debug("closing after a message over max_message_size: %r", exc)

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
                await self._flush(conn)
            except ConnectionClosed as exc:
                await self._emitter.emit("error", exc)
                continue
            self._conn = conn
            self._state = ClientState.OPEN
            self._opened_at = loop.time()
            await self._emit("open")
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
        self._state = ClientState.CLOSED
        self._close_reason = reason
        self._conn = None
        self._inbox.close()
        self._closed.set()
