"""rtt-ws mounted: in an aiohttp application (attach) and as an ASGI application under uvicorn (SPEC.md 12.2).

Each mode on a real listener with the real library: an aiohttp ``TCPSite``,
uvicorn with its ``websockets`` and its ``wsproto`` WebSocket. The whole
conformance kit in these modes is in the kit's mounted test modules.
"""

from __future__ import annotations

import asyncio
import socket as socketlib
import ssl
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web
from mount_support import check_aiohttp_shutdown_closes_the_server
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import rtt
from rtt import CloseReason, Reject, ServerState
from rtt.testing import Recorder, eventually
from rtt_ws import WsServer

MODES = ["aiohttp", "asgi-websockets-sansio", "asgi-wsproto"]


@pytest.fixture
def ws() -> rtt.Transport:
    return rtt.load("ws", reconnect=False)


def state_of(server: rtt.Server[Any]) -> ServerState:
    """The server's state, read afresh (keeps type checkers from narrowing it across awaits)."""
    return server.state


async def plain_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Another ASGI application, without lifespan support."""
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": f"other app at {scope['path']}"})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": f"other app at {scope['path']}".encode()})


@asynccontextmanager
async def mounted(
    server: rtt.Server[Any],
    mode: str,
    path: str = "/ws",
    other: Any = None,
    start: bool = True,
    **uvicorn_options: Any,
) -> AsyncIterator[int]:
    """Serve ``server`` mounted in ``mode`` on a free port; yields the port.

    ``start``: the rtt server starts and closes with the application (aiohttp:
    ``on_startup``/``on_shutdown``; ASGI: the lifespan); otherwise the test does it.
    """
    assert isinstance(server, WsServer)
    if mode == "aiohttp":
        sock = socketlib.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = web.Application()
        server.attach(app, path)
        if other is not None:
            app.router.add_get("/other", other)
        if start:
            app.on_startup.append(lambda app: server.start())  # attach closes it in on_shutdown
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        try:
            yield port
        finally:
            await runner.cleanup()
            sock.close()
        return
    asgi = server.asgi_app(other, path=path)
    options = {"lifespan": "on" if start else "off", "ws": mode.removeprefix("asgi-"), **uvicorn_options}
    async with mounted_app(asgi, **options) as port:
        yield port


@asynccontextmanager
async def mounted_app(app: Any, **uvicorn_options: Any) -> AsyncIterator[int]:
    """An ASGI application under uvicorn on a free port (lifespan on, its default WebSocket backend)."""
    sock = socketlib.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = {"lifespan": "on", "log_level": "warning", "timeout_graceful_shutdown": 2, **uvicorn_options}
    uv = uvicorn.Server(uvicorn.Config(app, **options))
    serving = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        await eventually(lambda: uv.started or serving.done(), 10, "uvicorn to start")
        assert not serving.done(), "uvicorn did not start"
        yield port
    finally:
        uv.should_exit = True
        await asyncio.wait_for(serving, 15)
        sock.close()


def plain(url: str, **kwargs: Any) -> Any:
    """A plain `websockets` client: no rtt code on the client side."""
    return connect(url, compression=None, proxy=None, open_timeout=10, **kwargs)


async def http(method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as response:
        return response.status, dict(response.headers), await response.text()


@pytest.mark.parametrize("mode", MODES)
async def test_echo_with_the_rtt_client_and_a_plain_one(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0)
    server.on("message", lambda s, data: server.send(s.id, data))
    rec = Recorder().listen(server, "connect", "disconnect")
    async with mounted(server, mode, path="/live/ws") as port:
        assert state_of(server) is ServerState.RUNNING
        assert server.url == "ws://127.0.0.1:0/live/ws"  # host and port as given: only the url
        url = f"ws://127.0.0.1:{port}/live/ws"
        async with ws.client(url + "?room=1") as client:
            await client.send("text")
            assert await client.recv() == "text"
            await client.send(b"\x00\xff")
            assert await client.recv() == b"\x00\xff"
            (socket,) = server.sockets.values()
            assert socket.path == "/live/ws" and socket.query == {"room": "1"}
            assert socket.remote_address is not None and socket.remote_address[0] == "127.0.0.1"
            assert socket.headers["host"] == f"127.0.0.1:{port}"
        async with plain(url) as conn:
            await conn.send("plain")
            assert await conn.recv() == "plain"
        await eventually(lambda: len(rec.of("disconnect")) == 2)
        assert [args[1] for args in rec.of("disconnect")] == [CloseReason.CLIENT_CLOSED] * 2
    assert state_of(server) is ServerState.CLOSED


@pytest.mark.parametrize("mode", MODES)
async def test_a_refused_handshake_gets_rtts_status_and_reason(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0, authorize=lambda h: Reject(401, "Token please"))
    async with mounted(server, mode) as port:
        with pytest.raises(InvalidStatus) as info:
            async with plain(f"ws://127.0.0.1:{port}/ws"):
                pass
        response = info.value.response
        # uvicorn offers the websocket.http.response extension with both backends.
        assert (response.status_code, response.body) == (401, b"Token please\n")
        with pytest.raises(rtt.RejectedError) as rejected:
            async with ws.client(f"ws://127.0.0.1:{port}/ws"):
                pass
        assert rejected.value.status == 401
    origin = ws.server("127.0.0.1", 0, allowed_origins=["https://good.example"])
    async with mounted(origin, mode) as port:
        with pytest.raises(InvalidStatus) as info:
            async with plain(f"ws://127.0.0.1:{port}/ws", origin="https://evil.example"):
                pass
        assert (info.value.response.status_code, info.value.response.body) == (403, b"Origin not allowed\n")


async def test_asgi_without_the_http_response_extension_refuses_with_a_close(ws: rtt.Transport) -> None:
    server = ws.server("127.0.0.1", 0, authorize=lambda h: False)
    assert isinstance(server, WsServer)
    app = server.asgi_app()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"host", b"x")], "query_string": b""}
    async with server:
        await app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize("mode", MODES)
async def test_plain_requests_at_the_path_get_426_and_405(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0)
    async with mounted(server, mode) as port:
        status, headers, body = await http("GET", f"http://127.0.0.1:{port}/ws")
        assert status == 426 and headers["Upgrade"] == "websocket"
        assert body.startswith("Failed to open a WebSocket connection: ")
        status, headers, body = await http("POST", f"http://127.0.0.1:{port}/ws", data=b"x")
        assert status == 405 and headers["Allow"] == "GET"
        # The browser assets, as standalone.
        status, headers, body = await http("GET", f"http://127.0.0.1:{port}/rtt/rtt-ws.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert "rtt" in body
        status, _, _ = await http("GET", f"http://127.0.0.1:{port}/rtt/nothing.js")
        assert status == 404


@pytest.mark.parametrize("mode", MODES)
async def test_503_before_start_and_after_close(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0)
    async with mounted(server, mode, start=False) as port:
        url = f"ws://127.0.0.1:{port}/ws"
        for step in ("before", "running", "after"):
            if step == "running":
                async with server, plain(url) as conn:
                    await conn.send("hello")
                continue
            with pytest.raises(InvalidStatus) as info:
                async with plain(url):
                    pass
            assert info.value.response.status_code == 503, step
            assert info.value.response.body == b"Server not running\n"


@pytest.mark.parametrize("mode", MODES)
async def test_oversize_closes_with_1009_and_rtts_text(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0, max_message_size=100)
    server.on("message", lambda s, data: server.send(s.id, data))
    rec = Recorder().listen(server, "disconnect")
    async with mounted(server, mode) as port, plain(f"ws://127.0.0.1:{port}/ws") as conn:
        await conn.send("x" * 100)  # exactly the limit is allowed
        assert await conn.recv() == "x" * 100
        await conn.send(b"y" * 101)
        with pytest.raises(ConnectionClosed) as info:
            await conn.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1009, "message too big")
        await eventually(lambda: rec.of("disconnect"))
        assert rec.of("disconnect")[0][1] is CloseReason.MESSAGE_TOO_BIG


@pytest.mark.parametrize("mode", MODES)
async def test_application_and_rtt_closes_carry_code_and_text(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0)
    rec = Recorder().listen(server, "disconnect")
    async with mounted(server, mode) as port:
        url = f"ws://127.0.0.1:{port}/ws"
        async with plain(url) as conn:
            await eventually(lambda: server.sockets)
            (socket_id,) = server.sockets
            await server.send(socket_id, "before the close")
            await server.disconnect(socket_id, code=4321, reason="go away")
            assert await conn.recv() == "before the close"  # queued messages go first
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4321, "go away")
        async with plain(url) as conn:
            await eventually(lambda: server.sockets)
            await server.disconnect(next(iter(server.sockets)))
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "server closed")
        async with plain(url) as conn:
            await eventually(lambda: server.sockets)
            await conn.close(1001)
        await eventually(lambda: len(rec.of("disconnect")) == 3)
        reasons = [args[1] for args in rec.of("disconnect")]
        assert reasons == [CloseReason.APPLICATION, CloseReason.SERVER_CLOSED, CloseReason.CLIENT_CLOSED]
        # Shutdown closes the open sockets with rtt's reason.
        async with plain(url) as conn:
            await eventually(lambda: server.sockets)
            await server.close()
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert info.value.rcvd.reason == "shutdown"
        assert rec.of("disconnect")[-1][1] is CloseReason.SHUTDOWN


@pytest.mark.parametrize("mode", ["asgi-websockets-sansio", "asgi-wsproto"])
async def test_a_frame_past_the_asgi_servers_limit_is_its_own_to_refuse(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0)
    rec = Recorder().listen(server, "disconnect")
    async with mounted(server, mode, ws_max_size=1000) as port, plain(f"ws://127.0.0.1:{port}/ws") as conn:
        await eventually(lambda: server.sockets)
        await conn.send(b"y" * 1001)
        with pytest.raises(ConnectionClosed) as info:
            await conn.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await eventually(lambda: rec.of("disconnect"))
        assert rec.of("disconnect")[0][1] is CloseReason.MESSAGE_TOO_BIG


# Under ASGI rtt sees only its own queue: both uvicorn backends' send waits while their write
# buffer is past its high-water mark, so what the client does not take piles up there.
@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_stops_reading_is_closed_as_slow_consumer(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0, outbound_limit=256 * 1024)
    rec = Recorder().listen(server, "disconnect")
    async with mounted(server, mode) as port, ws.client(f"ws://127.0.0.1:{port}/ws") as client:
        await eventually(lambda: server.sockets)
        client.pause_reading()
        chunk = "z" * 32 * 1024
        sent = 0
        async with asyncio.timeout(30):
            while server.sockets:
                await server.broadcast(chunk)
                sent += len(chunk)
                await asyncio.sleep(0)  # let the writer and the kernel take what they can
        await eventually(lambda: rec.of("disconnect"))
        assert rec.of("disconnect")[0][1] is CloseReason.SLOW_CONSUMER
        assert sent < 64 * 1024 * 1024  # bounded long before memory is


async def raw_websocket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake at /ws written by hand; the stream after the 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


def masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN, short payload), masked as RFC 6455 asks."""
    key = b"\x01\x02\x03\x04"
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


