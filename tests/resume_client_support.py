"""The Python client's resume over real WebSocket connections (SPEC.md 17.4, 10.3), for ws and picows.

The cases take the transport's name from a ``name`` fixture, which
``tests/ws/test_ws_resume_client.py`` and ``tests/picows/test_picows_resume_client.py``
define (each environment installs only its own plugin).

First against a raw ``websockets`` server that speaks the resume wire by hand
(the client's URL per attempt, escapes in real frames, no token in any error
text or log), on both plain-WebSocket transports; then end to end against rtt's
own server through the loopback proxy, which severs the connection in the middle
of numbered traffic both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

import rtt
from rtt import ClientState, CloseReason
from rtt.resume import QUERY, Welcome
from rtt.testing import Proxy, Recorder, eventually

POLICY = {"min_delay": 0.01, "max_delay": 0.05, "jitter": 0}


class RawServer:
    """A websockets server whose connections the test drives message by message."""

    def __init__(self) -> None:
        self.conns: asyncio.Queue[tuple[ServerConnection, str | None]] = asyncio.Queue()
        self.refuse_resumes = False
        self.url = ""

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.refuse_resumes and resume_of(request.path) not in (None, "1"):
            return conn.respond(HTTPStatus.FORBIDDEN, "no\n")
        return None

    async def _handler(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        self.conns.put_nowait((conn, resume_of(conn.request.path)))
        await conn.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RawServer]:
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._check) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/live?room=1"
            yield self

    async def next(self) -> tuple[ServerConnection, str | None]:
        async with asyncio.timeout(5):
            return await self.conns.get()


def resume_of(path: str) -> str | None:
    values = parse_qs(urlsplit(path).query).get(QUERY)
    return values[0] if values else None


def welcome(status: str = "new", **fields: Any) -> Welcome:
    values: dict[str, Any] = {
        "id": secrets.token_urlsafe(16),
        "token": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(8),
        "window": 30.0,
    }
    values.update(fields)
    return Welcome(status, **values)  # type: ignore[arg-type]


async def recv(conn: ServerConnection) -> str | bytes:
    async with asyncio.timeout(5):
        return await conn.recv()


async def test_resume_over_a_raw_websocket_server(name: str) -> None:
    async with RawServer().running() as raw:
        client = rtt.load(name).client(raw.url, reconnect=POLICY)
        rec = Recorder().listen(client, "open", "reconnected", "session_lost")
        await client.connect()
        conn, resume = await raw.next()
        assert resume == "1" and conn.request is not None and "room=1" in conn.request.path
        first = welcome()
        await conn.send(first.to_text())
        assert await recv(conn) == "\x00H" + first.nonce
        await client.send("\x00text")
        await client.send(b"\x00bytes")
        assert [await recv(conn), await recv(conn)] == ["\x00\x00text", b"\x00bytes"]
        await conn.send("\x00\x00down")
        assert await client.recv() == "\x00down"
        # Cut without a close frame: the client resumes with what it has received.
        assert conn.transport is not None
        conn.transport.abort()
        again, resume = await raw.next()
        assert resume == f"{first.id}.{first.token}.1"
        resumed = welcome("resumed", id=first.id, handled=1, received=1)
        await again.send(resumed.to_text())
        assert [await recv(again), await recv(again)] == ["\x00H" + resumed.nonce, b"\x00bytes"]
        await rec.wait("reconnected")
        assert client.resumed and client.socket_id == first.id and "session_lost" not in rec.names()
        await client.close()


async def test_the_token_is_in_no_error_text_or_log(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rtt")
    async with RawServer().running() as raw:
        client = rtt.load(name).client(raw.url, reconnect={**POLICY, "max_attempts": 2})
        errors: list[BaseException] = []
        client.on("error", errors.append)
        await client.connect()
        conn, _ = await raw.next()
        first = welcome()
        await conn.send(first.to_text())
        assert await recv(conn) == "\x00H" + first.nonce
        raw.refuse_resumes = True
        assert conn.transport is not None
        conn.transport.abort()
        assert await client.wait_closed() is CloseReason.REJECTED
    assert errors and all(first.token not in str(error) for error in errors)
    assert all(first.token not in record.getMessage() for record in caplog.records)


# End to end against rtt's server


class Numbered:
    """An echo server that also pushes numbered ticks to each socket."""

    def __init__(self, server: rtt.Server[Any]) -> None:
        self.server = server
        self.handled: list[str | bytes] = []
        self.ticks = 0
        server.on("message", self._echo)

    async def _echo(self, socket: rtt.Socket, data: str | bytes) -> None:
        self.handled.append(data)
        await self.server.send(socket.id, data)

    async def tick(self, socket_id: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.ticks += 1
            await self.server.send(socket_id, f"t{self.ticks}")
            await asyncio.sleep(0.002)


async def test_severed_mid_traffic_nothing_lost_or_doubled(name: str) -> None:
    transport = rtt.load(name)
    async with transport.server(resume_window=30, max_message_size=64) as server:
        traffic = Numbered(server)
        seen = Recorder().listen(server, "connect", "away", "back", "disconnect")
        async with Proxy(*server.address) as proxy:
            client = transport.client(proxy.url_for(server.url), reconnect=POLICY, max_message_size=64)
            got: list[str | bytes] = []
            client.on("message", got.append)
            rec = Recorder().listen(client, "reconnected", "session_lost")
            await client.connect()
            await eventually(lambda: client.socket_id is not None and client.socket_id in server.sockets)
            socket_id = client.socket_id
            assert socket_id is not None
            stop = asyncio.Event()
            ticker = asyncio.create_task(traffic.tick(socket_id, stop))
            # A text of exactly max_message_size bytes that starts with U+0000 gains a byte on the
            # wire: it must pass both ways.
            edge = "\x00" + "e" * 63
            sent: list[str | bytes] = [edge]
            await client.send(edge)
            for drop in range(3):
                for k in range(40):
                    data = f"c{drop}.{k}"
                    sent.append(data)
                    await client.send(data)
                    await asyncio.sleep(0.001)
                proxy.sever()
                await rec.wait("reconnected", drop + 1, timeout=10)
            stop.set()
            await ticker
            await eventually(lambda: len(traffic.handled) == len(sent), 10, "every message handled")
            assert traffic.handled == sent
            ticks = [f"t{k}" for k in range(1, traffic.ticks + 1)]
            await eventually(lambda: len(got) == len(sent) + len(ticks), 10, "every message received")
            assert [m for m in got if not (isinstance(m, str) and m.startswith("t"))] == sent
            assert [m for m in got if isinstance(m, str) and m.startswith("t")] == ticks
            assert client.socket_id == socket_id and client.resumed
            assert "session_lost" not in rec.names()
            await client.close()
            assert client.state is ClientState.CLOSED
    assert len(seen.of("connect")) == 1 and len(seen.of("back")) == 3
