"""Sessions that move between processes (SPEC.md 17.5), on the memory broker in one process.

Several servers share one :class:`~rtt_mock.MemoryHub`, each a node of the
cluster as a process would be. This part covers the broker groundwork a
handoff rests on: the brokers' total-order promise, the live nodes, and the
per-origin stamps on socket operations (SPEC.md 13.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from resume_raw import Closed, Raw, resume_value, start

import rtt
import rtt._handoff
from rtt import Accept, BrokerError, CloseReason, Handshake
from rtt._handoff import decode_state, encode_state
from rtt.broker import Broker, Envelope, decode_envelope, encode_envelope
from rtt.resume import Entry, Welcome
from rtt.testing import Recorder, eventually
from rtt_mock import MemoryBroker, MockServer, hub

pytestmark = pytest.mark.timeout(60)

_names = (f"handoff-{n}" for n in itertools.count())


@pytest.fixture
def hub_url() -> str:
    return f"memory://{next(_names)}"


@pytest.fixture
async def cluster(hub_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start mock servers on one hub: ``await cluster(**options)``; all closed at the end."""
    servers: list[MockServer] = []

    async def node(**options: Any) -> MockServer:
        options.setdefault("close_timeout", 0.5)
        server = rtt.load("mock", broker=hub_url).server(**options)
        assert isinstance(server, MockServer)
        servers.append(server)
        await server.start()
        return server

    yield node
    for server in reversed(servers):
        await server.close()


def published(server: MockServer) -> list[Envelope]:
    """Every envelope ``server`` publishes from now on, decoded."""
    broker = server.broker
    assert broker is not None
    seen: list[Envelope] = []
    publish = broker.publish

    async def spy(channel: str, payload: bytes) -> int:
        seen.append(decode_envelope(payload))
        return await publish(channel, payload)

    broker.publish = spy  # type: ignore[method-assign]
    return seen


# -- Envelopes ----------------------------------------------------------------------


def test_the_stamp_travels_in_the_header_and_only_when_set() -> None:
    stamped = Envelope("send", "node", "sock", data="hi", seq=7)
    payload = encode_envelope(stamped)
    assert b'"q":7' in payload and decode_envelope(payload) == stamped
    assert b'"q"' not in encode_envelope(Envelope("send", "node", "sock"))
    assert decode_envelope(encode_envelope(Envelope("send", "node", "sock"))).seq == 0
    for op in ("takeover", "state", "retry", "refuse", "adopt"):
        assert decode_envelope(encode_envelope(Envelope(op, "node", ref="r", data=b"x"))).op == op


@pytest.mark.parametrize("q", ["-1", "true", '"3"', "1.5", "null"])
def test_a_stamp_that_is_not_a_non_negative_int_is_refused(q: str) -> None:
    with pytest.raises(ValueError, match="wrong type"):
        decode_envelope(b'1{"op":"send","s":"x","q":' + q.encode() + b"}\n")


# -- Brokers ------------------------------------------------------------------------


def test_total_order_is_promised_by_the_memory_broker_only_when_declared() -> None:
    assert Broker.total_order is False
    assert MemoryBroker.total_order is True


async def test_nodes_lists_the_live_processes(cluster: Callable[..., Any], hub_url: str) -> None:
    a, b = await cluster(), await cluster()
    assert a.broker is not None and b.broker is not None
    assert sorted(await a.broker.nodes()) == sorted([a.node, b.node])
    # The default of a broker that cannot list the others: only itself.
    assert await Broker._nodes(a.broker) == [a.node]
    hub(hub_url.removeprefix("memory://")).crash(b.broker)
    assert await a.broker.nodes() == [a.node]
    hub(hub_url.removeprefix("memory://")).fail()
    await eventually(lambda: a.broker is not None and a.broker.state is rtt.BrokerState.DOWN, 5, "down")
    with pytest.raises(BrokerError, match="cannot query"):
        await a.broker.nodes()


# -- Stamps -----------------------------------------------------------------------------


async def test_socket_operations_are_stamped_in_publish_order_and_heard(cluster: Callable[..., Any]) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    assert a._resume is not None and b._resume is not None
    _, welcome = await start(b)
    out = published(a)
    await a.broadcast("to all")
    await a.send(welcome.id, "to one")
    await a.join(welcome.id, "room")
    await a.broadcast("to the room", group="room")
    await a.leave(welcome.id, "room")
    await a.disconnect(welcome.id)
    assert [(e.op, e.seq) for e in out] == [
        ("broadcast", 1),
        ("send", 2),
        ("join", 3),
        ("broadcast", 4),
        ("leave", 5),
        ("disconnect", 6),
    ]
    # The join's and leave's confirmations are not socket operations: never stamped.
    await eventually(lambda: b._resume is not None and b._resume.heard.get(a.node) == 6, 5, "all heard")
    assert a._resume.stamped == 6 and b._resume.stamped == 0


async def test_without_resume_nothing_is_stamped(cluster: Callable[..., Any]) -> None:
    a, b = await cluster(), await cluster()
    out = published(a)
    await a.broadcast("plain")
    client = b.transport.client(b.url, reconnect=False)
    async with client:
        await eventually(lambda: len(b.sockets) == 1, 5, "the socket")
        (socket_id,) = b.sockets
        await a.send(socket_id, "hi")
        assert await client.recv() == "hi"
    assert [(e.op, e.seq) for e in out] == [("broadcast", 0), ("send", 0)]


