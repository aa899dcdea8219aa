"""rtt-engineio specifics: transports and the upgrade, serving modes, the wire, limits (SPEC.md 12.3)."""

from __future__ import annotations

import asyncio
import json
import socket as socketlib
import textwrap
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import engineio  # type: ignore[import-untyped, unused-ignore]
import pytest
import uvicorn
from aiohttp import web
from conftest import echo_server
from mount_support import check_aiohttp_shutdown_closes_the_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import rtt
import rtt_engineio.client
from rtt.testing import Recorder, eventually
from rtt_engineio import EngineioClient, EngineioConn, EngineioServer, EngineioTransport

if TYPE_CHECKING:
    from conftest import FreshVenv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def eio() -> rtt.Transport:
    return rtt.load("engineio", reconnect={"min_delay": 0.02, "max_delay": 0.05, "jitter": 0})


def state_of(server: rtt.Server[Any]) -> rtt.ServerState:
    """The server's state, read afresh (keeps type checkers from narrowing it across awaits)."""
    return server.state


def conn_of(server: EngineioServer, socket_id: str) -> EngineioConn:
    return server._conns[socket_id]


@asynccontextmanager
async def raw_client(url: str, **connect: Any) -> AsyncIterator[tuple[Any, asyncio.Queue[Any]]]:
    """A plain python-engineio client (no rtt code on the client side) and what it received."""
    client = engineio.AsyncClient(handle_sigint=False)
    received: asyncio.Queue[Any] = asyncio.Queue()
    client.on("message", received.put_nowait)
    client.on("disconnect", lambda reason: received.put_nowait(("disconnect", reason)))
    base, _, path = url.partition("/engine.io")
    await client.connect(base, engineio_path="engine.io" + path.rstrip("/"), **connect)
    try:
        yield client, received
    finally:
        await asyncio.wait_for(client.disconnect(abort=True), 10)


async def handshake(session: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, str]:
    """One raw long-polling handshake: status and body."""
    async with session.get(url + "?EIO=4&transport=polling", headers=headers) as response:
        return response.status, await response.text()


async def test_url_and_polling_to_websocket_upgrade(eio: rtt.Transport) -> None:
    async with echo_server(eio, kind=EngineioServer) as (server, _):
        host, port = server.address
        assert server.url == f"http://{host}:{port}/engine.io/"
        async with eio.client(server.url + "?room=1") as client:
            assert isinstance(client, EngineioClient) and client.connection is not None
            connection = client.connection
            (socket,) = server.sockets.values()
            assert socket.query == {"room": "1"} and socket.path == "/engine.io/"
            assert "EIO" not in socket.query_string and "transport" not in socket.query_string
            await eventually(lambda: connection.transport == "websocket", 5, "the upgrade")
            await eventually(lambda: conn_of(server, socket.id).transport_name == "websocket")
            for message in ("after the upgrade", b"\x00\xff"):
                await client.send(message)
                assert await client.recv() == message


@pytest.mark.parametrize("transports", [("polling",), ("websocket",)])
async def test_client_transports_are_selectable(eio: rtt.Transport, transports: tuple[str, ...]) -> None:
    async with (
        echo_server(eio, kind=EngineioServer) as (server, _),
        eio.client(server.url, transports=transports) as client,
    ):
        assert isinstance(client, EngineioClient) and client.connection is not None
        await client.send("x")
        assert await client.recv() == "x"
        assert client.connection.transport == transports[0]
        (socket_id,) = server.sockets
        assert conn_of(server, socket_id).transport_name == transports[0]


async def test_server_transports_option_refuses_the_other_transport(eio: rtt.Transport) -> None:
    async with echo_server(eio, transports=("polling",), kind=EngineioServer) as (server, _):
        with pytest.raises(rtt.ConnectError):
            await eio.client(server.url, transports=("websocket",), reconnect=False).connect()
        async with eio.client(server.url) as client:  # polling, and no upgrade is offered
            await client.send("still polling")
            assert await client.recv() == "still polling"
            assert isinstance(client, EngineioClient) and client.connection is not None
            assert client.connection.transport == "polling"


