"""rtt-redis against a real redis-server: several servers (nodes) in this process and in others.

Every node has its own RedisBroker, so each is a node of the cluster exactly as a process
would be; the cases where a process dies run a second Python process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

import rtt
from rtt import BrokerError, BrokerState, CloseReason, OptionError, ServerState, UnknownSocketError
from rtt.broker import HEADER_LIMIT
from rtt.testing import eventually
from rtt_redis import MAX_PAYLOAD, RedisBroker

from .conftest import FAST, REDIS_SERVER, RedisServer, free_port

MiB = 1024 * 1024


def broker_config(url: str, **options: Any) -> dict[str, Any]:
    return {"broker": url, "options": {**FAST, **options}}


class Cluster:
    """Servers of one transport, each a node with its own Redis broker, and clients of them."""

    def __init__(self, transport: str, url: str) -> None:
        self.transport = rtt.load(transport)
        self.url = url
        self.servers: list[rtt.Server[Any]] = []
        self.clients: list[rtt.Client] = []

    async def node(self, **options: Any) -> rtt.Server[Any]:
        broker = options.pop("broker", None) or broker_config(self.url)
        server = self.transport.server(broker=broker, **options)
        self.servers.append(server)
        await server.start()
        return server

    async def nodes(self, count: int) -> list[rtt.Server[Any]]:
        return [await self.node() for _ in range(count)]

    async def connect(self, server: rtt.Server[Any], **options: Any) -> tuple[rtt.Client, str, list[Any]]:
        """A client of ``server``, its socket id, and the list its messages arrive in."""
        before = set(server.sockets)
        client = self.transport.client(server.url, reconnect=False, **options)
        self.clients.append(client)
        got: list[Any] = []
        client.on("message", got.append)
        await client.connect()
        await eventually(lambda: set(server.sockets) - before, 5, "the socket on the server")
        (socket_id,) = set(server.sockets) - before
        return client, socket_id, got

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for server in self.servers:
            await server.close()


@pytest.fixture(params=["mock", "ws"])
async def cluster(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[Cluster]:
    """Nodes of the ``mock`` and of the ``ws`` transport sharing one redis-server."""
    made = Cluster(request.param, redis_server.url)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def mock_cluster(redis_server: RedisServer) -> AsyncIterator[Cluster]:
    made = Cluster("mock", redis_server.url)
    try:
        yield made
    finally:
        await made.close()


def broker_of(server: rtt.Server[Any]) -> RedisBroker:
    assert isinstance(server.broker, RedisBroker)
    return server.broker


async def settle() -> None:
    """Long enough for a stray or duplicate message to have arrived over loopback."""
    await asyncio.sleep(0.2)


async def wait_for_value(
    get: Callable[[], Awaitable[object]], expected: object, what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while (value := await get()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.02)


# -- Cross-process operations -------------------------------------------------------------


async def test_broadcast_reaches_every_socket_on_every_node_exactly_once(cluster: Cluster) -> None:
    servers = await cluster.nodes(3)
    inboxes = [(await cluster.connect(server))[2] for server in servers for _ in range(2)]
    assert await servers[0].broadcast("one") == 2
    assert await servers[2].broadcast(b"two") == 2
    await eventually(lambda: all(len(got) >= 2 for got in inboxes), 5, "both broadcasts everywhere")
    await settle()
    for got in inboxes:
        assert sorted(got, key=repr) == sorted(["one", b"two"], key=repr)
    assert servers[1].stats.broker_received == 2
    assert servers[0].stats.broker_published == 1


async def test_exclude_works_for_ids_held_on_another_node(cluster: Cluster) -> None:
    servers = await cluster.nodes(3)
    (_, _, got_a), (_, b_id, got_b), (_, c_id, got_c) = [await cluster.connect(s) for s in servers]
    await servers[0].broadcast("not for b and c", exclude=[b_id, c_id])
    await servers[0].broadcast("for all")
    await eventually(lambda: len(got_a) == 2 and got_b and got_c, 5, "the broadcasts")
    await settle()
    assert got_a == ["not for b and c", "for all"]
    assert got_b == got_c == ["for all"]


async def test_group_broadcast_reaches_only_members_and_only_their_nodes(cluster: Cluster) -> None:
    servers = await cluster.nodes(3)
    (_, a_id, got_a), (_, b_id, got_b), (_, _, got_c) = [await cluster.connect(s) for s in servers]
    await servers[0].join(a_id, "room")
    await servers[2].join(b_id, "room")  # held by another node
    # join returns once the holding node was sent the join, not once it acted on it.
    await eventually(lambda: servers[1].groups(b_id) == {"room"}, 5, "the remote join")
    assert await broker_of(servers[0]).receivers("g.room") == 2
    quiet_before = servers[2].stats.broker_received
    assert await servers[2].broadcast("to the room", group="room") == 0
    await servers[0].broadcast("to the room but a", group="room", exclude=a_id)
    await eventually(lambda: got_a and len(got_b) == 2, 5, "the group broadcasts")
    await servers[0].leave(b_id, "room")  # held by another node
    await eventually(lambda: servers[1].groups(b_id) == frozenset(), 5, "the remote leave")
    await servers[2].broadcast("after b left", group="room")
    await eventually(lambda: len(got_a) == 2, 5, "the last group broadcast")
    await settle()
    assert got_a == ["to the room", "after b left"]
    assert got_b == ["to the room", "to the room but a"]
    assert got_c == []
    # The node holding no member was never sent the group's messages.
    assert servers[2].stats.broker_received == quiet_before


async def test_send_reaches_a_socket_on_another_node(cluster: Cluster) -> None:
    servers = await cluster.nodes(2)
    _, far_id, got = await cluster.connect(servers[1])
    assert far_id not in servers[0].sockets
    await servers[0].send(far_id, "across")
    await servers[0].send(far_id, b"\x00bytes")
    await eventually(lambda: len(got) == 2, 5, "both messages")
    assert got == ["across", b"\x00bytes"]


async def test_an_id_nobody_holds_is_unknown_everywhere(cluster: Cluster) -> None:
    servers = await cluster.nodes(2)
    gone, gone_id, _ = await cluster.connect(servers[1])
    await gone.close()
    await eventually(lambda: gone_id not in servers[1].sockets, 5, "the socket to leave")
    for server in servers:
        for socket_id in (gone_id, "nobody-holds-this-id"):
            with pytest.raises(UnknownSocketError):
                await server.send(socket_id, "x")
            with pytest.raises(UnknownSocketError):
                await server.disconnect(socket_id)
            with pytest.raises(UnknownSocketError):
                await server.join(socket_id, "g")
            assert not await server.is_connected(socket_id)


async def test_disconnect_across_nodes(cluster: Cluster) -> None:
    servers = await cluster.nodes(2)
    reasons: list[CloseReason] = []
    servers[1].on("disconnect", lambda socket, reason: reasons.append(reason))
    far, far_id, _ = await cluster.connect(servers[1])
    await servers[0].disconnect(far_id)
    assert await asyncio.wait_for(far.wait_closed(), 5) is CloseReason.SERVER_CLOSED
    await eventually(lambda: reasons, 5, "the disconnect event on the holding node")
    assert reasons == [CloseReason.SERVER_CLOSED]
    with pytest.raises(UnknownSocketError):
        await servers[0].disconnect(far_id)


async def test_a_socket_leaves_its_groups_everywhere_when_it_disconnects(cluster: Cluster) -> None:
    servers = await cluster.nodes(2)
    client, socket_id, _ = await cluster.connect(servers[1])
    await servers[0].join(socket_id, "g1")
    await servers[1].join(socket_id, "g2")
    await eventually(lambda: servers[1].groups(socket_id) == {"g1", "g2"}, 5, "both joins")
    await client.close()
    await eventually(lambda: socket_id not in servers[1].sockets, 5, "the disconnect")
    assert servers[1].members("g1") == servers[1].members("g2") == frozenset()
    broker = broker_of(servers[0])
    for channel in ("g.g1", "g.g2", f"s.{socket_id}"):
        await wait_for_value(lambda c=channel: broker.receivers(c), 0, f"nobody on {channel}", 5)  # type: ignore[misc]


async def test_socket_count_and_is_connected_across_nodes(cluster: Cluster) -> None:
    servers = await cluster.nodes(3)
    connected = [await cluster.connect(s) for s in servers for _ in range(2)]
    for server in servers:
        await wait_for_value(server.socket_count, 6, "every node's count", 5)
        for _, socket_id, _ in connected:
            assert await server.is_connected(socket_id)
    first, first_id, _ = connected[0]
    await first.close()
    await wait_for_value(servers[2].socket_count, 5, "the count after a disconnect", 5)
    assert not await servers[2].is_connected(first_id)


async def test_clusters_with_different_prefixes_do_not_meet(redis_server: RedisServer) -> None:
    transport = rtt.load("mock")
    one = transport.server(broker=broker_config(redis_server.url, prefix="one"))
    two = transport.server(broker=broker_config(redis_server.url, prefix="two"))
    async with one, two, transport.client(two.url, reconnect=False) as client:
        await eventually(lambda: two.sockets, 5, "the socket")
        (socket_id,) = two.sockets
        with pytest.raises(UnknownSocketError):
            await one.send(socket_id, "x")
        assert await one.socket_count() == 0
        await one.broadcast("for cluster one only")
        await settle()
        assert two.stats.broker_received == 0
        await two.send(socket_id, "ok")
        assert await client.recv() == "ok"


async def test_a_unix_socket_url_works(redis_server: RedisServer) -> None:
    transport = rtt.load("mock")
    one = transport.server(broker=broker_config(redis_server.unix_url))
    two = transport.server(broker=broker_config(redis_server.unix_url))
    async with one, two, transport.client(two.url, reconnect=False) as client:
        await eventually(lambda: two.sockets, 5, "the socket")
        (socket_id,) = two.sockets
        await one.send(socket_id, "over a unix socket")
        assert await client.recv() == "over a unix socket"


async def test_url_options_the_broker_owns_are_overridden(redis_server: RedisServer) -> None:
    owned = "socket_timeout=30&max_connections=9&timeout=30&decode_responses=True&protocol=3"
    url = f"{redis_server.url}?{owned}"
    transport = rtt.load("mock")
    one = transport.server(broker=broker_config(url))
    two = transport.server(broker=broker_config(url))
    async with one, two, transport.client(two.url, reconnect=False) as client:
        await eventually(lambda: two.sockets, 5, "the socket")
        (socket_id,) = two.sockets
        await one.send(socket_id, b"raw bytes")
        assert await client.recv() == b"raw bytes"


async def test_publishes_keep_call_order_and_are_batched(mock_cluster: Cluster) -> None:
    servers = await mock_cluster.nodes(2)
    _, far_id, got = await mock_cluster.connect(servers[1])
    # Started together: they queue while the first pipeline is in flight and go out in one.
    results = await asyncio.gather(*(servers[0].send(far_id, str(i)) for i in range(200)))
    assert results == [None] * 200
    await eventually(lambda: len(got) == 200, 5, "200 messages")
    assert got == [str(i) for i in range(200)]


# -- Limits and configuration --------------------------------------------------------------


async def test_a_payload_over_16_mib_is_refused(redis_server: RedisServer) -> None:
    # A server whose messages could not fit is refused when its options are built...
    with pytest.raises(OptionError, match="does not fit broker 'redis'"):
        rtt.load("mock", max_message_size=20 * MiB, broker=redis_server.url)
    # ... the largest message that fits crosses processes ...
    limit = MAX_PAYLOAD - HEADER_LIMIT
    transport = rtt.load("mock", max_message_size=limit, outbound_limit=64 * MiB)
    one = transport.server(broker=broker_config(redis_server.url, timeout=5.0))
    two = transport.server(broker=broker_config(redis_server.url, timeout=5.0))
    async with one, two, transport.client(two.url) as far:
        await eventually(lambda: bool(two.sockets), 5, "the socket")
        (far_id,) = two.sockets
        largest = b"y" * limit
        await one.send(far_id, largest)
        assert await far.recv() == largest
        # ... and the broker itself refuses an envelope over its cap.
        assert one.broker is not None
        with pytest.raises(BrokerError, match="16777216 byte cap"):
            await one.broker.publish("all", b"x" * (MAX_PAYLOAD + 1))


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:notaport/0", "redis://127.0.0.1/0?socket_timeout=soon", "http://127.0.0.1/"]
)
def test_a_bad_url_is_an_option_error_at_construction(url: str) -> None:
    with pytest.raises(rtt.ConfigError):
        rtt.load("mock", broker=url)
    with pytest.raises(OptionError):
        RedisBroker(url)


def test_registration() -> None:
    assert type(rtt.load_broker("redis://127.0.0.1:6379/0")) is RedisBroker
    assert type(rtt.load_broker("rediss://127.0.0.1:6380/0")) is RedisBroker
    assert type(rtt.load_broker("unix:///run/redis.sock")) is RedisBroker
    assert type(rtt.load_broker("redis")) is RedisBroker
    assert "redis" in {p.name for p in rtt.available() if p.kind == "broker"}


async def test_unreachable_redis_refuses_to_start(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://someone:secret@127.0.0.1:{port}/0"
    server = rtt.load("mock").server(broker=broker_config(url))
    started = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        await server.start()
    assert time.monotonic() - started < FAST["connect_timeout"]
    message = str(caught.value)
    assert "\n" not in message and f"redis://127.0.0.1:{port}/0" in message
    assert "secret" not in message and "someone" not in message
    assert server.state is ServerState.CLOSED
    assert "secret" not in caplog.text


async def test_a_redis_that_never_answers_refuses_start_within_connect_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts (in the kernel) but never answers
        port = silent.getsockname()[1]
        server = rtt.load("mock").server(
            broker=broker_config(f"redis://127.0.0.1:{port}", connect_timeout=0.5)
        )
        started = time.monotonic()
        with pytest.raises(BrokerError, match=r"did not answer within 0\.5 s"):
            await server.start()
        assert time.monotonic() - started < 1.5
        assert server.state is ServerState.CLOSED


# -- Node liveness ---------------------------------------------------------------------------


async def test_close_withdraws_the_node(redis_server: RedisServer) -> None:
    server = rtt.load("mock").server(broker=broker_config(redis_server.url))
    await server.start()
    node = server.node
    names = redis.asyncio.Redis(port=redis_server.port)
    try:
        assert await names.exists(f"rtt:node:{node}") == 1
        clients = [c for c in await names.client_list() if c["name"] == f"rtt:node:{node}"]
        assert len(clients) == 2  # commands and pub/sub
        await server.close()
        assert await names.exists(f"rtt:node:{node}") == 0
        assert await names.smembers("rtt:nodes") == set()
        await asyncio.sleep(0.05)  # Redis reaps a closed connection on its next event loop turn
        assert not [c for c in await names.client_list() if c["name"] == f"rtt:node:{node}"]
    finally:
        await names.aclose()


async def test_the_janitor_cuts_a_dead_nodes_connections(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rtt.broker.redis")
    async with fake_dead_node(redis_server, "ghost", "s.ghost-socket") as reader:
        server = rtt.load("mock").server(broker=broker_config(redis_server.url))
        async with server:
            # Its connection is cut within a heartbeat: it sees the end of the stream.
            assert await asyncio.wait_for(reader.read(), 2) == b""
            assert not await server.is_connected("ghost-socket")
            assert "forgot dead nodes ghost" in caplog.text


async def test_a_refused_client_kill_warns_once_and_carries_on(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    acl = (b"ACL", b"SETUSER", b"limited", b"on", b">pw", b"~*", b"&*", b"+@all", b"-client|kill")
    assert redis_server.command(*acl) == b"+OK"
    caplog.set_level(logging.INFO, "rtt.broker.redis")
    url = f"redis://limited:pw@127.0.0.1:{redis_server.port}/0"
    server = rtt.load("mock").server(broker=broker_config(url))
    async with server, fake_dead_node(redis_server, "ghost1", "s.one"):
        await eventually(lambda: "cannot cut the connections" in caplog.text, 3, "the warning")
        async with fake_dead_node(redis_server, "ghost2", "s.two"):
            await eventually(lambda: "ghost2" in caplog.text, 3, "the second dead node forgotten")
            # Still subscribed (nobody could cut it), still warned only once.
            assert await server.is_connected("one")
            assert caplog.text.count("cannot cut the connections") == 1
            assert broker_of(server).state is BrokerState.UP


@contextlib.asynccontextmanager
async def fake_dead_node(
    redis_server: RedisServer, node: str, channel: str
) -> AsyncIterator[asyncio.StreamReader]:
    """A raw connection named as node ``node`` and subscribed to ``channel``: listed, never announced."""
    reader, writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
    try:
        name, full = f"rtt:node:{node}".encode(), f"rtt:{channel}".encode()
        writer.write(resp(b"CLIENT", b"SETNAME", name) + resp(b"SUBSCRIBE", full))
        assert await reader.readline() == b"+OK\r\n"
        await reader.readuntil(full + b"\r\n")
        assert await reader.readline() == b":1\r\n"  # subscribed to one channel
        assert redis_server.command(b"SADD", b"rtt:nodes", node.encode()) == b":1"
        yield reader
    finally:
        writer.close()


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


NODE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import rtt

    async def main():
        transport = rtt.load("ws", broker={"broker": sys.argv[1], "options": %r})
        async with transport.server() as server, transport.client(server.url, reconnect=False):
            while not server.sockets:
                await asyncio.sleep(0.01)
            print(*server.sockets, flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def other_process(tmp_path: Path, url: str) -> tuple[asyncio.subprocess.Process, str]:
    """A second Python process running a ws server with a Redis broker and one client of it."""
    script = tmp_path / "node.py"
    script.write_text(NODE_SCRIPT % (FAST,))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 20)
    assert line, "the other process exited before printing its socket id"
    return process, line.decode().strip()


@pytest.mark.parametrize("how", ["killed", "hung"])
async def test_a_node_that_stops_announcing_is_forgotten(
    how: str, tmp_path: Path, redis_server: RedisServer, mock_cluster: Cluster
) -> None:
    (server,) = await mock_cluster.nodes(1)
    process, far_id = await other_process(tmp_path, redis_server.url)
    try:
        assert await server.is_connected(far_id)
        await wait_for_value(server.socket_count, 1, "the other process's socket counted", 5)
        # SIGKILL: the kernel closes its connections. SIGSTOP: they stay open, nobody answers,
        # and only the janitor's CLIENT KILL ends its subscriptions.
        process.send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        stopped = time.monotonic()
        bound = FAST["node_timeout"] + FAST["heartbeat"] + 0.5  # the bound, plus scheduling slack

        async def refused() -> bool:
            try:
                await server.send(far_id, "anyone?")
            except UnknownSocketError:
                return True
            return False

        await wait_for_value(refused, True, "the id to become unknown", bound)
        assert not await server.is_connected(far_id)
        await wait_for_value(server.socket_count, 0, "the count to drop", bound)
        assert time.monotonic() - stopped < bound
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


# -- Redis failures --------------------------------------------------------------------------


async def test_redis_killed_mid_run_then_back(
    cluster: Cluster, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    servers = await cluster.nodes(2)
    states: list[BrokerState] = []
    servers[0].on("broker", states.append)
    _, _, got_near = await cluster.connect(servers[0])
    _, far_id, got_far = await cluster.connect(servers[1])
    redis_server.kill()
    # Before the broker noticed or after: the cross-process part fails, the local part is done.
    with pytest.raises(BrokerError) as caught:
        await servers[0].broadcast("local only")
    assert caught.value.local == 1
    await eventually(lambda: got_near == ["local only"], 5, "local delivery during the outage")
    await eventually(lambda: broker_of(servers[0]).state is BrokerState.DOWN, 5, "the outage noticed")
    with pytest.raises(BrokerError) as caught:
        await servers[0].broadcast("still local only")
    assert caught.value.local == 1
    with pytest.raises(BrokerError):
        await servers[0].send(far_id, "lost")
    with pytest.raises(BrokerError):
        await servers[0].socket_count()
    await eventually(lambda: states == [BrokerState.DOWN], 5, "the broker event")
    assert servers[0].stats.broker_outages == 1
    assert any(r.levelno == logging.WARNING and "is down" in r.getMessage() for r in caplog.records)
    await asyncio.sleep(0.3)  # a few reconnection attempts fail meanwhile
    assert broker_of(servers[0]).state is BrokerState.DOWN

    redis_server.restart()
    await eventually(lambda: all(broker_of(s).state is BrokerState.UP for s in servers), 10, "both back")
    await eventually(lambda: states == [BrokerState.DOWN, BrokerState.UP], 5, "the broker event")
    await servers[0].send(far_id, "after")
    await servers[0].broadcast("everyone after")
    await eventually(lambda: got_far == ["after", "everyone after"], 5, "delivery after the outage")
    assert got_near[-1] == "everyone after"
    await wait_for_value(servers[1].socket_count, 2, "both nodes announced again", 5)
    assert servers[0].stats.broker_outages == 1


async def test_a_hung_redis_is_noticed_by_the_ping_probe_and_recovered(
    mock_cluster: Cluster, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    servers = await mock_cluster.nodes(2)
    _, far_id, got_far = await mock_cluster.connect(servers[1])
    redis_server.freeze()
    try:
        started = time.monotonic()
        # Connecting subscribes: Redis never confirms, so after `timeout` the socket is accepted
        # unsubscribed (with a warning) and the subscription is made when the link is back.
        _, near_id, got_near = await mock_cluster.connect(servers[0])
        await eventually(lambda: "subscribing to s." in caplog.text, 2, "the subscription to time out")
        # With no traffic, only the PING on the subscribed connection can tell Redis is hung.
        bound = FAST["timeout"] + 2 * FAST["heartbeat"] + 0.5
        await eventually(lambda: broker_of(servers[0]).state is BrokerState.DOWN, bound, "the hang noticed")
        assert time.monotonic() - started < bound
        assert "no PONG on the subscribed connection within 1.0 s" in caplog.text
        with pytest.raises(BrokerError):
            await servers[0].send(far_id, "into the void")
    finally:
        redis_server.thaw()
    await eventually(lambda: all(broker_of(s).state is BrokerState.UP for s in servers), 10, "both back")
    await servers[0].send(far_id, "after")
    await servers[1].send(near_id, "to the socket that connected during the hang")
    await eventually(lambda: got_far == ["after"], 5, "delivery after the hang")
    await eventually(lambda: len(got_near) == 1, 5, "delivery on the subscription made after the hang")


async def test_publishes_in_flight_to_a_hung_redis_fail_in_bounded_time(
    mock_cluster: Cluster, redis_server: RedisServer
) -> None:
    servers = await mock_cluster.nodes(2)
    _, far_id, _ = await mock_cluster.connect(servers[1])
    redis_server.freeze()
    try:
        started = time.monotonic()
        first = asyncio.ensure_future(servers[0].send(far_id, "sent, never answered"))
        await asyncio.sleep(0.3)
        second = asyncio.ensure_future(servers[0].send(far_id, "queued behind it"))
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(result, BrokerError) for result in results), results
        assert time.monotonic() - started < FAST["timeout"] + 0.5
        await eventually(lambda: broker_of(servers[0]).state is BrokerState.DOWN, 2, "the hang noticed")
    finally:
        redis_server.thaw()
    await eventually(lambda: broker_of(servers[0]).state is BrokerState.UP, 10, "back")


async def test_closing_while_redis_is_down_is_bounded(
    mock_cluster: Cluster, redis_server: RedisServer
) -> None:
    servers = await mock_cluster.nodes(2)
    await mock_cluster.connect(servers[0])
    redis_server.freeze()
    try:
        started = time.monotonic()
        await asyncio.gather(*(server.close() for server in servers))
        assert time.monotonic() - started < FAST["timeout"] + 1.0
        assert all(server.state is ServerState.CLOSED for server in servers)
    finally:
        redis_server.thaw()


async def test_closing_a_broker_that_never_started() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0")
    await broker.close()
    assert broker.state is BrokerState.CLOSED


async def test_a_node_cut_by_redis_reconnects_and_resubscribes(mock_cluster: Cluster) -> None:
    servers = await mock_cluster.nodes(2)
    _, far_id, got_far = await mock_cluster.connect(servers[1])
    await servers[1].join(far_id, "room")
    names = redis.asyncio.Redis.from_url(mock_cluster.url)
    try:
        # What the janitor of another node does to a node it believes dead.
        for entry in await names.client_list():
            if entry["name"] == f"rtt:node:{servers[1].node}":
                await names.client_kill_filter(_id=entry["id"])
    finally:
        await names.aclose()
    await eventually(lambda: servers[1].stats.broker_outages == 1, 5, "the cut noticed")
    await eventually(lambda: broker_of(servers[1]).state is BrokerState.UP, 5, "reconnected")
    await servers[0].send(far_id, "direct")
    await servers[0].broadcast("to the room", group="room")
    await eventually(lambda: got_far == ["direct", "to the room"], 5, "delivery on the resubscribed channels")


@pytest.fixture
def cluster_mode_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server with cluster mode on (one node is enough to be told apart); its port."""
    port = free_port()
    # The cluster bus defaults to port + 10000, past 65535 for a high free port: name a free one.
    bus = free_port()
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--cluster-enabled", "yes", "--cluster-port", str(bus)),
            *("--cluster-config-file", str(tmp_path / "nodes.conf")),
            *("--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # until it answers a PING: listening is not yet serving (CI once saw a reset)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the cluster-mode redis-server did not start"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


async def test_a_redis_cluster_node_is_refused_with_one_line(cluster_mode_redis: int) -> None:
    """Redis Cluster is not supported (SPEC.md 13.9): said at start, not found out later."""
    url = f"redis://127.0.0.1:{cluster_mode_redis}/0"
    server = rtt.load("mock").server(broker=broker_config(url, connect_timeout=5.0))
    with pytest.raises(BrokerError, match="is a Redis Cluster node, which rtt-redis does not support"):
        await server.start()
    assert server.state is ServerState.CLOSED
