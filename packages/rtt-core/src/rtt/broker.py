"""Brokers: how several server processes act as one (SPEC.md section 13).

A :class:`Broker` is a thin adapter over a message system (Redis, NATS, ...)
that gives rtt four things: named channels to publish to and subscribe to,
the number of processes subscribed to a channel, a cluster-wide socket count,
and a report when the link goes down and comes back. Everything else lives in
:class:`rtt.Server`: what the channels are called, what goes over them
(:mod:`rtt.broker` envelopes), who delivers what to which socket.

Channels the server uses (the broker adds its own prefix):

=============  ==================================  =============================
channel        subscribed by                        carries
=============  ==================================  =============================
``all``        every process                        broadcasts
``s.<id>``     the process holding socket ``id``    send, disconnect, join, leave
``g.<group>``  processes holding a member of group  group broadcasts
``h.<key>``    the process holding HTTP session     relayed HTTP requests
``n.<node>``   process ``node``                     relayed HTTP responses, confirmations,
                                                    a session's state (SPEC.md 17.5)
=============  ==================================  =============================

So a broadcast costs one publish, a send one publish that reaches one
process (and says by its receiver count whether any process holds the
socket), and a group broadcast reaches only the processes with members.

A plugin subclasses :class:`Broker`, implements the hooks below, and
registers it in the ``rtt.brokers`` entry point group.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from .errors import BrokerError, OptionError
from .options import _seconds, build_options
from .reconnect import ReconnectPolicy

__all__ = [
    "Broker",
    "BrokerOptions",
    "BrokerState",
    "Envelope",
    "decode_envelope",
    "encode_envelope",
]

logger = logging.getLogger("rtt.broker")

T = TypeVar("T")

#: Seconds a change of this process's socket count waits before it is announced,
#: so a burst of connections costs one announcement.
ANNOUNCE_DELAY = 0.05

#: Largest envelope a broker must carry: the biggest ``max_message_size``
#: rtt allows through a broker plus room for the header.
HEADER_LIMIT = 64 * 1024


class BrokerState(Enum):
    """Where a broker's link is.

    ========  ============================================================
    state     meaning
    ========  ============================================================
    NEW       not started
    UP        connected and subscribed: cross-process operations work
    DOWN      the link is lost; local sockets still work, the broker is
              reconnecting, cross-process operations raise ``BrokerError``
    CLOSED    stopped (final)
    ========  ============================================================
    """

    NEW = "new"
    UP = "up"
    DOWN = "down"
    CLOSED = "closed"


def _broker_reconnect() -> ReconnectPolicy:
    return ReconnectPolicy(min_delay=0.1, max_delay=5.0, factor=2.0, jitter=0.3, max_attempts=None)


@dataclass(frozen=True, kw_only=True)
class BrokerOptions:
    """Options every broker understands (SPEC.md 13.3); a plugin may subclass them."""

    url: str | None = None
    """Where the broker's service is, e.g. ``redis://127.0.0.1:6379/0``."""
    prefix: str = "rtt"
    """Namespace of every channel and key, so several rtt clusters can share one service."""
    timeout: float = 5.0
    """Seconds one broker operation (a publish, a query) may take before it fails."""
    connect_timeout: float = 5.0
    """Seconds the first connection at ``start`` may take before the server refuses to start."""
    heartbeat: float = 2.0
    """Seconds between this process's announcements that it is alive (and its socket count)."""
    node_timeout: float = 10.0
    """Seconds after which a process that stopped announcing itself is forgotten."""
    reconnect: ReconnectPolicy = field(default_factory=_broker_reconnect)
    """Backoff between reconnection attempts after the link is lost (never gives up).

    A link lost less than ``stable_after`` seconds after it came back goes on
    from the attempt where the last outage ended, as a client does.
    """

    def __post_init__(self) -> None:
        if self.url is not None and (not isinstance(self.url, str) or not self.url):
            raise OptionError(f"broker option url must be a non-empty string, got {self.url!r}")
        if not isinstance(self.prefix, str) or not self.prefix or any(c.isspace() for c in self.prefix):
            raise OptionError(f"broker option prefix must be a non-empty string, no spaces: {self.prefix!r}")
        _seconds("timeout", self.timeout, zero_ok=False)
        _seconds("connect_timeout", self.connect_timeout, zero_ok=False)
        _seconds("heartbeat", self.heartbeat, zero_ok=False)
        _seconds("node_timeout", self.node_timeout, zero_ok=False)
        if self.node_timeout < 2 * self.heartbeat:
            raise OptionError(
                f"broker option node_timeout ({self.node_timeout!r}) must be at least twice "
                f"heartbeat ({self.heartbeat!r}), or live processes would be forgotten"
            )
        reconnect: object = self.reconnect
        if isinstance(reconnect, Mapping):
            policy = build_options(ReconnectPolicy, reconnect, context="reconnect")
            object.__setattr__(self, "reconnect", policy)
        elif not isinstance(reconnect, ReconnectPolicy):
            raise OptionError(f"broker option reconnect must be a ReconnectPolicy or mapping: {reconnect!r}")
        if self.reconnect.max_attempts is not None:
            raise OptionError("broker option reconnect must not give up: max_attempts must be None")