# -- Pull takeover ------------------------------------------------------------------------

EVENTS = ("connect", "away", "back", "moved", "disconnect")


async def resume_on(
    server: MockServer, welcome: Welcome, received: int, query: str = ""
) -> tuple[Raw, Welcome]:
    """The client of ``welcome``'s session coming back to ``server``, having read ``received`` messages."""
    raw = Raw(server, f"{query}rtt_resume={resume_value(welcome, received)}")
    await raw.open()
    answer = await raw.welcome()
    raw.hello(answer)
    return raw, answer


async def test_the_welcome_goes_before_a_broadcast_made_while_the_broker_subscribes(
    cluster: Callable[..., Any],
) -> None:
    a = await cluster(resume_window=30)
    subscribing, go = gate(a.broker, "subscribe")
    raw = Raw(a, "rtt_resume=1")
    opening = asyncio.create_task(raw.open())
    await subscribing.wait()
    assert await a.broadcast("during the subscribe") == 1  # the socket is in sockets already
    go.set()
    await opening
    welcome = await raw.welcome()  # first: a data message before it would make resume unsupported
    assert welcome.status == "new"
    raw.hello(welcome)
    assert await raw.data() == "during the subscribe"


async def test_an_away_session_moves_with_its_log_counts_and_groups(cluster: Callable[..., Any]) -> None:
    a, b, d = [await cluster(resume_window=30) for _ in range(3)]
    _, local = await start(b)
    await b.join(local.id, "lobby")
    held, moved = Recorder().listen(a, *EVENTS), Recorder().listen(b, *EVENTS)
    raw, welcome = await start(a)
    sid = welcome.id
    await a.join(sid, "lobby")
    await a.join(sid, "room")  # b has no member of it: the first takeover round is told to retry
    await a.send(sid, "m1")
    assert await raw.data() == "m1"
    raw.send("c1")
    await eventually(lambda: a.stats.messages_in == 1, 5, "c1 handled on a")
    raw.sever()
    await held.wait("away")
    # Sent while away, from the holder itself and from a third process.
    await a.send(sid, "m2")
    await d.send(sid, "m3")
    await d.broadcast("m4", group="room")
    await eventually(lambda: a._resume is not None and a._resume.sessions[sid].log.out == 4, 5, "m3, m4 on a")
    back, answer = await resume_on(b, welcome, 1)
    assert answer.status == "resumed" and answer.id == sid and answer.handled == 1 and answer.received == 1
    assert [await back.data() for _ in range(3)] == ["m2", "m3", "m4"]
    assert (
        sid in b.sockets and sid not in a.sockets and b.groups(sid) == {"room", "lobby"} and not a.groups(sid)
    )
    assert b.sockets[sid].resumes == 1 and not b.sockets[sid].away
    assert [e[0] for e in held.events] == ["connect", "away", "moved"]
    assert [e[0] for e in moved.events] == ["back"]
    assert (a.stats.moved_out, b.stats.moved_in, b.stats.resumes) == (1, 1, 1)
    # Held by b now, from anywhere: a send, a group broadcast, a join confirmed by b.
    await a.send(sid, "m5")
    await d.broadcast("m6", group="room")
    await a.join(sid, "hall")
    await d.broadcast("m7", group="hall")
    assert [await back.data() for _ in range(3)] == ["m5", "m6", "m7"]
    back.send("c2")
    await eventually(lambda: b.stats.messages_in == 1, 5, "c2 handled on b")


async def test_a_connected_session_is_taken_from_its_old_connection(cluster: Callable[..., Any]) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    held = Recorder().listen(a, *EVENTS)
    old, welcome = await start(a)
    await a.send(welcome.id, "m1")
    assert await old.data() == "m1"
    back, answer = await resume_on(b, welcome, 1)
    assert answer.status == "resumed"
    assert (await old.closed()).reason is None or True  # aborted: the link ends
    await held.wait("moved")
    assert [(e[0], str(e[2]) if len(e) > 2 else None) for e in held.events] == [
        ("connect", None),
        ("away", "transport error"),
        ("moved", None),
    ]
    await a.send(welcome.id, "m2")
    assert await back.data() == "m2"


async def test_broadcasts_during_the_handoff_arrive_once_and_in_order(cluster: Callable[..., Any]) -> None:
    a, b, d = [await cluster(resume_window=30) for _ in range(3)]
    raw, welcome = await start(a)
    sent: list[str] = []
    stop = asyncio.Event()

    async def flood(server: MockServer, name: str) -> None:
        for k in itertools.count():
            if stop.is_set():
                return
            sent.append(f"{name}{k}")
            await server.broadcast(f"{name}{k}")
            await asyncio.sleep(0)

    floods = [asyncio.create_task(flood(server, name)) for server, name in ((a, "a"), (d, "d"), (b, "b"))]
    got: list[str | bytes] = []
    while len(got) < 20:
        got.append(await raw.data())
    raw.sever()
    back, answer = await resume_on(b, welcome, len(got))
    assert answer.status == "resumed"
    while len(got) < 200:
        got.append(await back.data())
    stop.set()
    await asyncio.gather(*floods)
    while len(got) < len(sent):
        got.append(await back.data())
    assert sorted(got) == sorted(sent)  # each once
    for name in "adb":
        mine = [int(str(m)[1:]) for m in got if str(m)[0] == name]
        assert mine == sorted(mine)


