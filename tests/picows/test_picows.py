"""rtt-picows specifics: a plain WebSocket wire, option mapping, refusals, frames the kit does not send.

A `websockets` client and raw sockets against the picows server, the picows
client against a plain `websockets` server (SPEC.md 12).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import struct
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
from rtt_picows import PicowsClient, PicowsServer, PicowsTransport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def picows() -> rtt.Transport:
    return rtt.load("picows", reconnect={"min_delay": 0.02, "max_delay": 0.05, "jitter": 0})


def plain(url: str, **kwargs: Any) -> Any:
    """A plain `websockets` client: no rtt code on the client side."""
    return connect(url, compression=None, proxy=None, **kwargs)


UPGRADE = (
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


async def raw_close(server: rtt.Server[Any], *frames: bytes) -> tuple[int, bytes]:
    """Open a WebSocket by hand, send ``frames``; the server's close frame: (code, text)."""
    reader, writer = await asyncio.open_connection(*server.address)
    try:
        writer.write(UPGRADE.encode())
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 "), head
            writer.write(b"".join(frames))
            while True:
                first, second = await reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                payload = await reader.readexactly(size)
                if first & 0x0F == 0x8:
                    (code,) = struct.unpack("!H", payload[:2])
                    assert await reader.read() == b"", "the server closes the TCP connection"
                    return code, payload[2:]
    finally:
        writer.close()


async def test_plain_websocket_client_gets_plain_frames(picows: rtt.Transport) -> None:
    async with echo_server(picows) as (server, received):
        async with plain(server.url + "room?x=1") as conn:
            await conn.send("text frame")
            assert await conn.recv() == "text frame"
            await conn.send(b"\x00\xffbinary frame")
            assert await conn.recv() == b"\x00\xffbinary frame"
            await conn.send("\x00b AAAA")  # nothing rtt-specific on the wire
            assert await conn.recv() == "\x00b AAAA"
            big = "é" * 50_000  # past picows's copy threshold for one send
            await conn.send(big)
            assert await conn.recv() == big
            # A fragmented message is one message (picows hands over frames, rtt joins them).
            await conn.send(["frag", "mented ", "ünïcode"])
            assert await conn.recv() == "fragmented ünïcode"
            await conn.send([b"\x01", b"\x02\x03"])
            assert await conn.recv() == b"\x01\x02\x03"
            await conn.send("whole again")
            assert await conn.recv() == "whole again"
            (socket,) = server.sockets.values()
            assert socket.path == "/room" and socket.query == {"x": "1"}
            assert socket.headers.get("Host") is not None and socket.remote_address is not None
        await eventually(lambda: not server.sockets)
        assert received[-3:] == ["fragmented ünïcode", b"\x01\x02\x03", "whole again"]


async def test_broadcast_reaches_plain_clients_as_plain_frames(picows: rtt.Transport) -> None:
    async with picows.server() as server, plain(server.url) as one, plain(server.url) as two:
        await eventually(lambda: len(server.sockets) == 2)
        for data in ("hello", b"\x00\xff", "x" * 70_000, b""):
            assert await server.broadcast(data) == 2
            assert [await one.recv(), await two.recv()] == [data, data]


async def test_close_codes_seen_by_a_plain_client(picows: rtt.Transport) -> None:
    async with echo_server(picows, max_message_size=100) as (server, _):
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
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "logged in elsewhere")
        async with plain(server.url, max_size=1000) as conn:
            await conn.send("x" * 101)  # one frame past the limit: picows's own check, its own words
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        async with plain(server.url, max_size=1000) as conn:
            await conn.send(["x" * 60, "x" * 60])  # small frames, one message past the limit
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1009, "message too big")
        async with plain(server.url) as conn:
            await conn.close(4000, "custom")
        async with plain(server.url) as conn:
            pass  # a plain client's normal close is the client closing
        await rec.wait("disconnect", 6)
        reasons = [reason for _, reason in rec.of("disconnect")]
        assert reasons == [
            rtt.CloseReason.SERVER_CLOSED,
            rtt.CloseReason.APPLICATION,
            rtt.CloseReason.MESSAGE_TOO_BIG,
            rtt.CloseReason.MESSAGE_TOO_BIG,
            rtt.CloseReason.CLIENT_CLOSED,  # an application code is a deliberate close (SPEC.md 6)
            rtt.CloseReason.CLIENT_CLOSED,
        ]