# With resume on, a client that did not ask for it is answered as plain (SPEC.md 17.2).
@pytest.mark.parametrize("resume_window", [None, 30], ids=["resume-off", "resume-on"])
async def test_plain_engineio_client_talks_to_the_rtt_server(
    eio: rtt.Transport, resume_window: float | None
) -> None:
    async with echo_server(eio, kind=EngineioServer, resume_window=resume_window) as (server, _):
        rec = Recorder().listen(server, "connect", "disconnect", "message")
        # The server keeps text as text; the plain client decodes what looks like JSON, as
        # python-engineio does: rtt's clients elsewhere in the process do not change that.
        sent_and_echoed: list[tuple[str | bytes, object]] = [
            ('{"a": [1, 2]}', {"a": [1, 2]}),
            ('"quoted"', "quoted"),
            ("[1]", [1]),
            ("plain", "plain"),
            (b"\x00\x01", b"\x00\x01"),
        ]
        async with eio.client(server.url, reconnect=False) as rtt_client:  # installs rtt's JSON module
            await rtt_client.send('"quoted"')
            assert await asyncio.wait_for(rtt_client.recv(), 5) == '"quoted"'
        for transports in (["polling"], ["websocket"], None):
            async with raw_client(server.url, transports=transports) as (client, received):
                for message, echoed in sent_and_echoed:
                    await client.send(message)
                    assert await asyncio.wait_for(received.get(), 5) == echoed
                    assert rec.of("message")[-1][1] == message
                (socket_id,) = server.sockets
                await server.disconnect(socket_id)
                assert await asyncio.wait_for(received.get(), 5) == ("disconnect", "server disconnect")
            async with raw_client(server.url, transports=transports) as (client, received):
                # A round trip first: python-engineio's disconnect() right after connect()
                # can end its write loop before the CLOSE packet is sent (a library race).
                await client.send("bye")
                assert await asyncio.wait_for(received.get(), 5) == "bye"
                await client.disconnect()
                await eventually(lambda: not server.sockets)
        await rec.wait("disconnect", 7)
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.CLIENT_CLOSED] + [
            rtt.CloseReason.SERVER_CLOSED,
            rtt.CloseReason.CLIENT_CLOSED,
        ] * 3


async def test_origins_and_authorize_refuse_with_the_chosen_status(eio: rtt.Transport) -> None:
    async def authorize(hs: rtt.Handshake) -> rtt.Reject | bool:
        return True if hs.query.get("token") == "ok" else rtt.Reject(401, "Unauthorized")

    async with echo_server(
        eio,
        close_timeout=0.5,
        allowed_origins=["https://app.example"],
        authorize=authorize,
        kind=EngineioServer,
    ) as (server, _):
        async with aiohttp.ClientSession() as session:
            status, body = await handshake(session, server.url, Origin="https://evil.example")
            assert (status, body) == (403, "Origin not allowed\n")
            status, body = await handshake(session, server.url)
            assert (status, body) == (401, "Unauthorized\n")
            status, body = await handshake(session, server.url, Origin="https://app.example")
            assert status == 401
            async with session.get(
                server.url + "?EIO=4&transport=polling&token=ok", headers={"Origin": "https://app.example"}
            ) as response:
                assert response.status == 200
                # CORS answers the allowed origin so a browser page can poll.
                assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
                assert (await response.text()).startswith('0{"sid":')
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(server.url + "?EIO=4&transport=websocket&token=no")
            assert info.value.status == 401
        assert server.stats.rejected == 4
        assert server.stats.connections == 1


