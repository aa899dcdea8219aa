"""Server behaviour beyond the conformance kit: lifecycle, hooks, failure paths (SPEC.md 3)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

import rtt
import rtt_mock
from rtt import CloseReason, RejectedError, ServerState, StateError, UnknownSocketError
from rtt.testing import Recorder, echo, eventually
from rtt_mock import MockClient, MockTransport


async def test_lifecycle_states(mock: MockTransport) -> None:
    server = mock.server()
    assert server.state is ServerState.NEW
    with pytest.raises(StateError, match="start the server first"):
        _ = server.address
    with pytest.raises(StateError, match="cannot read url in state NEW"):
        _ = server.url
    await server.start()
    with pytest.raises(StateError, match="cannot start a server in state RUNNING"):
        await server.start()
    await server.close()
    await server.close()
    assert server.state.name == "CLOSED"
    with pytest.raises(StateError, match="cannot broadcast in state CLOSED"):
        await server.broadcast("x")
    with pytest.raises(StateError, match="cannot disconnect in state CLOSED"):
        await server.disconnect("x")
    unstarted = mock.server()
    await unstarted.close()
    assert unstarted.state.name == "CLOSED"


async def test_failed_start_leaves_the_server_closed(mock: MockTransport) -> None:
    async with mock.server() as first:
        second = mock.server(port=first.address[1])
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        assert second.state is ServerState.CLOSED


async def test_broadcast_to_nobody(mock: MockTransport) -> None:
    async with mock.server() as server:
        assert await server.broadcast("x") == 0
        with pytest.raises(UnknownSocketError):
            await server.disconnect("nobody")


async def test_raising_connect_and_disconnect_handlers_are_logged(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    async with mock.server() as server:
        rec = Recorder()

        def bad(*args: object) -> None:
            raise RuntimeError("bad handler")

        server.on("connect", bad)
        server.on("disconnect", bad)
        server.on("disconnect", rec.handler("disconnect"))
        async with mock.client(server.url):
            await eventually(lambda: len(server.sockets) == 1)
        await rec.wait("disconnect")
    failures = [r for r in caplog.records if r.name == "rtt.server" and r.levelno == logging.ERROR]
    assert len(failures) == 2


async def test_authorize_returning_garbage_is_a_500(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    async with mock.server(authorize=lambda hs: "yes please") as server:
        with pytest.raises(RejectedError) as info:
            await mock.client(server.url).connect()
        assert info.value.status == 500
    assert any("expected bool, None, Accept or Reject" in r.getMessage() for r in caplog.records)


async def test_shutdown_aborts_sockets_that_do_not_close_in_time(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    server = mock.server(close_timeout=0.2)
    await server.start()
    rec = Recorder()
    server.on("disconnect", rec.handler("disconnect"))
    client = mock.client(server.url, reconnect=False)
    await client.connect()
    await eventually(lambda: server.sockets)
    assert isinstance(client, MockClient) and client.link is not None
    client.link.stall()  # never acknowledges the close
    await server.close()
    assert [r for _, r in rec.events and rec.of("disconnect")] == [CloseReason.SHUTDOWN]
    assert any("did not close in time" in r.getMessage() for r in caplog.records)
    assert await client.wait_closed() is CloseReason.TRANSPORT_ERROR


async def test_handshake_during_shutdown_is_refused(mock: MockTransport) -> None:
    authorizing, gate = asyncio.Event(), asyncio.Event()

    async def slow_authorize(handshake: rtt.Handshake) -> bool:
        authorizing.set()
        await gate.wait()
        return True

    server = mock.server(authorize=slow_authorize)
    await server.start()
    client = mock.client(server.url)
    connecting = asyncio.ensure_future(client.connect())
    await asyncio.wait_for(authorizing.wait(), 5)
    closing = asyncio.ensure_future(server.close())
    await eventually(lambda: server.state is not ServerState.RUNNING, what="the shutdown to begin")
    gate.set()  # authorize returns only now, after the shutdown began
    await closing
    with pytest.raises(RejectedError):
        await connecting


async def test_shutdown_refuses_a_handshake_in_authorize_at_once(mock: MockTransport) -> None:
    # SPEC 3.9 and 8.2: shutdown does not wait for a slow authorize; the hook is cancelled.
    authorizing, outcome = asyncio.Event(), []

    async def endless_authorize(handshake: rtt.Handshake) -> bool:
        authorizing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return True  # pragma: no cover - never set

    server = mock.server(authorize=endless_authorize, close_timeout=30)
    await server.start()
    connecting = asyncio.ensure_future(mock.client(server.url, reconnect=False).connect())
    await asyncio.wait_for(authorizing.wait(), 5)
    await asyncio.wait_for(server.close(), 5)  # far below close_timeout: nothing waited for it
    with pytest.raises(RejectedError) as info:
        await asyncio.wait_for(connecting, 5)
    assert (info.value.status, outcome, server.stats.rejected) == (503, ["cancelled"], 1)


async def test_an_authorize_that_ignores_cancellation_is_still_refused(mock: MockTransport) -> None:
    authorizing = asyncio.Event()

    async def stubborn_authorize(handshake: rtt.Handshake) -> bool:
        authorizing.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return True

    server = mock.server(authorize=stubborn_authorize)
    await server.start()
    connecting = asyncio.ensure_future(mock.client(server.url, reconnect=False).connect())
    await asyncio.wait_for(authorizing.wait(), 5)
    await asyncio.wait_for(server.close(), 5)
    with pytest.raises(RejectedError) as info:
        await asyncio.wait_for(connecting, 5)
    assert info.value.status == 503
    assert server.stats.connections == 0


async def test_concurrent_handshakes_in_authorize_are_all_refused(mock: MockTransport) -> None:
    started = asyncio.Semaphore(0)

    async def endless_authorize(handshake: rtt.Handshake) -> bool:
        started.release()
        await asyncio.Event().wait()
        return True  # pragma: no cover - never set

    server = mock.server(authorize=endless_authorize)
    await server.start()
    clients = [mock.client(server.url, reconnect=False) for _ in range(3)]
    connecting = [asyncio.ensure_future(client.connect()) for client in clients]
    for _ in clients:
        await asyncio.wait_for(started.acquire(), 5)
    await asyncio.wait_for(server.close(), 5)
    outcomes = await asyncio.wait_for(asyncio.gather(*connecting, return_exceptions=True), 5)
    assert [getattr(e, "status", e) for e in outcomes] == [503] * 3
    assert server.stats.rejected == 3


async def test_shutdown_waits_at_most_close_timeout_for_a_hook_that_ignores_cancellation(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    authorizing, release = asyncio.Event(), asyncio.Event()

    async def deaf_authorize(handshake: rtt.Handshake) -> bool:
        authorizing.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        await release.wait()  # goes on after the cancellation, as a badly written hook may
        return True

    server = mock.server(authorize=deaf_authorize, close_timeout=0.2)
    await server.start()
    connecting = asyncio.ensure_future(mock.client(server.url, reconnect=False).connect())
    await asyncio.wait_for(authorizing.wait(), 5)
    await asyncio.wait_for(server.close(), 5)
    assert server.state is ServerState.CLOSED
    assert any("1 handshakes were still being admitted" in r.getMessage() for r in caplog.records)
    release.set()
    with pytest.raises(RejectedError) as info:
        await asyncio.wait_for(connecting, 5)
    assert info.value.status == 503


async def test_a_handshake_cancelled_in_authorize_is_cancelled_not_refused(mock: MockTransport) -> None:
    # The plugin's handler being cancelled (a client that went away) propagates, at any state.
    authorizing = asyncio.Event()

    async def endless_authorize(handshake: rtt.Handshake) -> bool:
        authorizing.set()
        await asyncio.Event().wait()
        return True  # pragma: no cover - never set

    async with mock.server(authorize=endless_authorize) as server:
        connecting = asyncio.ensure_future(mock.client(server.url, reconnect=False).connect())
        await asyncio.wait_for(authorizing.wait(), 5)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        assert server.stats.rejected == 0


async def test_an_authorize_raising_cancelled_error_itself_propagates(mock: MockTransport) -> None:
    async def odd_authorize(handshake: rtt.Handshake) -> bool:
        raise asyncio.CancelledError

    async with mock.server(authorize=odd_authorize) as server:
        with pytest.raises(asyncio.CancelledError):
            await mock.client(server.url, reconnect=False).connect()


async def test_sockets_opened_while_closing_are_closed_with_shutdown(mock: MockTransport) -> None:
    server = mock.server()
    await server.start()
    rec = Recorder()
    server.on("disconnect", rec.handler("disconnect"))
    server.on("connect", rec.handler("connect"))
    client = mock.client(server.url, reconnect=False)
    await client.connect()  # the socket is registered by a task that has not run yet
    await server.close()
    assert await client.wait_closed() in (CloseReason.SHUTDOWN, CloseReason.TRANSPORT_ERROR)
    assert rec.of("connect") == []


async def test_info_logs_never_carry_message_bodies(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rtt")
    secret = "-".join(("body", "secret"))
    async with echo(mock.server()) as server, mock.client(server.url) as client:
        await client.send(secret)
        assert await client.recv() == secret
    assert caplog.records
    assert not [r for r in caplog.records if secret in r.getMessage()]


async def test_concurrent_close_waits_for_the_first(mock: MockTransport) -> None:
    server = mock.server()
    await server.start()
    async with mock.client(server.url) as client:
        await eventually(lambda: server.sockets)
        assert isinstance(client, MockClient) and client.link is not None
        client.link.stall()  # the close is not acknowledged yet: the first close stays under way
        first = asyncio.ensure_future(server.close())
        await eventually(lambda: server.state is ServerState.CLOSING, what="the first close to begin")
        second = asyncio.ensure_future(server.close())
        done, _ = await asyncio.wait({second}, timeout=0.1)
        assert not done, "the second close returned while the first was under way"
        client.link.resume()
        await second
        assert server.state is ServerState.CLOSED
        await first


async def test_send_to_a_connection_that_just_ended(mock: MockTransport) -> None:
    async with mock.server() as server, mock.client(server.url, reconnect=False) as client:
        await eventually(lambda: server.sockets)
        (socket_id,) = server.sockets
        assert isinstance(server, rtt_mock.MockServer)
        server.link(socket_id).sever()
        with pytest.raises(rtt.ConnectionClosed):
            await server.send(socket_id, "too late")
        assert await server.broadcast("skipped") == 1
        assert await client.wait_closed() is CloseReason.TRANSPORT_ERROR