async def test_aiohttp_pings_are_rtts_own_and_answered(ws: rtt.Transport) -> None:
    server = ws.server("127.0.0.1", 0, ping_interval=0.2, ping_timeout=0.3)
    rec = Recorder().listen(server, "disconnect")
    async with mounted(server, "aiohttp") as port:
        reader, writer = await raw_websocket(port)
        writer.write(masked(0x9, b"client ping"))  # rtt answers the client's pings
        async with asyncio.timeout(10):
            assert await reader.readexactly(13) == bytes([0x8A, 11]) + b"client ping"
            # rtt's own pings: each answered, so the next one comes (one at a time, after the pong).
            for _ in range(3):
                opcode, size = await reader.readexactly(2)
                assert opcode == 0x89
                payload = await reader.readexactly(size)
                writer.write(masked(0xA, payload))
        assert len(server.sockets) == 1 and not rec.of("disconnect")
        writer.close()
        async with ws.client(f"ws://127.0.0.1:{port}/ws") as client:
            await eventually(lambda: len(server.sockets) == 1)
            client.pause_reading()  # stops answering pings
            await eventually(lambda: len(rec.of("disconnect")) == 2, 10)
        assert rec.of("disconnect")[1][1] is CloseReason.PING_TIMEOUT


async def test_aiohttp_fails_an_unmasked_frame(ws: rtt.Transport) -> None:
    server = ws.server("127.0.0.1", 0)
    got = asyncio.Queue[Any]()
    server.on("message", lambda s, data: got.put_nowait(data))
    rec = Recorder().listen(server, "disconnect")
    async with mounted(server, "aiohttp") as port:
        reader, writer = await raw_websocket(port)
        ok = masked(0x1, b"ok")
        writer.write(ok + bytes([0x81, 2]) + b"no")
        async with asyncio.timeout(10):
            assert await got.get() == "ok"
            close = await reader.read(100)
        assert close[:2] == bytes([0x88, len(close) - 2]) and close[2:4] == (1002).to_bytes(2, "big")
        assert close[4:] == b"protocol error"
        writer.close()
        await eventually(lambda: rec.of("disconnect"))
        assert rec.of("disconnect")[0][1] is CloseReason.PROTOCOL_ERROR
        assert got.empty()  # nothing after the unmasked frame