# -- Envelopes: what servers tell each other ---------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """One instruction from one server process to others.

    ``op`` is ``"broadcast"``, ``"send"``, ``"disconnect"``, ``"join"``, ``"leave"``,
    ``"ack"`` (a holder confirming a join or leave),
    one of the HTTP relay's (SPEC.md 13.8): ``"relay"`` (a request),
    ``"head"``, ``"chunk"``, ``"end"`` (its response), ``"cancel"``,
    or one of a session handoff's (SPEC.md 17.5): ``"takeover"``, ``"state"``,
    ``"retry"``, ``"refuse"``, ``"adopt"``.
    """

    op: str
    origin: str = ""
    """Node id of the sending process (a process ignores its own broadcasts)."""
    socket: str = ""
    """Target socket of send, disconnect, join and leave."""
    group: str | None = None
    """Group of a group broadcast, join or leave."""
    exclude: tuple[str, ...] = ()
    """Socket ids a broadcast skips, wherever they are held."""
    data: str | bytes | None = None
    """The application's message (broadcast and send); an application close as
    ``Close.as_text`` (disconnect); the relay's request or response piece."""
    ref: str = ""
    """Which relayed request (or confirmation, or handoff) an envelope belongs to."""
    seq: int = 0
    """The origin's sequence number of a socket operation, stamped when it is
    published (``0``: none). A process's stamps rise in the order of its
    publishes, so a process taking over a session can tell which operations
    the previous holder already applied (SPEC.md 17.5)."""


_VERSION = b"1"
#: One encoder for every envelope: json.dumps with options builds a new one per call.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode
_OPS = frozenset(
    {
        "broadcast",
        "send",
        "disconnect",
        "join",
        "leave",
        "ack",
        "relay",
        "head",
        "chunk",
        "end",
        "cancel",
        "takeover",
        "state",
        "retry",
        "refuse",
        "adopt",
    }
)


def encode_envelope(envelope: Envelope) -> bytes:
    """Bytes for the broker: a version byte, a JSON header, a newline, then the raw message."""
    header: dict[str, Any] = {"op": envelope.op}
    if envelope.origin:
        header["o"] = envelope.origin
    if envelope.socket:
        header["s"] = envelope.socket
    if envelope.group is not None:
        header["g"] = envelope.group
    if envelope.exclude:
        header["x"] = list(envelope.exclude)
    if envelope.ref:
        header["r"] = envelope.ref
    if envelope.seq:
        header["q"] = envelope.seq
    data = envelope.data
    if isinstance(data, str):
        header["t"] = 1
        body = data.encode()
    elif data is not None:
        header["t"] = 0
        body = bytes(data)
    else:
        body = b""
    return _VERSION + _encode_json(header).encode() + b"\n" + body


