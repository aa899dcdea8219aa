"""The memory broker: servers of one process joined as if they were several processes.

``rtt.load_broker("memory://NAME")`` (or the server option
``broker="memory://NAME"``) joins every server using hub ``NAME``. It is the
test double of SPEC.md 13, like the mock transport is of sections 3-10: it
passes the broker part of the conformance kit, and a hub can be taken down
(:meth:`MemoryHub.fail`, :meth:`MemoryHub.recover`) or lose one node without
a goodbye (:meth:`MemoryHub.crash`) to test what applications see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from urllib.parse import urlsplit

from rtt import BrokerError
from rtt.broker import Broker

__all__ = ["MemoryBroker", "MemoryHub", "hub"]


class MemoryHub:
    """One in-memory message service: channels, their subscribers, and the live nodes' counts."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.subscribers: dict[str, set[MemoryBroker]] = {}
        self.counts: dict[str, int] = {}
        self.brokers: set[MemoryBroker] = set()

    def fail(self) -> None:
        """Take the service down: every broker loses its link and its subscriptions, as with Redis."""
        self.up = False
        self.subscribers.clear()
        self.counts.clear()
        for broker in list(self.brokers):
            broker._link_lost("memory hub is down")

    def recover(self) -> None:
        """Bring the service back; every broker reconnects after its backoff delay."""
        self.up = True
        for broker in list(self.brokers):
            broker._spawn(broker._reconnect())

    def crash(self, broker: MemoryBroker) -> None:
        """Forget ``broker``'s node at once, as the service does when a process dies."""
        self._drop(broker)
        self.brokers.discard(broker)
        broker._crashed = True

    def _drop(self, broker: MemoryBroker) -> None:
        for channel in [c for c, subs in self.subscribers.items() if broker in subs]:
            subs = self.subscribers[channel]
            subs.discard(broker)
            if not subs:
                del self.subscribers[channel]
        self.counts.pop(broker.node, None)


_hubs: dict[str, MemoryHub] = {}


def hub(name: str = "default") -> MemoryHub:
    """The hub called ``name`` in this process (made on first use)."""
    found = _hubs.get(name)
    if found is None:
        found = _hubs[name] = MemoryHub(name)
    return found


class MemoryBroker(Broker):
    """``memory://NAME``: a broker whose service is a :class:`MemoryHub` of this process."""

    name = "memory"
    schemes = ("memory",)
    spans_processes = False
    # One event loop puts each publish into every subscriber's inbox before the next publish runs,
    # and each inbox is read in order; a subscription is in the hub when _subscribe returns.
    total_order = True

    def __init__(self, url: str | None = None, **options: object) -> None:
        super().__init__(url, **options)
        self.hub = hub(urlsplit(self.options.url or "memory://default").netloc or "default")
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._crashed = False

    async def _connect(self) -> None:
        if not self.hub.up:
            raise BrokerError(f"memory hub {self.hub.name!r} is down")
        self.hub.brokers.add(self)
        self._spawn(self._read())
        await self._announce(0)

    async def _reconnect(self) -> None:
        for delay in self._delays():
            await asyncio.sleep(delay)
            if self.hub.up:
                await self._link_restored()
                return

    async def _read(self) -> None:
        # One reader per node keeps the service's delivery order, as one pub/sub connection does.
        while True:
            channel, payload = await self._inbox.get()
            await self._received(channel, payload)

    async def _close(self) -> None:
        self.hub._drop(self)
        self.hub.brokers.discard(self)

    def _check(self) -> None:
        if not self.hub.up or self._crashed:
            raise BrokerError(f"memory hub {self.hub.name!r} is down")

    async def _publish(self, channel: str, payload: bytes) -> int:
        self._check()
        receivers = self.hub.subscribers.get(channel, ())
        for broker in receivers:
            broker._inbox.put_nowait((channel, payload))
        return len(receivers)

    async def _subscribe(self, channels: Collection[str]) -> None:
        self._check()
        for channel in channels:
            self.hub.subscribers.setdefault(channel, set()).add(self)

    async def _unsubscribe(self, channels: Collection[str]) -> None:
        self._check()
        for channel in channels:
            subs = self.hub.subscribers.get(channel)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del self.hub.subscribers[channel]

    async def _receivers(self, channel: str) -> int:
        self._check()
        return len(self.hub.subscribers.get(channel, ()))

    async def _announce(self, count: int) -> None:
        self._check()
        self.hub.counts[self.node] = count

    async def _withdraw(self) -> None:
        self._check()
        self.hub.counts.pop(self.node, None)

    async def _nodes(self) -> list[str]:
        self._check()
        return list(self.hub.counts)

    async def _cluster_count(self, local: int) -> int:
        self._check()
        return local + sum(n for node, n in self.hub.counts.items() if node != self.node)