async def test_cross_origin_passes_when_the_allow_list_is_off(eio: rtt.Transport) -> None:
    # python-engineio alone would refuse any origin but its own; rtt's default checks nothing.
    async with (
        echo_server(eio, close_timeout=0.5, kind=EngineioServer) as (server, _),
        aiohttp.ClientSession() as session,
    ):
        status, _ = await handshake(session, server.url, Origin="https://elsewhere.example")
        assert status == 200


@pytest.mark.parametrize(("interval", "advertised"), [(0.3, 300), (1.5, 1500), (2, 2000), (None, 86_400_000)])
async def test_ping_interval_is_advertised_in_ms(
    eio: rtt.Transport, interval: float | None, advertised: int
) -> None:
    async with echo_server(
        eio, close_timeout=0.5, ping_interval=interval, ping_timeout=0.5, kind=EngineioServer
    ) as (server, _):
        async with aiohttp.ClientSession() as session:
            status, body = await handshake(session, server.url)
        assert status == 200
        opened = json.loads(body[1:])
        assert (opened["pingInterval"], opened["pingTimeout"]) == (advertised, 500)


async def test_oversize_far_past_the_limit_is_message_too_big(eio: rtt.Transport) -> None:
    limit = 1024
    async with echo_server(eio, max_message_size=limit, kind=EngineioServer) as (server, _):
        rec = Recorder().listen(server, "disconnect", "message")
        # Past the library's own packet limit, where python-engineio would just drop the session.
        for transports in (["polling"], ["websocket"]):
            async with raw_client(server.url, transports=transports) as (client, received):
                await client.send("x" * (10 * limit))
                assert (await asyncio.wait_for(received.get(), 5))[0] == "disconnect"
        await rec.wait("disconnect", 2)
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.MESSAGE_TOO_BIG] * 2
        assert rec.of("message") == []
        # Just past the limit, an rtt client learns why.
        for selected in (("polling",), ("websocket",)):
            client = eio.client(server.url, transports=selected, max_message_size=4 * limit, reconnect=False)
            await client.connect()
            await client.send(b"\x01" * (limit + 1))
            assert await client.wait_closed() is rtt.CloseReason.MESSAGE_TOO_BIG
            await client.close()


async def test_a_polling_client_that_stops_polling_is_a_slow_consumer(eio: rtt.Transport) -> None:
    limit, chunk = 128 * 1024, b"\xab" * (32 * 1024)
    async with echo_server(eio, close_timeout=0.5, outbound_limit=limit, kind=EngineioServer) as (server, _):
        rec = Recorder().listen(server, "disconnect")
        async with aiohttp.ClientSession() as session:
            status, _ = await handshake(session, server.url)  # opens a session, then never polls
            assert status == 200
            (socket_id,) = server.sockets
            sends = 0
            while socket_id in server.sockets:
                await server.send(socket_id, chunk)
                sends += 1
                assert sends <= limit // len(chunk) + 1, "memory must stay bounded"
            ((_, reason),) = await rec.wait("disconnect")
            assert reason is rtt.CloseReason.SLOW_CONSUMER
            assert server.engineio_server.sockets == {}, "the library's session is gone too"


async def test_a_stalled_rtt_polling_client_is_a_slow_consumer(eio: rtt.Transport) -> None:
    limit, chunk = 128 * 1024, "y" * (32 * 1024)
    async with echo_server(eio, outbound_limit=limit, kind=EngineioServer) as (server, _):
        rec = Recorder().listen(server, "disconnect")
        async with eio.client(server.url, transports=("polling",), reconnect=False) as client:
            assert isinstance(client, EngineioClient) and client.connection is not None
            client.connection.pause_reading()
            (socket_id,) = server.sockets
            for _ in range(100):
                if socket_id not in server.sockets:
                    break
                await server.broadcast(chunk)
                await asyncio.sleep(0.01)  # let the client take what it still takes
            ((_, reason),) = await rec.wait("disconnect")
            assert reason is rtt.CloseReason.SLOW_CONSUMER


