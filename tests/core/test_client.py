"""Client behaviour beyond the conformance kit: states, failures, flow control (SPEC.md 4)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from conftest import echo_server

import rtt
from rtt import (
    ClientState,
    CloseReason,
    ConnectError,
    ConnectionClosed,
    OfflineQueueFullError,
    RejectedError,
    StateError,
)
from rtt.testing import Recorder, eventually
from rtt_mock import Link, MockClient, MockServer, MockTransport


def link_of(client: rtt.Client) -> Link:
    assert isinstance(client, MockClient) and client.link is not None
    return client.link


async def test_connect_twice_is_a_state_error(mock: MockTransport) -> None:
    async with mock.server() as server, mock.client(server.url) as client:
        with pytest.raises(StateError, match="cannot connect in state OPEN"):
            await client.connect()
        assert client.close_reason is None


async def test_failed_connect_reasons(mock: MockTransport) -> None:
    client = mock.client("mock://127.0.0.1:1/")
    with pytest.raises(ConnectError, match="connection refused"):
        await client.connect()
    assert client.state is ClientState.CLOSED and client.close_reason is CloseReason.TRANSPORT_ERROR
    assert await client.wait_closed() is CloseReason.TRANSPORT_ERROR
    async with mock.server(authorize=lambda hs: False) as server:
        rejected = mock.client(server.url)
        with pytest.raises(RejectedError):
            await rejected.connect()
        assert rejected.close_reason is CloseReason.REJECTED


async def test_connect_timeout(mock: MockTransport) -> None:
    async def never(handshake: rtt.Handshake) -> bool:
        await asyncio.sleep(30)
        return True

    async with mock.server(authorize=never) as server:
        client = mock.client(server.url, connect_timeout=0.1)
        with pytest.raises(ConnectError, match=r"timed out after 0\.1 s"):
            await client.connect()


async def test_close_from_inside_a_handler(mock: MockTransport) -> None:
    async with echo_server(mock) as (server, _):
        client = mock.client(server.url)
        rec = Recorder()
        client.on("close", rec.handler("close"))

        @client.on("message")
        async def on_message(data: str | bytes) -> None:
            await client.close()

        await client.connect()
        await client.send("bye")
        assert await client.wait_closed() is CloseReason.CLIENT_CLOSED
        assert rec.of("close") == [(CloseReason.CLIENT_CLOSED,)]


async def test_send_on_a_broken_link_is_queued_and_flushed(mock: MockTransport) -> None:
    async with echo_server(mock) as (server, received):
        client = mock.client(server.url)
        rec = Recorder()
        client.on("reconnected", rec.handler("reconnected"))
        await client.connect()
        link_of(client).sever()
        await client.send("written after the cut")  # the reader has not noticed yet
        await rec.wait("reconnected")
        await eventually(lambda: received == ["written after the cut"])
        await client.close()


async def test_send_on_a_broken_link_without_reconnect_raises(mock: MockTransport) -> None:
    async with mock.server() as server:
        client = mock.client(server.url, reconnect=False)
        await client.connect()
        link_of(client).sever()
        with pytest.raises(ConnectionClosed):
            await client.send("lost?")
        assert await client.wait_closed() is CloseReason.TRANSPORT_ERROR
        with pytest.raises(StateError):
            await client.send("after")


async def test_rejected_reconnect_gives_up(mock: MockTransport) -> None:
    allow = [True]
    server = mock.server(authorize=lambda hs: allow[0])
    await server.start()
    port = server.address[1]
    client = mock.client(server.url)
    rec = Recorder()
    rec.listen(client, "reconnect_failed", "error")
    await client.connect()
    await server.close()
    allow[0] = False
    again = mock.server(port=port, authorize=lambda hs: allow[0])
    await again.start()
    assert await rec.wait("reconnect_failed") == [(1,)]
    assert isinstance(rec.of("error")[0][0], RejectedError)
    assert client.close_reason is CloseReason.REJECTED
    await again.close()


async def test_reconnect_failure_keeps_unsent_messages(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    server = mock.server()
    await server.start()
    client = mock.client(server.url, reconnect={"min_delay": 0.05, "max_delay": 0.05, "max_attempts": 2})
    rec = Recorder()
    client.on("reconnecting", rec.handler("reconnecting"))
    await client.connect()
    await server.close()
    await rec.wait("reconnecting")
    await client.send("kept")
    assert await client.wait_closed() is CloseReason.TRANSPORT_ERROR
    assert client.unsent == ("kept",)
    assert any("with 1 queued messages unsent" in r.getMessage() for r in caplog.records)


async def test_close_while_reconnecting_stops(mock: MockTransport, caplog: pytest.LogCaptureFixture) -> None:
    server = mock.server()
    await server.start()
    client = mock.client(server.url)
    rec = Recorder()
    rec.listen(client, "close", "reconnecting")
    await client.connect()
    await server.close()
    await rec.wait("reconnecting")
    await client.send("kept")
    await client.close()
    count = len(rec.of("reconnecting"))
    await asyncio.sleep(0.2)
    assert len(rec.of("reconnecting")) == count
    assert rec.of("close") == [(CloseReason.SHUTDOWN,)]
    assert client.close_reason is CloseReason.CLIENT_CLOSED
    assert client.unsent == ("kept",)
    assert any("(client closed) with 1 queued messages unsent" in r.getMessage() for r in caplog.records)


async def test_zero_offline_queue_raises_at_once(mock: MockTransport) -> None:
    server = mock.server()
    await server.start()
    client = mock.client(server.url, offline_queue_size=0)
    rec = Recorder()
    client.on("reconnecting", rec.handler("reconnecting"))
    await client.connect()
    await server.close()
    await rec.wait("reconnecting")
    with pytest.raises(OfflineQueueFullError):
        await client.send("x")
    await client.close()


async def test_slow_iteration_loses_nothing(mock: MockTransport) -> None:
    async with mock.server() as server:
        client = mock.client(server.url, max_queue=4)
        await client.connect()
        await eventually(lambda: server.sockets)
        (socket_id,) = server.sockets
        for i in range(200):
            await server.send(socket_id, str(i))
        received = []
        async for message in client:
            received.append(message)
            if len(received) % 50 == 0:
                await asyncio.sleep(0.01)
            if len(received) == 200:
                break
        assert received == [str(i) for i in range(200)]
        await client.close()


async def test_raising_open_handler_fires_error_and_error_handlers_do_not_loop(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    async with mock.server() as server:
        client = mock.client(server.url)
        errors = Recorder()

        def bad_open() -> None:
            raise RuntimeError("open failed")

        def bad_error(exc: Exception) -> None:
            errors.handler("error")(exc)
            raise RuntimeError("error handler failed")

        client.on("open", bad_open)
        client.on("error", bad_error)
        await client.connect()
        ((exc,),) = errors.of("error")
        assert "'open' raised" in str(exc)
        client.off("error", bad_error)
        await client.close()
    assert sum(r.levelno == logging.ERROR for r in caplog.records) == 2


async def test_send_type_and_size_are_checked_first(mock: MockTransport) -> None:
    client = mock.client("mock://127.0.0.1:1/", max_message_size=3)
    with pytest.raises(rtt.InvalidMessageError):
        await client.send(3)  # type: ignore[arg-type]
    with pytest.raises(rtt.MessageTooBigError):
        await client.send("four")
    with pytest.raises(StateError, match="cannot send in state IDLE"):
        await client.send("ok")


async def test_5xx_rejection_during_reconnect_is_retried(mock: MockTransport) -> None:
    status = [503]

    def authorize(handshake: rtt.Handshake) -> rtt.Reject | bool:
        return rtt.Reject(status[0], "busy") if status[0] else True

    server = mock.server()
    await server.start()
    port = server.address[1]
    client = mock.client(server.url)
    rec = Recorder().listen(client, "error", "reconnected")
    await client.connect()
    await server.close()
    again = mock.server(port=port, authorize=authorize)
    await again.start()
    await eventually(lambda: len(rec.of("error")) >= 2)
    assert all(isinstance(e, RejectedError) and e.status == 503 for (e,) in rec.of("error"))
    status[0] = 0
    await rec.wait("reconnected")
    await client.close()
    await again.close()


@pytest.mark.parametrize("event", ["close", "reconnecting", "error", "open"])
async def test_close_from_a_reconnection_handler_stops_reconnecting(mock: MockTransport, event: str) -> None:
    server = mock.server()
    await server.start()
    port = server.address[1]
    client = mock.client(server.url)
    rec = Recorder().listen(client, "reconnecting", "reconnected", "reconnect_failed")
    await client.connect()
    armed = [False]

    async def close_now(*args: object) -> None:
        if armed[0]:
            await client.close()

    client.on(event, close_now)  # type: ignore[call-overload]
    armed[0] = True
    await server.close()
    if event == "open":
        again = mock.server(port=port)
        await again.start()
    assert await asyncio.wait_for(client.wait_closed(), 5) is CloseReason.CLIENT_CLOSED
    count = len(rec.of("reconnecting"))
    await asyncio.sleep(0.2)
    assert len(rec.of("reconnecting")) == count
    assert rec.of("reconnected") == [] and rec.of("reconnect_failed") == []
    assert client.state is ClientState.CLOSED
    if event == "open":
        await again.close()


def sever(server: rtt.Server[Any], socket_id: str) -> None:
    """Cut a mock socket's link at once, as a crashed peer would (the client sees ``transport error``)."""
    assert isinstance(server, MockServer)
    server.link(socket_id).sever()


