"""U+001E and application closes on Engine.IO's own wire (SPEC.md 12.3, 6.3).

Engine.IO v4 joins the packets of a long-polling payload with U+001E (record
separator) and has no escape for it, so a text message containing it cannot
cross long-polling whole. rtt refuses such a text at ``send`` and
``broadcast`` whenever long-polling is among the configured transports (the
server's ``transports`` option for the server, the client's for the client),
before anything is queued, whatever transport a connection uses at the time;
a WebSocket-only configuration carries it. A native client that sends one
anyway over long-polling sends the pieces as packets: a piece that is no
packet makes the whole POST a ``protocol error``.

An application close travels as the data of the ``CLOSE`` packet
(``"14001 logged in elsewhere"``), on long-polling and on WebSocket.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import engineio  # type: ignore[import-untyped, unused-ignore]
import pytest

import rtt
from rtt.testing import Recorder, eventually

pytestmark = pytest.mark.timeout(60)

TEXT = "a\x1eb"


def _server(echo: bool = True, **options: Any) -> rtt.Server[Any]:
    server = rtt.load("engineio", **options).server(port=0, close_timeout=1)
    if echo:
        server.on("message", lambda s, data: server.send(s.id, data))
    return server


@pytest.mark.parametrize(
    ("server_transports", "client_transports"),
    [
        (("polling", "websocket"), ("polling", "websocket")),
        (("polling", "websocket"), ("websocket",)),  # the server may still serve long-polling
        (("polling",), ("polling",)),
    ],
    ids=["upgrade", "websocket-client", "polling"],
)
async def test_a_configuration_with_polling_refuses_the_separator(
    server_transports: tuple[str, ...], client_transports: tuple[str, ...]
) -> None:
    server = _server(echo=False, transports=server_transports)
    rec = Recorder().listen(server, "message", "disconnect")
    async with server:
        client = rtt.load("engineio", transports=client_transports).client(server.url, reconnect=False)
        got = Recorder().listen(client, "message", "close")
        async with client:
            await eventually(lambda: len(server.sockets) == 1, what="the socket")
            (socket_id,) = server.sockets
            if "polling" in client_transports:
                with pytest.raises(rtt.InvalidMessageError, match=r"U\+001E.*bytes.*websocket"):
                    await client.send(TEXT)
            else:
                await client.send(TEXT)  # the client's own configuration carries it
                await rec.wait("message")
            for refused in (server.send(socket_id, TEXT), server.broadcast(TEXT), server.broadcast("\x1e")):
                with pytest.raises(rtt.InvalidMessageError, match=r"U\+001E"):
                    await refused
            # Nothing was sent or queued: the next messages are the first either side gets.
            await client.send("after")
            await server.send(socket_id, "after")
            await server.broadcast(TEXT.encode())  # bytes carry it on every transport
            await got.wait("message", 2)
            assert [args[0] for args in got.of("message")] == ["after", TEXT.encode()]
            await rec.wait("message", 1 if "polling" in client_transports else 2)
            expected = ["after"] if "polling" in client_transports else [TEXT, "after"]
            assert [args[1] for args in rec.of("message")] == expected
            assert rec.of("disconnect") == [] and got.of("close") == []
            assert client.state is rtt.ClientState.OPEN


async def test_a_websocket_only_configuration_carries_the_separator() -> None:
    server = _server(transports=("websocket",))
    async with server:
        client = rtt.load("engineio", transports=("websocket",)).client(server.url, reconnect=False)
        got = Recorder().listen(client, "message")
        async with client:
            await client.send(TEXT)
            await got.wait("message")
            await server.broadcast("\x1e" + TEXT)
            await got.wait("message", 2)
            assert [args[0] for args in got.of("message")] == [TEXT, "\x1e" + TEXT]


async def test_a_native_client_sending_it_over_polling_is_a_protocol_error() -> None:
    # python-engineio's own client sends the text as it is: the payload "4a\x1e!" splits into
    # the packets "4a" and "!", which is none, so the POST is refused whole and nothing delivered.
    server = _server(transports=("polling",))
    rec = Recorder().listen(server, "message", "disconnect")
    async with server:
        native = engineio.AsyncClient()
        closed = Recorder()
        native.on("disconnect", closed.handler("disconnect"))
        await native.connect(server.url.removesuffix("/engine.io/"), transports=["polling"])
        try:
            await native.send("a\x1e!")
            (event,) = await rec.wait("disconnect")
            assert event[1] is rtt.CloseReason.PROTOCOL_ERROR
            assert rec.of("message") == []
            await closed.wait("disconnect")
        finally:
            await native.disconnect()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_application_close_is_the_close_packets_data(transport: str) -> None:
    server = _server()
    rec = Recorder().listen(server, "disconnect")
    async with server, aiohttp.ClientSession() as session:
        if transport == "polling":
            async with session.get(server.url + "?EIO=4&transport=polling") as response:
                sid = json.loads((await response.text())[1:])["sid"]
            await eventually(lambda: len(server.sockets) == 1, what="the socket")
            await server.disconnect(next(iter(server.sockets)), code=4001, reason="logged in elsewhere")
            async with session.get(f"{server.url}?EIO=4&transport=polling&sid={sid}") as response:
                assert await response.text() == "14001 logged in elsewhere"
        else:
            async with session.ws_connect(server.url + "?EIO=4&transport=websocket") as ws:
                assert (await ws.receive_str(timeout=5)).startswith("0{")
                await eventually(lambda: len(server.sockets) == 1, what="the socket")
                await server.disconnect(next(iter(server.sockets)), code=3000)
                assert await ws.receive_str(timeout=5) == "13000 "
        (event,) = await rec.wait("disconnect")
        assert event[1] is rtt.CloseReason.APPLICATION