@pytest.mark.parametrize("mode", ["asgi-websockets-sansio", "asgi-wsproto"])
async def test_asgi_other_app_gets_other_paths_and_lifespan(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0)
    async with mounted(server, mode, other=plain_asgi) as port:
        status, _, body = await http("GET", f"http://127.0.0.1:{port}/hello")
        assert (status, body) == (200, "other app at /hello")
        async with plain(f"ws://127.0.0.1:{port}/elsewhere") as conn:
            assert await conn.recv() == "other app at /elsewhere"
        assert state_of(server) is ServerState.RUNNING  # started by the lifespan
    assert state_of(server) is ServerState.CLOSED  # and closed by it


@pytest.mark.parametrize("mode", ["asgi-websockets-sansio", "asgi-wsproto"])
async def test_uvicorns_own_shutdown_closes_first_and_reads_as_shutdown(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0)
    rec = Recorder().listen(server, "disconnect")
    async with mounted(server, mode) as port:
        conn = await plain(f"ws://127.0.0.1:{port}/ws")
        await eventually(lambda: server.sockets)
    # uvicorn closes its WebSockets with 1012 before the lifespan shutdown reaches rtt.
    with pytest.raises(ConnectionClosed) as info:
        await conn.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    assert rec.of("disconnect")[0][1] is CloseReason.SHUTDOWN


