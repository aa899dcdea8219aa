"""The HTTP relay's core (SPEC.md 13.8): the holder's exchange with its own server, and both ends.

The plugins' relays are tested end to end in tests/engineio_plugin and
tests/sockjs_plugin; these are the core's own branches, over two mock servers
joined by the memory broker, and a small HTTP server on a Unix socket.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import rtt
from rtt.broker import Envelope
from rtt.relay import RelayedRequest, RelayedResponse, fetch_unix, relay_headers
from rtt.testing import eventually

_hubs = (f"relay-{n}" for n in itertools.count())

Pair = tuple[rtt.Server[Any], rtt.Server[Any]]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    transport = rtt.load("mock", broker=f"memory://{next(_hubs)}")
    forwarder, holder = transport.server(), transport.server()
    async with forwarder, holder:
        await holder._hold_session("s1")
        yield forwarder, holder


def relay_of(server: rtt.Server[Any]) -> Any:
    assert server._relay is not None
    return server._relay


def serving(holder: rtt.Server[Any], serve: Callable[[RelayedRequest], Awaitable[RelayedResponse]]) -> None:
    relay_of(holder).serve = serve


async def chunks(*parts: bytes, pause: float = 0.0) -> AsyncGenerator[bytes, None]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


REQUEST = RelayedRequest(
    "POST", "/path?sid=s1", (("Cookie", "k=v"), ("X-Many", "1"), ("X-Many", "2")), b"body"
)


async def body_of(response: RelayedResponse) -> bytes:
    return b"".join([part async for part in response.body])


# -- Both ends over the broker -----------------------------------------------------------


async def test_a_relayed_request_is_served_by_the_holder(pair: Pair) -> None:
    forwarder, holder = pair
    seen: list[RelayedRequest] = []

    async def serve(request: RelayedRequest) -> RelayedResponse:
        seen.append(request)
        return RelayedResponse(
            201, (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")), chunks(b"one", b"", b"two")
        )

    serving(holder, serve)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None
    assert (response.status, response.headers) == (201, (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")))
    assert await body_of(response) == b"onetwo"
    assert seen == [REQUEST]
    # Nobody holds this one: serve it locally.
    assert await forwarder._relay_session("nobody", REQUEST) is None


async def test_a_failing_holder_answers_502(pair: Pair) -> None:
    forwarder, holder = pair

    async def explode(request: RelayedRequest) -> RelayedResponse:
        raise OSError("the holder's own server is gone")

    serving(holder, explode)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None and response.status == 502
    assert await body_of(response) == b"relay failed\n"
    # A server that never set a relay socket cannot serve relayed requests: also 502.
    serving(holder, holder._serve_relayed)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None and response.status == 502


async def test_a_body_that_fails_midway_ends_the_response(pair: Pair) -> None:
    forwarder, holder = pair

    async def broken_body() -> AsyncGenerator[bytes, None]:
        yield b"start"
        raise OSError("reset")

    async def serve(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, (), broken_body())

    serving(holder, serve)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None and await body_of(response) == b"start"


async def test_a_forwarder_that_stops_reading_cancels_the_holder(pair: Pair) -> None:
    forwarder, holder = pair
    streaming = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        while True:
            streaming.set()
            yield b"tick"
            await asyncio.sleep(0.01)

    async def serve(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, (), endless())

    serving(holder, serve)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None
    assert await anext(response.body) == b"tick"
    await response.body.aclose()
    await eventually(lambda: not relay_of(holder)._serving, 5, "the holder to stop serving")
    assert not relay_of(forwarder)._pending


async def test_a_stalled_or_overflowing_response_is_given_up(pair: Pair) -> None:
    forwarder, holder = pair
    relay_of(forwarder).timeout = 0.2

    async def stall(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, (), chunks(b"first", b"never", pause=1.0))

    serving(holder, stall)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None and await body_of(response) == b""  # the first chunk came too late

    relay_of(forwarder).timeout = 5
    relay_of(forwarder).limit = 10

    async def flood(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, (), chunks(b"x" * 8, b"y" * 8, b"z" * 8))

    serving(holder, flood)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None
    # Every piece arrives before anything is read: the second outgrows the limit.
    responses = relay_of(forwarder)._pending.values()
    await eventually(lambda: any(held.broken for held in responses), 5, "the response to outgrow the limit")
    assert await body_of(response) == b"x" * 8


async def test_a_holder_that_never_answers_is_a_broker_error(pair: Pair) -> None:
    forwarder, holder = pair
    relay_of(forwarder).timeout = 0.2

    async def never(request: RelayedRequest) -> RelayedResponse:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    serving(holder, never)
    with pytest.raises(rtt.BrokerError, match=r"did not answer within 0\.2 s"):
        await forwarder._relay_session("s1", REQUEST)
    assert not relay_of(forwarder)._pending


async def test_pieces_out_of_order_or_unknown_are_refused(pair: Pair) -> None:
    forwarder, holder = pair

    async def never(request: RelayedRequest) -> RelayedResponse:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    serving(holder, never)
    relay = relay_of(forwarder)
    waiting = asyncio.ensure_future(forwarder._relay_session("s1", REQUEST))
    await eventually(lambda: bool(relay._pending), 5, "the request to be out")
    (ref,) = relay._pending
    relay.received(Envelope("chunk", origin="x", ref=ref, data=b"before the head"), forwarder._spawn)
    with pytest.raises(rtt.BrokerError, match="out of order"):
        await waiting
    relay.received(Envelope("chunk", origin="x", ref="unknown", data=b"stray"), forwarder._spawn)  # ignored
    relay.received(Envelope("cancel", origin="x", ref="unknown"), forwarder._spawn)  # ignored too


async def test_a_relay_envelope_without_bytes_gets_a_502(pair: Pair) -> None:
    forwarder, holder = pair
    relay = relay_of(forwarder)
    waiting = asyncio.ensure_future(forwarder._relay_session("s1", REQUEST))
    await eventually(lambda: bool(relay._pending), 5, "the request to be out")
    (ref,) = relay._pending
    # What a confused process might send: a text payload where a request belongs.
    relay_of(holder).received(Envelope("relay", origin=forwarder.node, ref=ref, data="text"), holder._spawn)
    response = await waiting
    assert response is not None and response.status == 502


async def test_closing_gives_up_what_is_forwarded(pair: Pair) -> None:
    forwarder, holder = pair

    async def slow(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, (), chunks(b"a", b"b", pause=0.3))

    serving(holder, slow)
    response = await forwarder._relay_session("s1", REQUEST)
    assert response is not None
    await relay_of(forwarder).close()
    assert await body_of(response) == b""


async def test_without_a_broker_nothing_is_relayed() -> None:
    async with rtt.load("mock").server() as server:
        await server._hold_session("s")
        server._release_session("s")
        assert await server._relay_session("s", REQUEST) is None


async def test_release_unsubscribes(pair: Pair) -> None:
    forwarder, holder = pair
    holder._release_session("s1")
    await eventually(
        lambda: holder.broker is not None and "h.s1" not in holder.broker.channels, 5, "the release"
    )
    assert await forwarder._relay_session("s1", REQUEST) is None


# -- The holder's exchange with its own server ----------------------------------------------


Responder = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def unix_server(respond: Responder) -> tuple[asyncio.Server, str]:
    directory = tempfile.mkdtemp(prefix="rtt-relay-test-")
    path = str(Path(directory) / "s.sock")
    return await asyncio.start_unix_server(respond, path), path


def answering(raw: bytes) -> Responder:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")).split(b":")[1]
        )
        await reader.readexactly(length)
        writer.write(raw)
        await writer.drain()
        writer.close()

    return respond


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\nuntil the end", b"until the end"),
    ],
)
async def test_fetch_unix_reads_every_kind_of_body(raw: bytes, body: bytes) -> None:
    server, path = await unix_server(answering(raw))
    async with server:
        response = await fetch_unix(path, REQUEST)
        assert response.status in (200, 204)
        assert all(
            name.lower() not in ("content-length", "transfer-encoding", "connection")
            for name, _ in response.headers
        )
        assert await body_of(response) == body


async def test_fetch_unix_fails_loudly() -> None:
    server, path = await unix_server(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"))
    async with server:
        response = await fetch_unix(path, REQUEST)
        with pytest.raises(ConnectionError, match="ended early"):
            await body_of(response)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server, path = await unix_server(hang_up)
    async with server:
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await fetch_unix(path, REQUEST)


def test_relay_headers_drop_hop_by_hop_ones() -> None:
    headers = {"Connection": "keep-alive", "Host": "x", "Cookie": "a=1", "Content-Length": "3", "Origin": "o"}
    assert relay_headers(headers) == (("Cookie", "a=1"), ("Origin", "o"))