async def away_on(server: MockServer) -> tuple[Welcome, Recorder]:
    """A session held by ``server``, away (its client severed)."""
    rec = Recorder().listen(server, *EVENTS)
    raw, welcome = await start(server)
    raw.sever()
    await rec.wait("away")
    return welcome, rec


async def test_a_crashed_holder_leaves_nothing_to_take(cluster: Callable[..., Any], hub_url: str) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    welcome, _ = await away_on(a)
    assert a.broker is not None
    hub(hub_url.removeprefix("memory://")).crash(a.broker)
    _, answer = await resume_on(b, welcome, 0)
    assert answer.status == "lost" and answer.why == "unknown" and answer.id != welcome.id
    assert b.stats.resume_failures == 1 and not b._resume.handoff.claims


async def test_a_holder_that_never_answers_times_out(cluster: Callable[..., Any]) -> None:
    a = await cluster(resume_window=30)
    b = await cluster(resume_window=30, broker={"broker": a.broker.options.url, "options": {"timeout": 0.3}})
    welcome, _ = await away_on(a)
    assert a._resume is not None and a._resume.handoff is not None

    async def mute(envelope: Envelope) -> None:
        return None

    a._resume.handoff.on_takeover = mute
    _, answer = await resume_on(b, welcome, 0)
    assert answer.status == "lost" and answer.why == "unknown"
    assert welcome.id in a.sockets  # never frozen: its client may still come back to a


class Unordered(MemoryBroker):
    total_order = False


async def test_a_broker_without_total_order_never_moves_a_session(cluster: Callable[..., Any]) -> None:
    a = await cluster(resume_window=30)
    b = await cluster(resume_window=30, broker=Unordered(a.broker.options.url))
    welcome, _ = await away_on(a)
    _, answer = await resume_on(b, welcome, 0)
    assert answer.status == "lost" and answer.why == "unknown" and welcome.id in a.sockets


def by_user(handshake: Handshake) -> Accept:
    user = handshake.query.get("user", "")
    return Accept(identity=object() if user == "opaque" else {"user": user})


@pytest.mark.parametrize(
    ("user", "why"), [("mallory", "identity"), ("opaque", "identity"), ("alice", "unknown")]
)
async def test_another_identity_or_a_wrong_token_is_refused(
    cluster: Callable[..., Any], user: str, why: str
) -> None:
    a = await cluster(resume_window=30, authorize=by_user)
    b = await cluster(resume_window=30, authorize=by_user)
    rec = Recorder().listen(a, *EVENTS)
    raw = Raw(a, "user=alice&rtt_resume=1")
    await raw.open()
    welcome = await raw.welcome()
    raw.sever()
    await rec.wait("away")
    if why == "unknown":  # the right user with a token that is not the session's
        welcome = Welcome("new", welcome.id, "x" * 22, welcome.nonce, welcome.window)
    _, answer = await resume_on(b, welcome, 0, f"user={user}&")
    assert answer.status == "lost" and answer.why == why
    assert a.sockets[welcome.id].away and [e[0] for e in rec.events] == ["connect", "away"]


async def test_a_claim_while_the_broker_is_down_is_closed_to_be_retried(
    cluster: Callable[..., Any], hub_url: str
) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    welcome, _ = await away_on(a)
    hub(hub_url.removeprefix("memory://")).fail()
    await eventually(lambda: b.broker is not None and b.broker.state is rtt.BrokerState.DOWN, 5, "down")
    raw = Raw(b, f"rtt_resume={resume_value(welcome, 0)}")
    await raw.open()
    closed = await raw.closed()
    assert closed.reason is CloseReason.SHUTDOWN and welcome.id in a.sockets


def gate(owner: Any, name: str) -> tuple[asyncio.Event, asyncio.Event]:
    """Make every call of the async method ``owner.name`` wait until released.

    Returns (a call reached it, let the calls go on).
    """
    original = getattr(owner, name)
    reached, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any) -> Any:
        reached.set()
        await release.wait()
        return await original(*args)

    setattr(owner, name, held)
    return reached, release


