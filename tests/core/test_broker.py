"""Brokers in rtt-core: registry, options, envelopes, groups, failure paths (SPEC.md 3.10, 13).

The cluster behaviour itself is the broker kit's (tests/mock/test_memory_broker.py);
these are the core's own branches, driven over rtt-mock's transport and memory broker.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rtt
from rtt import BrokerError, ConfigError, OptionError, UnknownBrokerError, UnknownSocketError
from rtt.broker import HEADER_LIMIT, BrokerOptions, BrokerState, Envelope, decode_envelope, encode_envelope
from rtt.testing import eventually
from rtt_mock import MemoryBroker, hub

_names = (f"core-{n}" for n in itertools.count())


@pytest.fixture
def hub_url() -> str:
    return f"memory://{next(_names)}"


@pytest.fixture
async def pair(hub_url: str) -> AsyncIterator[tuple[rtt.Server[Any], rtt.Server[Any]]]:
    transport = rtt.load("mock", broker=hub_url)
    a, b = transport.server(), transport.server()
    async with a, b:
        yield a, b


# -- Registry and options ---------------------------------------------------------


def test_load_broker_by_url_name_mapping_and_instance(hub_url: str) -> None:
    by_url = rtt.load_broker(hub_url, timeout=2)
    assert isinstance(by_url, MemoryBroker) and by_url.options.url == hub_url and by_url.options.timeout == 2
    assert isinstance(rtt.load_broker("memory"), MemoryBroker)
    by_map = rtt.load_broker({"broker": hub_url, "options": {"prefix": "app1"}})
    assert isinstance(by_map, MemoryBroker) and by_map.options.prefix == "app1"
    assert rtt.load_broker(by_url) is by_url
    with pytest.raises(ConfigError, match="already built"):
        rtt.load_broker(by_url, timeout=1)


def test_load_broker_errors() -> None:
    with pytest.raises(UnknownBrokerError, match=r"installed brokers: .*memory.*pip install rtt-nats"):
        rtt.load_broker("nats://127.0.0.1:4222")
    with pytest.raises(UnknownBrokerError, match="pip install rtt-kafka"):
        rtt.load_broker("kafka")
    with pytest.raises(ConfigError, match="unknown broker config keys 'url'"):
        rtt.load_broker({"broker": "memory", "url": "x"})
    with pytest.raises(ConfigError, match="needs a 'broker' key"):
        rtt.load_broker({"options": {}})
    with pytest.raises(ConfigError, match="'options' must be a mapping"):
        rtt.load_broker({"broker": "memory", "options": []})
    with pytest.raises(ConfigError, match="must be a URL"):
        rtt.load_broker("")
    with pytest.raises(ConfigError, match="got int"):
        rtt.load_broker(3)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="unknown option 'nope' for broker 'memory'"):
        rtt.load_broker("memory", nope=1)


def test_environment_and_config_key_choose_the_broker(monkeypatch: pytest.MonkeyPatch, hub_url: str) -> None:
    monkeypatch.delenv(rtt.registry.BROKER_ENV_VAR, raising=False)
    assert rtt.load_broker() is None
    assert "broker" not in rtt.load("mock").options
    monkeypatch.setenv(rtt.registry.BROKER_ENV_VAR, hub_url)
    assert isinstance(rtt.load_broker(), MemoryBroker)
    assert rtt.load("mock").options["broker"] == hub_url
    assert rtt.load({"transport": "mock", "broker": "memory://other"}).options["broker"] == "memory://other"
    assert rtt.load("mock", broker=None).options["broker"] is None
    built = rtt.load("mock", max_message_size=5)
    assert rtt.load(built) is built  # an instance is never reconfigured from the environment


def test_server_option_is_validated_at_load_time() -> None:
    with pytest.raises(UnknownBrokerError):
        rtt.load("mock", broker="nats://x")
    with pytest.raises(OptionError, match="heartbeat"):
        rtt.load("mock", broker={"broker": "memory", "options": {"heartbeat": 0}})
    with pytest.raises(ConfigError, match="valid keys: 'transport', 'broker', 'options'"):
        rtt.load({"transport": "mock", "brokers": "memory"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": ""}, "url must be a non-empty string"),
        ({"prefix": "a b"}, "prefix"),
        ({"prefix": ""}, "prefix"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"heartbeat": 2, "node_timeout": 3}, "at least twice"),
        ({"reconnect": 5}, "ReconnectPolicy or mapping"),
        ({"reconnect": {"max_attempts": 3}}, "must not give up"),
    ],
)
def test_broker_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        BrokerOptions(**options)


def test_broker_reconnect_from_a_mapping() -> None:
    options = BrokerOptions(reconnect={"min_delay": 0.5, "max_delay": 1.0})  # type: ignore[arg-type]
    assert options.reconnect.min_delay == 0.5


def test_describe_never_shows_credentials() -> None:
    broker = MemoryBroker("memory://user:secret@hubhost:99/x")
    assert broker.describe() == "memory://hubhost:99/x" and "secret" not in repr(broker)
    assert MemoryBroker().describe() == "its default address"


def test_available_lists_brokers_after_transports() -> None:
    infos = rtt.available()
    kinds = [i.kind for i in infos]
    assert kinds == sorted(kinds, key=["transport", "broker"].index)
    memory = next(i for i in infos if i.kind == "broker" and i.name == "memory")
    assert memory.ok and memory.distribution == "rtt-mock" and memory.capabilities is None


# -- Envelopes ------------------------------------------------------------------------

names = st.text(max_size=30)


@given(
    op=st.sampled_from(["broadcast", "send", "disconnect", "join", "leave"]),
    origin=names,
    socket=names,
    group=st.none() | names,
    exclude=st.lists(names, max_size=4).map(tuple),
    data=st.none() | st.text() | st.binary(),
)
def test_envelopes_round_trip(
    op: str, origin: str, socket: str, group: str | None, exclude: tuple[str, ...], data: str | bytes | None
) -> None:
    envelope = Envelope(op, origin, socket, group, exclude, data)
    assert decode_envelope(encode_envelope(envelope)) == envelope


@given(st.binary(max_size=200))
def test_garbage_never_decodes_to_something_else(payload: bytes) -> None:
    try:
        envelope = decode_envelope(payload)
    except (ValueError, UnicodeDecodeError):
        return
    assert encode_envelope(envelope)  # whatever decodes is a well-formed envelope


@pytest.mark.parametrize(
    "payload",
    [
        b"2{}\n",
        b"1{}",
        b"1" + b" " * HEADER_LIMIT + b"\n",
        b"1[]\n",
        b'1{"op":"explode"}\n',
        b'1{"op":"send","s":5}\n',
        b'1{"op":"send","x":"ab"}\n',
        b'1{"op":"send","x":[1]}\n',
        b'1{"op":"send","t":7}\n',
        b'1{"op":"send","g":1}\n',
    ],
)
def test_malformed_envelopes_are_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_envelope(payload)


# -- Groups without a broker --------------------------------------------------------------


async def test_groups_in_one_process() -> None:
    transport = rtt.load("mock")
    async with transport.server() as server:
        clients: list[rtt.Client] = []
        ids: list[str] = []
        for _ in range(3):
            client = transport.client(server.url)
            await client.connect()
            await eventually(lambda: len(server.sockets) == len(ids) + 1, 5, "the socket")
            ids.append(next(i for i in server.sockets if i not in ids))
            clients.append(client)
        a, b, c = ids
        await server.join(a, "room")
        await server.join(a, "room")  # twice is once
        await server.join(b, "room")
        await server.join(b, "other")
        assert server.members("room") == {a, b} and server.groups(b) == {"room", "other"}
        assert await server.broadcast("hi room", group="room") == 2
        assert await server.broadcast("hi room but a", group="room", exclude=a) == 1
        assert await server.broadcast("nobody", group="empty") == 0
        await server.leave(b, "room")
        await server.leave(b, "room")  # not in it any more: nothing happens
        await server.leave(c, "room")
        assert server.members("room") == {a} and server.groups(b) == {"other"}
        with pytest.raises(UnknownSocketError):
            await server.join("nope", "room")
        with pytest.raises(UnknownSocketError):
            await server.leave("nope", "room")
        for bad in ("", "x" * 257, 5):
            with pytest.raises(ValueError, match="group name"):
                await server.join(a, bad)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="group name"):
                await server.broadcast("x", group=bad)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="group name"):
                await server.leave(a, bad)  # type: ignore[arg-type]
        async with asyncio.timeout(5):
            assert await clients[0].recv() == "hi room"
            assert [await clients[1].recv(), await clients[1].recv()] == ["hi room", "hi room but a"]
        for client in clients:
            await client.close()
        await eventually(lambda: not server.sockets, 5, "every socket to leave")
        assert server.members("other") == frozenset() and server.groups(b) == frozenset()


# -- Failure paths with a broker -------------------------------------------------------------


async def test_start_fails_cleanly_when_the_broker_is_down(hub_url: str) -> None:
    hub(hub_url.removeprefix("memory://")).fail()
    server = rtt.load("mock", broker=hub_url).server()
    with pytest.raises(BrokerError, match="is down"):
        await server.start()
    assert server.state is rtt.ServerState.CLOSED
    assert server.broker is not None and server.broker.state is BrokerState.CLOSED


async def test_start_times_out_with_one_line(hub_url: str) -> None:
    class Silent(MemoryBroker):
        async def _connect(self) -> None:
            await asyncio.sleep(10)

    class Exploding(MemoryBroker):
        async def _connect(self) -> None:
            raise OSError("connection refused")

    server = rtt.load("mock").server(broker=Silent(hub_url, connect_timeout=0.1))
    with pytest.raises(BrokerError, match=r"did not answer within 0.1 s"):
        await server.start()
    server = rtt.load("mock").server(broker=Exploding(hub_url))
    with pytest.raises(BrokerError, match="failed to start: connection refused"):
        await server.start()


async def test_a_broker_serves_one_server(hub_url: str) -> None:
    broker = rtt.load_broker(hub_url)
    assert broker is not None
    transport = rtt.load("mock", broker=broker)
    async with transport.server():
        with pytest.raises(BrokerError, match="already started"):
            await transport.server().start()
    await broker.close()  # idempotent


async def test_malformed_and_oversized_envelopes_are_ignored(
    pair: tuple[rtt.Server[Any], rtt.Server[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    client = rtt.load("mock").client(b.url)
    async with client:
        await eventually(lambda: len(b.sockets) == 1, 5, "the socket")
        sid = next(iter(b.sockets))
        assert a.broker is not None
        with caplog.at_level(logging.WARNING, "rtt.server"):
            assert await a.broker.publish(f"s.{sid}", b"garbage") == 1
            big = "x" * (b.options.max_message_size + 1)
            await a.broker.publish(f"s.{sid}", encode_envelope(Envelope("send", socket=sid, data=big)))
            await a.broker.publish("all", encode_envelope(Envelope("broadcast", origin="z", data=big)))
            await a.broker.publish("all", encode_envelope(Envelope("broadcast", origin="z")))
            await a.broker.publish(f"s.{sid}", encode_envelope(Envelope("send", socket="someone-else")))
            await a.send(sid, "still fine")
            assert await client.recv() == "still fine"
        text = caplog.text
        assert "malformed envelope" in text and "garbage" not in text
        assert "dropped a message of" in text and "dropped a broadcast of" in text


async def test_remote_send_to_a_closed_connection_is_skipped(
    pair: tuple[rtt.Server[Any], rtt.Server[Any]],
) -> None:
    a, b = pair
    client = rtt.load("mock").client(b.url)
    await client.connect()
    await eventually(lambda: len(b.sockets) == 1, 5, "the socket")
    sid = next(iter(b.sockets))
    link = b.link(sid)  # type: ignore[attr-defined]
    link.sever()
    await a.send(sid, "into the void")  # reaches b, whose connection has just ended: no error anywhere
    await eventually(lambda: sid not in b.sockets, 5, "the disconnect")
    await client.close()


async def test_operations_during_an_outage_fail_loudly(hub_url: str) -> None:
    transport = rtt.load("mock", broker={"broker": hub_url, "options": {"reconnect": {"min_delay": 0.01}}})
    async with transport.server() as server:
        name = hub_url.removeprefix("memory://")
        hub(name).fail()
        for attempt in (
            server.send("elsewhere", "x"),
            server.disconnect("elsewhere"),
            server.join("elsewhere", "g"),
            server.leave("elsewhere", "g"),
            server.socket_count(),
            server.is_connected("elsewhere"),
        ):
            with pytest.raises(BrokerError, match="it is down"):
                await attempt
        client = transport.client(server.url)
        async with client:  # a socket accepted while down is subscribed once the link is back
            await eventually(lambda: len(server.sockets) == 1, 5, "the socket")
            hub(name).recover()
            assert server.broker is not None
            await eventually(
                lambda: server.broker is not None and server.broker.state is BrokerState.UP, 5, "up"
            )
            assert await server.is_connected(next(iter(server.sockets)))


async def test_broker_failures_in_hooks_are_reported_as_broker_errors(hub_url: str) -> None:
    class Flaky(MemoryBroker):
        fail_with: BaseException | None = None

        async def _publish(self, channel: str, payload: bytes) -> int:
            if self.fail_with is not None:
                raise self.fail_with
            return await super()._publish(channel, payload)

        async def _receivers(self, channel: str) -> int:
            await asyncio.sleep(1)
            return 0

        async def _subscribe(self, channels: Any) -> None:
            if "g.slow" in channels:
                raise OSError("subscribe refused")
            await super()._subscribe(channels)

        async def _unsubscribe(self, channels: Any) -> None:
            raise OSError("unsubscribe refused")

    broker = Flaky(hub_url, timeout=0.1)
    async with rtt.load("mock").server(broker=broker) as server:
        broker.fail_with = OSError("reset")
        with pytest.raises(BrokerError, match="publish failed: reset"):
            await server.broadcast("x")
        broker.fail_with = BrokerError("own words")
        with pytest.raises(BrokerError, match="own words"):
            await server.send("elsewhere", "x")
        broker.fail_with = TimeoutError()
        with pytest.raises(BrokerError, match=r"publish took over 0\.1 s"):
            await server.send("elsewhere", "x")
        with pytest.raises(BrokerError, match=r"query took over 0\.1 s"):
            await server.is_connected("elsewhere")
        client = rtt.load("mock").client(server.url)
        async with client:
            await eventually(lambda: len(server.sockets) == 1, 5, "the socket")
            sid = next(iter(server.sockets))
            await server.join(sid, "slow")  # logged, retried when the link comes back
            await server.leave(sid, "slow")  # unsubscribing failed: logged at debug, harmless
            await eventually(lambda: "g.slow" not in broker.channels, 5, "the unsubscribe")


async def test_a_remote_join_waits_for_the_holder(pair: tuple[rtt.Server[Any], rtt.Server[Any]]) -> None:
    a, b = pair
    client = rtt.load("mock").client(b.url)
    async with client:
        await eventually(lambda: len(b.sockets) == 1, 5, "the socket")
        sid = next(iter(b.sockets))
        await a.join(sid, "room")
        assert b.groups(sid) == {"room"}  # in effect when join returns: no waiting
        await a.leave(sid, "room")
        assert b.groups(sid) == frozenset()
        # The holder lost the socket between the publish and its turn: the asker hears so.
        conn = b._conns.pop(sid)
        try:
            with pytest.raises(UnknownSocketError):
                await a.join(sid, "room")
        finally:
            b._conns[sid] = conn


async def test_a_holder_that_never_confirms_is_a_broker_error(hub_url: str) -> None:
    class Mute(MemoryBroker):
        async def _publish(self, channel: str, payload: bytes) -> int:
            if channel.startswith("n."):
                return 1  # the confirmation is lost on the way
            return await super()._publish(channel, payload)

    transport = rtt.load("mock")
    asker = transport.server(broker=MemoryBroker(hub_url, timeout=0.2))
    holder = transport.server(broker=Mute(hub_url))
    async with asker, holder, transport.client(holder.url):
        await eventually(lambda: len(holder.sockets) == 1, 5, "the socket")
        sid = next(iter(holder.sockets))
        with pytest.raises(BrokerError, match=r"did not confirm join within 0\.2 s"):
            await asker.join(sid, "room")
        assert not asker._acks


async def test_the_base_class_keeps_its_promises(hub_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Counted subscriptions, retried subscriptions, listeners, failing hooks, stuck tasks."""

    class Moody(MemoryBroker):
        announce_fails = False
        close_fails = False

        def __init__(self, url: str, **options: Any) -> None:
            super().__init__(url, **options)
            self.refuse: set[str] = set()

        async def _subscribe(self, channels: Any) -> None:
            if self.refuse & set(channels):
                raise OSError("not now")
            await super()._subscribe(channels)

        async def _announce(self, count: int) -> None:
            if self.announce_fails:
                raise OSError("announce refused")
            await super()._announce(count)

        async def _close(self) -> None:
            await super()._close()
            if self.close_fails:
                raise OSError("close refused")

    broker = Moody(hub_url, heartbeat=0.05, timeout=0.2)
    heard: list[BrokerState] = []

    async def async_listener(state: BrokerState) -> None:
        heard.append(state)

    def raising_listener(state: BrokerState) -> None:
        raise RuntimeError("a listener that breaks")

    broker.add_listener(async_listener)
    broker.add_listener(raising_listener)
    delivered: list[str] = []

    async def deliver(channel: str, payload: bytes) -> None:
        delivered.append(channel)

    hub_ = hub(hub_url.removeprefix("memory://"))
    with caplog.at_level(logging.DEBUG, "rtt.broker"):
        await broker.start("node-1", deliver, lambda: 0)
        # Counted: two subscribes need two unsubscribes; an unknown channel is nothing to undo.
        await broker.subscribe("c")
        await broker.subscribe("c")
        await broker.unsubscribe("c")
        assert broker in hub_.subscribers["c"]
        await broker.unsubscribe("c")
        await broker.unsubscribe("never")
        assert "c" not in hub_.subscribers
        # A subscription refused while the link is up is retried by the heartbeat.
        broker.refuse = {"late"}
        await broker.subscribe("late")
        assert "late" not in hub_.subscribers
        broker.refuse = set()
        await eventually(lambda: "late" in hub_.subscribers, 5, "the retried subscription")
        # A failing heartbeat is logged and the loop goes on.
        broker.announce_fails = True
        await eventually(lambda: "heartbeat failed: announce refused" in caplog.text, 5, "a failed heartbeat")
        broker.announce_fails = False
        # Listeners hear outages; one that raises is logged, the others still hear.
        hub_.fail()
        await eventually(lambda: heard == [BrokerState.DOWN], 5, "the async listener")
        assert "broker state listener" in caplog.text
        hub_.recover()
        await eventually(lambda: heard == [BrokerState.DOWN, BrokerState.UP], 5, "the link back")

        # A failing background task is logged; one that swallows a cancellation cannot hang close().
        async def failing() -> None:
            raise OSError("a task that fails")

        stubborn_waits, stubborn_ended = asyncio.Event(), asyncio.Event()

        async def stubborn() -> None:
            try:
                stubborn_waits.set()
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                await asyncio.sleep(0.4)
            finally:
                stubborn_ended.set()

        broker._spawn(failing())
        broker._spawn(stubborn())
        # Cancelled inside its try, not before it ran, so that it swallows the cancellation.
        await asyncio.wait_for(stubborn_waits.wait(), 5)
        await eventually(lambda: "task failed" in caplog.text, 5, "the failing task's log")
        broker.close_fails = True
        await broker.close()
        assert "tasks did not stop when cancelled" in caplog.text
        assert "close failed: close refused" in caplog.text
        await asyncio.wait_for(stubborn_ended.wait(), 5)  # the stubborn task ends by itself


