"""Engine.IO's HTTP requests never reuse a connection; a teardown CLOSE after a drop is a drop (SPEC 12.3).

Chromium sends a request again by itself when the keep-alive connection it
reused breaks before the response comes; a repeated poll or POST would let a
session go on past a gap or a repeat. Every long-polling answer therefore says
``Connection: close`` and the server closes the connection after it. And
engine.io-client's polling transport sends a ``CLOSE`` packet as it tears down
after a failed request: with the waiting poll's connection broken, rtt takes
it for a drop (the session goes away, resumable), not the client's own close.
When the server cannot see the failure (a black hole that cuts only the
client's side), the browser adapter does not send that ``CLOSE`` at all: only
the page's own close does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from browser_support import NODE_MODULES, WAIT_MS, BrowserClient, Pages

import rtt
from rtt.testing import Proxy, Recorder

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0


async def http(address: tuple[str, int], request: str) -> tuple[str, bytes, bool]:
    """One HTTP/1.1 ``request`` on a new connection: the head, the body, whether the server closed."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request.encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).decode()
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        body = await asyncio.wait_for(reader.readexactly(length), WAIT)
        closed = await asyncio.wait_for(reader.read(1), WAIT) == b""
        return head, body, closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request(method: str, path: str, body: str = "") -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
        f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
    )


def header(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def open_session(server: rtt.Server[object]) -> str:
    head, body, closed = await http(server.address, request("GET", "/engine.io/?EIO=4&transport=polling"))
    assert head.startswith("HTTP/1.1 200")
    assert header(head, "connection") == "close" and closed
    sid: str = json.loads(body.decode()[1:])["sid"]
    return sid


async def test_every_polling_answer_closes_its_connection() -> None:
    transport = rtt.load("engineio")
    async with transport.server(port=0) as server:
        server.on("message", lambda socket, data: server.send(socket.id, data))
        sid = await open_session(server)
        base = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        head, body, closed = await http(server.address, request("POST", base, "4hello"))
        assert head.startswith("HTTP/1.1 200") and body == b"ok"
        assert header(head, "connection") == "close" and closed
        head, body, closed = await http(server.address, request("GET", base))
        assert head.startswith("HTTP/1.1 200") and body.endswith(b"4hello")
        assert header(head, "connection") == "close" and closed
        # A refusal too: no request of a session leaves its connection open.
        head, body, closed = await http(
            server.address, request("GET", "/engine.io/?EIO=4&transport=polling&sid=x")
        )
        assert head.startswith("HTTP/1.1 400")
        assert header(head, "connection") == "close" and closed


async def test_a_close_packet_after_the_waiting_polls_connection_broke_is_a_drop() -> None:
    transport = rtt.load("engineio")
    server = transport.server(port=0, resume_window=30)
    events = Recorder().listen(server, "connect", "away", "disconnect")
    async with server:
        # rtt's own client, so that the session is resumable; polling only, the server's side inspected.
        client = transport.client(server.url, transports=("polling",), reconnect=False)
        async with client:
            ((socket,),) = await events.wait("connect", timeout=WAIT)
            eio = server.engineio_server  # type: ignore[attr-defined]
            (sid,) = eio.sockets
            sock = eio.sockets[sid]
            waited = asyncio.get_running_loop().time() + WAIT
            while sock.rtt_poll is None:
                assert asyncio.get_running_loop().time() < waited, "no poll waiting"
                await asyncio.sleep(0.01)
            # The waiting poll's connection breaks; then a CLOSE packet comes on a new one.
            assert sock.rtt_poll.transport is not None
            sock.rtt_poll.transport.abort()
            base = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
            head, _, _ = await http(server.address, request("POST", base, "1"))
            assert head.startswith("HTTP/1.1 200")
            await events.wait("away", timeout=WAIT)
            assert events.of("disconnect") == []
            assert socket.away


@pytest.fixture
def browser_client() -> BrowserClient:
    bundle = NODE_MODULES / "engine.io-client" / "dist" / "engine.io.js"
    return BrowserClient("engineio", ("client",), ("eio", "rtt.client"), bundle, assets_from_disk=True)


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"]], ids="-".join)
@pytest.mark.asyncio(loop_scope="module")
async def test_chromium_tears_down_polling_without_a_close_packet_after_a_failure(
    pages: Pages, transports: list[str]
) -> None:
    """A black hole cut on the client's side: the server's poll looks healthy, and no CLOSE reaches it."""
    transport = rtt.load("engineio")
    server = transport.server(port=0, resume_window=30, ping_interval=0.4, ping_timeout=0.4)
    events = Recorder().listen(server, "connect", "away", "back", "disconnect")
    async with server, Proxy(*server.address) as proxy:
        page = await pages.classic(server)
        await page.evaluate(
            "(transports) => rtt.engineio.register('engineio-these', { transports })", transports
        )
        reconnect = {"minDelay": 0.02, "maxDelay": 0.1, "factor": 2, "jitter": 0}
        await pages.connect(page, proxy.url_for(server.url), {"reconnect": reconnect}, "engineio-these")
        ((socket,),) = await events.wait("connect", timeout=WAIT)
        await page.evaluate("window.lost = []; client.on('session_lost', (d) => lost.push(String(d)))")
        proxy.blackhole(client_side_cut_after=0.3)
        await asyncio.sleep(0.25)  # the page's next attempt goes through, after the cut
        proxy.restore()
        await events.wait("back", timeout=WAIT)
        assert events.of("disconnect") == []
        await page.wait_for_function(f"client.socketId === {json.dumps(socket.id)}", timeout=WAIT_MS)
        assert await page.evaluate("lost") == []
        # The page's own close still says CLOSE: the server sees it at once, as the client's close.
        await page.evaluate("client.close()")
        ((_, reason),) = await events.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.CLIENT_CLOSED