def hold_takeovers(server: MockServer) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``server`` wait before answering a takeover (its broker delivery waits, so what follows queues).

    Returns (a takeover reached it, let it answer).
    """
    assert server._resume is not None and server._resume.handoff is not None
    return gate(server._resume.handoff, "on_takeover")


def claims(server: MockServer) -> dict[str, Any]:
    assert server._resume is not None and server._resume.handoff is not None
    return server._resume.handoff.claims


async def test_operations_racing_the_takeover_are_applied_once_by_the_new_holder(
    cluster: Callable[..., Any],
) -> None:
    a, b, d = [await cluster(resume_window=30) for _ in range(3)]
    welcome, held = await away_on(a)
    sid = welcome.id
    await a.join(sid, "old")
    await a.join(sid, "gone")
    local, local_welcome = await start(b)
    await b.join(local_welcome.id, "old")  # b already receives "old" and "gone": no retry
    await b.join(local_welcome.id, "gone")
    reached, release = hold_takeovers(a)
    resuming = asyncio.create_task(resume_on(b, welcome, 0))
    await reached.wait()
    await d.send(sid, "during")
    await d.send(local_welcome.id, "not about it")
    joining = asyncio.create_task(d.join(sid, "new"))
    leaving = asyncio.create_task(d.leave(sid, "gone"))
    await eventually(lambda: len(claims(b)[sid].buffer) == 3, 5, "the send, join and leave captured")
    await b.broadcast("own", group="new")  # b's own, to a group the session joins in the buffer
    await d.broadcast("skipped", exclude=sid)
    await d.broadcast("left", group="gone")
    await d.broadcast("kept", group="old")
    await eventually(lambda: len(claims(b)[sid].buffer) >= 7, 5, "captured")
    release.set()
    back, answer = await resuming
    await asyncio.gather(joining, leaving)
    assert answer.status == "resumed"
    assert [await back.data() for _ in range(3)] == ["during", "own", "kept"]
    assert b.groups(sid) == {"new", "old"} and not a.groups(sid) and await held.wait("moved")
    assert await local.data() == "not about it"
    await d.broadcast("new member", group="new")
    assert await back.data() == "new member"
    await d.disconnect(sid)
    assert (await back.closed()).reason is CloseReason.SERVER_CLOSED


class Claiming:
    """Session ``sid`` held away by ``a`` while ``b`` claims it; ``a`` answers once ``release`` is set."""

    a: MockServer
    b: MockServer
    sid: str
    held: Recorder
    release: asyncio.Event
    resuming: asyncio.Task[tuple[Raw, Welcome]]

    @classmethod
    async def start(cls, cluster: Callable[..., Any]) -> Claiming:
        self = cls()
        self.a, self.b = await cluster(resume_window=30), await cluster(resume_window=30)
        welcome, self.held = await away_on(self.a)
        self.sid = welcome.id
        reached, self.release = hold_takeovers(self.a)
        self.resuming = asyncio.create_task(resume_on(self.b, welcome, 0))
        await reached.wait()
        return self


async def test_the_claimants_own_sends_and_broadcasts_keep_their_order(cluster: Callable[..., Any]) -> None:
    claiming = await Claiming.start(cluster)
    a, b, sid, held, release, resuming = (
        claiming.a,
        claiming.b,
        claiming.sid,
        claiming.held,
        claiming.release,
        claiming.resuming,
    )
    # The claimant's application, while the session is on its way to it: in call order.
    await b.send(sid, "first")
    await b.broadcast("second")
    await b.send(sid, "third")
    await a.send(sid, "from the holder")  # applied by the holder before it freezes
    await asyncio.sleep(0.05)  # every echo of b's own publishes has come back from the hub
    release.set()
    back, answer = await resuming
    assert answer.status == "resumed" and await held.wait("moved")
    assert [await back.data() for _ in range(4)] == ["from the holder", "first", "second", "third"]
    await b.send(sid, "last")
    assert await back.data() == "last"


async def test_a_claimants_send_whose_publish_failed_is_not_delivered(cluster: Callable[..., Any]) -> None:
    claiming = await Claiming.start(cluster)
    b, sid, release, resuming = claiming.b, claiming.sid, claiming.release, claiming.resuming
    broker = b.broker
    assert broker is not None
    publish = broker.publish

    async def failing(channel: str, payload: bytes) -> int:
        raise BrokerError("the link broke")

    broker.publish = failing  # type: ignore[method-assign]
    with pytest.raises(BrokerError):
        await b.send(sid, "failed")
    broker.publish = publish  # type: ignore[method-assign]
    await b.send(sid, "sent")
    release.set()
    back, answer = await resuming
    assert answer.status == "resumed"
    assert await back.data() == "sent"
    await b.send(sid, "last")
    assert await back.data() == "last"


async def test_a_disconnect_racing_the_takeover_ends_the_session_on_the_new_holder(
    cluster: Callable[..., Any],
) -> None:
    a, b, d = [await cluster(resume_window=30) for _ in range(3)]
    welcome, _ = await away_on(a)
    moved = Recorder().listen(b, *EVENTS)
    reached, release = hold_takeovers(a)
    raw = Raw(b, f"rtt_resume={resume_value(welcome, 0)}")
    opening = asyncio.create_task(raw.open())
    await reached.wait()
    await d.disconnect(welcome.id, 4001, "bye")
    release.set()
    await opening
    closed = await raw.closed()
    assert closed.close is not None and closed.close.code == 4001
    (event,) = moved.of("disconnect")
    assert event[0].id == welcome.id and event[1] is CloseReason.APPLICATION


def test_a_state_that_is_not_one_is_refused() -> None:
    header, entries = decode_state(encode_state({"id": "x"}, [Entry("t", 1), Entry(b"b", 1)]))
    assert header == {"id": "x"} and [e.data for e in entries] == ["t", b"b"]
    for bad in (b"no newline", b"[1]\n", b"{}\n\x01\x00\x00\x00\x05abc", b"{}\n\x07\x00\x00\x00\x00"):
        with pytest.raises(ValueError):
            decode_state(bad)


async def test_a_state_arriving_after_the_claimant_gave_up_is_lost_and_said_so(
    cluster: Callable[..., Any],
) -> None:
    fast = {"broker": None, "options": {"timeout": 0.5}}
    a = await cluster(resume_window=30)
    fast["broker"] = a.broker.options.url
    b, d = await cluster(resume_window=30, broker=fast), await cluster(resume_window=30)
    welcome, held = await away_on(a)
    reached, release = hold_takeovers(a)
    resuming = asyncio.create_task(resume_on(b, welcome, 0))
    await reached.wait()
    await d.send(welcome.id, "lost with the state")
    joining = asyncio.create_task(d.join(welcome.id, "late"))
    await eventually(lambda: len(claims(b)[welcome.id].buffer) == 2, 5, "the send and join captured")
    _, answer = await resuming
    assert answer.status == "lost" and answer.why == "unknown"
    release.set()
    with pytest.raises(rtt.UnknownSocketError):
        await joining  # b said gone when it gave up; a said gone after the freeze
    await held.wait("moved")  # a froze and sent its state, which nobody installs
    assert welcome.id not in b.sockets and welcome.id not in a.sockets


async def test_a_second_attempt_during_a_claim_resumes_once_the_session_is_in(
    cluster: Callable[..., Any],
) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    welcome, _ = await away_on(a)
    reached, release = hold_takeovers(a)
    first = asyncio.create_task(resume_on(b, welcome, 0))
    await reached.wait()
    # The client gave up on its first attempt and came again to the same process.
    second = asyncio.create_task(resume_on(b, welcome, 0))
    await asyncio.sleep(0.05)
    assert not second.done()  # it waits for the takeover instead of losing the session
    release.set()
    # The first connection is replaced by the second, before or after its own welcome.
    await asyncio.gather(first, return_exceptions=True)
    back, again = await second
    assert again.status == "resumed" and again.id == welcome.id
    await b.send(welcome.id, "to the second")
    assert await back.data() == "to the second"
    assert b.sockets[welcome.id].resumes >= 1 and welcome.id not in a.sockets


async def test_a_second_attempt_during_a_claim_that_fails_is_lost_too(cluster: Callable[..., Any]) -> None:
    a = await cluster(resume_window=30)
    assert a.broker is not None
    b = await cluster(resume_window=30, broker={"broker": a.broker.options.url, "options": {"timeout": 0.3}})
    welcome, _ = await away_on(a)
    reached, release = hold_takeovers(a)  # never released: the takeover times out
    first = asyncio.create_task(resume_on(b, welcome, 0))
    await reached.wait()
    _, second = await resume_on(b, welcome, 0)
    assert second.status == "lost" and second.why == "unknown"
    assert (await first)[1].why == "unknown"
    release.set()


async def test_joins_that_keep_racing_give_up_after_the_rounds(
    cluster: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    welcome, _ = await away_on(a)
    await a.join(welcome.id, "one")
    monkeypatch.setattr(rtt._handoff, "ROUNDS", 1)
    _, answer = await resume_on(b, welcome, 0)
    assert answer.status == "lost" and answer.why == "unknown" and welcome.id in a.sockets
    assert "g.one" not in b.broker.channels


def block_broadcast(server: MockServer, *data: str) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``server``'s plugin writes of ``data`` wait: (one is waiting, let them go on)."""
    writing, go = asyncio.Event(), asyncio.Event()
    original = server._broadcast

    async def slow(conns: list[Any], message: str | bytes) -> None:
        if message in data:
            writing.set()
            await go.wait()
        await original(conns, message)

    server._broadcast = slow  # type: ignore[method-assign,assignment]
    return writing, go


