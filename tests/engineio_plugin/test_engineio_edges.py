"""rtt-engineio at the edges: malformed and unusual packets from raw peers, failed upgrades,
the ASGI lifespan's failures, and serving-mode misuse (SPEC.md 12.3)."""

from __future__ import annotations

import asyncio
import json
import socket as socketlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

import rtt
from rtt.testing import Recorder, eventually
from rtt_engineio import EngineioClient, EngineioServer
from rtt_engineio._library import message_packet
from rtt_engineio._wire import decode_packet, message_data, reason_from_close_text

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[EngineioServer, Recorder]]:
    """A started echo server and a recorder of its ``message`` and ``disconnect`` events."""
    server = rtt.load("engineio").server(close_timeout=0.5, **options)
    assert isinstance(server, EngineioServer)
    rec = Recorder().listen(server, "message", "disconnect")
    server.on("message", lambda s, data: server.send(s.id, data))
    async with server:
        yield server, rec


class Polling:
    """A raw long-polling Engine.IO session: the handshake, then POSTs and polls by hand."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.sid = ""

    async def open(self) -> dict[str, Any]:
        async with self.session.get(self.url + "?EIO=4&transport=polling") as response:
            assert response.status == 200
            body = await response.text()
        assert body.startswith("0")
        opened: dict[str, Any] = json.loads(body[1:])
        self.sid = opened["sid"]
        return opened

    async def post(self, body: bytes | str) -> int:
        url = f"{self.url}?EIO=4&transport=polling&sid={self.sid}"
        async with self.session.post(url, data=body) as response:
            await response.read()
            return response.status

    async def poll(self) -> str:
        url = f"{self.url}?EIO=4&transport=polling&sid={self.sid}"
        async with self.session.get(url) as response:
            return await response.text()


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe not utf-8", b"9 no such packet type", b"b!!! not base64", b'0{"sid":"client"}', b"4ok\x1e"],
    ids=["not-utf8", "unknown-type", "bad-base64", "open-from-client", "empty-packet"],
)
async def test_a_malformed_polling_body_is_a_protocol_error(body: bytes) -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        peer = Polling(session, server.url)
        await peer.open()
        assert await peer.post(body) == 400
        # rtt's reason in the CLOSE packet (after the echo of a good packet before the bad one)
        assert (await peer.poll()).split("\x1e")[-1] == "1protocol error"
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR


async def test_noop_and_upgrade_posts_leave_a_polling_session_open() -> None:
    # (An empty body is no payload: 400 and a protocol error, tests/faults/test_engineio_wire.py.)
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        peer = Polling(session, server.url)
        await peer.open()
        assert await peer.post(b"6") == 200  # NOOP
        assert await peer.post(b"5") == 200  # UPGRADE without a WebSocket: the server answers NOOP
        assert await peer.poll() == "6"
        assert await peer.post("4one\x1e4two\x1ebdGhyZWU=") == 200  # three packets, the last one bytes
        await rec.wait("message", 3)
        assert [data for _, data in rec.of("message")] == ["one", "two", b"three"]
        assert rec.of("disconnect") == []


@pytest.mark.parametrize(
    "frames", [["2nope"], ["2probe", "4not an upgrade"]], ids=["bad-probe", "no-upgrade"]
)
async def test_a_failed_upgrade_leaves_the_session_on_polling(frames: list[str]) -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        peer = Polling(session, server.url)
        await peer.open()
        ws_url = f"{server.url}?EIO=4&transport=websocket&sid={peer.sid}"
        async with session.ws_connect(ws_url) as ws:
            for frame in frames:
                await ws.send_str(frame)
                if frame == "2probe":
                    assert (await ws.receive_str(timeout=5)) == "3probe"
                    assert await peer.poll() == "6"  # the pending poll ends with a NOOP
            closed = await ws.receive(timeout=5)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert await peer.post(b"4still polling") == 200
        *noops, echoed = (await peer.poll()).split("\x1e")
        assert echoed == "4still polling" and set(noops) <= {"6"}
        assert rec.of("disconnect") == []


@pytest.mark.parametrize(
    "frame", ["9 no such packet type", "", "b!!!"], ids=["unknown-type", "empty", "base64"]
)
async def test_a_malformed_websocket_frame_is_a_protocol_error(frame: str) -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url + "?EIO=4&transport=websocket") as ws:
            assert (await ws.receive_str(timeout=5)).startswith("0{")
            await ws.send_str(frame)
            (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1011, rtt.CloseReason.TRANSPORT_ERROR),  # the client failed
        (1002, rtt.CloseReason.PROTOCOL_ERROR),
        (4000, rtt.CloseReason.CLIENT_CLOSED),  # an application's deliberate close (SPEC.md 6)
    ],
)
async def test_a_websocket_close_code_reads_as_from_client(code: int, reason: rtt.CloseReason) -> None:
    async with served() as (server, rec), aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url + "?EIO=4&transport=websocket") as ws:
            assert (await ws.receive_str(timeout=5)).startswith("0{")
            await ws.send_str("4hello")
            assert await ws.receive_str(timeout=5) == "4hello"
            await ws.close(code=code)
        (event,) = await rec.wait("disconnect")
        assert event[1] is reason


async def test_an_oversize_message_to_the_rtt_client_closes_it_as_message_too_big() -> None:
    """The client checks what it receives against its own max_message_size."""
    eio = rtt.load("engineio")
    for transports in (("polling",), ("websocket",)):
        async with served(max_message_size=4096) as (server, _):
            client = eio.client(server.url, transports=transports, max_message_size=16, reconnect=False)
            await client.connect()
            await eventually(lambda: len(server.sockets) == 1)
            (socket_id,) = server.sockets
            await server.send(socket_id, "x" * 100)
            with pytest.raises(rtt.ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
            assert closed.value.reason is rtt.CloseReason.MESSAGE_TOO_BIG
            await client.close()


def library_client(client: EngineioClient) -> object:
    """The client's python-engineio client, read afresh (keeps type checkers from narrowing it)."""
    return client.engineio_client


