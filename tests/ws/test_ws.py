"""rtt-ws specifics: a plain WebSocket wire, option mapping, browser assets (SPEC.md 12.2)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import Any

import pytest
from conftest import FreshVenv, echo_server
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

import rtt
from rtt.testing import Recorder, eventually
from rtt_ws import WsClient, WsServer, WsTransport


@pytest.fixture
def ws() -> rtt.Transport:
    return rtt.load("ws", reconnect={"min_delay": 0.02, "max_delay": 0.05, "jitter": 0})


def plain(url: str, **kwargs: Any) -> Any:
    """A plain `websockets` client: no rtt code on the client side."""
    return connect(url, compression=None, proxy=None, **kwargs)


async def test_plain_websocket_client_gets_plain_frames(ws: rtt.Transport) -> None:
    async with echo_server(ws) as (server, _):
        async with plain(server.url + "room?x=1") as conn:
            await conn.send("text frame")
            assert await conn.recv() == "text frame"
            await conn.send(b"\x00\xffbinary frame")
            assert await conn.recv() == b"\x00\xffbinary frame"
            # Nothing rtt-specific on the wire: a text message starting with NUL is just text.
            await conn.send("\x00b AAAA")
            assert await conn.recv() == "\x00b AAAA"
            (socket,) = server.sockets.values()
            assert socket.path == "/room" and socket.query == {"x": "1"}
        await eventually(lambda: not server.sockets)


async def test_close_codes_seen_by_a_plain_client(ws: rtt.Transport) -> None:
    async with echo_server(ws, max_message_size=100) as (server, _):
        rec = Recorder().listen(server, "disconnect")
        async with plain(server.url) as conn:
            await eventually(lambda: server.sockets)
            (socket_id,) = server.sockets
            await server.disconnect(socket_id)
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "server closed")
        async with plain(server.url) as conn:
            await eventually(lambda: server.sockets)
            (socket_id,) = server.sockets
            await server.disconnect(socket_id, code=4001, reason="logged in elsewhere")
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
            # The application's code and text are the close frame's own (SPEC.md 6.3).
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "logged in elsewhere")
        async with plain(server.url, max_size=1000) as conn:
            await conn.send("x" * 101)
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        async with plain(server.url) as conn:
            await conn.close(4000, "custom")
        async with plain(server.url) as conn:
            pass  # a plain client's normal close is the client closing
        await rec.wait("disconnect", 5)
        reasons = [reason for _, reason in rec.of("disconnect")]
        assert reasons == [
            rtt.CloseReason.SERVER_CLOSED,
            rtt.CloseReason.APPLICATION,
            rtt.CloseReason.MESSAGE_TOO_BIG,
            rtt.CloseReason.CLIENT_CLOSED,  # an application code is a deliberate close (SPEC.md 6)
            rtt.CloseReason.CLIENT_CLOSED,
        ]


async def test_shutdown_is_1001_and_origins_are_refused_before_the_upgrade(ws: rtt.Transport) -> None:
    async with echo_server(ws, allowed_origins=["https://app.example"]) as (server, _):
        with pytest.raises(InvalidStatus) as info:
            async with plain(server.url, origin="https://evil.example"):
                pass
        assert info.value.response.status_code == 403
        assert b"Origin not allowed" in info.value.response.body
        async with plain(server.url, origin="https://app.example") as conn:
            await eventually(lambda: server.sockets)
            await server.close()
            with pytest.raises(ConnectionClosed) as closed:
                await conn.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "shutdown")


async def test_rtt_client_talks_to_a_plain_websockets_server(ws: rtt.Transport) -> None:
    async def handler(conn: ServerConnection) -> None:
        async for message in conn:
            await conn.send(message)
        await conn.close()

    async with serve(handler, "127.0.0.1", 0, compression=None) as plain_server:
        port = next(iter(plain_server.sockets)).getsockname()[1]
        async with ws.client(f"ws://127.0.0.1:{port}/") as client:
            await client.send("hi")
            await client.send(b"\x01")
            assert [await client.recv(), await client.recv()] == ["hi", b"\x01"]


async def test_rtt_client_reads_a_plain_servers_application_close(ws: rtt.Transport) -> None:
    # Any server may send an application code; its text is passed on as it came, even
    # text that Server.disconnect would refuse to send (SPEC.md 6.3).
    async def handler(conn: ServerConnection) -> None:
        await conn.recv()
        await conn.close(4002, "bye\tnow")

    async with serve(handler, "127.0.0.1", 0, compression=None) as plain_server:
        port = next(iter(plain_server.sockets)).getsockname()[1]
        client = ws.client(f"ws://127.0.0.1:{port}/", reconnect={"retry_codes": [4003]})
        async with client:
            await client.send("hi")
            assert await client.wait_closed() is rtt.CloseReason.APPLICATION
            assert (client.close_code, client.close_text) == (4002, "bye\tnow")
            with pytest.raises(rtt.ConnectionClosed) as info:
                await client.recv()
            assert (info.value.code, info.value.text) == (4002, "bye\tnow")


async def test_client_only_accepts_ws_urls(ws: rtt.Transport) -> None:
    with pytest.raises(rtt.ConfigError, match="ws:// or wss://"):
        ws.client("http://127.0.0.1:1/")
    with pytest.raises(rtt.ConnectError, match="cannot connect"):
        await ws.client("ws://127.0.0.1:1/").connect()


def fetch(url: str) -> tuple[int, Message | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None, b""


async def test_browser_assets_are_served_and_nothing_else(ws: rtt.Transport) -> None:
    assets = ws.browser_assets()
    assert set(assets) == {"rtt-client.js", "rtt-client.mjs", "rtt-ws.js", "rtt-ws.mjs"}
    assert ws.capabilities.browser_client
    async with ws.server() as server:
        base = server.url.replace("ws://", "http://")
        for name, file in assets.items():
            status, headers, body = await asyncio.to_thread(fetch, f"{base}rtt/{name}")
            assert status == 200 and headers is not None
            assert headers["Content-Type"] == "text/javascript; charset=utf-8"
            assert headers["Access-Control-Allow-Origin"] == "*"  # importable as a module from any page
            assert headers["Connection"] == "close"
            assert body == file.read_bytes()
        for path in ("rtt/nope.js", "rtt/../pyproject.toml", "rtt/", "rtt/%2e%2e/x"):
            assert (await asyncio.to_thread(fetch, base + path))[0] == 404
        assert (await asyncio.to_thread(fetch, base + "elsewhere"))[0] == 426  # WebSocket only
    async with ws.server(assets_path="/static/rtt/") as server:
        base = server.url.replace("ws://", "http://")
        assert (await asyncio.to_thread(fetch, base + "static/rtt/rtt-ws.js"))[0] == 200
    async with ws.server(assets_path=None) as server:
        base = server.url.replace("ws://", "http://")
        assert (await asyncio.to_thread(fetch, base + "rtt/rtt-ws.js"))[0] == 426


def test_ws_options_are_validated() -> None:
    with pytest.raises(rtt.OptionError, match="assets_path must be None or a path"):
        rtt.load("ws", assets_path="rtt")
    with pytest.raises(rtt.OptionError, match="'assets_path' for ws client"):
        rtt.load("ws").client("ws://127.0.0.1:1/", assets_path="/x/")
    server = rtt.load("ws", max_message_size=10).server()
    assert isinstance(server, WsServer) and server.options.max_message_size == 10
    assert isinstance(rtt.load("ws"), WsTransport)


@pytest.mark.timeout(600)
def test_fresh_virtualenv_install(fresh_venv: Callable[..., FreshVenv]) -> None:
    """`pip install packages/rtt-core packages/rtt-ws` pulls in websockets and nothing else."""
    venv = fresh_venv("packages/rtt-core", "packages/rtt-ws")
    assert venv.distributions() == {"rtt-core", "rtt-ws", "websockets"}
    assert (
        venv.run("import rtt; print(rtt.load('ws').name, [i.name for i in rtt.available()])") == "ws ['ws']\n"
    )


async def test_a_burst_to_a_stalled_client_stays_bounded(ws: rtt.Transport) -> None:
    """Sends that never yield to the loop still cannot grow a socket's buffer past the limit."""
    limit, chunk = 256 * 1024, b"\xab" * 65536
    async with ws.server(outbound_limit=limit, max_message_size=len(chunk)) as server:
        rec = Recorder().listen(server, "disconnect")
        client = ws.client(server.url, max_message_size=len(chunk), reconnect=False)
        await client.connect()
        await eventually(lambda: server.sockets)
        assert isinstance(client, WsClient) and client.websocket is not None
        client.websocket.transport.pause_reading()
        ((socket_id, conn),) = server._conns.items()
        peak = 0
        try:
            for _ in range(2000):  # 128 MiB at most, far past any kernel buffer
                await server.send(socket_id, chunk)
                peak = max(peak, conn.transport.get_write_buffer_size())
        except rtt.UnknownSocketError:
            pass
        else:
            pytest.fail("a client that never reads was not disconnected")
        assert peak <= limit + len(chunk)
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.SLOW_CONSUMER
        client.websocket.transport.resume_reading()
        await client.close()


async def test_reuse_port_lets_two_servers_share_a_port(ws: rtt.Transport) -> None:
    """SPEC.md 7.1: with reuse_port both processes' listeners take connections on one port."""
    async with (
        ws.server(reuse_port=True) as first,
        ws.server(port=first.address[1], reuse_port=True) as second,
    ):
        assert first.url == second.url
        clients = []
        try:
            # The kernel hashes each connection to one listener: a few clients reach both.
            async with asyncio.timeout(20):
                while not (first.sockets and second.sockets):
                    client = ws.client(first.url, reconnect=False)
                    await client.connect()
                    clients.append(client)
                    await eventually(lambda: len(first.sockets) + len(second.sockets) == len(clients))
        finally:
            for client in clients:
                await client.close()