async def test_frames_that_break_rfc_6455_are_protocol_errors(picows: rtt.Transport) -> None:
    async with echo_server(picows) as (server, received):
        rec = Recorder().listen(server, "disconnect")
        # Invalid UTF-8 in a text frame, whole or across fragments: 1007 (SPEC.md 6.1).
        assert await raw_close(server, frame(0x1, b"\xff\xfe")) == (1007, b"protocol error")
        assert await raw_close(server, frame(0x1, b"\xc3", fin=False), frame(0x0, b"\x28")) == (
            1007,
            b"protocol error",
        )
        # A continuation of nothing, and a new message inside a fragmented one: 1002.
        assert await raw_close(server, frame(0x0, b"x")) == (1002, b"protocol error")
        assert await raw_close(server, frame(0x1, b"a", fin=False), frame(0x1, b"b")) == (
            1002,
            b"protocol error",
        )
        # A reserved bit without an extension (RFC 6455 5.2), which picows itself lets through.
        assert await raw_close(server, bytes([0xC1]) + frame(0x1, b"x")[1:]) == (1002, b"protocol error")
        # What picows's parser refuses gets the right code, in picows's own words.
        assert (await raw_close(server, b"\x81\x02hi"))[0] == 1002  # an unmasked client frame
        assert (await raw_close(server, frame(0x3, b"x")))[0] == 1002  # a reserved opcode
        # A close frame with no status is answered with 1000 and ends as the client closing.
        assert await raw_close(server, frame(0x8, b"")) == (1000, b"")
        await rec.wait("disconnect", 5)
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.PROTOCOL_ERROR] * 7 + [
            rtt.CloseReason.CLIENT_CLOSED
        ]
        assert received == []


async def test_shutdown_is_1001_and_origins_are_refused_before_the_upgrade(picows: rtt.Transport) -> None:
    async with echo_server(picows, allowed_origins=["https://app.example"]) as (server, _):
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


async def test_refusals_carry_status_and_reason(picows: rtt.Transport) -> None:
    async def authorize(handshake: rtt.Handshake) -> rtt.Accept | rtt.Reject | bool:
        await asyncio.sleep(0)  # an async hook: picows itself would need the answer at once
        who = handshake.query.get("who")
        if who == "guest":
            return False
        if who == "late":
            return rtt.Reject(429, "Too many attempts, wait a minute")
        if who == "ünï":
            return rtt.Reject(401, "Wer bist dü?")
        return rtt.Accept(identity=who)

    async with echo_server(picows, authorize=authorize) as (server, _):
        for query, status, reason in (
            ("guest", 403, "Forbidden"),
            ("late", 429, "Too many attempts, wait a minute"),
            ("ünï", 401, "Wer bist dü?"),
        ):
            with pytest.raises(rtt.RejectedError) as info:
                await picows.client(f"{server.url}?who={query}", reconnect=False).connect()
            assert (info.value.status, info.value.reason) == (status, reason)
            with pytest.raises(InvalidStatus) as plain_info:
                async with plain(f"{server.url}?who={query}"):
                    pass
            assert plain_info.value.response.status_code == status
            assert plain_info.value.response.body == f"{reason}\n".encode()
        assert server.stats.rejected == 6 and not server.sockets
        async with picows.client(f"{server.url}?who=ann") as client:
            await client.send("hi")
            assert await client.recv() == "hi"
            (socket,) = server.sockets.values()
            assert socket.identity == "ann"


async def test_rtt_client_talks_to_a_plain_websockets_server(picows: rtt.Transport) -> None:
    async def handler(conn: ServerConnection) -> None:
        async for message in conn:
            await conn.send(message)
        await conn.close()

    async with serve(handler, "127.0.0.1", 0, compression=None) as plain_server:
        port = next(iter(plain_server.sockets)).getsockname()[1]
        async with picows.client(f"ws://127.0.0.1:{port}/") as client:
            await client.send("hi")
            await client.send(b"\x01")
            assert [await client.recv(), await client.recv()] == ["hi", b"\x01"]


