"""Bad input on the Engine.IO wire, from raw HTTP and WebSocket peers (issue 12, SPEC.md 12.3).

Defect 5 (engineio part): a POST with ``Content-Length: 0`` logged a traceback at
ERROR on every request. Defect 6: an unknown-type or empty packet over
WebSocket closed with 1000 and no reason, so an rtt client read ``server
closed``. Then the Engine.IO v4 protocol points: the handshake's real
``pingInterval``, a mandatory ``transport``, 400 for a method the protocol
does not use, ``ok`` for a POST, 400 and a closed session for an undecodable
POST body; two concurrent polls are 400 and close the session, the client's
CLOSE answers the waiting poll with a noop, the ping timeout runs on a timer
(a later poll is 400), and no noop reaches the WebSocket after an upgrade.

Each case is an Engine.IO packet or request, so it runs on the Engine.IO wires
it applies to (long-polling, WebSocket, or both), with a raw aiohttp client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket as socketlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

import rtt
from rtt.testing import Recorder, eventually
from rtt_engineio import EngineioServer

pytestmark = pytest.mark.timeout(60)

#: A closing handshake here takes milliseconds; a generous bound for a loaded 2-core machine.
MARGIN = 5.0


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[EngineioServer, Recorder]]:
    """A started echo server and a recorder of its ``message`` and ``disconnect`` events."""
    options.setdefault("close_timeout", 2)
    server = rtt.load("engineio").server(port=0, **options)
    assert isinstance(server, EngineioServer)
    rec = Recorder().listen(server, "message", "disconnect")
    server.on("message", lambda s, data: server.send(s.id, data))
    async with server:
        yield server, rec


async def open_polling(session: aiohttp.ClientSession, url: str) -> str:
    """A long-polling handshake; the session's query string (with its sid)."""
    async with session.get(url + "?EIO=4&transport=polling") as response:
        assert response.status == 200
        body = await response.text()
    assert body.startswith("0{")
    sid = json.loads(body[1:])["sid"]
    return f"{url}?EIO=4&transport=polling&sid={sid}"


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records at WARNING or above, or with a traceback."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info is not None]


# -- Defect 5: an empty POST body ----------------------------------------------


async def test_an_empty_post_is_400_and_logs_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        for _ in range(3):  # every request used to log a traceback at ERROR
            async with session.post(url, data=b"", headers={"Content-Length": "0"}) as response:
                assert response.status == 400
                await response.read()
        # The first one closed the session as a protocol error: rtt's reason is in the CLOSE packet.
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR
        assert rec.of("message") == []
    assert loud(caplog) == []
    mentions = [r for r in caplog.records if "empty" in r.getMessage().lower()]
    assert len(mentions) <= 3 and all(r.levelno <= logging.INFO for r in mentions)


async def test_the_poll_after_an_empty_post_gets_rtts_close_packet() -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        async with session.post(url, data=b"", headers={"Content-Length": "0"}) as response:
            assert response.status == 400
        async with session.get(url) as poll:
            assert (poll.status, await poll.text()) == (200, "1protocol error")
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR


async def test_a_chunked_post_without_content_length_is_read(caplog: pytest.LogCaptureFixture) -> None:
    # The same readexactly(0) path: a body without Content-Length was lost with a traceback.
    caplog.set_level(logging.INFO)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"4chun"
        yield b"ked\x1e4two"

    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        async with session.post(url, data=chunks()) as response:
            assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
            answer = (response.status, await response.text())
        await rec.wait("message", 2)
        assert [data for _, data in rec.of("message")] == ["chunked", "two"]
        assert answer == (200, "ok")
        assert loud(caplog) == []


# -- Defect 6: an unknown-type or empty packet over WebSocket ------------------------