@pytest.mark.parametrize("mode", ["asgi-websockets-sansio", "asgi-wsproto"])
async def test_asgi_without_other_app(ws: rtt.Transport, mode: str) -> None:
    server = ws.server("127.0.0.1", 0, assets_path=None)
    async with mounted(server, mode) as port:
        status, _, _ = await http("GET", f"http://127.0.0.1:{port}/hello")
        assert status == 404
        status, _, _ = await http("GET", f"http://127.0.0.1:{port}/rtt/rtt-ws.js")
        assert status == 404
        with pytest.raises(InvalidStatus) as info:
            async with plain(f"ws://127.0.0.1:{port}/elsewhere"):
                pass
        assert info.value.response.status_code == 403


async def test_asgi_mounted_inside_starlette(ws: rtt.Transport) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    server = ws.server("127.0.0.1", 0)
    assert isinstance(server, WsServer)
    server.on("message", lambda s, data: server.send(s.id, data))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server:  # Starlette does not pass its lifespan on to a mounted application
            yield

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/hello", hello), Mount("/rt", server.asgi_app())], lifespan=lifespan)
    async with mounted_app(app) as port:
        async with plain(f"ws://127.0.0.1:{port}/rt/ws?x=1") as conn:
            await conn.send("through starlette")
            assert await conn.recv() == "through starlette"
            (socket,) = server.sockets.values()
            assert socket.path == "/rt/ws" and socket.query == {"x": "1"}
        status, _, body = await http("GET", f"http://127.0.0.1:{port}/hello")
        assert (status, body) == (200, "hello")
        status, _, _ = await http("GET", f"http://127.0.0.1:{port}/rt/rtt/rtt-ws.js")
        assert status == 200
    assert state_of(server) is ServerState.CLOSED


async def test_aiohttp_other_routes_are_untouched(ws: rtt.Transport) -> None:
    async def other(request: web.Request) -> web.Response:
        return web.Response(text="aiohttp route")

    server = ws.server("127.0.0.1", 0)
    async with mounted(server, "aiohttp", other=other) as port:
        status, _, body = await http("GET", f"http://127.0.0.1:{port}/other")
        assert (status, body) == (200, "aiohttp route")


async def test_mounting_is_checked(ws: rtt.Transport) -> None:
    server = ws.server("127.0.0.1", 0)
    assert isinstance(server, WsServer)
    for bad in ("ws", "", 5):
        with pytest.raises(ValueError, match="path must be a URL path"):
            server.asgi_app(path=bad)  # type: ignore[arg-type]
    server.asgi_app(path="/ws")
    server.asgi_app(path="/ws")  # the same mode again is fine
    with pytest.raises(RuntimeError, match="already serves in asgi mode"):
        server.attach(web.Application())
    other = ws.server("127.0.0.1", 0)
    assert isinstance(other, WsServer)
    other.attach(web.Application())
    with pytest.raises(RuntimeError, match="already serves in aiohttp mode"):
        other.asgi_app()
    standalone = ws.server("127.0.0.1", 0)
    assert isinstance(standalone, WsServer)
    async with standalone:
        with pytest.raises(RuntimeError, match="already serves in standalone mode"):
            standalone.attach(web.Application())
    started = ws.server("127.0.0.1", 0)
    assert isinstance(started, WsServer)
    started.asgi_app()
    async with started:
        with pytest.raises(RuntimeError, match="before starting it"):
            started.asgi_app()


@pytest.mark.parametrize("how", ["attach", "asgi_app"])
async def test_ssl_is_refused_mounted(ws: rtt.Transport, how: str) -> None:
    server = ws.server("127.0.0.1", 0, ssl=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    assert isinstance(server, WsServer)
    mount: Callable[[], Any] = (
        (lambda: server.attach(web.Application())) if how == "attach" else server.asgi_app
    )
    with pytest.raises(rtt.OptionError, match="option ssl is for a standalone server"):
        mount()


async def test_attach_closes_the_server_when_the_application_shuts_down() -> None:
    await check_aiohttp_shutdown_closes_the_server(rtt.load("ws"))