async def test_rtt_client_reads_closes_and_limits_of_a_plain_server(picows: rtt.Transport) -> None:
    # Any server may send an application code; its text is passed on as it came (SPEC.md 6.3).
    async def handler(conn: ServerConnection) -> None:
        message = await conn.recv()
        if message == "big":
            await conn.send(["x" * 80, "x" * 80])  # fragments, one message past the client's limit
            await conn.wait_closed()
        elif message == "shutdown":
            await conn.close(1012)
        else:
            await conn.close(4002, "bye\tnow")

    async with serve(handler, "127.0.0.1", 0, compression=None) as plain_server:
        url = f"ws://127.0.0.1:{next(iter(plain_server.sockets)).getsockname()[1]}/"
        client = picows.client(url, reconnect={"retry_codes": [4003]})
        async with client:
            await client.send("hi")
            assert await client.wait_closed() is rtt.CloseReason.APPLICATION
            assert (client.close_code, client.close_text) == (4002, "bye\tnow")
            with pytest.raises(rtt.ConnectionClosed) as info:
                await client.recv()
            assert (info.value.code, info.value.text) == (4002, "bye\tnow")
        client = picows.client(url, max_message_size=100, reconnect=False)
        async with client:
            await client.send("big")
            assert await client.wait_closed() is rtt.CloseReason.MESSAGE_TOO_BIG
        client = picows.client(url, reconnect=False)
        async with client:
            await client.send("shutdown")
            assert await client.wait_closed() is rtt.CloseReason.SHUTDOWN


async def test_client_only_accepts_ws_urls(picows: rtt.Transport) -> None:
    with pytest.raises(rtt.ConfigError, match="ws:// or wss://"):
        picows.client("http://127.0.0.1:1/")
    with pytest.raises(rtt.ConnectError, match=r"cannot connect|refused"):
        await picows.client("ws://127.0.0.1:1/", reconnect=False).connect()


async def test_client_of_a_server_that_is_no_websocket(picows: rtt.Transport) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /else\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        with pytest.raises(rtt.ConnectError) as info:
            await picows.client(f"ws://127.0.0.1:{port}/", reconnect=False).connect()
        assert not isinstance(info.value, rtt.RejectedError)


class RawServer:
    """A WebSocket server by hand on asyncio streams: it answers the upgrade, then does as told."""

    def __init__(self, after_upgrade: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]) -> None:
        self.after_upgrade = after_upgrade
        self.writers: list[asyncio.StreamWriter] = []
        self.listener: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.writers.append(writer)
        await self.after_upgrade(reader, writer)

    async def __aenter__(self) -> str:
        self.listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.listener.sockets[0].getsockname()[1]}/"

    async def __aexit__(self, *exc: object) -> None:
        assert self.listener is not None
        for writer in self.writers:
            writer.transport.abort()
        self.listener.close()
        await self.listener.wait_closed()


async def test_a_server_that_stops_reading_makes_send_wait(picows: rtt.Transport) -> None:
    """picows's send() only buffers: rtt's send() waits above the high-water mark, then raises on a cut."""
    upgraded = asyncio.Event()

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upgraded.set()
        await asyncio.Event().wait()  # holds the connection, reads nothing

    chunk = b"x" * 65536
    raw = RawServer(never_read)
    async with raw as url:
        client = picows.client(url, reconnect=False, max_message_size=len(chunk))
        async with client:
            await asyncio.wait_for(upgraded.wait(), 10)
            assert isinstance(client, PicowsClient) and client.websocket is not None
            transport = client.websocket.underlying_transport
            high = transport.get_write_buffer_limits()[1]
            sent = 0

            async def flood() -> BaseException:
                nonlocal sent
                try:
                    while True:
                        await client.send(chunk)
                        sent += 1
                except rtt.ConnectionClosed as exc:
                    return exc

            flooding = asyncio.create_task(flood())
            try:
                # This very wait needs the flooder to yield: it does only while a send waits.
                await eventually(lambda: transport.get_write_buffer_size() > high, 20, "a full write buffer")
                assert transport.get_write_buffer_size() <= high + len(chunk) + 14, sent
                before = sent
                raw.writers[0].transport.abort()  # a reset while the send waits
                closed = await asyncio.wait_for(flooding, 10)
            finally:
                flooding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flooding
            assert isinstance(closed, rtt.ConnectionClosed)
            assert sent == before, "nothing is sent once the connection is gone"


