"""The server's resume layer in one process (SPEC.md 17.3), driven over mock links by a scripted client.

The client is written by hand (:mod:`resume_raw`): each case reads the
welcome, writes the hello and the acks, and checks the frames the server
writes, so the server is tested against the wire rules of SPEC.md 17.2 and
not against rtt's own client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from resume_raw import Raw, resume_value, start

from rtt import Accept, CloseReason, Handshake, UnknownSocketError
from rtt.resume import ACK_EVERY, ack_text
from rtt.testing import Recorder, eventually
from rtt_mock import MockServer, MockTransport

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
