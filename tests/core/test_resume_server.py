"""The server's resume layer in one process (SPEC.md 17.3), driven over mock links by a scripted client.

The client is written by hand (:mod:`resume_raw`): each case reads the
welcome, writes the hello and the acks, and checks the frames the server
writes, so the server is tested against the wire rules of SPEC.md 17.2 and
not against rtt's own client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from resume_raw import Raw, resume_value, start

from rtt import Accept, CloseReason, Handshake, UnknownSocketError
from rtt.resume import ACK_DELAY, ACK_EVERY, Welcome, ack_text
from rtt.testing import Recorder, eventually
from rtt_mock import MockClient, MockServer, MockTransport
from rtt_mock.network import Frame

pytestmark = pytest.mark.timeout(60)

EVENTS = ("connect", "message", "away", "back", "disconnect")


@asynccontextmanager
async def resume_server(mock: MockTransport, **options: Any) -> AsyncIterator[MockServer]:
    """A started mock server with resume on (30 s unless ``resume_window`` says otherwise)."""
    options.setdefault("resume_window", 30)
    # Scripted clients that stopped reading never answer the shutdown's close: do not wait long.
    options.setdefault("close_timeout", 0.5)
    server = mock.server(**options)
    assert isinstance(server, MockServer)
    async with server:
        yield server


def record(server: MockServer) -> Recorder:
    return Recorder().listen(server, *EVENTS)


def sequence(rec: Recorder) -> list[tuple[Any, ...]]:
    """The events, with a socket shown as its id and a reason as its text."""
    return [
        tuple(getattr(arg, "id", arg) if not isinstance(arg, CloseReason) else str(arg) for arg in event)
        for event in rec.events
    ]


async def test_a_new_session_is_welcomed_then_counts_and_acks_both_ways(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        raw, welcome = await start(server)
        assert welcome.status == "new" and welcome.window == 30.0 and welcome.handled == 0
        socket = server.sockets[welcome.id]
        assert socket.resumable and not socket.away and socket.away_since is None and socket.resumes == 0
        assert "rtt_resume" not in socket.query and socket.query_string == ""
        # Server -> client: messages kept until the client acks them; text starting with U+0000 escaped.
        await server.send(welcome.id, "one")
        await server.send(welcome.id, b"\x00two")
        await server.send(welcome.id, "\x00three")
        assert [await raw.recv() for _ in range(3)] == ["one", b"\x00two", "\x00\x00three"]
        raw.send(ack_text(3))
        # Client -> server: acked at ACK_EVERY messages at once, the rest within ACK_DELAY.
        for k in range(ACK_EVERY + 1):
            raw.send(f"m{k}")
        assert await raw.recv() == ack_text(ACK_EVERY)
        assert await raw.recv() == ack_text(ACK_EVERY + 1)
        raw.send("\x00\x00escaped")
        await rec.wait("message", ACK_EVERY + 2)
        assert rec.of("message")[-1][1] == "\x00escaped"
        assert server.stats.messages_in == ACK_EVERY + 2 and server.stats.messages_out == 3
        # The ack trimmed the log: a resume from before it cannot be served any more.
        raw.sever()
        await rec.wait("away")
        _, lost = await start(server, resume_value(welcome, 2))
        assert lost.status == "lost" and lost.why == "unknown" and lost.id != welcome.id
        assert [e for e in sequence(rec) if e[0] != "message"] == [
            ("connect", welcome.id),
            ("away", welcome.id, "transport error"),
            ("disconnect", welcome.id, "session lost"),
            ("connect", lost.id),
        ]
        assert server.stats.resume_failures == 1


async def test_resume_replays_what_was_sent_while_away_and_resends_are_handled_once(
    mock: MockTransport,
) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        handled: list[str | bytes] = []
        server.on("message", lambda socket, data: handled.append(data))
        raw, welcome = await start(server)
        sid = welcome.id
        await server.join(sid, "room")
        other = Raw(server)  # a plain connection on the same server
        await other.open()
        await eventually(lambda: len(server.sockets) == 2)
        await server.send(sid, "before")
        assert await raw.data() == "before"
        raw.send("c1")
        raw.send("c2")
        await eventually(lambda: len(handled) == 2)
        raw.link.drop(2, "to_server")  # c3 and c4 are lost on the way
        raw.send("c3")
        raw.send("c4")
        raw.sever()
        (socket, reason), *_ = await rec.wait("away")
        assert reason is CloseReason.TRANSPORT_ERROR and socket.away and socket.away_since is not None
        assert sid in server.sockets and server.groups(sid) == {"room"}
        assert await server.is_connected(sid) and await server.socket_count() == 2
        await server.send(sid, "sent")
        assert await server.broadcast("to all") == 2
        assert await server.broadcast("\x00to the room", group="room") == 1
        assert await other.data() == "to all"
        resumed_raw, resumed = await start(server, resume_value(welcome, raw.received), hello=False)
        assert resumed.status == "resumed" and resumed.id == sid and resumed.received == 1
        assert resumed.handled == 2 and resumed.token != welcome.token
        resumed_raw.hello(resumed)
        resumed_raw.send("c3")  # resent from the welcome's r
        resumed_raw.send("c4")
        assert [await resumed_raw.data() for _ in range(3)] == ["sent", "to all", "\x00to the room"]
        await eventually(lambda: len(handled) == 4)
        assert handled == ["c1", "c2", "c3", "c4"]
        again = server.sockets[sid]
        assert again is socket and not again.away and again.away_since is None and again.resumes == 1
        assert [e[0] for e in rec.events if e[0] != "message"] == ["connect", "connect", "away", "back"]
        assert server.stats.resumes == 1 and server.stats.connections == 3 and server.stats.disconnects == 0


@pytest.mark.parametrize(
    "value",
    ["garbage", "1.2.3", "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.0"],
    ids=["malformed", "short", "unknown id"],
)
async def test_what_cannot_be_resumed_gets_a_new_session(mock: MockTransport, value: str) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        raw, welcome = await start(server, value)
        assert welcome.status == "lost" and welcome.why == "unknown"
        assert [e[0] for e in rec.events] == ["connect"] and welcome.id in server.sockets
        raw.send("after the hello")
        await rec.wait("message")
        assert server.stats.resume_failures == 1


async def test_a_wrong_token_or_identity_leaves_the_old_session_alone(mock: MockTransport) -> None:
    def authorize(handshake: Handshake) -> Accept:
        return Accept(handshake.query.get("user"))

    async with resume_server(mock, authorize=authorize) as server:
        rec = record(server)
        raw = Raw(server, "user=ann&rtt_resume=1")
        await raw.open()
        welcome = await raw.welcome()
        raw.sever()
        await rec.wait("away")
        wrong = resume_value(welcome, 0, token="B" * 22)
        _, first = await start(server, wrong)
        assert first.status == "lost" and first.why == "unknown"
        thief = Raw(server, f"user=bob&rtt_resume={resume_value(welcome, 0)}")
        await thief.open()
        second = await thief.welcome()
        assert second.status == "lost" and second.why == "identity"
        assert server.sockets[welcome.id].away  # still there for its rightful client
        again = Raw(server, f"user=ann&rtt_resume={resume_value(welcome, 0)}")
        await again.open()
        assert (await again.welcome()).status == "resumed"
        assert server.stats.resume_failures == 2


async def test_window_expiry_ends_the_session_as_session_lost(mock: MockTransport) -> None:
    async with resume_server(mock, resume_window=0.2) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        again, back = await start(server, resume_value(welcome, 0))
        assert back.status == "resumed"
        again.sever()
        await rec.wait("away", 2)
        await rec.wait("disconnect")
        assert sequence(rec) == [
            ("connect", welcome.id),
            ("away", welcome.id, "transport error"),
            ("back", welcome.id),
            ("away", welcome.id, "transport error"),
            ("disconnect", welcome.id, "session lost"),
        ]
        assert not server.sockets and server.stats.disconnects == 1 and server.stats.drops == 2
        with pytest.raises(UnknownSocketError):
            await server.send(welcome.id, "too late")
        _, late = await start(server, resume_value(back, 0))
        assert late.status == "lost"


async def test_a_client_without_rtt_resume_gets_a_plain_connection(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        server.on("message", lambda socket, data: server.send(socket.id, data))
        raw = Raw(server, "x=1")
        await raw.open()
        raw.send("\x00raw")
        assert await raw.recv() == "\x00raw"  # no welcome first, no escaping
        (socket,), *_ = await rec.wait("connect")
        assert not socket.resumable and socket.query == {"x": "1"}
        raw.sever()
        await rec.wait("disconnect")
        assert [e[0] for e in rec.events] == ["connect", "message", "disconnect"]
        assert not server.sockets


async def test_protocol_errors_end_the_session(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        for bad in ("\x00Zwhat", ack_text(1), "\x00H" + "x" * 11, "\x00W{}"):
            raw, welcome = await start(server, hello=bad != "\x00H" + "x" * 11)
            raw.send(bad)
            closed = await raw.closed()
            assert closed.reason is CloseReason.PROTOCOL_ERROR, bad
        await rec.wait("disconnect", 4)
        assert {e[1] for e in rec.of("disconnect")} == {CloseReason.PROTOCOL_ERROR}
        assert not server.sockets
        # A session ended so cannot be resumed.
        _, lost = await start(server, resume_value(welcome, 0))
        assert lost.status == "lost"


async def test_rtt_resume_is_hidden_from_authorize_and_the_socket(mock: MockTransport) -> None:
    seen: list[tuple[dict[str, str], str]] = []

    def authorize(handshake: Handshake) -> bool:
        seen.append((dict(handshake.query), handshake.query_string))
        return True

    async with resume_server(mock, authorize=authorize) as server:
        raw = Raw(server, "a=1&rtt_resume=1&b=2&rtt_resume=again")
        await raw.open()
        welcome = await raw.welcome()
        socket = server.sockets[welcome.id]
        assert seen == [({"a": "1", "b": "2"}, "a=1&b=2")]
        assert socket.query == {"a": "1", "b": "2"} and socket.query_string == "a=1&b=2"
    async with mock.server() as plain:  # stripped with resume off too: the name is reserved
        raw = Raw(plain, "rtt_resume=1&c=3")  # type: ignore[arg-type]
        await raw.open()
        raw.send("hi")
        await eventually(lambda: len(plain.sockets) == 1)
        (socket,) = plain.sockets.values()
        assert socket.query == {"c": "3"} and not socket.resumable
        assert seen[1:] == []


async def test_disconnect_of_an_away_socket_leaves_a_tombstone(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        await server.disconnect(welcome.id, 4001, "banned")
        (_, reason), *_ = await rec.wait("disconnect")
        assert reason is CloseReason.APPLICATION and welcome.id not in server.sockets
        back = Raw(server, f"rtt_resume={resume_value(welcome, 0)}")
        await back.open()
        closed = await back.closed()
        assert closed.close is not None and (closed.close.code, closed.close.text) == (4001, "banned")
        # Connected when disconnected: a client that missed the close gets it when it comes back.
        raw2, welcome2 = await start(server)
        await server.disconnect(welcome2.id)
        assert (await raw2.closed()).reason is CloseReason.SERVER_CLOSED
        back2 = Raw(server, f"rtt_resume={resume_value(welcome2, 0)}")
        await back2.open()
        assert (await back2.closed()).reason is CloseReason.SERVER_CLOSED
        # A wrong token gets no tombstone's close, but a new session.
        _, lost = await start(server, resume_value(welcome2, 0, token="C" * 22))
        assert lost.status == "lost"
        await rec.wait("disconnect", 2)
        assert [e[0] for e in rec.events] == [
            "connect",
            "away",
            "disconnect",
            "connect",
            "disconnect",
            "connect",
        ]


async def test_tombstones_last_the_window(mock: MockTransport) -> None:
    async with resume_server(mock, resume_window=0.2) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        await server.disconnect(welcome.id)
        resume = server._resume
        assert resume is not None and resume.tombs
        await eventually(lambda: not resume.tombs)  # the window passed
        _, lost = await start(server, resume_value(welcome, 0))
        assert lost.status == "lost"


async def test_a_resume_while_the_old_connection_is_still_attached(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        handled: list[str | bytes] = []
        server.on("message", lambda socket, data: handled.append(data))
        raw, welcome = await start(server)
        raw.send("c1")
        await eventually(lambda: handled == ["c1"])
        raw.link.stall()  # the client stops reading; the server has not noticed anything
        await server.send(welcome.id, "stuck")
        new, resumed = await start(server, resume_value(welcome, 0))
        assert resumed.status == "resumed" and resumed.handled == 1
        assert await new.data() == "stuck"
        assert [e[0] for e in rec.events] == ["connect", "message", "away", "back"]
        assert rec.of("away")[0][1] is CloseReason.TRANSPORT_ERROR
        assert raw.link.closed  # the old connection was cut
        new.send("c2")
        await eventually(lambda: handled == ["c1", "c2"])
        assert server.sockets[welcome.id].resumes == 1


async def test_late_and_repeated_reports_of_a_detached_connection_are_ignored(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        wires: list[Any] = []
        opened = server._opened

        async def keep(conn: Any, handshake: Handshake, identity: Any = None) -> Any:
            wire = await opened(conn, handshake, identity)
            wires.append(wire)
            return wire

        server._opened = keep  # type: ignore[method-assign]
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        new, _ = await start(server, resume_value(welcome, 0))
        old, current = wires
        assert old is not current and old.id == current.id == welcome.id
        assert old is not server.sockets[welcome.id] and current is not server.sockets[welcome.id]
        await server._received(old, "late")
        await server._closed(old, CloseReason.TRANSPORT_ERROR)
        await server._closed(old, CloseReason.CLIENT_CLOSED)
        new.send("live")
        await rec.wait("message")
        assert [e[0] for e in rec.events] == ["connect", "away", "back", "message"]
        assert rec.of("message")[0][1] == "live" and rec.of("message")[0][0] is server.sockets[welcome.id]


async def test_shutdown_ends_away_and_connected_sessions(mock: MockTransport) -> None:
    rec = Recorder()
    async with resume_server(mock) as server:
        rec.listen(server, *EVENTS)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        connected, welcome2 = await start(server)
        plain = Raw(server)
        await plain.open()
        await eventually(lambda: len(server.sockets) == 3)
        closing = asyncio.ensure_future(connected.closed())  # reads, so the close is answered
    assert sorted((e[1].id, e[2]) for e in rec.events if e[0] == "disconnect") == sorted(
        [
            (welcome.id, CloseReason.SHUTDOWN),
            (welcome2.id, CloseReason.SHUTDOWN),
            (next(iter(rec.of("connect")[2])).id, CloseReason.SHUTDOWN),
        ]
    )
    assert [e[0] for e in rec.events].count("away") == 1
    assert (await closing).reason is CloseReason.SHUTDOWN
    assert not server.sockets


async def test_a_log_that_overflows_while_away_ends_the_session(mock: MockTransport) -> None:
    async with resume_server(mock, max_message_size=100, resume_buffer=500) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        for _ in range(4):  # each counts 164 bytes
            await server.send(welcome.id, "x" * 100)
        await rec.wait("disconnect")
        assert rec.of("disconnect")[0][1] is CloseReason.SESSION_LOST
        with pytest.raises(UnknownSocketError):
            await server.send(welcome.id, "x")
        _, lost = await start(server, resume_value(welcome, 0))
        assert lost.status == "lost"


async def test_a_log_that_overflows_while_connected_is_a_slow_consumer(mock: MockTransport) -> None:
    async with resume_server(mock, max_message_size=100, resume_buffer=500) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw2, welcome2 = await start(server)
        for _ in range(2):
            await server.send(welcome.id, "y" * 100)
        raw.send(ack_text(1))  # acks free room: the client keeps up
        await eventually(lambda: server.stats.messages_in == 0 and raw.link.to_server.buffered == 0)
        for _ in range(4):
            await server.broadcast("x" * 100)  # the clients never ack these
        await rec.wait("disconnect", 2)
        assert {e[1] for e in rec.of("disconnect")} == {CloseReason.SLOW_CONSUMER}
        assert (await raw2.closed()).reason is CloseReason.TRANSPORT_ERROR  # a slow consumer is cut
        assert not server.sockets and not rec.of("away")
        _, lost = await start(server, resume_value(welcome2, 0))
        assert lost.status == "lost"


async def test_replay_is_paced_by_outbound_limit(mock: MockTransport) -> None:
    async with resume_server(mock, outbound_limit=1000, ping_interval=None) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        for k in range(40):
            await server.send(welcome.id, f"{k:03d}" + "." * 97)
        new = Raw(server, f"rtt_resume={resume_value(welcome, 0)}")
        new.link.stall()
        await new.open()
        await eventually(lambda: new.link.to_client.buffered >= 900)
        await asyncio.sleep(0.05)  # the replay waits for the client instead of writing on
        assert new.link.to_client.buffered <= 1000 + 100
        await server.send(welcome.id, "live")  # after the log, in order
        new.link.resume()
        assert Welcome.parse(await new.recv()) is not None
        got = [await new.data() for _ in range(41)]
        assert got[:40] == [f"{k:03d}" + "." * 97 for k in range(40)] and got[40] == "live"
        assert not rec.of("disconnect")


async def test_the_previous_token_works_until_the_hello(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        # The welcome of this attempt is lost with its connection: the client still has the first token.
        first, resumed = await start(server, resume_value(welcome, 0), hello=False)
        first.sever()
        await rec.wait("away", 2)
        second, again = await start(server, resume_value(welcome, 0))
        assert again.status == "resumed" and again.token not in (welcome.token, resumed.token)
        second.send("after the hello")
        await rec.wait("message")
        second.sever()
        await rec.wait("away", 3)
        _, stale = await start(server, resume_value(welcome, 0))  # confirmed away by the hello
        assert stale.status == "lost"


async def test_an_identity_whose_comparison_raises_does_not_resume(mock: MockTransport) -> None:
    class Touchy:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparing")

        __hash__ = object.__hash__

    async with resume_server(mock, authorize=lambda handshake: Accept(Touchy())) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.sever()
        await rec.wait("away")
        _, lost = await start(server, resume_value(welcome, 0))
        assert lost.status == "lost" and lost.why == "identity"


async def test_before_the_hello_messages_are_raw(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        raw, welcome = await start(server, hello=False)
        raw.send("\x00Hello, raw")  # starts like a hello, but is none: data
        raw.send("\x00\x00not unescaped yet")
        raw.hello(welcome)
        raw.send("\x00\x00unescaped")
        await rec.wait("message", 3)
        assert [e[1] for e in rec.of("message")] == [
            "\x00Hello, raw",
            "\x00\x00not unescaped yet",
            "\x00unescaped",
        ]


async def test_a_too_big_message_ends_the_session(mock: MockTransport) -> None:
    async with resume_server(mock, max_message_size=10) as server:
        rec = record(server)
        raw, _welcome = await start(server)
        raw.send("\x00\x00" + "x" * 9)  # 10 bytes once unescaped: fine
        raw.send("x" * 11)
        assert (await raw.closed()).reason is CloseReason.MESSAGE_TOO_BIG
        await rec.wait("disconnect")
        assert [e[0] for e in rec.events] == ["connect", "message", "disconnect"]
        assert rec.of("disconnect")[0][1] is CloseReason.MESSAGE_TOO_BIG


async def test_a_client_going_away_leaves_the_session_away(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        raw, _welcome = await start(server)
        raw.link.to_server.put(Frame("close", reason=CloseReason.SHUTDOWN))  # a 1001 from the client
        await rec.wait("away")
        assert rec.of("away")[0][1] is CloseReason.SHUTDOWN and server.stats.drops == 0
        raw2, welcome2 = await start(server)
        raw2.link.to_server.put(Frame("close", reason=CloseReason.CLIENT_CLOSED))
        await rec.wait("disconnect")
        assert rec.of("disconnect")[0][1] is CloseReason.CLIENT_CLOSED and welcome2.id not in server.sockets


async def test_send_while_the_connection_is_closing_or_just_ended(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        raw, welcome = await start(server)
        sid = welcome.id
        # A plugin closes it for a reason that resumes; the client has not answered yet.
        server._begin_close(sid, CloseReason.SHUTDOWN)
        server._begin_close(sid, CloseReason.SHUTDOWN)  # once is enough
        await server.send(sid, "logged")
        await server.join(sid, "g")
        assert server.groups(sid) == {"g"} and sid in server.sockets
        await server.disconnect(sid)  # ends it now, while its connection closes
        await rec.wait("disconnect")
        assert rec.of("disconnect")[0][1] is CloseReason.SERVER_CLOSED
        assert (await raw.closed()).reason is CloseReason.SHUTDOWN
        # Severed and written to before the server has seen it end: the log keeps the message.
        raw2, welcome2 = await start(server)
        raw2.sever()
        await server.send(welcome2.id, "kept")
        await rec.wait("away")
        new, _ = await start(server, resume_value(welcome2, 0))
        assert await new.data() == "kept"
        assert [e[0] for e in rec.events] == ["connect", "disconnect", "connect", "away", "back"]


async def test_a_slow_consumer_resumes(mock: MockTransport) -> None:
    async with resume_server(mock, outbound_limit=300, ping_interval=None) as server:
        rec = record(server)
        raw, welcome = await start(server)
        raw.link.stall()
        for k in range(4):
            await server.send(welcome.id, f"{k}" * 100)
        await rec.wait("away")
        assert rec.of("away")[0][1] is CloseReason.SLOW_CONSUMER
        new, _resumed = await start(server, resume_value(welcome, 0))
        assert [await new.data() for _ in range(4)] == [f"{k}" * 100 for k in range(4)]
        # Broadcasts are bounded alike (here polled by the core).
        new.link.stall()
        for k in range(4):
            await server.broadcast(f"{k}" * 100)
        await rec.wait("away", 2)


async def test_broadcast_paths(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        raw, welcome = await start(server)
        plain = Raw(server)
        await plain.open()
        await eventually(lambda: len(server.sockets) == 2)
        plain_id = next(sid for sid in server.sockets if sid != welcome.id)
        assert await server.broadcast("x", exclude=[welcome.id, plain_id]) == 0
        assert await server.broadcast("x", group="nobody") == 0
        assert await server.broadcast("\x00both") == 2
        assert await raw.recv() == "\x00\x00both" and await plain.recv() == "\x00both"
        assert await server.broadcast("\x00only resumable", exclude=plain_id) == 1
        assert await raw.recv() == "\x00\x00only resumable"
        server._reports_slow_consumers = True  # type: ignore[misc]  # the plugin would report them
        assert await server.broadcast("y") == 2
        await server.send(welcome.id, "z")
        assert [await raw.recv(), await raw.recv()] == ["y", "z"]


async def test_a_resume_waits_for_the_old_connections_running_handler(mock: MockTransport) -> None:
    async with resume_server(mock, close_timeout=5) as server:
        rec = record(server)
        release = asyncio.Event()
        handled: list[str | bytes] = []

        async def slow(socket: Any, data: str | bytes) -> None:
            handled.append(data)
            if data == "slow":
                await release.wait()

        server.on("message", slow)
        raw, welcome = await start(server)
        raw.send("slow")
        await eventually(lambda: handled == ["slow"])
        raw.send("behind")  # read by nobody: the old connection is detached first
        new = Raw(server, f"rtt_resume={resume_value(welcome, 0)}")
        await new.open()
        await eventually(lambda: raw.link.closed)
        assert new.link.to_client.buffered == 0  # no welcome while the handler runs
        release.set()
        resumed = await new.welcome()
        assert resumed.status == "resumed" and resumed.handled == 1  # "behind" was never handled
        assert handled == ["slow"] and sequence(rec)[1:] == [
            ("message", welcome.id, "slow"),
            ("away", welcome.id, "transport error"),
            ("back", welcome.id),
        ]


async def test_a_resume_gives_up_waiting_for_the_old_connection_after_close_timeout(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    async with resume_server(mock, close_timeout=0.2) as server:
        rec = record(server)
        release = asyncio.Event()

        async def stuck(socket: Any, data: str | bytes) -> None:
            await release.wait()

        server.on("message", stuck)
        raw, welcome = await start(server)
        raw.send("stuck")
        await eventually(lambda: server._handling(welcome.id))
        _new, resumed = await start(server, resume_value(welcome, 0))
        assert resumed.status == "resumed" and resumed.handled == 1
        assert "not reported closed in time" in caplog.text
        release.set()
        await rec.wait("back")
        assert [e[0] for e in rec.events] == ["connect", "message", "away", "back"]


async def test_a_resume_that_waits_through_the_start_of_shutdown_is_closed(mock: MockTransport) -> None:
    async with resume_server(mock, close_timeout=5) as server:
        rec = record(server)
        release = asyncio.Event()

        async def slow(socket: Any, data: str | bytes) -> None:
            await release.wait()

        server.on("message", slow)
        raw, welcome = await start(server)
        raw.send("slow")
        await eventually(lambda: server._handling(welcome.id))
        new = Raw(server, f"rtt_resume={resume_value(welcome, 0)}")
        await new.open()
        await eventually(lambda: raw.link.closed)
        closing = asyncio.ensure_future(server.close())
        await eventually(lambda: server.state.name == "CLOSING")
        release.set()
        assert (await new.closed()).reason is CloseReason.SHUTDOWN
        await closing
        assert [e[0] for e in rec.events] == ["connect", "message", "disconnect"]
        assert rec.of("disconnect")[0][1] is CloseReason.SHUTDOWN


async def test_rtts_client_resumes_through_severs(mock: MockTransport) -> None:
    """rtt's own Python client (SPEC.md 17.4) against this server: nothing lost or repeated."""
    async with resume_server(mock) as server:
        rec = record(server)
        handled: list[str | bytes] = []
        server.on("message", lambda socket, data: handled.append(data))
        async with mock.client(server.url) as client:
            assert isinstance(client, MockClient)
            lost = Recorder().listen(client, "session_lost")
            received: list[str | bytes] = []
            client.on("message", received.append)
            await eventually(lambda: client.socket_id is not None)
            sid = client.socket_id
            assert sid is not None
            for k in range(3):
                for i in range(5):
                    await server.send(sid, f"s{k}.{i}")
                    await client.send(f"c{k}.{i}")
                link = client.link
                assert link is not None
                link.sever()
                await rec.wait("back", k + 1)
            await eventually(lambda: len(received) == 15 and len(handled) == 15)
        assert received == [f"s{k}.{i}" for k in range(3) for i in range(5)]
        assert handled == [f"c{k}.{i}" for k in range(3) for i in range(5)]
        assert not lost.events and server.stats.resumes == 3


