"""rtt-sockjs without sticky sessions: requests of a session held elsewhere are relayed (SPEC.md 13.8).

Two servers joined by rtt-mock's memory broker stand for two processes; a
round-robin balancer (tests/relay_support.py) spreads every request.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from relay_support import round_robin

import rtt
from rtt.testing import Recorder, echo, eventually
from rtt_mock import hub

_hubs = (f"sockjs-relay-{n}" for n in itertools.count())

Pair = tuple[rtt.Server[Any], rtt.Server[Any], str]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    name = next(_hubs)
    # Bound sessions: a relayed request's binding cookie is checked by the holder.
    transport = rtt.load("sockjs", broker=f"memory://{name}", session_binding=True)
    a, b = echo(transport.server()), echo(transport.server())
    async with a, b:
        yield a, b, name


def session_url(server: rtt.Server[Any], session: str) -> str:
    host, port = server.address
    return f"http://{host}:{port}/sockjs/000/{session}"


def http_client() -> aiohttp.ClientSession:
    # Fresh connections, and a jar that keeps the binding cookie of a 127.0.0.1 server.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


@pytest.mark.parametrize("transport", ["xhr-polling", "xhr-streaming"])
async def test_an_http_client_behind_a_round_robin_balancer(pair: Pair, transport: str) -> None:
    a, b, _ = pair
    events = [Recorder().listen(s, "connect", "disconnect") for s in (a, b)]
    async with round_robin([a.address, b.address]) as balancer:
        host, port = balancer.address
        client = rtt.load("sockjs", transports=[transport]).client(f"http://{host}:{port}/sockjs")
        async with client:
            sent: list[str | bytes] = [f"message {i}" if i % 2 else bytes([i]) * 3 for i in range(30)]
            for message in sent:
                await client.send(message)
            async with asyncio.timeout(20):
                assert [await client.recv() for _ in sent] == sent
            holder, other = (a, b) if a.sockets else (b, a)
            assert len(holder.sockets) == 1 and not other.sockets
            await other.broadcast("from the other process")
            async with asyncio.timeout(10):
                assert await client.recv() == "from the other process"
        await eventually(lambda: not holder.sockets, 10, "the disconnect")
    assert balancer.hits[a.address] >= 2 and balancer.hits[b.address] >= 2
    held = events[0] if holder is a else events[1]
    # A poll the client gave up at close may still reach a server and open a new,
    # empty session there (SockJS opens a session on any request for an unknown id,
    # with or without a balancer); it expires by itself. The client's own session:
    assert held.names()[:2] == ["connect", "disconnect"], held.events
    (socket,), (gone, reason) = held.of("connect")[0], held.of("disconnect")[0]
    assert gone is socket and reason is rtt.CloseReason.CLIENT_CLOSED


async def test_raw_requests_are_relayed_and_stay_bound_to_their_cookie(pair: Pair) -> None:
    a, b, _ = pair
    got: list[str | bytes] = []
    a.on("message", lambda socket, data: got.append(data))
    async with http_client() as http, http_client() as stranger:
        response = await http.post(session_url(a, "s1") + "/xhr")
        assert (response.status, await response.text()) == (200, "o\n")
        response = await http.post(session_url(b, "s1") + "/xhr_send", data='["hello via b"]')
        assert response.status == 204
        await eventually(lambda: got == ["hello via b"], 5, "the relayed message")
        response = await http.post(session_url(b, "s1") + "/xhr")
        assert (response.status, await response.text()) == (200, 'a["hello via b"]\n')
        # The holder checks the binding cookie of a relayed request as of its own.
        response = await stranger.post(session_url(b, "s1") + "/xhr_send", data='["hijack"]')
        assert (response.status, await response.text()) == (403, "Session binding")
        response = await stranger.post(session_url(b, "s1") + "/xhr")
        assert (response.status, await response.text()) == (200, 'c[1008,"rejected"]\n')
        # A streaming response is relayed as it comes.
        response = await http.post(session_url(b, "s1") + "/xhr_streaming")
        assert response.status == 200
        await b.broadcast("streamed")
        async with asyncio.timeout(10):
            seen = b""
            while b'a["streamed"]' not in seen:
                seen += await response.content.readany()
        response.close()
    assert got == ["hello via b"]


async def test_a_broker_outage_is_a_503_not_a_hang(pair: Pair) -> None:
    a, b, name = pair
    async with http_client() as http:
        response = await http.post(session_url(a, "s2") + "/xhr")
        assert response.status == 200
        hub(name).fail()
        try:
            response = await http.post(session_url(b, "s2") + "/xhr_send", data='["x"]')
            assert response.status == 503
        finally:
            hub(name).recover()


async def test_a_new_session_opens_where_it_lands(pair: Pair) -> None:
    a, b, _ = pair
    async with http_client() as http:
        response = await http.post(session_url(b, "fresh") + "/xhr")
        assert (response.status, await response.text()) == (200, "o\n")
        assert len(b.sockets) == 1 and not a.sockets