async def test_own_broadcasts_in_flight_while_a_session_moves(cluster: Callable[..., Any]) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    _, bystander_a = await start(a)  # each process has a connected socket, so its local delivery writes
    bystander, bystander_b = await start(b)
    welcome, held = await away_on(a)
    # a's broadcast is delivered to the session on a, then the session moves before it is published.
    writing, go = block_broadcast(a, "from a")
    sending = asyncio.create_task(a.broadcast("from a"))
    await writing.wait()
    reached, release = hold_takeovers(b)  # not used by this claim: b is the claimant
    del reached, release
    # b's broadcast is delivered on b without the session, which arrives before it is published.
    await b.join(bystander_b.id, "others")
    _, go_b = block_broadcast(b, "from b", "to others", "not to it")
    sending_b = asyncio.create_task(b.broadcast("from b"))
    to_others = asyncio.create_task(b.broadcast("to others", group="others"))
    not_to_it = asyncio.create_task(b.broadcast("not to it", exclude=welcome.id))
    await eventually(lambda: sum(1 for f in b._resume.handoff.flights) == 3, 5, "three in flight")
    resuming = asyncio.create_task(resume_on(b, welcome, 0))
    await held.wait("moved")
    go.set()
    await sending
    back, answer = await resuming
    go_b.set()
    await asyncio.gather(sending_b, to_others, not_to_it)
    assert answer.status == "resumed"
    assert [await back.data() for _ in range(2)] == ["from a", "from b"]
    await b.send(welcome.id, "last")
    assert await back.data() == "last"
    assert await bystander.data() == "from a" and bystander_a.status == "new"


async def test_captured_messages_past_resume_buffer_end_the_session(cluster: Callable[..., Any]) -> None:
    a = await cluster(resume_window=30)
    b = await cluster(resume_window=30, max_message_size=1000, resume_buffer=1100)
    d = await cluster(resume_window=30)
    welcome, _ = await away_on(a)
    ended = Recorder().listen(b, *EVENTS)
    reached, release = hold_takeovers(a)
    resuming = asyncio.create_task(resume_on(b, welcome, 0))
    await reached.wait()
    await d.send(welcome.id, "x" * 600)
    await d.send(welcome.id, "y" * 600)
    await eventually(lambda: len(claims(b)[welcome.id].buffer) == 2, 5, "captured")
    release.set()
    _, answer = await resuming
    assert answer.status == "lost" and answer.why == "unknown" and answer.id != welcome.id
    ((socket, reason),) = ended.of("disconnect")
    assert socket.id == welcome.id and reason is CloseReason.SESSION_LOST