def decode_envelope(payload: bytes) -> Envelope:
    """Parse :func:`encode_envelope`'s bytes; raise ``ValueError`` for anything else."""
    if not payload.startswith(_VERSION):
        raise ValueError("unknown envelope version")
    end = payload.find(b"\n", 1, HEADER_LIMIT)
    if end < 0:
        raise ValueError("envelope header is unterminated")
    header = json.loads(payload[1:end])
    if not isinstance(header, dict) or header.get("op") not in _OPS:
        raise ValueError("envelope header has no known op")
    body = payload[end + 1 :]
    kind = header.get("t")
    data: str | bytes | None = None if kind is None else body.decode() if kind == 1 else body
    exclude = header.get("x", [])
    origin, socket, group, ref, seq = (
        header.get("o", ""),
        header.get("s", ""),
        header.get("g"),
        header.get("r", ""),
        header.get("q", 0),
    )
    if (
        not isinstance(ref, str)
        or type(seq) is not int
        or seq < 0
        or not isinstance(origin, str)
        or not isinstance(socket, str)
        or not (group is None or isinstance(group, str))
        or not isinstance(exclude, list)
        or not all(isinstance(x, str) for x in exclude)
        or kind not in (None, 0, 1)
    ):
        raise ValueError("envelope header has fields of the wrong type")
    return Envelope(header["op"], origin, socket, group, tuple(exclude), data, ref, seq)


# -- The base class ----------------------------------------------------------------

Deliver = Callable[[str, bytes], Awaitable[None]]
StateListener = Callable[[BrokerState], Any]