async def test_connections_that_die_at_once_do_not_reset_the_backoff(mock: MockTransport) -> None:
    # SPEC 4.4: a server that accepts and drops every connection (a crash loop) is
    # retried ever more slowly, and max_attempts still bounds the attempts.
    async with mock.server() as server:
        server.on("connect", lambda socket: sever(server, socket.id))
        policy = {"min_delay": 0.01, "max_delay": 0.16, "factor": 2, "jitter": 0, "max_attempts": 6}
        client = mock.client(server.url, reconnect={**policy, "stable_after": 30})
        rec = Recorder()
        rec.listen(client, "reconnecting", "reconnected", "reconnect_failed")
        await client.connect()
        assert await rec.wait("reconnect_failed", timeout=10) == [(6,)]
        assert rec.of("reconnecting") == [(1, 0.01), (2, 0.02), (3, 0.04), (4, 0.08), (5, 0.16), (6, 0.16)]
        assert rec.of("reconnected") == [(n,) for n in range(1, 7)]
        assert client.close_reason is CloseReason.TRANSPORT_ERROR
        assert server.stats.connections == 7


async def test_a_connection_that_stays_up_resets_the_backoff(mock: MockTransport) -> None:
    stable_after = 0.2
    async with mock.server() as server:
        client = mock.client(
            server.url,
            reconnect={"min_delay": 0.01, "max_delay": 1, "jitter": 0, "stable_after": stable_after},
        )
        rec = Recorder()
        rec.listen(client, "reconnecting", "reconnected")
        server.on("connect", rec.handler("connect"))
        await client.connect()
        for outages in range(1, 4):
            (socket,) = (await rec.wait("connect", outages))[-1]
            # The rule is about time: the connection must have been up for stable_after.
            await asyncio.sleep(stable_after * 1.5)
            sever(server, socket.id)
            await rec.wait("reconnected", outages)
        assert rec.of("reconnecting") == [(1, 0.01)] * 3
        assert rec.of("reconnected") == [(1,)] * 3
        await client.close()


