"""Forwarded headers on every transport (SPEC.md 8.5): believed from a trusted proxy, ignored otherwise.

A TCP relay connecting from 127.0.0.2 plays the reverse proxy; the client
sends the headers such a proxy adds. The same headers sent straight from
127.0.0.1, which is not trusted, change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from proxy_support import PROXY_HOST, TcpRelay

import rtt

pytestmark = pytest.mark.timeout(60)

FORWARDED = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Forwarded-Proto": "https"}
CLIENT = ("203.0.113.9", 0)


@dataclass(frozen=True)
class Case:
    transport: str
    server: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)


CASES = {
    "ws": Case("ws"),
    "picows": Case("picows"),
    # A short heartbeat: a polling client's close otherwise waits for its pending poll.
    "engineio-websocket": Case("engineio", {"transports": ("websocket",)}, {"transports": ("websocket",)}),
    "engineio-polling": Case("engineio", {"transports": ("polling",), "ping_interval": 1.0}),
    "sockjs-websocket": Case("sockjs", client={"transports": ["websocket"]}),
    "sockjs-xhr-polling": Case("sockjs", client={"transports": ["xhr-polling"]}),
    "sockjs-xhr-streaming": Case("sockjs", client={"transports": ["xhr-streaming"]}),
}


@dataclass
class Seen:
    handshake: rtt.Handshake
    socket: rtt.Socket


@asynccontextmanager
async def proxied_echo(
    case: Case, trusted: list[str]
) -> AsyncIterator[tuple[rtt.Server[Any], list[rtt.Handshake]]]:
    """An echo server of ``case`` trusting ``trusted``; yields it and what ``authorize`` saw."""
    handshakes: list[rtt.Handshake] = []
    transport = rtt.load(case.transport)
    server = transport.server(trusted_proxies=trusted, authorize=handshakes.append, **case.server)
    async with server:

        @server.on("message")
        async def echo(socket: rtt.Socket, data: str | bytes) -> None:
            await server.send(socket.id, data)

        yield server, handshakes


async def connect_once(
    case: Case, server: rtt.Server[Any], url: str, handshakes: list[rtt.Handshake]
) -> Seen:
    """Connect to ``url`` with the forwarded headers, echo one message; what the server saw."""
    opened: asyncio.Future[rtt.Socket] = asyncio.get_running_loop().create_future()

    @server.on("connect")
    def connected(socket: rtt.Socket) -> None:
        if not opened.done():
            opened.set_result(socket)

    transport = rtt.load(case.transport)
    async with asyncio.timeout(20):
        async with transport.client(url, headers=FORWARDED, reconnect=False, **case.client) as client:
            await client.send("through")
            assert await client.recv() == "through"
            socket = await opened
    return Seen(handshakes[-1], socket)


@pytest.mark.parametrize("name", list(CASES))
async def test_a_trusted_proxy_names_the_client(name: str) -> None:
    case = CASES[name]
    async with proxied_echo(case, [PROXY_HOST]) as (server, handshakes):
        async with TcpRelay(server.address) as relay:
            seen = await connect_once(case, server, relay.url(server.url), handshakes)
        assert relay.connections >= 1
    assert seen.socket.remote_address == CLIENT
    assert seen.handshake.remote_address == CLIENT, "authorize sees the client too"
    assert seen.handshake.peer_address is not None and seen.handshake.peer_address[0] == PROXY_HOST
    assert seen.handshake.scheme == "https" and seen.handshake.secure


@pytest.mark.parametrize("name", list(CASES))
async def test_the_same_headers_from_an_untrusted_peer_are_ignored(name: str) -> None:
    case = CASES[name]
    async with proxied_echo(case, [PROXY_HOST]) as (server, handshakes):
        seen = await connect_once(case, server, server.url, handshakes)
    assert seen.socket.remote_address is not None and seen.socket.remote_address[0] == "127.0.0.1"
    assert seen.handshake.peer_address == seen.socket.remote_address
    assert seen.handshake.scheme == "http"


@pytest.mark.parametrize("name", ["ws", "engineio-polling", "sockjs-xhr-polling"])
async def test_a_proxy_nobody_trusts_is_just_a_peer(name: str) -> None:
    """Through the relay, but with the default (trust none): the proxy's own address."""
    case = CASES[name]
    async with proxied_echo(case, []) as (server, handshakes), TcpRelay(server.address) as relay:
        seen = await connect_once(case, server, relay.url(server.url), handshakes)
    assert seen.socket.remote_address is not None and seen.socket.remote_address[0] == PROXY_HOST
    assert seen.handshake.scheme == "http"