async def test_a_bad_frame_from_the_server_is_a_protocol_error_logged_below_error(
    picows: rtt.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def bad_opcode(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x83\x02hi")  # a reserved opcode, which picows's parser refuses itself
        await reader.read()

    async with RawServer(bad_opcode) as url:
        client = picows.client(url, reconnect=False)
        async with client:
            assert await asyncio.wait_for(client.wait_closed(), 10) is rtt.CloseReason.PROTOCOL_ERROR
    parser = [r for r in caplog.records if r.name == "picows.client" and "parser error" in r.getMessage()]
    assert parser and all(r.levelno == logging.DEBUG for r in parser), parser
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def fetch(url: str) -> tuple[int, Message | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None, b""


async def test_browser_assets_are_served_and_nothing_else(picows: rtt.Transport) -> None:
    assets = picows.browser_assets()
    assert set(assets) == {"rtt-client.js", "rtt-client.mjs", "rtt-picows.js", "rtt-picows.mjs"}
    assert picows.capabilities.browser_client
    async with picows.server() as server:
        base = server.url.replace("ws://", "http://")
        for name, file in assets.items():
            status, headers, body = await asyncio.to_thread(fetch, f"{base}rtt/{name}")
            assert status == 200 and headers is not None
            assert headers["Content-Type"] == "text/javascript; charset=utf-8"
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert headers["Connection"] == "close"
            assert body == file.read_bytes()
        for path in ("rtt/nope.js", "rtt/../pyproject.toml", "rtt/", "rtt/%2e%2e/x"):
            assert (await asyncio.to_thread(fetch, base + path))[0] == 404
        assert (await asyncio.to_thread(fetch, base + "elsewhere"))[0] == 426  # WebSocket only
    async with picows.server(assets_path="/static/rtt/") as server:
        base = server.url.replace("ws://", "http://")
        assert (await asyncio.to_thread(fetch, base + "static/rtt/rtt-picows.js"))[0] == 200
    async with picows.server(assets_path=None) as server:
        base = server.url.replace("ws://", "http://")
        assert (await asyncio.to_thread(fetch, base + "rtt/rtt-picows.js"))[0] == 426


def test_picows_options_are_mapped() -> None:
    with pytest.raises(rtt.OptionError, match="assets_path must be None or a path"):
        rtt.load("picows", assets_path="rtt")
    server = rtt.load("picows", max_message_size=10).server()
    assert isinstance(server, PicowsServer) and server.options.max_message_size == 10
    assert isinstance(rtt.load("picows"), PicowsTransport)
    assert rtt.load("picows").capabilities.binary
    with pytest.raises(rtt.OptionError):
        rtt.load("picows").client("ws://127.0.0.1:1/", assets_path="/x/")


async def test_a_burst_to_a_stalled_client_stays_bounded(picows: rtt.Transport) -> None:
    """Sends that never yield to the loop still cannot grow a socket's buffer past the limit."""
    limit, chunk = 256 * 1024, b"\xab" * 65536
    async with picows.server(outbound_limit=limit, max_message_size=len(chunk)) as server:
        rec = Recorder().listen(server, "disconnect")
        client = picows.client(server.url, max_message_size=len(chunk), reconnect=False)
        await client.connect()
        await eventually(lambda: server.sockets)
        assert isinstance(client, PicowsClient)
        client.pause_reading()
        ((socket_id, conn),) = server._conns.items()
        peak = 0
        try:
            for _ in range(2000):  # 128 MiB at most, far past any kernel buffer
                await server.send(socket_id, chunk)
                peak = max(peak, conn.ws.underlying_transport.get_write_buffer_size())
        except rtt.UnknownSocketError:
            pass
        else:
            pytest.fail("a client that never reads was not disconnected")
        assert peak <= limit + len(chunk)
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.SLOW_CONSUMER
        await client.close()


async def test_a_broadcast_burst_drops_only_the_stalled_client(picows: rtt.Transport) -> None:
    limit, chunk = 256 * 1024, b"\xcd" * 65536
    async with picows.server(outbound_limit=limit, max_message_size=len(chunk)) as server:
        rec = Recorder().listen(server, "disconnect")
        stalled = picows.client(server.url, max_message_size=len(chunk), reconnect=False)
        await stalled.connect()
        async with plain(server.url, max_size=len(chunk)) as reader:
            await eventually(lambda: len(server.sockets) == 2)
            stalled.pause_reading()
            sent = 0
            while len(server.sockets) == 2 and sent < 2000:
                await server.broadcast(chunk)
                sent += 1
                assert await reader.recv() == chunk  # the reading client keeps up
            ((_, reason),) = await rec.wait("disconnect")
            assert reason is rtt.CloseReason.SLOW_CONSUMER and len(server.sockets) == 1
        await stalled.close()


async def test_reuse_port_lets_two_servers_share_a_port(picows: rtt.Transport) -> None:
    """SPEC.md 7.1: with reuse_port both processes' listeners take connections on one port."""
    async with (
        picows.server(reuse_port=True) as first,
        picows.server(port=first.address[1], reuse_port=True) as second,
    ):
        assert first.url == second.url
        clients = []
        try:
            async with asyncio.timeout(20):
                while not (first.sockets and second.sockets):
                    client = picows.client(first.url, reconnect=False)
                    await client.connect()
                    clients.append(client)
                    await eventually(lambda: len(first.sockets) + len(second.sockets) == len(clients))
        finally:
            for client in clients:
                await client.close()


async def test_ipv6_url(picows: rtt.Transport) -> None:
    async with picows.server(host="::1") as server:
        assert server.url == f"ws://[::1]:{server.address[1]}/"
        async with picows.client(server.url) as client:
            await client.send("v6")
            await eventually(lambda: server.sockets)


@pytest.mark.timeout(600)
def test_fresh_virtualenv_install(fresh_venv: Callable[..., FreshVenv]) -> None:
    """`pip install packages/rtt-core packages/rtt-picows` pulls in picows and its own dependencies only."""
    venv = fresh_venv("packages/rtt-core", "packages/rtt-picows")
    assert {"rtt-core", "rtt-picows", "picows"} <= venv.distributions()
    assert not venv.distributions() & {"websockets", "aiohttp", "rtt-ws"}
    out = venv.run("import rtt; print(rtt.load('picows').name, [i.name for i in rtt.available()])")
    assert out == "picows ['picows']\n"


async def test_a_waiting_handler_pushes_back_on_its_socket_only(picows: rtt.Transport) -> None:
    """Messages wait behind a handler that awaits; past 16 the socket is no longer read (SPEC.md 5.3)."""
    gate = asyncio.Event()
    seen: list[tuple[str, str | bytes]] = []
    async with picows.server() as server:

        @server.on("message")
        async def handle(socket: rtt.Socket, data: str | bytes) -> None:
            if data == "hold":
                await gate.wait()  # a real wait: the report goes on in a task
            elif data == "yield":
                await asyncio.sleep(0)  # a bare yield to the loop
            seen.append((socket.id, data))

        async with plain(server.url) as slow, plain(server.url) as other:
            await eventually(lambda: len(server.sockets) == 2)
            await slow.send("hold")
            for i in range(100):
                await slow.send(f"m{i}")
            await eventually(lambda: any(conn.paused for conn in server._conns.values()))
            await other.send("yield")
            await other.send("free")
            await eventually(lambda: [data for _, data in seen] == ["yield", "free"])
            gate.set()
            await eventually(lambda: len(seen) == 103)
            slow_id = next(sid for sid, data in seen if data == "hold")
            assert [data for sid, data in seen if sid == slow_id] == ["hold"] + [f"m{i}" for i in range(100)]
            assert not any(conn.paused for conn in server._conns.values())


async def test_shutdown_cancels_a_handler_that_never_returns(picows: rtt.Transport) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()
    server = picows.server(close_timeout=0.5)
    rec = Recorder().listen(server, "disconnect")

    @server.on("message")
    async def stuck(socket: rtt.Socket, data: str | bytes) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await server.start()
    async with plain(server.url) as conn:
        await conn.send("never answered")
        await started.wait()
        await server.close()
        assert cancelled.is_set()
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.SHUTDOWN