@pytest.mark.parametrize(
    "frame", ["9 no such packet type", "", "b!!!"], ids=["unknown-type", "empty", "base64"]
)
async def test_a_malformed_websocket_packet_closes_with_rtts_protocol_error(
    frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        served() as (server, rec),
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url + "?EIO=4&transport=websocket") as ws,
    ):
        assert (await ws.receive_str(timeout=5)).startswith("0{")
        started = time.monotonic()
        await ws.send_str(frame)
        # rtt's CLOSE packet, as on long-polling and for any other refused packet
        assert await ws.receive_str(timeout=5) == "1protocol error"
        await ws.close()
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR
        assert time.monotonic() - started < MARGIN
    assert loud(caplog) == []


async def test_a_peer_that_ignores_the_close_packet_is_dropped_after_close_timeout() -> None:
    async with served(close_timeout=0.5) as (server, rec), aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url + "?EIO=4&transport=websocket") as ws:
            assert (await ws.receive_str(timeout=5)).startswith("0{")
            started = time.monotonic()
            await ws.send_str("9")
            assert await ws.receive_str(timeout=5) == "1protocol error"
            await ws.send_str("4ignored after the protocol error")  # never delivered
            closed = await ws.receive(timeout=10)  # the server drops it: no closing handshake from us
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            (event,) = await rec.wait("disconnect")
            assert event[1] is rtt.CloseReason.PROTOCOL_ERROR
            assert time.monotonic() - started < 0.5 + MARGIN
        assert rec.of("message") == []


# -- Engine.IO v4 protocol points ------------------------------------------------------


@pytest.mark.parametrize(("interval", "timeout"), [(0.3, 0.2), (1.5, 0.5), (2, 1)])
@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_handshake_advertises_the_real_ping_interval_in_ms(
    transport: str, interval: float, timeout: float
) -> None:
    async with (
        served(ping_interval=interval, ping_timeout=timeout) as (server, _),
        aiohttp.ClientSession() as s,
    ):
        url = f"{server.url}?EIO=4&transport={transport}"
        if transport == "polling":
            async with s.get(url) as response:
                assert response.status == 200
                opened = await response.text()
        else:
            async with s.ws_connect(url) as ws:
                opened = await ws.receive_str(timeout=5)
        assert opened.startswith("0{")
        handshake = json.loads(opened[1:])
        assert (handshake["pingInterval"], handshake["pingTimeout"]) == (
            round(interval * 1000),
            round(timeout * 1000),
        )


async def test_the_heartbeat_keeps_the_advertised_sub_second_interval() -> None:
    # An rtt client trusts the advertised interval: with 300 ms advertised and kept, it stays up.
    async with served(ping_interval=0.3, ping_timeout=0.3) as (server, rec):
        for transports in (("polling",), ("websocket",)):
            client = rtt.load("engineio", transports=transports).client(server.url, reconnect=False)
            async with client:
                got: asyncio.Future[object] = asyncio.get_running_loop().create_future()
                client.on("message", lambda data, got=got: got.done() or got.set_result(data))
                await asyncio.sleep(2.0)  # several heartbeats: the waiting is what is tested
                assert client.state is rtt.ClientState.OPEN
                await client.send("still here")
                assert await asyncio.wait_for(got, timeout=5) == "still here"
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.CLIENT_CLOSED] * 2


@pytest.mark.parametrize("query", ["?EIO=4", "?EIO=4&transport=", "?EIO=4&transport=carrier-pigeon"])
async def test_a_handshake_without_a_valid_transport_is_400(query: str) -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        async with session.get(server.url + query) as response:
            assert response.status == 400
            assert not (await response.text()).startswith("0{")
        assert len(server.sockets) == 0
        assert rec.of("disconnect") == []