def transport_of(client: EngineioClient) -> str | None:
    """What the client's session runs on now (``None`` without a session)."""
    return client.connection.transport if client.connection is not None else None


async def test_client_misuse_and_accessors() -> None:
    eio = rtt.load("engineio")
    async with served() as (server, _):
        client = eio.client(server.url, reconnect=False)
        assert isinstance(client, EngineioClient)
        assert library_client(client) is None and transport_of(client) is None
        with pytest.raises(rtt.StateError, match="no open connection in state IDLE"):
            client.pause_reading()
        async with client:
            assert library_client(client) is not None
            assert transport_of(client) in ("polling", "websocket")
        with pytest.raises(rtt.StateError):
            await client.send("after close")


async def test_serving_modes_cannot_be_mixed_and_the_library_server_comes_with_one() -> None:
    server = rtt.load("engineio").server()
    assert isinstance(server, EngineioServer)
    with pytest.raises(RuntimeError, match="made by start"):
        _ = server.engineio_server
    server.asgi_app()
    assert server.engineio_server is not None
    with pytest.raises(RuntimeError, match="already serves in asgi mode"):
        server.attach(web.Application())


async def test_a_port_in_use_fails_start_and_leaves_nothing_behind() -> None:
    taken = socketlib.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        server = rtt.load("engineio").server(host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(OSError):
            await server.start()
        assert isinstance(server, EngineioServer)
        assert server._http.runner is None and server._relay_socket is None
    finally:
        taken.close()


class Lifespan:
    """Drives an ASGI application's lifespan scope by hand, as an ASGI server does."""

    def __init__(self, app: Any) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(app({"type": "lifespan"}, self.inbox.get, self.sent.put))

    async def ask(self, event_type: str) -> dict[str, Any]:
        await self.inbox.put({"type": event_type})
        return await asyncio.wait_for(self.sent.get(), 10)


def other_app(startup: str = "complete", shutdown: str = "complete") -> Any:
    """An ASGI application whose lifespan answers as told."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            event = await receive()
            kind = event["type"].rsplit(".", 1)[-1]
            answer = startup if kind == "startup" else shutdown
            message = {"type": f"{event['type']}.{answer}"}
            if answer == "failed":
                message["message"] = f"{kind} refused"
            await send(message)
            if kind == "shutdown":
                return

    return app


async def test_the_other_apps_failed_startup_fails_the_lifespan_and_rtt_does_not_start() -> None:
    server = rtt.load("engineio").server()
    assert isinstance(server, EngineioServer)
    lifespan = Lifespan(server.asgi_app(other_app(startup="failed")))
    assert await lifespan.ask("lifespan.startup") == {
        "type": "lifespan.startup.failed",
        "message": "startup refused",
    }
    await asyncio.wait_for(lifespan.task, 5)
    assert server.state is rtt.ServerState.NEW


async def test_the_other_apps_failed_shutdown_is_reported_after_rtt_closed() -> None:
    server = rtt.load("engineio").server()
    assert isinstance(server, EngineioServer)
    lifespan = Lifespan(server.asgi_app(other_app(shutdown="failed")))
    await server.start()  # already running: the lifespan's startup leaves it be
    assert await lifespan.ask("lifespan.startup") == {"type": "lifespan.startup.complete"}
    assert await lifespan.ask("lifespan.shutdown") == {
        "type": "lifespan.shutdown.failed",
        "message": "shutdown refused",
    }
    await asyncio.wait_for(lifespan.task, 5)
    assert server.state is rtt.ServerState.CLOSED


def test_wire_decoding_keeps_text_and_refuses_what_is_malformed() -> None:
    cases: list[tuple[str | bytes, str | bytes]] = [
        ("4", ""),
        ('4"quoted"', '"quoted"'),
        (b"\x01", b"\x01"),
        ("bAQI=", b"\x01\x02"),
    ]
    for encoded, data in cases:
        decoded = decode_packet(encoded)
        assert decoded is not None and decoded.data == data
    assert decode_packet("") is None
    assert decode_packet("b%%%") is None
    assert decode_packet("x") is None and decode_packet("7") is None
    assert message_data({"a": [1]}) == '{"a":[1]}'
    assert message_data("text") == "text"
    assert reason_from_close_text("shutdown", rtt.CloseReason.SERVER_CLOSED) is rtt.CloseReason.SHUTDOWN
    assert reason_from_close_text("nonsense", rtt.CloseReason.SERVER_CLOSED) is rtt.CloseReason.SERVER_CLOSED
    assert reason_from_close_text(None, rtt.CloseReason.SERVER_CLOSED) is rtt.CloseReason.SERVER_CLOSED


# -- A WebSocket writer that dies (issue 12) ------------------------------------------------

#: A text no WebSocket can write (a lone surrogate is no UTF-8; rtt's send refuses it, so the
#: test queues it on the library's socket directly): the socket's writer fails on it while the
#: peer is alive and reading.
UNWRITABLE = "a\ud800"


async def _writer_failure_ends_the_socket(server: rtt.Server[Any], url: str) -> None:
    rec = Recorder().listen(server, "disconnect")
    reconnect = {"min_delay": 0.05, "max_delay": 0.1}
    client = rtt.load("engineio", transports=["websocket"]).client(url, reconnect=reconnect)
    events = Recorder().listen(client, "close", "reconnected")
    async with client:
        await eventually(lambda: len(server.sockets) == 1, what="the socket")
        (first,) = server.sockets
        with pytest.raises(rtt.InvalidMessageError, match="lone surrogate"):
            await server.send(first, UNWRITABLE)
        assert isinstance(server, EngineioServer)
        server._conns[first].eio_socket.put(message_packet(UNWRITABLE, 4))
        await server.send(first, "queued behind it")
        # The socket ends at once as a transport error: nothing lingers with its queue unsent.
        (event,) = await rec.wait("disconnect")
        assert (event[0].id, event[1]) == (first, rtt.CloseReason.TRANSPORT_ERROR)
        assert first not in server.sockets
        await events.wait("reconnected")
        assert events.of("close") == [(rtt.CloseReason.TRANSPORT_ERROR,)]
        await client.send("after")
        async with asyncio.timeout(5):
            assert await client.recv() == "after"


async def test_a_failed_websocket_writer_ends_the_socket() -> None:
    async with served() as (server, _):
        await _writer_failure_ends_the_socket(server, server.url)


async def test_a_failed_websocket_writer_ends_the_socket_under_asgi() -> None:
    sock = socketlib.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = rtt.load("engineio").server(host="127.0.0.1", port=port, close_timeout=0.5)
    assert isinstance(server, EngineioServer)
    server.on("message", lambda s, data: server.send(s.id, data))
    config = uvicorn.Config(
        server.asgi_app(), lifespan="on", log_level="warning", timeout_graceful_shutdown=2
    )
    uv = uvicorn.Server(config)
    serving = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        await eventually(lambda: uv.started or serving.done(), 10, "uvicorn to start")
        await _writer_failure_ends_the_socket(server, server.url)
    finally:
        uv.should_exit = True
        await asyncio.wait_for(serving, 15)
        sock.close()


@pytest.mark.parametrize("body", [b"who are you?\n", b"x" * 5000], ids=["short", "past-the-limit"])
async def test_a_chunked_refusal_keeps_its_reason_when_short(body: bytes) -> None:
    """A refusal of unknown length (chunked, as an ASGI server or a proxy may send it) is read for
    its reason up to the client's bound; past it the status alone is reported (SPEC.md 8.2)."""

    async def refuse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=401, reason="Unauthorized")
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body[:4])
        await response.write(body[4:])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/engine.io/", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        client = rtt.load("engineio", transports=("polling",)).client(
            f"http://127.0.0.1:{port}/engine.io/", reconnect=False
        )
        with pytest.raises(rtt.RejectedError) as refused:
            await client.connect()
        assert refused.value.status == 401
        assert refused.value.reason == ("who are you?" if len(body) < 100 else "Unauthorized")
    finally:
        await runner.cleanup()
