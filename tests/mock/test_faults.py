"""rtt-mock's own features: fault injection, addresses, isolation (SPEC.md 12)."""

from __future__ import annotations

import asyncio

import pytest

import rtt
from rtt import ClientState, CloseReason, ConfigError
from rtt.testing import Recorder, eventually
from rtt_mock import Link, MockClient, MockNetwork, MockServer, MockTransport


def link_of(client: rtt.Client) -> Link:
    assert isinstance(client, MockClient) and client.link is not None
    return client.link


async def test_drop_loses_exactly_the_next_messages(mock: MockTransport) -> None:
    async with mock.server() as server, mock.client(server.url) as client:
        await eventually(lambda: server.sockets)
        (socket_id,) = server.sockets
        assert isinstance(server, MockServer)
        server.link(socket_id).drop(2)
        for message in ("a", "b", "c", "d"):
            await server.send(socket_id, message)
        assert [await client.recv(), await client.recv()] == ["c", "d"]


async def test_drop_towards_the_server(mock: MockTransport) -> None:
    async with mock.server() as server, mock.client(server.url) as client:
        got: list[str | bytes] = []
        server.on("message", lambda socket, data: got.append(data))
        link_of(client).drop(1, direction="to_server")
        await client.send("lost")
        await client.send("kept")
        await eventually(lambda: got == ["kept"])


async def test_delay_holds_messages_back_in_order(mock: MockTransport) -> None:
    async with mock.server() as server, mock.client(server.url) as client:
        await eventually(lambda: server.sockets)
        (socket_id,) = server.sockets
        link_of(client).set_delay(0.2)
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await server.send(socket_id, "late 1")
        await server.send(socket_id, "late 2")
        assert await client.recv() == "late 1"
        assert loop.time() - sent_at >= 0.19
        assert await client.recv() == "late 2"


async def test_stall_and_resume(mock: MockTransport) -> None:
    async with mock.server() as server, mock.client(server.url) as client:
        await eventually(lambda: server.sockets)
        (socket_id,) = server.sockets
        link = link_of(client)
        link.stall()
        for i in range(10):
            await server.send(socket_id, f"{i:03}")
        await asyncio.sleep(0.05)
        assert link.to_client.buffered == 30
        link.resume()
        assert [await client.recv() for _ in range(10)] == [f"{i:03}" for i in range(10)]
        assert link.to_client.buffered == 0


async def test_sever_is_a_transport_error_on_both_sides_and_the_client_reconnects(
    mock: MockTransport,
) -> None:
    async with mock.server() as server:
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        client = mock.client(server.url)
        crec = Recorder()
        crec.listen(client, "close", "reconnected")
        await client.connect()
        link = link_of(client)
        link.sever()
        assert link.closed
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is CloseReason.TRANSPORT_ERROR and server.stats.drops == 1
        await crec.wait("reconnected")
        assert crec.of("close") == [(CloseReason.TRANSPORT_ERROR,)]
        assert client.state is ClientState.OPEN and link_of(client) is not link
        await client.close()


async def test_networks_are_isolated_and_ports_are_exclusive() -> None:
    one, two = MockTransport(network=MockNetwork()), MockTransport(network=MockNetwork())
    async with one.server(port=4000) as server:
        assert server.url == "mock://127.0.0.1:4000/"
        with pytest.raises(rtt.ConnectError, match="connection refused"):
            await two.client(server.url).connect()
        with pytest.raises(OSError, match="in use"):
            await one.server(port=4000).start()
    assert one.configure(max_message_size=5).network is one.network


async def test_default_network_and_registry() -> None:
    transport = rtt.load("mock")
    assert isinstance(transport, MockTransport)
    async with transport.server() as server, transport.client(server.url) as client:
        assert client.state is ClientState.OPEN


def test_only_mock_urls(mock: MockTransport) -> None:
    with pytest.raises(ConfigError, match="mock:// URLs"):
        mock.client("ws://127.0.0.1:1/")


async def test_pause_reading_needs_an_open_connection(mock: MockTransport) -> None:
    # Client._current_connection() (SPEC.md 10.3) is what every plugin's pause_reading starts with.
    async with mock.server() as server:
        client = mock.client(server.url, reconnect=False)
        with pytest.raises(rtt.StateError, match="no open connection in state IDLE"):
            client.pause_reading()
        await client.connect()
        client.pause_reading()
        assert link_of(client).to_client.stalled
        await client.close()
        with pytest.raises(rtt.StateError, match="no open connection in state CLOSED"):
            client.pause_reading()