async def test_a_session_request_without_transport_is_400() -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        bare = url.replace("&transport=polling", "")
        async with session.post(bare, data="4not taken") as response:
            assert response.status == 400
        async with session.get(bare) as response:
            assert response.status == 400
        # The session itself is untouched: it still takes messages and polls.
        async with session.post(url, data="4taken") as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with session.get(url) as response:
            assert await response.text() == "4taken"
        assert [data for _, data in rec.of("message")] == ["taken"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_a_method_the_protocol_does_not_use_is_400(method: str) -> None:
    async with served() as (server, _), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        async with session.request(method, url, data="4x") as response:
            assert response.status == 400
        async with session.request(method, server.url + "?EIO=4&transport=polling") as response:
            assert response.status == 400


async def test_a_post_is_answered_ok() -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        async with session.post(url, data="4hello\x1e4world") as response:
            assert (response.status, await response.text()) == (200, "ok")
        await rec.wait("message", 2)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe not utf-8", b"9 no such packet type", b"b!!! not base64", b"4ok\x1e", b'0{"sid":"client"}'],
    ids=["not-utf8", "unknown-type", "bad-base64", "empty-packet", "open-from-client"],
)
async def test_an_undecodable_post_is_400_and_closes_the_session(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        async with session.post(url, data=body) as response:
            assert response.status == 400
        async with session.get(url) as poll:
            # rtt's reason in the CLOSE packet (after the echo of a good packet before the bad one)
            assert (await poll.text()).split("\x1e")[-1] == "1protocol error"
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR
        assert loud(caplog) == []
        (line,) = [r for r in caplog.records if r.name == "rtt.engineio"]
        assert line.levelno == logging.INFO and "refused a POST" in line.getMessage()
        async with session.get(url) as after:
            assert after.status == 400  # the session is gone


@asynccontextmanager
async def mounted(mode: str) -> AsyncIterator[EngineioServer]:
    """A started echo server: standalone, attached to an aiohttp application, or under uvicorn (ASGI)."""
    if mode == "standalone":
        async with served() as (standalone, _):
            yield standalone
        return
    sock = socketlib.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = rtt.load("engineio").server(host="127.0.0.1", port=port, close_timeout=2)
    assert isinstance(server, EngineioServer)
    server.on("message", lambda s, data: server.send(s.id, data))
    if mode == "asgi":
        config = uvicorn.Config(server.asgi_app(), lifespan="on", log_level="warning", ws="wsproto")
        uv = uvicorn.Server(config)
        serving = asyncio.create_task(uv.serve(sockets=[sock]))
        try:
            await eventually(lambda: uv.started or serving.done(), 10, "uvicorn to start")
            yield server
        finally:
            uv.should_exit = True
            await asyncio.wait_for(serving, 15)
            sock.close()
        return
    app = web.Application()
    server.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        async with server:
            yield server
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("mode", ["standalone", "aiohttp", "asgi"])
async def test_the_protocol_statuses_hold_in_every_serving_mode(mode: str) -> None:
    async with mounted(mode) as server, aiohttp.ClientSession() as session:
        async with session.get(server.url + "?EIO=4") as response:
            assert response.status == 400
        async with session.put(server.url + "?EIO=4&transport=polling") as response:
            assert response.status == 400
        url = await open_polling(session, server.url)
        async with session.post(url, data="4hi") as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with session.get(url) as response:
            assert await response.text() == "4hi"
        async with session.post(url, data=b"", headers={"Content-Length": "0"}) as response:
            assert response.status == 400
        async with session.get(url) as response:
            assert await response.text() == "1protocol error"


# -- Engine.IO v4: polls, the client's CLOSE, the ping timeout, the upgrade ------------------


def poll_waiting(server: EngineioServer, url: str) -> bool:
    """Whether the session of ``url`` has a poll waiting for packets (on its socket's queue)."""
    sock = server.engineio_server.sockets.get(url.rsplit("sid=", 1)[1])
    # The library's queue is an asyncio.Queue: a waiting poll is one of its getters.
    return sock is not None and bool(sock.queue._getters)


async def test_two_concurrent_polls_are_400_and_close_the_session() -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        first = asyncio.create_task(session.get(url))
        await eventually(lambda: poll_waiting(server, url), what="the first poll to wait")
        started = time.monotonic()
        async with session.get(url) as second:
            assert second.status == 400
        # The pending poll gets rtt's CLOSE packet at once (not after the ping interval).
        async with await asyncio.wait_for(first, timeout=MARGIN) as response:
            assert (response.status, await response.text()) == (200, "1protocol error")
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR
        assert time.monotonic() - started < MARGIN
        async with session.get(url) as later:
            assert later.status == 400


async def test_the_clients_close_answers_the_pending_poll_with_a_noop() -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        pending = asyncio.create_task(session.get(url))
        await eventually(lambda: poll_waiting(server, url), what="the poll to wait")
        async with session.post(url, data="1") as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with await asyncio.wait_for(pending, timeout=MARGIN) as response:
            assert (response.status, await response.text()) == (200, "6")
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.CLIENT_CLOSED
        for _ in range(2):
            async with session.get(url) as later:
                assert later.status == 400


async def test_the_ping_timeout_is_kept_on_a_timer_and_a_later_poll_is_400() -> None:
    # A long ping timeout tells a timer from python-engineio's client monitor, which looks at
    # each session once per ping timeout (so would drop this one up to 3 s late).
    interval, timeout = 0.2, 3.0
    async with (
        served(ping_interval=interval, ping_timeout=timeout) as (server, rec),
        aiohttp.ClientSession() as session,
    ):
        url = await open_polling(session, server.url)
        started = time.monotonic()
        # A silent client: it neither polls (so never takes the PING) nor answers with PONG.
        ((_, reason),) = await rec.wait("disconnect", timeout=interval + timeout + 10)
        took = time.monotonic() - started
        assert reason is rtt.CloseReason.PING_TIMEOUT
        assert interval + timeout - 0.1 < took < interval + timeout + 1.0, f"dropped after {took:.2f} s"
        async with session.get(url) as late:
            assert late.status == 400


async def test_a_poll_after_the_ping_timeout_is_400() -> None:
    # The poll arrives once the deadline has passed, whether or not the timer has run yet.
    interval, timeout = 0.2, 3.0
    async with (
        served(ping_interval=interval, ping_timeout=timeout) as (server, rec),
        aiohttp.ClientSession() as session,
    ):
        url = await open_polling(session, server.url)
        await asyncio.sleep(interval + timeout + 0.3)  # the silence is what is tested
        async with session.get(url) as late:
            assert late.status == 400
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.PING_TIMEOUT


async def test_a_session_that_answers_pings_over_polling_stays_open() -> None:
    async with (
        served(ping_interval=0.2, ping_timeout=0.3) as (server, rec),
        aiohttp.ClientSession() as session,
    ):
        url = await open_polling(session, server.url)
        deadline = time.monotonic() + 2.0  # several heartbeats
        pongs = 0
        while time.monotonic() < deadline:
            async with session.get(url) as poll:
                assert (poll.status, await poll.text()) == (200, "2")
            async with session.post(url, data="3") as response:
                assert response.status == 200
            pongs += 1
        assert pongs >= 5
        assert rec.of("disconnect") == []


@pytest.mark.parametrize("polling", [False, True], ids=["no-poll-pending", "poll-pending"])
async def test_no_noop_reaches_the_websocket_after_an_upgrade(polling: bool) -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        url = await open_polling(session, server.url)
        pending = asyncio.create_task(session.get(url)) if polling else None
        if polling:
            await eventually(lambda: poll_waiting(server, url), what="the poll to wait")
        async with session.ws_connect(url.replace("transport=polling", "transport=websocket")) as ws:
            await ws.send_str("2probe")
            assert await ws.receive_str(timeout=5) == "3probe"
            if pending is not None:
                # The pending poll ends with a noop, so that the client can pause polling.
                async with await asyncio.wait_for(pending, timeout=MARGIN) as response:
                    assert (response.status, await response.text()) == (200, "6")
            await ws.send_str("5")
            await ws.send_str("4first")
            # The first frame after the upgrade is the application's data.
            assert await ws.receive_str(timeout=5) == "4first"
            async with session.get(url) as after:
                assert after.status == 400  # no HTTP request once upgraded
            await ws.send_str("1")
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.CLIENT_CLOSED