async def test_broadcast_reaches_every_transport_once(eio: rtt.Transport) -> None:
    async with echo_server(eio, kind=EngineioServer) as (server, _):
        clients = [
            eio.client(server.url, transports=transports, reconnect=False)
            for transports in (("polling",), ("websocket",), ("polling", "websocket"), ("polling",))
        ]
        for client in clients:
            await client.connect()
        await eventually(lambda: len(server.sockets) == 4)
        excluded = next(iter(server.sockets))
        messages: list[str | bytes] = ["text é", b"\x00\x01\xff", "", b""]
        for message in messages:
            assert await server.broadcast(message, exclude=excluded) == 3
        assert await server.broadcast("all") == 4
        for client, socket_id in zip(clients, list(server.sockets), strict=True):
            expected = ["all"] if socket_id == excluded else [*messages, "all"]
            assert [await asyncio.wait_for(client.recv(), 5) for _ in expected] == expected
        assert all(conn_of(server, sid).eio_socket.queue.qsize() == 0 for sid in server.sockets)
        assert all(server._buffered(conn_of(server, sid)) == 0 for sid in server.sockets)
        for client in clients:
            await client.close()


async def test_broadcast_encodes_once_and_starts_no_task(eio: rtt.Transport, monkeypatch: Any) -> None:
    async with echo_server(eio, kind=EngineioServer) as (server, _):
        clients = [eio.client(server.url, transports=("websocket",), reconnect=False) for _ in range(20)]
        for client in clients:
            await client.connect()
        await eventually(lambda: len(server.sockets) == 20)
        for client in clients:
            assert isinstance(client, EngineioClient) and client.connection is not None
            client.connection.pause_reading()
        made: list[Any] = []
        original = asyncio.get_running_loop().create_task

        def create_task(*args: Any, **kwargs: Any) -> Any:
            made.append(args)
            return original(*args, **kwargs)

        monkeypatch.setattr(asyncio.get_running_loop(), "create_task", create_task)
        await server.broadcast("x" * 1000)
        monkeypatch.undo()
        assert made == [], "broadcast must not start a task per socket"
        packets = [conn_of(server, sid).eio_socket.queue._queue[-1] for sid in server.sockets]
        assert all(p is packets[0] for p in packets), "one shared packet, so one encoding"
        for client in clients:
            await client.close()


async def test_mounted_in_an_aiohttp_application_beside_other_routes(eio: rtt.Transport) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from the app")

    app = web.Application()
    app.router.add_get("/hello", hello)
    sock = socketlib.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = eio.server(host="127.0.0.1", port=port)
    assert isinstance(server, EngineioServer)
    server.on("message", lambda s, data: server.send(s.id, data))
    server.attach(app)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        async with server:
            assert server.url == f"http://127.0.0.1:{port}/engine.io/"
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/hello") as r:
                assert r.status == 200 and await r.text() == "hello from the app"
            for transports in (("polling",), ("websocket",), ("polling", "websocket")):
                async with eio.client(server.url, transports=transports) as client:
                    await client.send(b"mounted")
                    assert await client.recv() == b"mounted"
    finally:
        await runner.cleanup()


async def plain_asgi(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"plain asgi"})


async def starlette_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello from starlette")


