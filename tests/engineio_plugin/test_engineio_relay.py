"""rtt-engineio without sticky sessions: requests of a session held elsewhere are relayed (SPEC.md 13.8).

Two servers joined by rtt-mock's memory broker stand for two processes; a
round-robin balancer (tests/relay_support.py) spreads every request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from relay_support import round_robin

import rtt
from rtt.testing import Recorder, echo, eventually
from rtt_mock import hub

_hubs = (f"eio-relay-{n}" for n in itertools.count())

Pair = tuple[rtt.Server[Any], rtt.Server[Any], str]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    name = next(_hubs)
    transport = rtt.load("engineio", broker=f"memory://{name}")
    a, b = echo(transport.server()), echo(transport.server())
    async with a, b:
        yield a, b, name


def base(server: rtt.Server[Any]) -> str:
    host, port = server.address
    return f"http://{host}:{port}/engine.io/?EIO=4&transport=polling"


def fresh_connections() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def test_a_polling_client_behind_a_round_robin_balancer(pair: Pair) -> None:
    a, b, _ = pair
    events = [Recorder().listen(s, "connect", "disconnect") for s in (a, b)]
    async with round_robin([a.address, b.address]) as balancer:
        host, port = balancer.address
        client = rtt.load("engineio", transports=["polling"]).client(f"http://{host}:{port}/engine.io")
        async with client:
            sent: list[str | bytes] = [f"message {i}" if i % 2 else bytes([i]) * 3 for i in range(40)]
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
    # Every request went round-robin, so about half were relayed to the holder.
    assert balancer.hits[a.address] >= 4 and balancer.hits[b.address] >= 4
    held = events[0] if holder is a else events[1]
    assert held.names() == ["connect", "disconnect"]
    assert held.of("disconnect")[0][1] is rtt.CloseReason.CLIENT_CLOSED
    assert (events[1] if holder is a else events[0]).names() == []


async def test_raw_requests_are_relayed_to_the_holder(pair: Pair) -> None:
    a, b, _ = pair
    got: list[str | bytes] = []
    a.on("message", lambda socket, data: got.append(data))
    async with fresh_connections() as http:
        response = await http.get(base(a))
        sid = json.loads((await response.text())[1:])["sid"]
        response = await http.post(base(b) + f"&sid={sid}", data="4hello via b")
        assert (response.status, await response.text()) == (200, "ok")
        await eventually(lambda: got == ["hello via b"], 5, "the relayed message")
        await b.send(next(iter(a.sockets)), "from b")
        response = await http.get(base(b) + f"&sid={sid}")
        # The echo of the relayed message, then the message b sent to a socket a holds.
        assert (response.status, await response.text()) == (200, "4hello via b\x1e4from b")
        # A session nobody holds gets the library's own answer, as without a broker.
        response = await http.get(base(b) + "&sid=nobody-holds-this")
        assert response.status == 400
        # A WebSocket cannot be relayed: the upgrade is refused and the session keeps polling.
        upgrade = base(b).replace("transport=polling", "transport=websocket") + f"&sid={sid}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(upgrade)
        assert refused.value.status == 400
        response = await http.post(base(b) + f"&sid={sid}", data="4still polling")
        assert response.status == 200
        await eventually(lambda: got[-1] == "still polling", 5, "the message after the refused upgrade")


async def test_an_abandoned_relayed_poll_ends_at_the_next_heartbeat() -> None:
    transport = rtt.load("engineio", broker=f"memory://{next(_hubs)}", ping_interval=0.5, ping_timeout=5)
    async with transport.server() as a, transport.server() as b, fresh_connections() as http:
        response = await http.get(base(a))
        sid = json.loads((await response.text())[1:])["sid"]
        with pytest.raises(asyncio.TimeoutError):
            await http.get(base(b) + f"&sid={sid}", timeout=aiohttp.ClientTimeout(total=0.5))
        relay = a._relay
        assert relay is not None
        # The holder answers the poll at the next heartbeat (the forwarder writes it nowhere).
        await eventually(lambda: not relay._serving, 5, "the holder to finish the abandoned poll")
        # The session is still fine: the next poll, through either server, gets what is queued.
        await a.send(next(iter(a.sockets)), "later")
        response = await http.get(base(b) + f"&sid={sid}")
        assert (await response.text()).endswith("4later")


async def test_a_broker_outage_is_a_503_not_a_hang(pair: Pair) -> None:
    a, b, name = pair
    async with fresh_connections() as http:
        response = await http.get(base(a))
        sid = json.loads((await response.text())[1:])["sid"]
        hub(name).fail()
        try:
            response = await http.get(base(b) + f"&sid={sid}")
            assert response.status == 503
            assert "cannot be reached" in await response.text()
        finally:
            hub(name).recover()


async def test_a_holder_that_does_not_answer_is_a_503(pair: Pair) -> None:
    a, b, _ = pair
    assert b._relay is not None and a._relay is not None
    b._relay.timeout = 0.3

    async def never(request: Any) -> Any:
        await asyncio.sleep(30)

    a._relay.serve = never
    async with fresh_connections() as http:
        response = await http.get(base(a))
        sid = json.loads((await response.text())[1:])["sid"]
        response = await http.post(base(b) + f"&sid={sid}", data="4lost?")
        assert response.status == 503
