"""A request relayed between processes keeps its client's address (SPEC.md 8.5, 13.8).

The holder of a session serves a relayed request through its own server's
Unix socket, whose peer says nothing about the client; the relay carries
the peer the forwarding process saw (and its scheme) in a header only the
process itself can write. A socket such a request opens is the client's, and
a trusted proxy's forwarded headers still count; a client that sends the
header itself is not believed.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from proxy_support import PROXY_HOST

import rtt
from rtt.relay import PEER_HEADER, RelayedRequest

pytestmark = pytest.mark.timeout(60)

_hubs = (f"proxy-relay-{n}" for n in itertools.count())


@asynccontextmanager
async def holder(
    name: str, **options: Any
) -> AsyncIterator[tuple[rtt.Server[Any], asyncio.Future[rtt.Socket]]]:
    """A standalone server with a broker (so it serves relays); yields it and its first socket."""
    server = rtt.load(name).server(broker=f"memory://{next(_hubs)}", close_timeout=0.5, **options)
    opened: asyncio.Future[rtt.Socket] = asyncio.get_running_loop().create_future()

    @server.on("connect")
    def connected(socket: rtt.Socket) -> None:
        if not opened.done():
            opened.set_result(socket)

    async with server:
        yield server, opened


def opening_request(name: str, server: rtt.Server[Any]) -> tuple[str, str]:
    """Method and target of a request that opens an HTTP session of ``name``."""
    path = urlsplit(server.url).path.rstrip("/")
    if name == "sockjs":
        return "POST", f"{path}/000/{secrets.token_hex(8)}/xhr"
    return "GET", f"{path}/?EIO=4&transport=polling"


@pytest.mark.parametrize("name", ["sockjs", "engineio"])
async def test_a_socket_opened_by_a_relayed_request_has_the_forwarders_client(name: str) -> None:
    async with holder(name) as (server, opened):
        method, target = opening_request(name, server)
        relayed = RelayedRequest(method, target, (), b"", ("198.51.100.7", 5123), "https")
        response = await server._serve_relayed(relayed)
        async with asyncio.timeout(10):
            body = b"".join([chunk async for chunk in response.body])
            socket = await opened
        assert response.status == 200, body
    assert socket.remote_address == ("198.51.100.7", 5123)


async def test_a_relayed_request_from_a_trusted_proxy_names_its_client() -> None:
    seen: list[rtt.Handshake] = []
    async with holder("sockjs", trusted_proxies=[PROXY_HOST], authorize=seen.append) as (server, opened):
        method, target = opening_request("sockjs", server)
        headers = (("X-Forwarded-For", "6.6.6.6, 203.0.113.9"), ("X-Forwarded-Proto", "https"))
        response = await server._serve_relayed(
            RelayedRequest(method, target, headers, b"", (PROXY_HOST, 4000))
        )
        async with asyncio.timeout(10):
            assert b"".join([chunk async for chunk in response.body]) == b"o\n"
            socket = await opened
    assert socket.remote_address == ("203.0.113.9", 0)
    (handshake,) = seen
    assert handshake.peer_address == (PROXY_HOST, 4000) and handshake.scheme == "https"


async def test_a_client_cannot_forge_the_relay_header() -> None:
    seen: list[rtt.Handshake] = []
    async with holder("sockjs", authorize=seen.append) as (server, opened):
        method, target = opening_request("sockjs", server)
        host, port = server.address
        forged = {PEER_HEADER: "guess https 198.51.100.7 5123"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"http://{host}:{port}{target}", headers=forged) as response,
        ):
            assert response.status == 200 and await response.text() == "o\n"
        async with asyncio.timeout(10):
            socket = await opened
    assert socket.remote_address is not None and socket.remote_address[0] == "127.0.0.1"
    assert seen[0].scheme == "http"


def test_a_relayed_request_carries_its_peer_and_scheme() -> None:
    request = RelayedRequest("POST", "/x?y=1", (("A", "b"),), b"body", ("2001:db8::1", 443), "https")
    assert RelayedRequest.decode(request.encode()) == request
    bare = RelayedRequest("GET", "/", ())
    assert RelayedRequest.decode(bare.encode()) == bare
