"""The Redis broker: live fan-out over Redis pub/sub, node liveness in expiring keys.

On Redis, with ``prefix`` ``rtt`` and node id ``N``:

- channel ``rtt:<channel>`` for each channel the server uses (``all``,
  ``s.<socket id>``, ``g.<group>``);
- key ``rtt:node:N``: N's socket count, expiring after ``node_timeout``,
  rewritten every ``heartbeat``;
- set ``rtt:nodes``: every node id that announced itself;
- both of N's connections are named ``rtt:node:N`` (CLIENT SETNAME), so the
  other nodes can cut a dead node's subscriptions (CLIENT KILL).

Each process holds two connections: one for commands and publishes, one
subscribed (it has no read timeout, as it may rightly be silent for hours;
a PING every heartbeat proves it is alive instead). Neither has a socket
timeout: every wait is bounded by the broker's own ``timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from rtt.broker import Broker, BrokerState
from rtt.errors import BrokerError, OptionError

__all__ = ["DEFAULT_URL", "MAX_PAYLOAD", "RedisBroker"]

logger = logging.getLogger("rtt.broker.redis")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
"""Where the broker connects when its ``url`` option is not set."""

MAX_PAYLOAD = 16 * 1024 * 1024
"""Largest envelope published: half of Redis's default hard limit on a subscriber's output buffer
(``client-output-buffer-limit pubsub 32mb 8mb 60``), past which Redis silently disconnects it."""

_INBOX = 256
"""Messages read from Redis but not yet delivered; past it the reader waits and Redis buffers."""


class RedisBroker(Broker):
    """A :class:`rtt.Broker` over Redis pub/sub (``redis://``, ``rediss://``, ``unix://`` URLs)."""

    name = "redis"
    schemes = ("redis", "rediss", "unix")
    max_payload = MAX_PAYLOAD
    # One Redis server runs one command at a time: a PUBLISH is pushed to every subscriber's output
    # buffer, in execution order, before the next command runs, and each subscriber reads its buffer
    # in order over one connection (the reader hands messages on in that order). A SUBSCRIBE is
    # confirmed after it took effect, so every PUBLISH executed later reaches this node. (Redis
    # Cluster, where publishes cross shards, is refused at start.)
    total_order = True

    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        try:
            # Parsed now so a bad URL fails where it is configured, not at start.
            parse_url(self.options.url or DEFAULT_URL)
        except ValueError as exc:
            # Not naming the URL: it may hold a password, and describe() cannot parse it either.
            raise OptionError(f"broker 'redis' option url is not a usable Redis URL: {exc}") from None
        prefix = self.options.prefix
        self._nodes_key = f"{prefix}:nodes"
        self._cut = len(prefix.encode()) + 1
        self._client: Redis | None = None
        self._sub: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[Any]] = []
        self._reconnector: asyncio.Task[Any] | None = None
        self._outbox: list[tuple[bytes, bytes, asyncio.Future[int]]] = []
        self._outbox_ready = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(_INBOX)
        # SUBSCRIBE confirmations arrive in command order, so each channel keeps a queue of waiters.
        self._confirming: dict[bytes, collections.deque[asyncio.Future[None]]] = {}
        self._ping_since: float | None = None
        self._announced = False
        self._kill_refused = False

    # -- Connections ----------------------------------------------------------------

    def _node_key(self, node: str) -> str:
        return f"{self.options.prefix}:node:{node}"

    def _channel(self, channel: str) -> bytes:
        return f"{self.options.prefix}:{channel}".encode()

    def _make_connections(self) -> None:
        """Build (not connect) the two connections; they are reconnected, never replaced.

        Never replaced, so a straggler still holding one after a reconnect cannot leave an
        orphan connection behind: whatever it opens is closed by the next drop or by close.
        """
        kwargs: dict[str, Any] = dict(parse_url(self.options.url or DEFAULT_URL))
        connection_class: type[AbstractConnection] = kwargs.pop("connection_class", Connection)
        # These win over the URL's query string: the broker's timeouts bound every wait, redis-py's
        # own retries would hide a lost link (and could publish twice), replies must be raw bytes,
        # RESP2 delivers pub/sub messages as replies the reader reads, and one connection publishes.
        for owned in ("max_connections", "timeout"):
            kwargs.pop(owned, None)
        kwargs.update(
            client_name=self._node_key(self.node),
            socket_connect_timeout=self.options.connect_timeout,
            # No socket timeout: every wait is bounded by an asyncio.timeout instead, since with one
            # redis-py sends through asyncio.wait_for, which on Python 3.11 can swallow a cancellation
            # (and so hang the broker's close).
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
            protocol=2,
        )
        pool = BlockingConnectionPool(
            connection_class=connection_class, max_connections=1, timeout=self.options.timeout, **kwargs
        )
        self._client = Redis(connection_pool=pool)
        self._sub = connection_class(**kwargs)

    async def _open(self) -> None:
        """(Re)connect both connections and start reading the subscribed one."""
        assert self._client is not None and self._sub is not None
        await self._drop(BrokerError("the connection to Redis was reopened"))
        await self._client.ping()
        connect: Callable[[], Awaitable[None]] = self._sub.connect  # untyped in some redis-py versions
        await connect()
        self._ping_since = None
        self._reader = self._spawn(self._read(self._sub))

    async def _drop(self, error: BaseException) -> None:
        """Disconnect both connections (best effort); whoever waits on them gets ``error``."""
        self._fail_waiters(error)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        # Suppressed: closing a connection to a hung Redis can time out, and it is closed all the same.
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.disconnect(nowait=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.connection_pool.disconnect()

    async def _send(self, *args: str | bytes) -> None:
        """Send a command on the subscribed connection."""
        sub = self._sub
        # redis-py would quietly reconnect a closed connection, unsubscribed, behind the reader.
        if sub is None or not sub.is_connected:
            raise BrokerError("the subscribed connection to Redis is closed")
        await sub.send_command(*args, check_health=False)

    def _fail_waiters(self, error: BaseException) -> None:
        outbox, self._outbox = self._outbox, []
        for _, _, future in outbox:
            if not future.done():
                future.set_exception(error)
        confirming, self._confirming = self._confirming, {}
        for waiters in confirming.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)

    def _lost(self, error: BaseException) -> None:
        """Either connection failed: report it once, and reconnect until the link is back."""
        if self.state is BrokerState.UP:
            self._link_lost(error)
            self._fail_waiters(BrokerError(f"the link to Redis was lost: {error}"))
        if self.state is BrokerState.DOWN and (self._reconnector is None or self._reconnector.done()):
            self._reconnector = self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        delays = self._delays()
        # Checked after every attempt: the new link may fail again while it is being restored.
        while self.state is BrokerState.DOWN:
            await asyncio.sleep(next(delays))
            try:
                async with asyncio.timeout(self.options.connect_timeout + self.options.timeout):
                    await self._open()
                    await self._link_restored()
            except Exception as exc:
                logger.debug("redis broker at %s: reconnecting failed: %s", self.describe(), exc)

    # -- Background tasks ---------------------------------------------------------------

    async def _read(self, sub: AbstractConnection) -> None:
        """Read the subscribed connection: confirmations and pongs here, messages to the inbox."""
        try:
            while True:
                reply = await sub.read_response()
                kind = reply[0] if isinstance(reply, list) else reply
                if kind == b"message":
                    # Handed over rather than delivered here: delivering may subscribe (a remote
                    # join), which waits for a confirmation only this loop can read.
                    await self._inbox.put((reply[1][self._cut :].decode(), reply[2]))
                elif kind == b"subscribe":
                    waiters = self._confirming.get(reply[1])
                    if waiters:
                        waiter = waiters.popleft()
                        if not waiters:
                            del self._confirming[reply[1]]
                        if not waiter.done():
                            waiter.set_result(None)
                elif kind in (b"pong", b"PONG"):
                    self._ping_since = None
        except Exception as exc:
            self._lost(exc)

    async def _deliver_loop(self) -> None:
        while True:
            channel, payload = await self._inbox.get()
            try:
                await self._received(channel, payload)
            except Exception:
                logger.exception("redis broker: delivering a message from channel %s failed", channel)

    async def _write_loop(self) -> None:
        """Send every queued publish in one pipeline, in call order, one pipeline at a time."""
        while True:
            while not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            batch, self._outbox = self._outbox, []
            assert self._client is not None
            try:
                pipe = self._client.pipeline(transaction=False)
                for channel, payload, _ in batch:
                    pipe.publish(channel, payload)
                async with asyncio.timeout(self.options.timeout):
                    replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                self._lost(exc)
                continue
            for (_, _, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue  # the caller gave up (timeout)
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(int(reply))

    # -- The Broker hooks -------------------------------------------------------------------

    async def _connect(self) -> None:
        self._make_connections()
        await self._open()
        assert self._client is not None
        if (await self._client.info("cluster")).get("cluster_enabled") == 1:
            # Plain pub/sub on a cluster reaches every shard, and the node keys span slots (SPEC.md 13.9).
            raise BrokerError(
                f"broker 'redis' at {self.describe()} is a Redis Cluster node, which rtt-redis does not "
                "support: use a standalone Redis (or one per rtt cluster, by prefix)"
            )
        self._workers = [self._spawn(self._write_loop()), self._spawn(self._deliver_loop())]
        await self._announce(self._local_count())

    async def _close(self) -> None:
        # The base cancels the tasks on close(), but not when start() fails.
        for task in self._workers:
            task.cancel()
        if self._client is not None and self._announced:
            try:
                await self._withdraw()
            except Exception as exc:
                logger.debug("redis broker: withdrawing node %s failed: %s", self.node, exc)
        await self._drop(BrokerError("the broker is closed"))

    async def _publish(self, channel: str, payload: bytes) -> int:
        if len(payload) > MAX_PAYLOAD:
            raise BrokerError(
                f"broker 'redis': a message of {len(payload)} bytes is over the {MAX_PAYLOAD} byte cap "
                "(Redis disconnects a subscriber whose pub/sub output buffer passes 32 MB)"
            )
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._outbox.append((self._channel(channel), payload, future))
        self._outbox_ready.set()
        return await future

    async def _subscribe(self, channels: Collection[str]) -> None:
        loop = asyncio.get_running_loop()
        names = [self._channel(channel) for channel in channels]
        waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        for name in names:
            # Registered before sending: the confirmation may be read before send_command returns.
            waiter: asyncio.Future[None] = loop.create_future()
            self._confirming.setdefault(name, collections.deque()).append(waiter)
            waiting.append((name, waiter))
        try:
            await self._send("SUBSCRIBE", *names)
            await asyncio.gather(*(waiter for _, waiter in waiting))
        except BaseException:
            for name, waiter in waiting:
                waiters = self._confirming.get(name)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
            raise

    async def _unsubscribe(self, channels: Collection[str]) -> None:
        await self._send("UNSUBSCRIBE", *map(self._channel, channels))

    async def _receivers(self, channel: str) -> int:
        assert self._client is not None
        ((_, count),) = await self._client.pubsub_numsub(self._channel(channel))
        return int(count)

    async def _announce(self, count: int) -> None:
        client = self._client
        assert client is not None
        now = asyncio.get_running_loop().time()
        if self._ping_since is not None and now - self._ping_since > self.options.timeout:
            # A hung Redis or a half-open TCP connection, which the reader would wait on forever.
            self._lost(TimeoutError(f"no PONG on the subscribed connection within {self.options.timeout} s"))
            return
        if self._ping_since is None:
            self._ping_since = now
        await self._send("PING")
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(self._node_key(self.node), count, px=round(self.options.node_timeout * 1000))
            pipe.sadd(self._nodes_key, self.node)
            pipe.smembers(self._nodes_key)
            *_, members = await pipe.execute()
        self._announced = True
        dead = [node for node, known in (await self._counts(members)).items() if known is None]
        if dead:
            await self._forget(client, dead)

    async def _forget(self, client: Redis, dead: list[str]) -> None:
        """Remove nodes that stopped announcing, and cut their connections so they stop receiving."""
        await client.srem(self._nodes_key, *dead)
        names = {self._node_key(node) for node in dead}
        try:
            for entry in await client.client_list():
                if entry.get("name") in names:
                    await client.client_kill_filter(_id=entry["id"])
        except ResponseError as exc:
            if not self._kill_refused:
                self._kill_refused = True
                logger.warning(
                    "redis broker: cannot cut the connections of dead nodes (%s); their subscriptions "
                    "stay until Redis notices the connections are gone",
                    exc,
                )
        logger.info("redis broker: forgot dead nodes %s", ", ".join(dead))

    async def _withdraw(self) -> None:
        assert self._client is not None
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(self._node_key(self.node))
            pipe.srem(self._nodes_key, self.node)
            await pipe.execute()

    async def _nodes(self) -> list[str]:
        assert self._client is not None
        counts = await self._counts(await self._client.smembers(self._nodes_key))
        return [self.node, *(node for node, count in counts.items() if count is not None)]

    async def _counts(self, members: Collection[bytes | str]) -> dict[str, int | None]:
        """The socket count each other node in ``members`` last announced (``None``: its key expired)."""
        assert self._client is not None
        others = sorted({_text(member) for member in members} - {self.node})
        if not others:
            return {}
        counts = await self._client.mget([self._node_key(node) for node in others])
        return {node: None if n is None else int(n) for node, n in zip(others, counts, strict=True)}

    async def _cluster_count(self, local: int) -> int:
        assert self._client is not None
        counts = await self._counts(await self._client.smembers(self._nodes_key))
        return local + sum(count for count in counts.values() if count is not None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