async def test_a_malformed_takeover_is_refused(cluster: Callable[..., Any]) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    welcome, _ = await away_on(a)
    assert b._resume is not None and b._resume.handoff is not None and b.broker is not None
    claim = rtt._handoff.Claim(welcome.id)
    claim.reply = asyncio.get_running_loop().create_future()
    b._resume.handoff._by_ref[claim.ref] = claim
    bad = Envelope("takeover", b.node, welcome.id, data="{not json", ref=claim.ref)
    await b.broker.publish(f"s.{welcome.id}", encode_envelope(bad))
    reply = await asyncio.wait_for(claim.reply, 5)
    assert (reply.op, reply.data) == ("refuse", "unknown") and welcome.id in a.sockets


async def test_a_holder_that_cannot_answer_keeps_the_session(cluster: Callable[..., Any]) -> None:
    fast = {"broker": None, "options": {"timeout": 0.5}}
    a = await cluster(resume_window=30)
    fast["broker"] = a.broker.options.url
    b = await cluster(resume_window=30, broker=fast)
    welcome, _ = await away_on(a)
    assert a.broker is not None

    async def broken(channel: str, payload: bytes) -> int:
        raise BrokerError("cannot publish")

    a.broker.publish = broken
    bad = Welcome("new", welcome.id, "x" * 22, welcome.nonce, welcome.window)
    _, answer = await resume_on(b, bad, 0)
    assert answer.status == "lost" and a.sockets[welcome.id].away  # its refusal was lost: b gave up


async def test_a_state_nobody_receives_ends_the_session_on_the_holder(cluster: Callable[..., Any]) -> None:
    fast = {"broker": None, "options": {"timeout": 0.5}}
    a = await cluster(resume_window=30)
    fast["broker"] = a.broker.options.url
    b = await cluster(resume_window=30, broker=fast)
    welcome, held = await away_on(a)
    assert b.broker is not None
    await b.broker.unsubscribe(f"n.{b.node}")  # b no longer hears answers
    _, answer = await resume_on(b, welcome, 0)
    assert answer.status == "lost"
    ((socket, reason),) = await held.wait("disconnect")
    assert socket.id == welcome.id and reason is CloseReason.SESSION_LOST and not held.of("moved")


async def test_a_connection_being_closed_is_taken_over(cluster: Callable[..., Any]) -> None:
    a, b = await cluster(resume_window=30, close_timeout=5), await cluster(resume_window=30)
    held = Recorder().listen(a, *EVENTS)
    _, welcome = await start(a)
    a._begin_close(welcome.id, CloseReason.SHUTDOWN)  # its client never answers the close
    assert welcome.id in a._closing
    _, answer = await resume_on(b, welcome, 0)
    assert answer.status == "resumed"
    await held.wait("moved")
    assert [str(e[1]) for e in held.of("away")] == ["shutdown"]
    assert welcome.id not in a._closing and a._idle.is_set()


@pytest.mark.parametrize("how", ["returns", "hangs", "ends"])
async def test_a_running_handler_is_waited_for_within_half_the_timeout(
    cluster: Callable[..., Any], how: str
) -> None:
    options = {"broker": None, "options": {"timeout": 0.6}}
    a = await cluster(resume_window=30)
    options["broker"] = a.broker.options.url
    a = await cluster(resume_window=30, broker=options)
    b = await cluster(resume_window=30, broker=options)
    entered, leave = asyncio.Event(), asyncio.Event()

    async def handler(socket: Any, data: str | bytes) -> None:
        entered.set()
        await leave.wait()

    a.on("message", handler)
    raw, welcome = await start(a)
    raw.send("work")
    await entered.wait()
    resuming = asyncio.create_task(resume_on(b, welcome, 0))
    await eventually(lambda: a._resume.sessions[welcome.id].handled is not None, 5, "waiting")
    if how == "returns":
        leave.set()
    elif how == "ends":
        await a.disconnect(welcome.id)
        leave.set()
    _, answer = await resuming
    leave.set()
    if how == "ends":
        assert answer.status == "lost" and answer.why == "unknown"
    else:
        assert answer.status == "resumed" and answer.handled == 1


async def test_a_chain_of_claims_ends_with_the_last_claimant(cluster: Callable[..., Any]) -> None:
    a, b, c = [await cluster(resume_window=30) for _ in range(3)]
    welcome, _ = await away_on(a)
    reached, release = hold_takeovers(a)
    first = asyncio.create_task(resume_on(b, welcome, 0))
    await reached.wait()
    # The client gives up on b and comes back to c: c's takeover waits at b, which is still claiming.
    second = asyncio.create_task(resume_on(c, welcome, 0))
    await eventually(lambda: welcome.id in claims(c) and claims(b)[welcome.id].queued, 5, "queued at b")
    release.set()
    back, two = await second
    assert two.status == "resumed"
    with contextlib.suppress(Closed):  # the attempt the client gave up on: b held it only briefly
        await first
    await eventually(lambda: welcome.id in c.sockets, 5, "held by c")
    assert welcome.id not in a.sockets and welcome.id not in b.sockets
    await a.send(welcome.id, "to c")
    assert await back.data() == "to c"


async def test_confirmations_are_collected_from_every_receiver() -> None:
    answers = rtt.server._Answers()
    answers.answer(False)  # gone, before the receiver count is known
    answers.expect(2)
    assert not answers.done.done()
    answers.answer(True)
    answers.answer(False)  # late: the first held decided it
    assert answers.done.result() is True
    gone = rtt.server._Answers()
    gone.expect(1)
    gone.answer(False)
    assert gone.done.result() is False


