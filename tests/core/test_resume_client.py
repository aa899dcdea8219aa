"""The Python client's side of resume (SPEC.md 17.4) against a server scripted by hand.

The server here is a listener on a mock network that hands every connection to
the test, which reads and writes the resume wire itself: welcomes, hellos,
acks and escapes are written out in full, so the client is checked against the
wire rules, not against rtt's own server.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import parse_qs

import pytest

import rtt
from rtt import ClientState, CloseReason, ConnectionClosed, OfflineQueueFullError, StateError
from rtt._client_session import ClientSession, resume_url
from rtt.events import Close
from rtt.resume import ACK_DELAY, ACK_EVERY, QUERY, ResumeProtocolError, Welcome
from rtt.testing import Recorder, eventually
from rtt_mock import Link, MockClient, MockConnection, MockNetwork, MockServer, MockTransport
from rtt_mock.network import Frame, Request

WINDOW = 30.0


def new_id() -> str:
    return secrets.token_urlsafe(16)


def new_nonce() -> str:
    return secrets.token_urlsafe(8)


class Wire:
    """The server's end of one connection, driven by the test."""

    def __init__(self, link: Link, request: Request) -> None:
        self.link = link
        self.request = request
        values = parse_qs(request.query_string, keep_blank_values=True).get(QUERY)
        self.resume: str | None = values[0] if values else None

    async def recv(self, timeout: float = 5.0) -> str | bytes:
        """The next message from the client; ConnectionClosed when the link ends."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.link.to_server.get()
                if frame.kind == "message":
                    return frame.data
                if frame.kind == "close":
                    raise ConnectionClosed(frame.reason or CloseReason.TRANSPORT_ERROR)

    async def recv_all(self, count: int) -> list[str | bytes]:
        return [await self.recv() for _ in range(count)]

    def send(self, *messages: str | bytes) -> None:
        for data in messages:
            self.link.to_client.put(Frame("message", data))

    def close(self, reason: CloseReason, close: Close | None = None) -> None:
        self.link.to_client.put(Frame("close", reason=reason, close=close))

    def welcome(self, status: str = "new", **fields: Any) -> Welcome:
        """Send a welcome; ``fields`` override the id, token, nonce and counts."""
        values: dict[str, Any] = {"id": new_id(), "token": new_id(), "nonce": new_nonce(), "window": WINDOW}
        if status == "lost":
            values["why"] = "unknown"
        values.update(fields)
        welcome = Welcome(status, **values)  # type: ignore[arg-type]
        self.send(welcome.to_text())
        return welcome


class ScriptedServer:
    """A listener that accepts every connection and queues it for the test."""

    def __init__(self, network: MockNetwork) -> None:
        self.host, self.port = network.bind("127.0.0.1", 0, self)
        self.url = f"mock://{self.host}:{self.port}/live?room=1"
        self.wires: asyncio.Queue[Wire] = asyncio.Queue()
        self.cut_after: int | None = None
        """The next connection breaks after taking this many messages (its next write fails)."""

    async def accept(self, link: Link, request: Request) -> None:
        if self.cut_after is not None:
            pipe, left = link.to_server, self.cut_after
            self.cut_after = None
            put = pipe.put

            def limited(frame: Frame) -> None:
                nonlocal left
                put(frame)
                left -= 1
                if left == 0:
                    pipe.cut(CloseReason.TRANSPORT_ERROR)

            if left == 0:
                pipe.cut(CloseReason.TRANSPORT_ERROR)
            pipe.put = limited  # type: ignore[method-assign]
        self.wires.put_nowait(Wire(link, request))

    async def next(self, timeout: float = 5.0) -> Wire:
        async with asyncio.timeout(timeout):
            return await self.wires.get()


@pytest.fixture
def network() -> MockNetwork:
    return MockNetwork()


@pytest.fixture
def mock(network: MockNetwork) -> MockTransport:
    return MockTransport(network=network, reconnect={"min_delay": 0.01, "max_delay": 0.02, "jitter": 0})


@pytest.fixture
def server(network: MockNetwork) -> ScriptedServer:
    return ScriptedServer(network)


def events(client: rtt.Client) -> Recorder:
    return Recorder().listen(
        client, "open", "close", "reconnecting", "reconnected", "reconnect_failed", "session_lost", "error"
    )


def link_of(client: rtt.Client) -> Link:
    assert isinstance(client, MockClient) and client.link is not None
    return client.link


async def started(
    mock: MockTransport, server: ScriptedServer, **options: Any
) -> tuple[rtt.Client, Wire, Welcome]:
    """A connected client whose first connection got a welcome ``new`` and answered it."""
    client = mock.client(server.url, **options)
    await client.connect()
    wire = await server.next()
    assert wire.resume == "1"
    welcome = wire.welcome()
    assert await wire.recv() == "\x00H" + welcome.nonce
    assert client.socket_id == welcome.id
    return client, wire, welcome


async def dropped(client: rtt.Client, wire: Wire, server: ScriptedServer) -> Wire:
    """Sever the link; return the next connection attempt."""
    wire.link.sever()
    return await server.next()


# The URL


def test_resume_url_keeps_the_rest_of_the_url() -> None:
    assert resume_url("ws://h:1/p", None) == "ws://h:1/p?rtt_resume=1"
    assert resume_url("ws://h:1/p?a=1", None) == "ws://h:1/p?a=1&rtt_resume=1"
    assert resume_url("ws://h:1/p?", None) == "ws://h:1/p?rtt_resume=1"
    assert resume_url("ws://h:1/p?a=1&", None) == "ws://h:1/p?a=1&rtt_resume=1"
    assert resume_url("ws://h:1/p?a=%20#top", None) == "ws://h:1/p?a=%20&rtt_resume=1#top"
    session = ClientSession(10)
    assert resume_url("ws://h:1/", session) == "ws://h:1/?rtt_resume=1"  # no welcome yet
    sid, token = new_id(), new_id()
    session.start(Welcome("new", sid, token, new_nonce(), WINDOW))
    session.clock.count = 7
    assert resume_url("ws://h:1/", session) == f"ws://h:1/?rtt_resume={sid}.{token}.7"


async def test_connect_url_without_resume(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url, resume=False)
    assert client.connect_url == server.url
    await client.connect()
    wire = await server.next()
    assert wire.resume is None and wire.request.query_string == "room=1"
    # Nothing is read as a welcome: the text is the application's.
    welcome = Welcome("new", new_id(), new_id(), new_nonce(), WINDOW).to_text()
    wire.send(welcome)
    assert await client.recv() == welcome
    assert client.socket_id is None
    await client.close()


# A server that does not offer resume


async def test_no_welcome_stays_plain(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url)
    rec = events(client)
    await client.connect()
    wire = await server.next()
    assert wire.resume == "1" and wire.request.path == "/live"
    # A first connection never waits: the client is open and writes at once, as it is.
    await client.send("\x00raw")
    assert await wire.recv() == "\x00raw"
    wire.send("\x00not a control", "hi")
    assert [await client.recv(), await client.recv()] == ["\x00not a control", "hi"]
    assert client.socket_id is None and not client.resumed and client.unconfirmed == ()
    # Plain: nothing kept, a drop reconnects asking for a new session again.
    await client.send("more")
    assert await wire.recv() == "more"
    again = await dropped(client, wire, server)
    assert again.resume == "1"
    await rec.wait("reconnected")
    assert rec.names() == ["open", "close", "reconnecting", "open", "reconnected"]
    await client.close()


async def test_a_drop_before_the_welcome_starts_over(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url)
    await client.connect()
    wire = await server.next()
    await client.send("early")
    assert await wire.recv() == "early"
    again = await dropped(client, wire, server)
    assert again.resume == "1"
    await eventually(lambda: client.state is ClientState.OPEN)
    welcome = again.welcome()
    assert await again.recv() == "\x00H" + welcome.nonce
    assert client.socket_id == welcome.id and client.unconfirmed == ()
    await client.close()


# A first connection with a welcome


async def test_first_connection_welcome_hello_escapes_and_acks(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client = mock.client(server.url)
    rec = events(client)
    await client.connect()
    wire = await server.next()
    # Written before the welcome: sent raw, counted in the session once the welcome comes.
    await client.send("\x00early")
    assert await wire.recv() == "\x00early"
    welcome = wire.welcome()
    assert await wire.recv() == "\x00H" + welcome.nonce
    assert client.socket_id == welcome.id and not client.resumed
    await client.send("\x00late")
    await client.send(b"\x00bytes")
    assert await wire.recv_all(2) == ["\x00\x00late", b"\x00bytes"]
    wire.send("\x00\x00escaped", b"\x00b")
    assert [await client.recv(), await client.recv()] == ["\x00escaped", b"\x00b"]
    # ACK_EVERY messages: acknowledged at once.
    wire.send(*(f"m{k}" for k in range(ACK_EVERY - 2)))
    for _ in range(ACK_EVERY - 2):
        await client.recv()
    assert await wire.recv() == f"\x00A{ACK_EVERY}"
    # One more: acknowledged by the timer.
    wire.send("one more")
    assert await client.recv() == "one more"
    assert await wire.recv() == f"\x00A{ACK_EVERY + 1}"
    # The server's acks confirm what the client wrote.
    wire.send("\x00A3", "sync")
    assert await client.recv() == "sync"
    await client.send("after")
    assert await wire.recv() == "after"
    await client.close()
    assert client.unconfirmed == ("after",)  # the client ended holding it unconfirmed
    assert "session_lost" not in rec.names()


async def test_the_ack_timer_moves_with_a_threshold_ack(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server)
    wire.send("a")
    assert await client.recv() == "a"
    # Before the timer fires, the count threshold acknowledges; a later message sets a later due time.
    wire.send(*(f"m{k}" for k in range(ACK_EVERY - 1)))
    for _ in range(ACK_EVERY - 1):
        await client.recv()
    assert await wire.recv() == f"\x00A{ACK_EVERY}"
    wire.send("b")
    assert await client.recv() == "b"
    assert await wire.recv() == f"\x00A{ACK_EVERY + 1}"
    # The timer also fires with nothing pending after a threshold ack, and sends nothing.
    wire.send(*(f"n{k}" for k in range(ACK_EVERY)))
    for _ in range(ACK_EVERY):
        await client.recv()
    assert await wire.recv() == f"\x00A{2 * ACK_EVERY + 1}"
    await asyncio.sleep(ACK_DELAY * 1.5)  # a negative check: let the timer of the first of them pass
    await client.send("after")
    assert await wire.recv() == "after"
    await client.close()


async def test_message_handlers_count_too(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url)
    got: list[str | bytes] = []
    client.on("message", got.append)
    await client.connect()
    wire = await server.next()
    welcome = wire.welcome()
    assert await wire.recv() == "\x00H" + welcome.nonce
    wire.send("x", "\x00\x00y")
    await eventually(lambda: len(got) == 2)
    assert got == ["x", "\x00y"]
    assert await wire.recv() == "\x00A2"
    await client.close()


# Resuming


async def test_resume_resends_from_r_then_the_queue(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server)
    rec = events(client)
    for k in range(5):
        await client.send(f"c{k}")
    assert await wire.recv_all(5) == [f"c{k}" for k in range(5)]
    wire.send("s0", "s1")
    assert [await client.recv(), await client.recv()] == ["s0", "s1"]
    wire.link.sever()
    await rec.wait("reconnecting")
    await client.send("queued")  # while away: the offline queue, sent after the resend
    again = await server.next()
    assert again.resume == f"{welcome.id}.{welcome.token}.2"
    resumed = again.welcome("resumed", id=welcome.id, handled=3, received=2)
    assert await again.recv() == "\x00H" + resumed.nonce
    assert await again.recv_all(3) == ["c3", "c4", "queued"]
    await rec.wait("reconnected")
    assert rec.names() == ["close", "reconnecting", "open", "reconnected"]
    assert client.resumed and client.socket_id == welcome.id
    # The replay continues the stream; the next resume carries the new token and count.
    again.send("s2")
    assert await client.recv() == "s2"
    third = await dropped(client, again, server)
    assert third.resume == f"{welcome.id}.{resumed.token}.3"
    third.welcome("resumed", id=welcome.id, handled=6, received=3)
    await rec.wait("reconnected", 2)
    await client.send("last")
    assert (await third.recv())[:2] == "\x00H"
    assert await third.recv() == "last"
    await client.close()


async def test_resume_reports_a_broker_loss(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server)
    rec = events(client)
    again = await dropped(client, wire, server)
    again.welcome("resumed", id=welcome.id, handled=0, received=0, loss="broker")
    await rec.wait("reconnected")
    assert rec.names()[-3:] == ["open", "session_lost", "reconnected"]
    assert rec.of("session_lost") == [("broker",)] and client.socket_id == welcome.id
    # At most once per connection: a loss control on the same connection is not reported again.
    again.send("\x00Lbroker", "after")
    assert await client.recv() == "after"
    assert len(rec.of("session_lost")) == 1
    await client.close()


async def test_loss_control_while_open(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server)
    rec = events(client)
    wire.send("\x00Lbroker", "next")
    assert await client.recv() == "next"
    assert rec.of("session_lost") == [("broker",)]
    await client.close()


@pytest.mark.parametrize("why", ["unknown", "identity"])
async def test_lost_keeps_the_unconfirmed(mock: MockTransport, server: ScriptedServer, why: str) -> None:
    client, wire, welcome = await started(mock, server)
    rec = events(client)
    await client.send("c0")
    await client.send("c1")
    await wire.recv_all(2)
    wire.send("\x00A1")
    await eventually(lambda: True)
    again = await dropped(client, wire, server)
    await client.send("queued")
    lost = again.welcome("lost", why=why)
    assert await again.recv() == "\x00H" + lost.nonce
    assert await again.recv() == "queued"  # the queue goes to the new session; c1 is not resent
    await rec.wait("reconnected")
    assert rec.names()[-3:] == ["open", "session_lost", "reconnected"]
    assert rec.of("session_lost") == [(why,)]
    assert client.unconfirmed in (("c1",), ("c0", "c1"))  # c0 unless its ack arrived before the drop
    assert client.socket_id == lost.id != welcome.id and not client.resumed
    await client.close()


async def test_a_welcome_new_to_a_resume_is_a_loss(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server)
    rec = events(client)
    again = await dropped(client, wire, server)
    fresh = again.welcome("new")
    await rec.wait("reconnected")
    assert rec.of("session_lost") == [("unknown",)] and client.socket_id == fresh.id
    await client.close()


async def test_no_welcome_on_a_resume_is_unsupported(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server, connect_timeout=0.3)
    rec = events(client)
    await client.send("c0")
    await wire.recv()
    again = await dropped(client, wire, server)
    assert again.resume is not None and again.resume.startswith(welcome.id)
    await rec.wait("reconnected")
    assert rec.names()[-3:] == ["open", "session_lost", "reconnected"]
    assert rec.of("session_lost") == [("unsupported",)]
    assert client.socket_id is None and client.unconfirmed == ("c0",)
    # Plain from now on: data as it is, nothing escaped.
    again.send("\x00plain")
    assert await client.recv() == "\x00plain"
    await client.send("\x00out")
    assert await again.recv() == "\x00out"
    third = await dropped(client, again, server)
    assert third.resume == "1"
    await client.close()


async def test_a_drop_before_a_late_first_message(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server, connect_timeout=0.3)
    rec = events(client)
    again = await dropped(client, wire, server)
    await rec.wait("session_lost")
    third = await dropped(client, again, server)  # the first read, still pending, ends with it
    assert third.resume == "1"
    await rec.wait("reconnected", 2)
    await client.close()


async def test_a_late_welcome_is_refused(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server, connect_timeout=0.3)
    rec = events(client)
    again = await dropped(client, wire, server)
    await rec.wait("session_lost")
    # A server slower than connect_timeout: its welcome is not delivered as data.
    again.welcome("resumed", id=welcome.id, handled=0, received=0)
    third = await server.next()
    assert third.resume == "1"
    await rec.wait("reconnected", 2)
    assert rec.of("session_lost") == [("unsupported",)]
    assert CloseReason.PROTOCOL_ERROR in [args[0] for args in rec.of("close")]
    await client.close()


async def test_a_first_message_that_is_not_a_welcome(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server)
    rec = events(client)
    again = await dropped(client, wire, server)
    again.send("first", "second")
    await rec.wait("reconnected")
    assert rec.of("session_lost") == [("unsupported",)]
    assert [await client.recv(), await client.recv()] == ["first", "second"]
    await client.close()


async def test_overflow_before_the_welcome(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url, offline_queue_size=1)
    rec = events(client)
    await client.connect()
    wire = await server.next()
    # Nothing confirms before a welcome: past the bound the oldest is forgotten, not waited for.
    total = ACK_EVERY + 6
    for k in range(total):
        await client.send(f"c{k}")
    await wire.recv_all(total)
    welcome = wire.welcome()
    await wire.recv()
    again = await dropped(client, wire, server)
    # The server handled 3: it needs c3 and on, and the client forgot c0 to c5.
    again.welcome("resumed", id=welcome.id, handled=3, received=0)
    await again.recv()
    resent = await again.recv_all(ACK_EVERY)
    assert resent == [f"c{k}" for k in range(6, total)]
    await rec.wait("reconnected")
    assert rec.of("session_lost") == [("overflow",)] and client.socket_id == welcome.id
    # Both sides now count alike: the server's ack of everything empties the buffer.
    again.send(f"\x00A{3 + ACK_EVERY}")
    await eventually(lambda: client._session is not None and not client._session.unconfirmed)
    await client.close()


async def test_an_ack_past_the_overflow_forgets_it(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url, offline_queue_size=1)
    await client.connect()
    wire = await server.next()
    for k in range(ACK_EVERY + 2):
        await client.send(f"c{k}")
    await wire.recv_all(ACK_EVERY + 2)
    welcome = wire.welcome()
    await wire.recv()
    wire.send("\x00A1", "\x00A10")  # below what was forgotten: ignored; then past it
    wire.send("sync")
    assert await client.recv() == "sync"
    again = await dropped(client, wire, server)
    # Below the confirmed count with nothing forgotten any more: a broken server.
    again.welcome("resumed", id=welcome.id, handled=5, received=1)
    fourth = await server.next()
    assert fourth.resume == "1"
    await client.close()


# Sending


async def test_send_waits_for_room_while_open(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server, offline_queue_size=1)
    for k in range(ACK_EVERY):
        await client.send(f"c{k}")
    await wire.recv_all(ACK_EVERY)
    blocked = asyncio.ensure_future(client.send("one too many"))
    await asyncio.sleep(0.05)  # a negative check: give the send time to go through if it would
    assert not blocked.done()
    wire.send("\x00A1")
    await asyncio.wait_for(blocked, 5)
    assert await wire.recv() == "one too many"
    await client.close()


async def test_a_waiting_send_goes_to_the_queue_on_a_drop(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client, wire, welcome = await started(mock, server, offline_queue_size=ACK_EVERY + 1)
    for k in range(ACK_EVERY + 1):
        await client.send(f"c{k}")
    await wire.recv_all(ACK_EVERY + 1)
    blocked = asyncio.ensure_future(client.send("waits"))
    await asyncio.sleep(0.05)  # a negative check, as above
    assert not blocked.done()
    wire.link.sever()
    # Disconnected, the bound counts unconfirmed and queued messages together.
    with pytest.raises(OfflineQueueFullError):
        await asyncio.wait_for(blocked, 5)
    again = await server.next()
    again.welcome("resumed", id=welcome.id, handled=ACK_EVERY + 1, received=0)
    await again.recv()
    await eventually(lambda: client.state is ClientState.OPEN)
    await client.send("room again")
    assert await again.recv() == "room again"
    await client.close()


async def test_a_failed_write_is_resent_from_the_session(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server)
    wire.link.sever()
    await client.send("in flight")  # the write fails before the reader has seen the drop
    again = await server.next()
    resumed = again.welcome("resumed", id=welcome.id, handled=0, received=0)
    assert await again.recv_all(2) == ["\x00H" + resumed.nonce, "in flight"]
    await client.close()


async def test_a_failed_write_without_reconnection_raises(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client, wire, _ = await started(mock, server, reconnect=False)
    wire.link.sever()
    with pytest.raises(ConnectionClosed):
        await client.send("lost")
    await client.wait_closed()
    assert client.unconfirmed == ()


async def test_a_failed_write_before_the_welcome_is_queued(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client = mock.client(server.url)
    await client.connect()
    wire = await server.next()
    wire.link.sever()
    await client.send("queued")
    again = await server.next()
    assert await again.recv() == "queued"
    await client.close()


async def test_the_flush_before_a_welcome_keeps_a_failed_message(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client = mock.client(server.url)
    rec = events(client)
    await client.connect()
    wire = await server.next()
    wire.link.sever()
    await rec.wait("reconnecting")
    server.cut_after = 0
    await client.send("queued")
    # The next attempt opens and fails its first write: the message goes back to the queue.
    await server.next()
    third = await server.next()
    assert await third.recv() == "queued"
    await client.close()


async def test_a_failed_flush_after_a_resume(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server)
    rec = events(client)
    await client.send("c0")
    await wire.recv()
    wire.link.sever()
    await rec.wait("reconnecting")
    await client.send("queued")
    server.cut_after = 2  # the hello and c0 go through, the queued message does not
    again = await server.next()
    again.welcome("resumed", id=welcome.id, handled=0, received=0)
    third = await server.next()
    # The queued message was written in the session: it is resent with c0, once.
    resumed = third.welcome("resumed", id=welcome.id, handled=0, received=0)
    assert await third.recv_all(3) == ["\x00H" + resumed.nonce, "c0", "queued"]
    await rec.wait("reconnected")
    await client.close()


async def test_close_during_the_resend(
    mock: MockTransport, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, wire, welcome = await started(mock, server)
    await client.send("c0")
    await wire.recv()
    writing = asyncio.Event()
    send = MockConnection.send

    async def stuck(self: MockConnection, data: str | bytes) -> None:
        if data == "c0":
            writing.set()
            await asyncio.Event().wait()  # a write that never completes
        await send(self, data)

    monkeypatch.setattr(MockConnection, "send", stuck)
    again = await dropped(client, wire, server)
    again.welcome("resumed", id=welcome.id, handled=0, received=0)
    await asyncio.wait_for(writing.wait(), 5)
    await client.close()
    assert client.state is ClientState.CLOSED and again.link.closed


async def test_close_from_a_session_lost_handler(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server)
    rec = events(client)

    @client.on("session_lost")
    async def stop(detail: str) -> None:
        await client.close()

    again = await dropped(client, wire, server)
    again.welcome("lost")
    assert await client.wait_closed() is CloseReason.CLIENT_CLOSED
    assert "reconnected" not in rec.names()


async def test_offline_queue_without_resume(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url, resume=False)
    rec = events(client)
    await client.connect()
    wire = await server.next()
    wire.link.sever()
    await client.send("\x00in flight")  # the write fails before the reader has seen the drop
    await rec.wait("reconnecting")
    await client.send("\x00queued")
    again = await server.next()
    assert again.resume is None and await again.recv_all(2) == ["\x00in flight", "\x00queued"]
    await client.close()


def test_client_session_bookkeeping() -> None:
    session = ClientSession(2)
    first, second = "x", "x"  # equal, so unwrite goes by identity
    session.wrote(first)
    session.wrote(second)
    session.unwrite("y")  # not there: nothing changes
    assert list(session.unconfirmed) == ["x", "x"]
    session.unwrite(first)
    assert len(session.unconfirmed) == 1 and session.unconfirmed[0] is second
    with pytest.raises(ResumeProtocolError, match="above the 1 messages written"):
        session.confirm(2)


async def test_a_failed_resend_tries_again(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server)
    await client.send("c0")
    await wire.recv()
    again = await dropped(client, wire, server)
    again.link.to_server.cut(CloseReason.TRANSPORT_ERROR)
    again.welcome("resumed", id=welcome.id, handled=0, received=0)
    third = await server.next()
    assert third.resume is not None and third.resume.startswith(welcome.id)
    resumed = third.welcome("resumed", id=welcome.id, handled=0, received=0)
    assert await third.recv_all(2) == ["\x00H" + resumed.nonce, "c0"]
    await client.close()


# Ends and errors


async def test_a_final_close_while_awaiting_the_welcome(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server)
    rec = events(client)
    again = await dropped(client, wire, server)
    again.close(CloseReason.SERVER_CLOSED)
    assert await client.wait_closed() is CloseReason.SERVER_CLOSED
    assert rec.names() == ["close", "reconnecting", "close"]
    assert rec.of("close")[-1] == (CloseReason.SERVER_CLOSED,) and client.close_code is None


async def test_an_application_close_while_awaiting_the_welcome(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client, wire, _ = await started(mock, server, reconnect={"min_delay": 0.01, "retry_codes": [4001]})
    rec = events(client)
    again = await dropped(client, wire, server)
    again.close(CloseReason.APPLICATION, Close(CloseReason.APPLICATION, 4001, "again"))
    third = await server.next()
    assert third.resume == "1"  # retried without the token: a new session
    welcome = third.welcome()
    assert await third.recv() == "\x00H" + welcome.nonce
    await rec.wait("reconnected")
    assert rec.of("session_lost") == [("unknown",)] and client.socket_id == welcome.id
    fourth = await dropped(client, third, server)
    fourth.close(CloseReason.APPLICATION, Close(CloseReason.APPLICATION, 4002, "bye"))
    assert await client.wait_closed() is CloseReason.APPLICATION
    assert client.close_code == 4002 and client.close_text == "bye"


async def test_an_application_close_while_open_ends_the_session(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client, wire, _ = await started(mock, server, reconnect={"min_delay": 0.01, "retry_codes": [4001]})
    rec = events(client)
    wire.close(CloseReason.APPLICATION, Close(CloseReason.APPLICATION, 4001, "again"))
    again = await server.next()
    assert again.resume == "1"
    again.welcome()
    await rec.wait("reconnected")
    assert rec.of("session_lost") == [("unknown",)]
    await client.close()


async def test_a_shutdown_while_awaiting_the_welcome_retries(
    mock: MockTransport, server: ScriptedServer
) -> None:
    client, wire, welcome = await started(mock, server)
    rec = events(client)
    again = await dropped(client, wire, server)
    again.close(CloseReason.SHUTDOWN)
    third = await server.next()
    assert third.resume is not None and third.resume.startswith(welcome.id)
    third.welcome("resumed", id=welcome.id, handled=0, received=0)
    await rec.wait("reconnected")
    assert "closed the connection before its welcome" in str(rec.of("error")[0][0])
    assert "session_lost" not in rec.names()
    await client.close()


async def test_close_while_awaiting_the_welcome(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server)
    again = await dropped(client, wire, server)
    await eventually(lambda: client._first is not None)  # the attempt reads
    await client.close()
    assert client.state is ClientState.CLOSED
    await eventually(lambda: again.link.closed)


@pytest.mark.parametrize(
    "control",
    ["\x00Q", "\x00A99", "\x00Hxxxxxxxxxxx", "\x00W{}", "\x00Anope"],
    ids=["letter", "ack", "hello", "welcome", "bad"],
)
async def test_protocol_errors_start_a_new_session(
    mock: MockTransport, server: ScriptedServer, control: str
) -> None:
    client, wire, _ = await started(mock, server)
    await client.send("c0")
    await wire.recv()
    rec = events(client)
    wire.send(control)
    again = await server.next()
    assert again.resume == "1"
    again.welcome()
    await rec.wait("reconnected")
    assert rec.of("close") == [(CloseReason.PROTOCOL_ERROR,)]
    assert rec.of("session_lost") == [("unknown",)] and client.unconfirmed == ("c0",)
    await client.close()


@pytest.mark.parametrize("problem", ["id", "received", "handled"])
async def test_a_welcome_that_does_not_continue_the_session(
    mock: MockTransport, server: ScriptedServer, problem: str
) -> None:
    client, wire, welcome = await started(mock, server)
    rec = events(client)
    again = await dropped(client, wire, server)
    fields: dict[str, Any] = {"id": welcome.id, "handled": 0, "received": 0}
    fields[problem] = new_id() if problem == "id" else 1
    again.welcome("resumed", **fields)
    third = await server.next()
    assert third.resume == "1"
    third.welcome()
    await rec.wait("reconnected")
    assert isinstance(rec.of("error")[0][0], ResumeProtocolError)
    assert rec.of("session_lost") == [("unknown",)]
    await client.close()


async def test_a_broken_welcome_fails_the_attempt(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, welcome = await started(mock, server)
    rec = events(client)
    again = await dropped(client, wire, server)
    again.send('\x00W{"v":1,"s":"resumed"}')
    third = await server.next()
    assert third.resume is not None and third.resume.startswith(welcome.id)  # the session is kept
    third.welcome("resumed", id=welcome.id, handled=0, received=0)
    await rec.wait("reconnected")
    assert "broken welcome" in str(rec.of("error")[0][0])
    await client.close()


async def test_a_broken_welcome_on_a_first_connection(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url)
    rec = events(client)
    await client.connect()
    wire = await server.next()
    wire.send('\x00W{"v":1}')
    again = await server.next()
    assert again.resume == "1"
    await rec.wait("reconnected")
    assert rec.of("close") == [(CloseReason.PROTOCOL_ERROR,)] and "session_lost" not in rec.names()
    await client.close()


async def test_a_too_big_message_in_resume_framing(mock: MockTransport, server: ScriptedServer) -> None:
    client, wire, _ = await started(mock, server, max_message_size=10)
    rec = events(client)
    wire.send("\x00\x00" + "x" * 9)  # ten characters once unescaped: fits
    assert await client.recv() == "\x00" + "x" * 9
    wire.send("\x00\x00" + "x" * 10)
    await rec.wait("close")
    assert rec.of("close") == [(CloseReason.MESSAGE_TOO_BIG,)]
    await client.close()


async def test_state_errors_are_unchanged(mock: MockTransport, server: ScriptedServer) -> None:
    client = mock.client(server.url)
    with pytest.raises(StateError):
        await client.send("x")
    assert client.socket_id is None and not client.resumed and client.unconfirmed == ()


# End to end against rtt's own server (mock links)


async def test_end_to_end_through_drops(mock: MockTransport) -> None:
    async with mock.server(resume_window=30) as server:
        handled: list[str | bytes] = []

        @server.on("message")
        async def echo(socket: rtt.Socket, data: str | bytes) -> None:
            handled.append(data)
            await server.send(socket.id, data)

        client = mock.client(server.url)
        got: list[str | bytes] = []
        client.on("message", got.append)
        rec = events(client)
        await client.connect()
        await eventually(lambda: client.socket_id in server.sockets)
        socket_id = client.socket_id
        assert socket_id is not None
        sent: list[str | bytes] = []
        for drop in range(5):
            for k in range(30):
                data: str | bytes = f"\x00c{drop}.{k}" if k % 3 == 0 else f"c{drop}.{k}".encode()
                sent.append(data)
                await client.send(data)
                await server.send(socket_id, f"s{drop}.{k}")
            link_of(client).sever()
            await rec.wait("reconnected", drop + 1)
        await eventually(lambda: len(handled) == len(sent) and len(got) == 2 * len(sent))
        assert handled == sent
        assert [m for m in got if m in sent] == sent
        assert [m for m in got if m not in sent] == [f"s{d}.{k}" for d in range(5) for k in range(30)]
        assert client.socket_id == socket_id and "session_lost" not in rec.names()
        await client.close()


async def test_end_to_end_disconnected_while_away(mock: MockTransport) -> None:
    async with mock.server(resume_window=30) as server:
        away = Recorder().listen(server, "away")
        # The client comes back after the application has ended its session.
        client = mock.client(server.url, reconnect={"min_delay": 0.5, "max_delay": 0.5, "jitter": 0})
        rec = events(client)
        await client.connect()
        await eventually(lambda: client.socket_id in server.sockets)
        socket_id = client.socket_id
        assert socket_id is not None
        assert isinstance(server, MockServer)
        server.link(socket_id).sever()
        await away.wait("away")
        await server.disconnect(socket_id)
        await rec.wait("reconnecting")
        assert "close" in rec.names()  # the drop's close, before the attempt
        # The resume attempt gets the stored close: the end of the session, as if on the old link.
        assert await client.wait_closed() is CloseReason.SERVER_CLOSED
        assert rec.names() == ["open", "close", "reconnecting", "close"]
        assert rec.of("close") == [(CloseReason.TRANSPORT_ERROR,), (CloseReason.SERVER_CLOSED,)]


async def test_end_to_end_expired_session(mock: MockTransport) -> None:
    async with mock.server(resume_window=0.2) as server:
        gone = Recorder().listen(server, "disconnect")
        # The client comes back after the window has passed.
        client = mock.client(server.url, reconnect={"min_delay": 0.6, "max_delay": 0.6, "jitter": 0})
        rec = events(client)
        await client.connect()
        await eventually(lambda: client.socket_id in server.sockets)
        old = client.socket_id
        assert old is not None
        assert isinstance(server, MockServer)
        server.link(old).sever()
        await gone.wait("disconnect")
        assert gone.of("disconnect")[0][1] is CloseReason.SESSION_LOST
        await rec.wait("reconnected")
        assert rec.of("session_lost") == [("unknown",)]
        await eventually(lambda: client.socket_id in server.sockets)
        assert client.socket_id != old
        await client.close()