@pytest.mark.parametrize("kind", ["plain", "starlette"])
async def test_asgi_under_uvicorn_beside_another_app(eio: rtt.Transport, kind: str) -> None:
    lifespan_events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        lifespan_events.append("startup")
        yield
        lifespan_events.append("shutdown")

    other: Any = (
        plain_asgi
        if kind == "plain"
        else Starlette(routes=[Route("/hello", starlette_hello)], lifespan=lifespan)
    )
    sock = socketlib.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = eio.server(host="127.0.0.1", port=port)
    assert isinstance(server, EngineioServer)
    server.on("message", lambda s, data: server.send(s.id, data))
    config = uvicorn.Config(
        server.asgi_app(other), lifespan="on", log_level="warning", ws="wsproto", timeout_graceful_shutdown=2
    )
    uv = uvicorn.Server(config)
    serving = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        await eventually(lambda: uv.started or serving.done(), 10, "uvicorn to start")
        assert server.state is rtt.ServerState.RUNNING  # started by the ASGI lifespan
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/hello") as r:
            assert r.status == 200
            assert await r.text() == ("plain asgi" if kind == "plain" else "hello from starlette")
        for transports in (("polling",), ("websocket",), ("polling", "websocket")):
            async with eio.client(server.url, transports=transports) as client:
                await client.send("over asgi")
                assert await client.recv() == "over asgi"
                await client.send(b"\x00bytes")
                assert await client.recv() == b"\x00bytes"
    finally:
        uv.should_exit = True
        await asyncio.wait_for(serving, 15)
        sock.close()
    assert state_of(server) is rtt.ServerState.CLOSED  # closed by the ASGI lifespan
    # The other application's lifespan runs too (a plain callable without one is left out).
    assert lifespan_events == ([] if kind == "plain" else ["startup", "shutdown"])


def test_engineio_options_are_validated() -> None:
    with pytest.raises(rtt.OptionError, match="transports must be"):
        rtt.load("engineio", transports=("carrier-pigeon",))
    with pytest.raises(rtt.OptionError, match="transports must be"):
        rtt.load("engineio", transports=())
    with pytest.raises(rtt.OptionError, match="engineio_path must be"):
        rtt.load("engineio", engineio_path="engine.io")
    with pytest.raises(rtt.OptionError, match="'engineio_path' for engineio client"):
        rtt.load("engineio").client("http://127.0.0.1:1/engine.io/", engineio_path="/x/")
    with pytest.raises(rtt.ConfigError, match="http"):
        rtt.load("engineio").client("mock://127.0.0.1:1/")
    server = rtt.load("engineio", transports="websocket").server()
    assert isinstance(server, EngineioServer) and server.options.transports == ("websocket",)
    assert isinstance(rtt.load("engineio"), EngineioTransport)


async def test_connect_failure_is_a_connect_error(eio: rtt.Transport) -> None:
    for transports in (("polling",), ("websocket",)):
        client = eio.client("http://127.0.0.1:1/engine.io/", transports=transports)
        with pytest.raises(rtt.ConnectError, match="cannot connect"):
            await client.connect()


@pytest.mark.timeout(600)
def test_fresh_virtualenv_install(fresh_venv: Callable[..., FreshVenv]) -> None:
    """`pip install packages/rtt-core packages/rtt-engineio` pulls in python-engineio, aiohttp and deps."""
    venv = fresh_venv("packages/rtt-core", "packages/rtt-engineio")
    names = {name.replace("_", "-") for name in venv.distributions()}
    allowed = {
        "rtt-core", "rtt-engineio",
        "python-engineio", "simple-websocket", "wsproto", "h11",
        "aiohttp", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "multidict",
        "propcache", "yarl", "idna", "typing-extensions", "async-timeout",
    }  # fmt: skip
    assert names <= allowed, sorted(names - allowed)
    assert {"python-engineio", "aiohttp"} <= names
    code = textwrap.dedent(
        """
        import asyncio, rtt
        assert rtt.load("engineio").name == "engineio"
        assert [i.name for i in rtt.available()] == ["engineio"]

        async def main():
            transport = rtt.load("engineio")
            async with transport.server() as server:
                server.on("message", lambda s, d: server.send(s.id, d))
                async with transport.client(server.url) as client:
                    await client.send("installed")
                    print(await client.recv())

        asyncio.run(main())
        """
    )
    assert venv.run(code) == "installed\n"