# -- Push at shutdown -----------------------------------------------------------------------


def hold_push(server: MockServer) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``server``'s push at shutdown wait until released: (it is closing and about to push, go on)."""
    assert server._resume is not None and server._resume.handoff is not None
    handoff = server._resume.handoff
    push = handoff.push
    reached, release = asyncio.Event(), asyncio.Event()

    async def held() -> None:
        reached.set()
        await release.wait()
        await push()

    handoff.push = held  # type: ignore[method-assign]
    return reached, release


def holder(sid: str, *servers: MockServer) -> MockServer:
    (found,) = [server for server in servers if sid in server.sockets]
    return found


async def test_a_closing_server_hands_its_sessions_to_its_live_peers(cluster: Callable[..., Any]) -> None:
    a, b, c, d = [await cluster(resume_window=30) for _ in range(4)]
    peers = (b, c, d)
    quiet = [Recorder().listen(server, *EVENTS) for server in peers]
    held = Recorder().listen(a, *EVENTS)
    raws: list[Raw] = []
    welcomes: list[Welcome] = []
    for _ in range(3):
        raw, welcome = await start(a)
        raws.append(raw)
        welcomes.append(welcome)
    await a.join(welcomes[0].id, "room")
    await a.join(welcomes[1].id, "room")
    await a.join(welcomes[1].id, "hall")
    await a.send(welcomes[0].id, "m1")
    assert await raws[0].data() == "m1"
    raws[2].sever()  # one away before the close
    await held.wait("away")
    await a.send(welcomes[2].id, "m1")
    reached, release = hold_push(a)
    closing = asyncio.create_task(a.close())
    closing.add_done_callback(lambda _: release.set())
    await reached.wait()  # drained: the connected ones are away now, the push not begun
    assert a.broker is not None and a.node not in await a.broker.nodes()
    for raw in raws[:2]:
        await raw.closed()
    # Another process reaches them while the first holder is closing: into the logs that move.
    await d.send(welcomes[0].id, "m2")
    await d.broadcast("m3", group="room")
    await eventually(
        lambda: a._resume is not None and a._resume.sessions[welcomes[1].id].log.out == 1, 5, "m3"
    )
    release.set()
    await closing
    assert held.of("disconnect") == [] and len(held.of("moved")) == 3
    assert [str(e[1]) for e in held.of("away")] == ["transport error", "shutdown", "shutdown"]
    assert a.stats.moved_out == 3 and [p.stats.moved_in for p in peers] == [1, 1, 1]  # round-robin
    for welcome in welcomes:
        new = holder(welcome.id, *peers)
        assert new.sockets[welcome.id].away and new.sockets[welcome.id].resumes == 0
    assert holder(welcomes[1].id, *peers).groups(welcomes[1].id) == {"room", "hall"}
    assert all(not rec.events for rec in quiet)  # no event on the new holder until back or disconnect
    await d.broadcast("m4", group="hall")

    # Each client comes back, to the process that does not hold its session: it pulls from the one that does.
    def elsewhere(welcome: Welcome) -> MockServer:
        found: MockServer = next(p for p in peers if p is not holder(welcome.id, *peers))
        return found

    back, answer = await resume_on(elsewhere(welcomes[0]), welcomes[0], 1)
    assert answer.status == "resumed" and answer.id == welcomes[0].id
    assert [await back.data() for _ in range(2)] == ["m2", "m3"]
    back, answer = await resume_on(elsewhere(welcomes[1]), welcomes[1], 0)
    assert answer.status == "resumed" and [await back.data() for _ in range(2)] == ["m3", "m4"]
    back, answer = await resume_on(holder(welcomes[2].id, *peers), welcomes[2], 0)
    assert answer.status == "resumed" and await back.data() == "m1"
    assert sorted(e[0] for rec in quiet for e in rec.events) == ["back"] * 3 + ["moved"] * 2


async def test_messages_during_the_push_arrive_once(cluster: Callable[..., Any]) -> None:
    a, _, d = [await cluster(resume_window=30) for _ in range(3)]
    welcomes = [(await start(a))[1] for _ in range(4)]
    for welcome in welcomes:
        await a.join(welcome.id, "all")
    reached, release = hold_takeovers(a)
    closing = asyncio.create_task(a.close())
    await reached.wait()  # the first takeover waits at the old holder; the rest queue behind it
    for welcome in welcomes:
        await d.send(welcome.id, f"to {welcome.id}")
    await d.broadcast("everyone")
    await d.broadcast("group", group="all")
    release.set()
    await closing
    for welcome in welcomes:
        back, answer = await resume_on(d, welcome, 0)
        assert answer.status == "resumed"
        # Once each (d is a peer too: its own send to a session it is taking comes back through the
        # broker after its own broadcast, which it captured as it published it).
        got = sorted([await back.data() for _ in range(3)])
        assert got == sorted([f"to {welcome.id}", "everyone", "group"])
        with pytest.raises(TimeoutError):
            await back.data(timeout=0.1)  # nothing more: each arrived once