async def test_stable_after_zero_restarts_the_count_at_every_outage(mock: MockTransport) -> None:
    async with mock.server() as server:
        severed = 0

        def sever_three(socket: rtt.Socket) -> None:
            nonlocal severed
            if severed < 3:
                severed += 1
                sever(server, socket.id)

        server.on("connect", sever_three)
        client = mock.client(server.url, reconnect={"min_delay": 0.01, "jitter": 0, "stable_after": 0})
        rec = Recorder()
        rec.listen(client, "reconnecting", "reconnected")
        await client.connect()
        await rec.wait("reconnected", 3)
        assert rec.of("reconnecting") == [(1, 0.01)] * 3
        await client.close()


class _BrokenOnFlush(MockClient):
    """A mock client whose connections after the first fail their writes; it records which were closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: list[Any] = []
        self.closed: list[Any] = []

    async def _connect(self) -> rtt.ClientConnection:
        conn = await super()._connect()
        self.opened.append(conn)
        closed = self.closed
        first = len(self.opened) == 1
        send, close = conn.send, conn.close

        async def broken_send(data: str | bytes) -> None:
            if not first:
                raise ConnectionClosed(CloseReason.TRANSPORT_ERROR)  # lost as the queue is written
            await send(data)

        async def recorded_close(reason: CloseReason) -> None:
            closed.append(conn)
            await close(reason)

        conn.send = broken_send  # type: ignore[method-assign]
        conn.close = recorded_close  # type: ignore[method-assign]
        return conn


async def test_a_connection_lost_while_the_queue_is_written_is_closed(mock: MockTransport) -> None:
    # Its plugin connection may hold an HTTP session or a socket: it must be released, not dropped.
    async with mock.server() as server:
        policy = {"min_delay": 0.01, "max_delay": 0.05, "jitter": 0}
        options = mock.client(server.url, reconnect=policy).options
        client = _BrokenOnFlush(mock, server.url, options, mock.network)
        rec = Recorder().listen(client, "error")
        await client.connect()
        link_of(client).sever()
        await client.send("queued")  # goes to the offline queue once the reader has noticed
        await eventually(lambda: len(client.opened) >= 3, 5, "two failed reconnections")
        await client.close()
        assert all(conn in client.closed for conn in client.opened[1:-1])
        assert any(isinstance(exc, ConnectionClosed) for (exc,) in rec.of("error"))
