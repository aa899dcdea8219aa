"""An application's close over the SockJS wire: ``disconnect(id, code=..., reason=...)`` (SPEC.md 6.3, 12.4).

It is SockJS's own close frame, ``c[code,"text"]``, on every SockJS
transport; a framed WebSocket then closes with the same code and text, and
the raw WebSocket endpoint (no SockJS framing) closes with them alone. An
HTTP session, once closed, answers its client's later requests with the same
close frame (SockJS 0.3.3). Raw HTTP and WebSocket clients, as in
``test_sockjs.py``: no rtt code on the client side.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
import websockets
from conftest import echo_server
from websockets.asyncio.client import connect

import rtt
from rtt.testing import Recorder, eventually
from rtt_sockjs import SockjsServer

# sockjs 0.13 stores its state under string keys of the aiohttp application.
pytestmark = [
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
    pytest.mark.timeout(60),
]

WAIT = 10.0
TEXT = "logged in elsewhere"
FRAME = 'c[4001,"logged in elsewhere"]'


@asynccontextmanager
async def browser_like() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client with its own cookie jar, cookies for 127.0.0.1 included."""
    async with asyncio.timeout(30), aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


async def poll(http: aiohttp.ClientSession, url: str) -> str:
    async with http.post(url + "/xhr") as response:
        assert response.status == 200
        return await response.text()


async def opened(server: SockjsServer, rec: Recorder, http: aiohttp.ClientSession) -> tuple[str, str]:
    """An xhr-polling session's URL and its socket id."""
    count = len(rec.of("connect")) + 1
    url = f"{server.url}/000/{secrets.token_urlsafe(8)}"
    assert await poll(http, url) == "o\n"
    (socket,) = (await rec.wait("connect", count, timeout=WAIT))[-1]
    return url, socket.id


async def test_xhr_polling_gets_the_close_frame_with_or_without_a_pending_poll() -> None:
    async with (
        echo_server("sockjs", kind=SockjsServer, close_timeout=0.5) as (server, _),
        browser_like() as http,
    ):
        rec = Recorder().listen(server, "connect", "disconnect")
        # A poll is pending when the application closes the session.
        url, socket_id = await opened(server, rec, http)
        pending = asyncio.ensure_future(poll(http, url))
        await eventually(lambda: bool(server.manager.acquired), WAIT, "the poll holding the session")
        await server.disconnect(socket_id, code=4001, reason=TEXT)
        assert await asyncio.wait_for(pending, WAIT) == FRAME + "\n"
        await rec.wait("disconnect", 1, timeout=WAIT)
        # The session, once closed, answers every later request with the same frame.
        assert await poll(http, url) == FRAME + "\n"
        async with http.get(url + "/jsonp?c=cb") as response:
            assert await response.text() == "/**/cb(" + json.dumps(FRAME) + ");\r\n"
        # No poll pending: the frame waits for the next one (close_timeout), then the session ends.
        url, socket_id = await opened(server, rec, http)
        await server.disconnect(socket_id, code=3000, reason="Go away!")
        await rec.wait("disconnect", 2, timeout=WAIT)
        assert await poll(http, url) == 'c[3000,"Go away!"]\n'
        assert await poll(http, url) == 'c[3000,"Go away!"]\n'
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.APPLICATION] * 2


async def test_xhr_streaming_and_eventsource_end_with_the_close_frame() -> None:
    async with (
        echo_server("sockjs", kind=SockjsServer, close_timeout=1) as (server, _),
        browser_like() as http,
    ):
        rec = Recorder().listen(server, "connect", "disconnect")
        url = f"{server.url}/000/{secrets.token_urlsafe(8)}"
        async with http.post(url + "/xhr_streaming") as response:
            assert await response.content.readline() == b"h" * 2048 + b"\n"
            assert await response.content.readline() == b"o\n"
            ((socket,),) = await rec.wait("connect", timeout=WAIT)
            await server.disconnect(socket.id, code=4001, reason=TEXT)
            assert await response.content.readline() == FRAME.encode() + b"\n"
            assert await response.content.read() == b""
        url = f"{server.url}/000/{secrets.token_urlsafe(8)}"
        async with http.get(url + "/eventsource") as response:
            assert await response.content.readline() == b"\r\n"
            assert await response.content.readline() == b"data: o\r\n"
            (socket,) = (await rec.wait("connect", 2, timeout=WAIT))[-1]
            await server.disconnect(socket.id, code=4002, reason="é")
            assert await response.content.readline() == b"\r\n"
            assert await response.content.readline() == b'data: c[4002,"\\u00e9"]\r\n'
        await rec.wait("disconnect", 2, timeout=WAIT)
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.APPLICATION] * 2


async def test_a_framed_websocket_sends_the_frame_then_closes_with_the_same_code_and_text() -> None:
    async with (
        echo_server("sockjs", kind=SockjsServer, close_timeout=1) as (server, _),
        browser_like() as http,
    ):
        rec = Recorder().listen(server, "connect", "disconnect")
        url = f"{server.url}/000/{secrets.token_urlsafe(8)}/websocket".replace("http", "ws", 1)
        async with http.ws_connect(url) as ws:
            assert await ws.receive_str() == "o"
            ((socket,),) = await rec.wait("connect", timeout=WAIT)
            await server.disconnect(socket.id, code=4001, reason=TEXT)
            assert await asyncio.wait_for(ws.receive_str(), WAIT) == FRAME
            message = await asyncio.wait_for(ws.receive(), WAIT)
            assert (message.type, message.data, message.extra) == (aiohttp.WSMsgType.CLOSE, 4001, TEXT)
        ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
        assert reason is rtt.CloseReason.APPLICATION


async def test_the_raw_websocket_closes_with_the_code_and_text_alone() -> None:
    async with echo_server("sockjs", kind=SockjsServer, close_timeout=1) as (server, _):
        rec = Recorder().listen(server, "connect", "disconnect")
        url = server.url.replace("http", "ws", 1) + "/websocket"
        for count, (code, text) in enumerate([(4001, TEXT), (3000, "")], start=1):
            async with asyncio.timeout(WAIT * 2), connect(url, open_timeout=WAIT) as ws:
                (socket,) = (await rec.wait("connect", count, timeout=WAIT))[-1]
                await server.disconnect(socket.id, code=code, reason=text)
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), WAIT)  # no c[...] frame: nothing but the close
                assert (ws.close_code, ws.close_reason) == (code, text)
        await rec.wait("disconnect", 2, timeout=WAIT)
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.APPLICATION] * 2