async def _outage(server: rtt.Server[Any], name: str, within: float) -> float:
    """Take hub ``name`` down and back; the seconds from ``recover()`` until the broker is UP."""
    broker = server.broker
    assert broker is not None
    hub(name).fail()
    assert broker.state is BrokerState.DOWN
    loop = asyncio.get_running_loop()
    started = loop.time()
    hub(name).recover()
    await eventually(lambda: broker.state is BrokerState.UP, within, "the link back")
    return loop.time() - started


@pytest.mark.parametrize("stable_after", [30.0, 0.0])
async def test_a_link_that_drops_again_at_once_keeps_backing_off(hub_url: str, stable_after: float) -> None:
    # Delays 0.02, 0.2, 2 s without jitter: a link lost at once after coming back goes on from the
    # attempt where the last outage ended (SPEC 13.6), as a client does (4.4); stable_after=0 resets.
    policy = {"min_delay": 0.02, "max_delay": 5, "factor": 10, "jitter": 0, "stable_after": stable_after}
    transport = rtt.load("mock", broker={"broker": hub_url, "options": {"reconnect": policy}})
    name = hub_url.removeprefix("memory://")
    async with transport.server() as server:
        first = await _outage(server, name, 5)
        second = await _outage(server, name, 5)
        third = await _outage(server, name, 10)
    assert first >= 0.02
    if stable_after:
        assert second >= 0.2 and third >= 2.0
    else:  # every outage starts at attempt 1 (0.02 s); 1.5 s is a generous bound under load
        assert second < 1.5 and third < 1.5
