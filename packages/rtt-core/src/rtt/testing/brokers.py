"""The broker part of the conformance kit (SPEC.md 13): several servers, one cluster.

A broker plugin's test file::

    import rtt
    from rtt.testing import BrokerTests

    class TestNats(BrokerTests):
        def make_broker(self, **options):
            return rtt.load_broker("nats://127.0.0.1:4222", **options)

Each case starts :attr:`BrokerTests.nodes` servers in this process, each with
its own broker instance (so each is a node of the cluster, exactly as a
process would be), on the transport of :meth:`make_transport` (default: the
``mock`` transport of rtt-mock). Cases that need the service taken down
(:meth:`take_down`/:meth:`bring_back`) or a node to die without a goodbye
(:meth:`crash`) run when the test class overrides those hooks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest

from ..broker import Broker, BrokerState
from ..client import Client
from ..errors import BrokerError, UnknownSocketError
from ..events import CloseReason
from ..server import Server
from ..transport import Transport
from ._support import LogCapture, Recorder, case, eventually
from .kit import Kit, raises

__all__ = ["BrokerTests"]


class BrokerTests(Kit):
    """Cluster-wide send, broadcast, disconnect, groups, counts and failure reports."""

    #: Servers (nodes) each case starts.
    nodes: ClassVar[int] = 3
    #: Options given to every :meth:`make_broker` call: fast heartbeats and reconnects.
    broker_options: ClassVar[dict[str, Any]] = {
        "heartbeat": 0.2,
        "node_timeout": 1.0,
        "reconnect": {"min_delay": 0.05, "max_delay": 0.2, "factor": 2.0, "jitter": 0.0},
    }

    # -- Hooks a broker plugin's test class overrides ----------------------------

    def make_broker(self, **options: Any) -> Broker:
        """A new, unstarted broker of the service under test, built with ``options``."""
        raise NotImplementedError("override make_broker() to return a broker of the service under test")

    def make_transport(self, **options: Any) -> Transport:
        """The transport the nodes serve (default: ``mock``, from rtt-mock)."""
        from ..registry import load

        # No broker of its own: the kit gives each node one, and RTT_BROKER must not.
        return load("mock", **{"broker": None, **options})

    async def take_down(self) -> None:
        """Make the service unreachable for every node (override to run the outage case)."""
        raise NotImplementedError

    async def bring_back(self) -> None:
        """Make the service reachable again after :meth:`take_down`."""
        raise NotImplementedError

    async def crash(self, server: Server[Any]) -> None:
        """Make ``server``'s node vanish as a killed process would: no goodbye, no more heartbeats."""
        raise NotImplementedError

    # -- Helpers ------------------------------------------------------------------

    async def cluster(self, count: int | None = None, **options: Any) -> list[Server[Any]]:
        """Started servers, each a node with its own broker."""
        servers = []
        for _ in range(self.nodes if count is None else count):
            servers.append(await self.server(broker=self.make_broker(**self.broker_options), **options))
        return servers

    async def inbox(self, server: Server[Any]) -> tuple[Client, list[str | bytes]]:
        """A connected client of ``server`` and the list its messages arrive in."""
        client = await self.connected(server)
        got: list[str | bytes] = []
        client.on("message", got.append)
        return client, got

    def _skip_unless(self, hook: str) -> None:
        if getattr(type(self), hook) is getattr(BrokerTests, hook):
            pytest.skip(f"the test class does not override {hook}()")

    # -- Cases ---------------------------------------------------------------------

    @case()
    async def test_broadcast_reaches_every_socket_once(self) -> None:  # SPEC 13.4
        servers = await self.cluster()
        inboxes = [await self.inbox(s) for s in servers for _ in range(2)]
        assert await servers[0].broadcast("one") == 2
        assert await servers[-1].broadcast(b"two") == 2
        await servers[1].broadcast("three")
        for _client, got in inboxes:
            await eventually(lambda got=got: len(got) >= 3, 5, "every broadcast")  # type: ignore[misc]
        await asyncio.sleep(0.2)  # a duplicate would arrive by now
        for _client, got in inboxes:
            # Order is kept per sender only (13.5): three senders here.
            assert sorted(got, key=repr) == sorted(["one", b"two", "three"], key=repr)

    @case()
    async def test_exclude_works_for_ids_held_anywhere(self) -> None:  # SPEC 13.4
        servers = await self.cluster()
        (_a, got_a), (b, got_b), (c, got_c) = [await self.inbox(s) for s in servers]
        skip = [self.socket_of(b).id, self.socket_of(c).id]
        await servers[0].broadcast("not for b and c", exclude=skip)
        await servers[0].broadcast("for all")
        await eventually(lambda: len(got_b) >= 1 and len(got_c) >= 1 and len(got_a) >= 2, 5, "the broadcasts")
        await asyncio.sleep(0.1)
        assert got_a == ["not for b and c", "for all"]
        assert got_b == got_c == ["for all"]

    @case()
    async def test_send_reaches_a_socket_on_another_process(self) -> None:  # SPEC 13.4
        servers = await self.cluster()
        far = await self.connected(servers[-1])
        far_id = self.socket_of(far).id
        assert far_id not in servers[0].sockets
        await servers[0].send(far_id, "across")
        await servers[1].send(far_id, b"\x00bytes")
        assert [await far.recv(), await far.recv()] == ["across", b"\x00bytes"]

    @case()
    async def test_order_per_sender_is_kept(self) -> None:  # SPEC 13.5
        servers = await self.cluster(2)
        far, got = await self.inbox(servers[1])
        far_id = self.socket_of(far).id
        for i in range(100):
            if i % 3:
                await servers[0].send(far_id, str(i))
            else:
                await servers[0].broadcast(str(i))
        await eventually(lambda: len(got) >= 100, 10, "100 messages")
        assert got == [str(i) for i in range(100)]

    @case()
    async def test_unknown_ids_are_refused_in_bounded_time(self) -> None:  # SPEC 13.4
        servers = await self.cluster()
        gone = await self.connected(servers[1])
        gone_id = self.socket_of(gone).id
        await gone.close()
        await eventually(lambda: gone_id not in servers[1].sockets, 5, "the socket to leave")
        for server in servers:
            await raises(UnknownSocketError, server.send(gone_id, "x"))
            await raises(UnknownSocketError, server.send("never-such-an-id-1234", "x"))
            await raises(UnknownSocketError, server.disconnect("never-such-an-id-1234"))
            await raises(UnknownSocketError, server.join("never-such-an-id-1234", "g"))
            assert not await server.is_connected(gone_id)

    @case()
    async def test_disconnect_across_processes(self) -> None:  # SPEC 13.4, 6
        servers = await self.cluster(2)
        events = [Recorder().listen(s, "disconnect") for s in servers]
        far = await self.connected(servers[1], reconnect=self.reconnect)
        far_id = self.socket_of(far).id
        await servers[0].disconnect(far_id)
        assert (await far.wait_closed()) is CloseReason.SERVER_CLOSED
        await events[1].wait("disconnect")
        assert events[1].of("disconnect")[0][1] is CloseReason.SERVER_CLOSED
        assert events[0].of("disconnect") == []
        await raises(UnknownSocketError, servers[0].disconnect(far_id))

    @case()
    async def test_application_close_across_processes(self) -> None:  # SPEC 13.4, 6.3
        servers = await self.cluster(2)
        events = Recorder().listen(servers[1], "disconnect")
        far = await self.connected(servers[1], reconnect=self.reconnect)
        far_id = self.socket_of(far).id
        await servers[0].disconnect(far_id, code=4409, reason="logged in elsewhere")
        assert (await far.wait_closed()) is CloseReason.APPLICATION
        assert (far.close_code, far.close_text) == (4409, "logged in elsewhere")
        await events.wait("disconnect")
        assert events.of("disconnect")[0][1] is CloseReason.APPLICATION

    @case()
    async def test_events_stay_on_the_holding_process(self) -> None:  # SPEC 13.4
        servers = await self.cluster(2)
        records = [Recorder().listen(s, "connect", "message", "disconnect") for s in servers]
        client = await self.connected(servers[1])
        await client.send("hello")
        await records[1].wait("message")
        await client.close()
        await records[1].wait("disconnect")
        assert records[1].names() == ["connect", "message", "disconnect"]
        assert records[0].names() == []

    @case()
    async def test_groups_across_processes(self) -> None:  # SPEC 3.10, 13.4
        servers = await self.cluster()
        (a, got_a), (b, got_b), (_c, got_c) = [await self.inbox(s) for s in servers]
        a_id, b_id = (self.socket_of(x).id for x in (a, b))
        await servers[0].join(a_id, "room")  # local
        await servers[0].join(b_id, "room")  # held by another process
        await eventually(lambda: servers[1].groups(b_id) == {"room"}, 5, "the remote join")
        received_before = servers[2].stats.broker_received
        assert await servers[2].broadcast("to the room", group="room") == 0
        await servers[2].broadcast("to the room but a", group="room", exclude=a_id)
        await eventually(lambda: len(got_a) >= 1 and len(got_b) >= 2, 5, "the group broadcasts")
        await servers[2].leave(b_id, "room")
        await eventually(lambda: servers[1].groups(b_id) == frozenset(), 5, "the remote leave")
        await servers[0].broadcast("after b left", group="room")
        await eventually(lambda: len(got_a) >= 2, 5, "the last group broadcast")
        await asyncio.sleep(0.1)
        assert got_a == ["to the room", "after b left"]
        assert got_b == ["to the room", "to the room but a"]
        assert got_c == []
        # A process holding no member receives nothing for the group.
        assert servers[2].stats.broker_received == received_before

    @case()
    async def test_a_socket_leaves_its_groups_when_it_disconnects(self) -> None:  # SPEC 3.10
        servers = await self.cluster(2)
        client = await self.connected(servers[1])
        socket_id = self.socket_of(client).id
        await servers[0].join(socket_id, "g1")
        await servers[1].join(socket_id, "g2")
        await eventually(lambda: servers[1].groups(socket_id) == {"g1", "g2"}, 5, "both joins")
        await client.close()
        await eventually(lambda: socket_id not in servers[1].sockets, 5, "the disconnect")
        assert servers[1].members("g1") == servers[1].members("g2") == frozenset()
        assert servers[1].groups(socket_id) == frozenset()

    @case()
    async def test_cluster_count_and_presence(self) -> None:  # SPEC 13.4
        servers = await self.cluster()
        clients = [await self.connected(s) for s in servers for _ in range(2)]
        ids = [self.socket_of(c).id for c in clients]
        for server in servers:
            await eventually_async(server.socket_count, len(ids), "every node's count")
            assert all([await server.is_connected(i) for i in ids])
        await clients[0].close()
        await eventually_async(servers[-1].socket_count, len(ids) - 1, "the count after a disconnect")
        assert not await servers[2].is_connected(ids[0])

    @case()
    async def test_no_broker_keeps_counts_local(self) -> None:  # SPEC 13.1
        server = await self.server()
        other = await self.server()
        await self.connected(server)
        elsewhere = await self.connected(other)
        assert server.broker is None
        assert await server.socket_count() == 1
        await raises(UnknownSocketError, server.send(self.socket_of(elsewhere).id, "x"))
        assert not await server.is_connected(self.socket_of(elsewhere).id)

    @case()
    async def test_outage_is_reported_and_recovered(self) -> None:  # SPEC 13.6
        self._skip_unless("take_down")
        servers = await self.cluster(2)
        states = Recorder().listen(servers[0], "broker")
        (_near, got_near), (far, got_far) = [await self.inbox(s) for s in servers]
        far_id = self.socket_of(far).id
        with LogCapture() as logs:
            await self.take_down()
            try:
                await eventually(
                    lambda: servers[0].broker is not None and servers[0].broker.state is BrokerState.DOWN,
                    10,
                    "the broker to notice the outage",
                )
                error = await raises(BrokerError, servers[0].broadcast("local only"))
                assert error.local == 1
                await raises(BrokerError, servers[0].send(far_id, "lost?"))
                await eventually(lambda: got_near == ["local only"], 5, "local delivery during the outage")
                assert servers[0].stats.broker_outages == 1
                await states.wait("broker")
                assert states.of("broker")[0] == (BrokerState.DOWN,)
                assert any(
                    r.levelno == logging.WARNING and r.name.startswith("rtt.broker") for r in logs.records
                )
            finally:
                await self.bring_back()
        await eventually(
            lambda: all(s.broker is not None and s.broker.state is BrokerState.UP for s in servers),
            15,
            "every broker to reconnect",
        )
        await states.wait("broker", 2)
        assert states.of("broker")[1] == (BrokerState.UP,)
        await servers[0].send(far_id, "after")
        await servers[0].broadcast("everyone after")
        await eventually(lambda: got_far[-2:] == ["after", "everyone after"], 5, "delivery after the outage")
        assert got_near[-1] == "everyone after"

    @case()
    async def test_a_crashed_process_is_forgotten(self) -> None:  # SPEC 13.6
        self._skip_unless("crash")
        servers = await self.cluster(2)
        far = await self.connected(servers[1])
        far_id = self.socket_of(far).id
        await eventually_async(servers[0].socket_count, 1, "the count of 1")
        await self.crash(servers[1])
        bound = self.broker_options["node_timeout"] + 2 * self.broker_options["heartbeat"] + 1.0
        await eventually_async(lambda: _refused(servers[0], far_id), 0, "the id to be unknown", timeout=bound)
        assert not await servers[0].is_connected(far_id)
        await eventually_async(servers[0].socket_count, 0, "the count of 0", timeout=bound)


async def _refused(server: Server[Any], socket_id: str) -> int:
    try:
        await server.send(socket_id, "anyone?")
    except UnknownSocketError:
        return 0
    return 1


async def eventually_async(get: Any, expected: object, what: str, timeout: float = 5.0) -> None:
    """Wait until ``await get()`` equals ``expected``; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = await get()
    while value != expected:
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.02)
        value = await get()