async def test_away_sockets_are_reached_through_the_broker(mock: MockTransport) -> None:
    hub = f"memory://resume-{id(mock)}"
    async with resume_server(mock, broker=hub) as server, mock.server(broker=hub) as other:
        rec = record(server)
        raw, welcome = await start(server)
        sid = welcome.id
        raw.sever()
        await rec.wait("away")
        await other.send(sid, "via the broker")
        await other.join(sid, "g")
        assert server.groups(sid) == {"g"}
        await other.leave(sid, "g")
        assert server.groups(sid) == frozenset()
        new, _ = await start(server, resume_value(welcome, 0))
        assert await new.data() == "via the broker"
        await other.send(sid, "connected")
        assert await new.data() == "connected"
        new.sever()
        await rec.wait("away", 2)
        await other.disconnect(sid, 4002)
        await rec.wait("disconnect")
        assert rec.of("disconnect")[0][1] is CloseReason.APPLICATION
        # Resume is per process for now: a session this process does not hold is lost.
        _, lost = await start(server, resume_value(welcome, 0, token="D" * 22))
        assert lost.status == "lost"


async def test_acks_wait_for_each_sessions_own_delay(mock: MockTransport) -> None:
    async with resume_server(mock) as server:
        rec = record(server)
        resume = server._resume
        assert resume is not None
        dues: dict[str, float] = {}

        def later(socket: Any, data: str | bytes) -> None:
            clock = resume.sessions[socket.id].clock
            assert clock.due is not None
            if data == "b":
                # As if its first message had come half a delay later: its delay ends at a later tick.
                clock.due += ACK_DELAY / 2
            dues[socket.id] = clock.due

        server.on("message", later)
        server.on("message", lambda socket, data: 1 / 0)  # a raising handler is logged, not fatal
        first, _welcome = await start(server)
        second, _welcome2 = await start(server)
        # When each ack leaves: never before its own session's due time, whenever the ticks run.
        sent: dict[str, float] = {}
        send_ack = resume._send_ack

        async def timed(link: Any, count: int) -> None:
            sent[link.session.socket.id] = time.monotonic()
            await send_ack(link, count)

        resume._send_ack = timed  # type: ignore[method-assign]
        first.send("a")
        second.send("b")
        assert await first.recv() == ack_text(1)
        assert await second.recv() == ack_text(1)
        await rec.wait("message", 2)
        assert sent.keys() == dues.keys() and len(sent) == 2
        for socket_id, due in dues.items():
            assert sent[socket_id] >= due


async def test_a_resume_while_the_server_is_closing_the_old_connection(mock: MockTransport) -> None:
    async with resume_server(mock, close_timeout=0.2) as server:
        rec = record(server)
        _raw, welcome = await start(server)
        server._begin_close(welcome.id, CloseReason.SHUTDOWN)  # the client never answers it
        _new, resumed = await start(server, resume_value(welcome, 0))
        assert resumed.status == "resumed"
        assert sequence(rec) == [
            ("connect", welcome.id),
            ("away", welcome.id, "shutdown"),
            ("back", welcome.id),
        ]
