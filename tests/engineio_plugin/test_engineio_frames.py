"""RFC 6455 on rtt-engineio's aiohttp WebSocket, after an upgrade from long-polling (SPEC.md 12.3).

The fault suite (``tests/faults/test_garbage.py``) sends bad frames to a
WebSocket opened directly; here the WebSocket is the upgrade of a polling
session, which python-engineio builds through the same driver class
(``_library.DriverWebSocket``): an unmasked client frame and invalid UTF-8
still close it with RFC 6455's code and ``protocol error``. Under ASGI the
ASGI server reads the frames; a ``websocket.disconnect`` with its 1002 or
1007 is ``protocol error`` too.
"""

from __future__ import annotations

import asyncio
import json
import socket
from urllib.parse import urlsplit

import aiohttp
import pytest
import uvicorn
from faults.wire_support import OP_TEXT, RawWebSocket, frame

import rtt
from rtt.testing import Recorder, eventually
from rtt_engineio import EngineioServer

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


@pytest.mark.parametrize(
    ("garbage", "code"),
    [
        pytest.param(frame(OP_TEXT, b"4hello", mask=False), 1002, id="unmasked"),
        pytest.param(frame(OP_TEXT, b"4hel\xfflo"), 1007, id="invalid-utf8"),
    ],
)
async def test_a_bad_frame_on_an_upgraded_session_is_protocol_error(garbage: bytes, code: int) -> None:
    server = rtt.load("engineio").server(close_timeout=0.5)
    assert isinstance(server, EngineioServer)
    rec = Recorder().listen(server, "message", "disconnect")
    async with server, aiohttp.ClientSession() as http:
        async with asyncio.timeout(WAIT), http.get(server.url + "?EIO=4&transport=polling") as response:
            body = await response.text()
        assert body.startswith("0")
        sid = json.loads(body[1:])["sid"]
        parts = urlsplit(server.url)
        assert parts.hostname is not None and parts.port is not None
        raw = await RawWebSocket.connect(
            parts.hostname, parts.port, f"{parts.path}?EIO=4&transport=websocket&sid={sid}"
        )
        raw.send(frame(OP_TEXT, b"2probe"))
        assert await asyncio.wait_for(raw.read_frame(), WAIT) == (OP_TEXT, b"3probe")
        raw.send(frame(OP_TEXT, b"5") + frame(OP_TEXT, b"4upgraded"))
        await rec.wait("message", timeout=WAIT)
        raw.send(garbage)
        closed = await raw.wait_closed(WAIT)
        assert (closed.code, closed.reason) == (code, "protocol error")
        ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.PROTOCOL_ERROR
        assert [data for _, data in rec.of("message")] == ["upgraded"]


async def test_under_asgi_the_servers_protocol_error_close_is_protocol_error() -> None:
    """uvicorn's wsproto backend reports a bad frame as a disconnect with 1007 or 1002.

    (Its websockets backend reports 1006 for them, which stays ``transport error``.)
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = rtt.load("engineio").server(host="127.0.0.1", port=port, close_timeout=0.5)
    assert isinstance(server, EngineioServer)
    rec = Recorder().listen(server, "disconnect")
    config = uvicorn.Config(server.asgi_app(), lifespan="on", log_level="warning", ws="wsproto")
    uv = uvicorn.Server(config)
    serving = asyncio.create_task(uv.serve(sockets=[listener]))
    try:
        await eventually(lambda: uv.started or serving.done(), WAIT, "uvicorn to start")
        for count, garbage in enumerate((frame(OP_TEXT, b"4hel\xfflo"), frame(0x3, b"4x")), 1):
            raw = await RawWebSocket.connect("127.0.0.1", port, "/engine.io/?EIO=4&transport=websocket")
            assert (await asyncio.wait_for(raw.read_frame(), WAIT))[1].startswith(b"0{")
            raw.send(garbage)
            await raw.wait_closed(WAIT)
            events = await rec.wait("disconnect", count, timeout=WAIT)
            assert events[-1][1] is rtt.CloseReason.PROTOCOL_ERROR
    finally:
        uv.should_exit = True
        await asyncio.wait_for(serving, 15)
        listener.close()