@pytest.mark.parametrize("when", ["before the drain", "during the freeze"])
async def test_a_handler_running_as_its_server_closes_still_reaches_everyone(
    cluster: Callable[..., Any], when: str
) -> None:
    # A chat handler: the message it was handed counts as handled, so its broadcast must not be refused
    # because the server began closing meanwhile (SPEC.md 3.1, 17.3); it reaches the sessions that move too.
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    entered, leave = asyncio.Event(), asyncio.Event()
    refused: list[BaseException] = []

    async def relay(socket: Any, data: str | bytes) -> None:
        entered.set()
        await leave.wait()
        try:
            await a.broadcast(data)
            await a.send(socket.id, f"echo {data!r}")
            await a.join(socket.id, "late")
        except Exception as exc:
            refused.append(exc)

    a.on("message", relay)
    raw, welcome = await start(a)
    other, _ = await start(b)
    raw.send("hi")
    await entered.wait()
    closing = asyncio.create_task(a.close())
    if when == "before the drain":
        await eventually(lambda: a.state is rtt.ServerState.CLOSING, 5, "closing")
    else:
        # The push freezes the session and waits for its running handler (within half the timeout).
        assert a._resume is not None
        session = a._resume.sessions[welcome.id]
        await eventually(lambda: session.handled is not None, 5, "frozen")
    leave.set()
    await closing
    assert refused == []
    assert await other.data() == "hi"
    back, answer = await resume_on(b, welcome, 0)
    assert answer.status == "resumed" and answer.handled == 1
    assert [await back.data(), await back.data()] == ["hi", "echo 'hi'"]
    assert b.groups(welcome.id) == {"late"}


async def test_a_peer_that_does_not_take_them_leaves_them_to_end_with_shutdown(
    cluster: Callable[..., Any], hub_url: str
) -> None:
    a = await cluster(resume_window=30, broker={"broker": hub_url, "options": {"timeout": 0.3}})
    b = await cluster(resume_window=30)
    assert b._resume is not None and b._resume.handoff is not None

    async def deaf(envelope: Envelope) -> None:
        return None

    b._resume.handoff.adopt = deaf
    held = Recorder().listen(a, *EVENTS)
    _, welcome = await start(a)
    await a.close()
    assert [(e[0], str(e[-1])) for e in held.events][1:] == [("away", "shutdown"), ("disconnect", "shutdown")]
    assert welcome.id not in b.sockets


@pytest.mark.parametrize("how", ["unordered", "alone", "opaque", "no broker"])
async def test_without_a_peer_to_take_them_sessions_end_with_shutdown_as_before(
    cluster: Callable[..., Any], hub_url: str, how: str
) -> None:
    a: MockServer
    if how == "no broker":
        alone = rtt.load("mock").server(resume_window=30, close_timeout=0.5)
        assert isinstance(alone, MockServer)
        a = alone
        await a.start()
    else:
        broker: Any = Unordered(hub_url) if how == "unordered" else hub_url
        a = await cluster(resume_window=30, broker=broker, authorize=by_user)
    if how in ("unordered", "opaque"):
        await cluster(resume_window=30)
    held = Recorder().listen(a, *EVENTS)
    raw = Raw(a, f"user={'opaque' if how == 'opaque' else 'alice'}&rtt_resume=1")
    await raw.open()
    await raw.welcome()
    await a.close()
    assert [(e[0], str(e[-1])) for e in held.events][1:] == [("disconnect", "shutdown")] or [
        (e[0], str(e[-1])) for e in held.events
    ][1:] == [("away", "shutdown"), ("disconnect", "shutdown")]
    assert a.stats.moved_out == 0


async def test_an_adopted_session_resumes_with_the_same_identity_only(cluster: Callable[..., Any]) -> None:
    a = await cluster(resume_window=30, authorize=by_user)
    b = await cluster(resume_window=30, authorize=by_user)
    raw = Raw(a, "user=alice&path=x&rtt_resume=1")
    await raw.open()
    welcome = await raw.welcome()
    old = a.sockets[welcome.id]
    await a.close()
    moved = b.sockets[welcome.id]
    assert moved.identity == {"user": "alice"} and moved.query == old.query and moved.path == old.path
    assert dict(moved.headers) == dict(old.headers) and moved.remote_address == old.remote_address
    _, answer = await resume_on(b, welcome, 0, "user=mallory&")
    assert answer.status == "lost" and answer.why == "identity"
    _, answer = await resume_on(b, welcome, 0, "user=alice&")
    assert answer.status == "resumed"


async def test_a_malformed_or_unmatched_adopt_takes_nothing(cluster: Callable[..., Any]) -> None:
    a, b = await cluster(resume_window=30), await cluster(resume_window=30)
    welcome, _ = await away_on(a)
    assert b.broker is not None and b._resume is not None and b._resume.handoff is not None
    await b._resume.handoff.adopt(Envelope("adopt", a.node, "", data="{nope", ref="r"))
    # An offer a did not make: refused, the session stays.
    await b._resume.handoff.adopt(Envelope("adopt", a.node, "", data=f'[["{welcome.id}",[]]]', ref="r"))
    assert welcome.id in a.sockets and welcome.id not in b.sockets


async def test_withdraw_is_remembered_while_the_link_is_down(
    cluster: Callable[..., Any], hub_url: str
) -> None:
    a = await cluster()
    assert a.broker is not None
    await Broker._withdraw(a.broker)  # the default: the announcement expires by itself
    hub(hub_url.removeprefix("memory://")).fail()
    await eventually(lambda: a.broker is not None and a.broker.state is rtt.BrokerState.DOWN, 5, "down")
    await a.broker.withdraw()
    a.broker.count_changed()  # withdrawn: nothing announced
    assert a.broker._withdrawn and not a.broker._announcing