class Broker(abc.ABC):
    """A link between one server process and the others (SPEC.md 13).

    One broker instance serves one server; ``rtt.load_broker(url)`` or the
    server option ``broker`` make them. The public methods keep the
    invariants (state, logging, counters, resubscription); a plugin
    implements the ``_hooks`` and reports what its library sees with
    :meth:`_received`, :meth:`_link_lost` and :meth:`_link_restored`.
    """

    name: ClassVar[str]
    """The name the plugin is registered under in ``rtt.brokers``."""
    schemes: ClassVar[tuple[str, ...]] = ()
    """URL schemes this broker serves (``redis``, ``rediss``); ``rtt.load_broker`` picks by scheme."""
    options_class: ClassVar[type[BrokerOptions]] = BrokerOptions
    max_payload: ClassVar[int | None] = None
    """Largest envelope the service carries, if it has a cap; a server whose
    ``max_message_size`` does not fit is refused when its options are built."""
    spans_processes: ClassVar[bool] = True
    """Whether it joins servers of different processes (``False`` for an in-process test double)."""
    total_order: ClassVar[bool] = False
    """Whether the service keeps one total order (SPEC.md 13.7, 17.5): every subscriber
    receives all publishes in one global order, and a subscription confirmed at
    time *t* receives every publish executed after *t*.

    Resume moves a session between processes only over a broker that promises
    this, since the process taking it over decides from that order which
    operations the previous holder already applied. Without it, a client that
    comes back to another process starts a new session (``session_lost``).
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        if url is not None:
            options["url"] = url
        self.options = build_options(self.options_class, options, context=f"broker {self.name!r}")
        self.node = ""
        self.outages = 0
        """How many times the link was lost since start."""
        self._state = BrokerState.NEW
        self._deliver: Deliver | None = None
        self._local_count: Callable[[], int] = lambda: 0
        self._channels: dict[str, int] = {}
        self._listeners: list[StateListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._announcing = False
        self._withdrawn = False
        # Channels whose subscription failed while the link stayed up: retried each heartbeat.
        self._unconfirmed: set[str] = set()
        # The reconnect delays, kept across a link that did not stay up ``reconnect.stable_after``
        # seconds, so a service that accepts and drops at once is retried ever more slowly.
        self._backoff: Iterator[float] | None = None
        self._up_since = 0.0
        self._was_stable = True

    # -- What the server uses --------------------------------------------------

    @property
    def state(self) -> BrokerState:
        """Where the link is (``UP`` while cross-process operations work)."""
        return self._state

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(state)`` whenever the link goes ``DOWN`` or comes back ``UP``."""
        self._listeners.append(listener)

    async def start(self, node: str, deliver: Deliver, local_count: Callable[[], int]) -> None:
        """Connect as process ``node``; ``deliver(channel, payload)`` gets every message subscribed to.

        Raises :class:`~rtt.errors.BrokerError` (one line, naming the URL) if
        the service cannot be reached within ``connect_timeout``.
        """
        if self._state is not BrokerState.NEW:
            raise BrokerError(f"broker {self.name!r} was already started")
        self.node = node
        self._deliver = deliver
        self._local_count = local_count
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                await self._connect()
        except TimeoutError:
            self._state = BrokerState.CLOSED
            await self._cancel_tasks()
            await self._safe_close()
            raise BrokerError(
                f"broker {self.name!r} at {self.describe()} did not answer "
                f"within {self.options.connect_timeout} s"
            ) from None
        except BrokerError:
            self._state = BrokerState.CLOSED
            await self._cancel_tasks()
            await self._safe_close()
            raise
        except Exception as exc:
            self._state = BrokerState.CLOSED
            await self._cancel_tasks()
            await self._safe_close()
            raise BrokerError(f"broker {self.name!r} at {self.describe()} failed to start: {exc}") from exc
        self._state = BrokerState.UP
        self._up_since = time.monotonic()
        self._spawn(self._heartbeat_loop())
        logger.info("broker %s connected at %s as node %s", self.name, self.describe(), node)

    async def close(self) -> None:
        """Leave the cluster and release every connection; idempotent."""
        if self._state is BrokerState.CLOSED:
            return
        self._state = BrokerState.CLOSED
        await self._cancel_tasks()
        await self._safe_close()

    async def _cancel_tasks(self) -> None:
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a library that swallows a cancellation must not hang shutdown.
            _, stuck = await asyncio.wait(tasks, timeout=self.options.timeout)
            if stuck:
                logger.warning("broker %s: %d tasks did not stop when cancelled", self.name, len(stuck))

    async def publish(self, channel: str, payload: bytes) -> int:
        """Publish ``payload``; return how many processes received it.

        Raises :class:`~rtt.errors.BrokerError` when the link is down or the
        operation fails or takes longer than ``timeout``: never silently lost.
        """
        self._require_up("publish")
        return await self._timed(self._publish(channel, payload), "publish")

    async def subscribe(self, channel: str) -> None:
        """Receive ``channel`` from now on (counted: subscribe twice, unsubscribe twice).

        Returns once the service confirms, so a publish made afterwards by any
        process reaches this one. While the link is down it returns at once;
        the subscription is made when the link comes back.
        """
        count = self._channels.get(channel, 0)
        self._channels[channel] = count + 1
        if count or self._state is not BrokerState.UP:
            return
        try:
            async with asyncio.timeout(self.options.timeout):
                await self._subscribe((channel,))
        except Exception as exc:
            self._unconfirmed.add(channel)
            logger.warning(
                "broker %s: subscribing to %s failed (%s); retried when the link is back",
                self.name,
                channel,
                exc,
            )

    async def unsubscribe(self, channel: str) -> None:
        """Undo one :meth:`subscribe`; the last one stops receiving ``channel``."""
        count = self._channels.get(channel, 0)
        if count > 1:
            self._channels[channel] = count - 1
            return
        if not count:
            return
        del self._channels[channel]
        self._unconfirmed.discard(channel)
        if self._state is BrokerState.UP:
            try:
                async with asyncio.timeout(self.options.timeout):
                    await self._unsubscribe((channel,))
            except Exception as exc:
                logger.debug("broker %s: unsubscribing from %s failed: %s", self.name, channel, exc)

    async def receivers(self, channel: str) -> int:
        """How many live processes are subscribed to ``channel`` now."""
        self._require_up("query")
        return await self._timed(self._receivers(channel), "query")

    def count_changed(self) -> None:
        """This process's socket count changed: announce it soon (bursts are coalesced)."""
        if self._announcing or self._withdrawn or self._state is not BrokerState.UP:
            return
        self._announcing = True
        self._spawn(self._announce_soon())

    async def _announce_soon(self) -> None:
        try:
            await asyncio.sleep(ANNOUNCE_DELAY)
            if self._withdrawn:
                return
            async with asyncio.timeout(self.options.timeout):
                await self._announce(self._local_count())
        except Exception as exc:
            logger.debug("broker %s: announcing the socket count failed: %s", self.name, exc)
        finally:
            self._announcing = False

    async def withdraw(self) -> None:
        """Stop announcing this node, which goes on publishing and receiving until :meth:`close`.

        A server that is shutting down withdraws first, so that peers closing
        at the same time do not pick it to take their sessions (SPEC.md 17.5).
        Best effort: a failure is logged, and the announcement expires anyway.
        """
        self._withdrawn = True
        if self._state is not BrokerState.UP:
            return
        try:
            await self._timed(self._withdraw(), "withdraw")
        except BrokerError as exc:
            logger.debug("broker %s: withdrawing node %s failed: %s", self.name, self.node, exc)

    async def nodes(self) -> list[str]:
        """The ids of the live processes (this one included), as the service knows them now.

        :class:`~rtt.errors.BrokerError` while the link is down.
        """
        self._require_up("query")
        return await self._timed(self._nodes(), "query")

    async def count(self) -> int:
        """Sockets held by every live process: this one's now, the others' as last announced.

        A process announces a change within ``ANNOUNCE_DELAY`` (0.05 s) and
        its count anyway every ``heartbeat``.
        """
        self._require_up("count")
        return await self._timed(self._cluster_count(self._local_count()), "count")

    @property
    def channels(self) -> Collection[str]:
        """The channels this process is subscribed to (or will be, once the link is back)."""
        return self._channels.keys()

    def describe(self) -> str:
        """Where the service is, without credentials (for log lines and errors)."""
        url = self.options.url
        if not url:
            return "its default address"
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # not a number: show none rather than fail in an error message
            port = ""
        return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else "(an unparsable URL)"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.describe()} {self._state.name}>"

    # -- Calls a plugin makes ---------------------------------------------------

    async def _received(self, channel: str, payload: bytes) -> None:
        """Hand one message, in the order the service delivered it, to the server.

        The server may :meth:`subscribe` while handling it (a remote ``join``),
        so a plugin must not call this from the task that reads subscription
        confirmations: hand messages to another task, in order.
        """
        if self._deliver is not None and self._state is not BrokerState.CLOSED:
            await self._deliver(channel, payload)

    def _link_lost(self, error: BaseException | str) -> None:
        """Report that the link to the service is lost; the plugin then reconnects with backoff."""
        if self._state is not BrokerState.UP:
            return
        self._state = BrokerState.DOWN
        self._was_stable = time.monotonic() - self._up_since >= self.options.reconnect.stable_after
        self.outages += 1
        logger.warning(
            "broker %s at %s is down (%s); local sockets keep working, cross-process operations fail "
            "until it is back, and messages published meanwhile by other processes are lost for this one",
            self.name,
            self.describe(),
            error,
        )
        self._notify()

    async def _link_restored(self) -> None:
        """Report that the link is back: resubscribe to every channel, then go ``UP``."""
        if self._state is not BrokerState.DOWN:
            return
        if self._channels:
            await self._subscribe(tuple(self._channels))
        self._unconfirmed.clear()
        self._state = BrokerState.UP
        self._up_since = time.monotonic()
        logger.warning(
            "broker %s at %s is back after outage %d; resubscribed", self.name, self.describe(), self.outages
        )
        self._notify()
        if self._withdrawn:
            return
        try:
            async with asyncio.timeout(self.options.timeout):
                await self._announce(self._local_count())
        except Exception as exc:  # the heartbeat announces again; a lost link reports itself
            logger.debug("broker %s: announcing after the outage failed: %s", self.name, exc)

    def _delays(self) -> Iterator[float]:
        """Backoff delays for the plugin's reconnect loop, one iterator per outage.

        After a link that stayed up less than ``reconnect.stable_after`` seconds
        it is the last outage's iterator, going on from where that one ended.
        """
        if self._backoff is None or self._was_stable:
            self._backoff = self.options.reconnect.delays()
        return self._backoff

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task of the broker's; :meth:`close` cancels it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    # -- Hooks a plugin implements ------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the links (publishing and subscribing), announce the node; raise if unreachable."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Withdraw this node's announcement (best effort) and close every connection."""

    @abc.abstractmethod
    async def _publish(self, channel: str, payload: bytes) -> int:
        """Publish, in call order, and return the number of processes that received it."""

    @abc.abstractmethod
    async def _subscribe(self, channels: Collection[str]) -> None:
        """Subscribe; return once the service confirmed every channel."""

    @abc.abstractmethod
    async def _unsubscribe(self, channels: Collection[str]) -> None:
        """Unsubscribe (no need to wait for the confirmation)."""

    @abc.abstractmethod
    async def _receivers(self, channel: str) -> int:
        """How many live processes are subscribed to ``channel``."""

    @abc.abstractmethod
    async def _announce(self, count: int) -> None:
        """Say this node is alive and holds ``count`` sockets, for ``node_timeout`` seconds.

        May run while another call of it is under way (the heartbeat and a
        change of the count).

        Also the place to forget dead processes: a process that stopped
        announcing must stop receiving (and being counted) within
        ``node_timeout`` plus one ``heartbeat``.
        """

    @abc.abstractmethod
    async def _cluster_count(self, local: int) -> int:
        """Sockets on every live node, with ``local`` for this one."""

    async def _nodes(self) -> list[str]:
        """The live nodes' ids, this one included, in any order.

        Optional: the default knows only this node, so a server shutting down
        has no peer to hand its sessions to (they end, as without a broker).
        """
        return [self.node]

    async def _withdraw(self) -> None:
        """Remove this node's announcement now (optional: by default it expires after ``node_timeout``)."""
        return

    # -- Internals -------------------------------------------------------------------

    def _require_up(self, what: str) -> None:
        if self._state is not BrokerState.UP:
            raise BrokerError(f"cannot {what} through broker {self.name!r}: it is {self._state.value}")

    async def _timed(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            async with asyncio.timeout(self.options.timeout):
                return await awaitable
        except BrokerError:
            raise
        except TimeoutError:
            raise BrokerError(f"broker {self.name!r}: {what} took over {self.options.timeout} s") from None
        except Exception as exc:
            raise BrokerError(f"broker {self.name!r}: {what} failed: {exc}") from exc

    async def _heartbeat_loop(self) -> None:
        while self._state is not BrokerState.CLOSED:
            await asyncio.sleep(self.options.heartbeat)
            if self._state is not BrokerState.UP:
                continue
            try:
                async with asyncio.timeout(self.options.timeout):
                    if not self._withdrawn:
                        await self._announce(self._local_count())
                    retry = [c for c in self._unconfirmed if c in self._channels]
                    self._unconfirmed.clear()
                    if retry:
                        await self._subscribe(retry)
            except Exception as exc:
                logger.debug("broker %s: heartbeat failed: %s", self.name, exc)

    def _notify(self) -> None:
        state = self._state
        for listener in list(self._listeners):
            try:
                result = listener(state)
                if asyncio.iscoroutine(result):
                    self._spawn(result)
            except Exception:
                logger.exception("broker state listener %r raised", listener)

    async def _safe_close(self) -> None:
        try:
            async with asyncio.timeout(self.options.timeout):
                await self._close()
        except Exception as exc:
            logger.debug("broker %s: close failed: %s", self.name, exc)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("broker %s task failed", self.name, exc_info=task.exception())