def _get(url: str) -> tuple[int, str | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Access-Control-Allow-Origin"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None, b""


async def test_browser_assets_are_served_and_nothing_else() -> None:
    transport = rtt.load("engineio")
    assets = transport.browser_assets()
    assert set(assets) == {"rtt-client.js", "rtt-client.mjs", "rtt-engineio.js", "rtt-engineio.mjs"}
    assert transport.capabilities.browser_client
    async with transport.server() as server:
        host, port = server.address
        for name, file in assets.items():
            status, cors, body = await asyncio.to_thread(_get, f"http://{host}:{port}/rtt/{name}")
            assert (status, cors, body) == (200, "*", file.read_bytes())
        for path in ("rtt/nope.js", "rtt/../transport.py", "elsewhere"):
            assert (await asyncio.to_thread(_get, f"http://{host}:{port}/{path}"))[0] == 404
    async with transport.server(assets_path=None) as server:
        host, port = server.address
        assert (await asyncio.to_thread(_get, f"http://{host}:{port}/rtt/rtt-engineio.js"))[0] == 404
    with pytest.raises(rtt.OptionError, match="assets_path"):
        rtt.load("engineio", assets_path="rtt")


async def test_websocket_sends_push_back_when_the_server_stops_reading(eio: rtt.Transport) -> None:
    """python-engineio's client send queue is unbounded; rtt's send() waits instead of growing it."""
    # No echo: the client reads nothing here, so echoes would make the server's queue a slow consumer.
    server = eio.server()
    await server.start()
    reading = asyncio.Event()
    received: list[bytes] = []

    @server.on("message")
    async def slow(socket: rtt.Socket, data: str | bytes) -> None:
        assert isinstance(data, bytes)
        await reading.wait()  # handlers run in order: the socket is not read meanwhile
        received.append(data)

    try:
        async with eio.client(server.url, transports=("websocket",)) as client:
            assert isinstance(client, EngineioClient) and client.connection is not None
            queue = client.connection.eio.queue
            sent = 0
            for sent in range(1, 1001):  # bounded: 64 MiB would be far past any socket buffer
                try:
                    await asyncio.wait_for(client.send(sent.to_bytes(4, "big") * 16384), 1.0)
                except TimeoutError:
                    break
                assert queue.unwritten <= rtt_engineio.client.WEBSOCKET_QUEUE + 1
            else:
                raise AssertionError("send() never waited for a server that does not read")
            assert queue.unwritten <= rtt_engineio.client.WEBSOCKET_QUEUE + 1
            reading.set()
            # Everything sent (the one that timed out may or may not have been queued) arrives in order.
            await eventually(lambda: len(received) >= sent - 1, 20, "the backlog")
            assert [int.from_bytes(d[:4], "big") for d in received[: sent - 1]] == list(range(1, sent))
    finally:
        await server.close()


async def test_reuse_port_lets_two_servers_share_a_port(eio: rtt.Transport) -> None:
    """SPEC.md 7.1: with reuse_port both processes' listeners take connections on one port."""
    async with (
        eio.server(reuse_port=True) as first,
        eio.server(port=first.address[1], reuse_port=True) as second,
    ):
        assert first.url == second.url
        clients = []
        try:
            # The kernel hashes each connection to one listener: a few clients reach both. WebSocket
            # only, since one session's successive polling requests could reach either process.
            async with asyncio.timeout(20):
                while not (first.sockets and second.sockets):
                    client = eio.client(first.url, transports=("websocket",), reconnect=False)
                    await client.connect()
                    clients.append(client)
                    await eventually(lambda: len(first.sockets) + len(second.sockets) == len(clients))
        finally:
            for client in clients:
                await client.close()


async def test_attach_closes_the_server_when_the_application_shuts_down() -> None:
    # Over WebSocket: aiohttp stops listening and closes idle connections before on_shutdown, so a
    # long-polling client between two polls cannot come back for its CLOSE packet (SPEC.md 12.3).
    await check_aiohttp_shutdown_closes_the_server(rtt.load("engineio", transports=("websocket",)))
