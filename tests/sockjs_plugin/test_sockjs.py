"""rtt-sockjs specifics: the SockJS wire, session binding, limits, serving modes (SPEC.md 12.4).

Most tests speak raw SockJS with aiohttp (no rtt code on the client side), so
they check the server against the protocol rather than against rtt's client.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import echo_server

import rtt
from rtt.codec import encode_text
from rtt.testing import Recorder, eventually
from rtt_sockjs import SockjsClient, SockjsConn, SockjsServer, SockjsTransport
from rtt_sockjs import server as sockjs_server
from rtt_sockjs._wire import BINDING_COOKIE, CLIENT_CLOSING, messages_frame

PRELUDE = b"h" * 2048 + b"\n"


@pytest.fixture
def sockjs() -> rtt.Transport:
    return rtt.load("sockjs", reconnect={"min_delay": 0.02, "max_delay": 0.05, "jitter": 0})


def conn_of(server: SockjsServer, socket_id: str) -> SockjsConn:
    return server._conns[socket_id]


def new_session(server: SockjsServer) -> str:
    """A session URL as a SockJS client makes one: prefix, server id, random session id."""
    return f"{server.url}/{secrets.randbelow(1000):03d}/{secrets.token_urlsafe(8)}"


@asynccontextmanager
async def browser_like() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client with its own cookie jar (a browser profile), cookies for 127.0.0.1 included."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def poll(http: aiohttp.ClientSession, session_url: str) -> tuple[int, str]:
    async with asyncio.timeout(10):
        async with http.post(session_url + "/xhr") as response:
            return response.status, await response.text()


async def post(http: aiohttp.ClientSession, session_url: str, payload: str) -> int:
    async with asyncio.timeout(10), http.post(session_url + "/xhr_send", data=payload) as response:
        await response.read()
        return response.status


async def open_xhr(http: aiohttp.ClientSession, server: SockjsServer) -> str:
    """Fetch /info (the binding cookie), open an xhr-polling session, return its URL."""
    async with http.get(server.url + "/info") as response:
        assert response.status == 200
    url = new_session(server)
    assert await poll(http, url) == (200, "o\n")
    return url


@pytest.mark.parametrize("binding", [False, True], ids=["binding-off", "binding-on"])
async def test_url_info_and_binding_cookie(sockjs: rtt.Transport, binding: bool) -> None:
    """``/info`` never sets the binding cookie; the request that opens an HTTP session does, when bound."""
    async with echo_server(sockjs, session_binding=binding, kind=SockjsServer) as (server, _):
        host, port = server.address
        assert server.url == f"http://{host}:{port}/sockjs"
        async with browser_like() as http:
            async with http.get(server.url + "/info") as response:
                info = json.loads(await response.text())
                assert info["websocket"] is True and info["cookie_needed"] is True
                assert "websocket-raw" not in info["transports"]
                assert BINDING_COOKIE not in response.headers.get("Set-Cookie", "")
            async with http.post(new_session(server) + "/xhr") as response:
                assert await response.text() == "o\n"
                cookies = [
                    c for c in response.headers.getall("Set-Cookie", []) if c.startswith(BINDING_COOKIE)
                ]
            if binding:
                (cookie,) = cookies
                # Plain HTTP: Lax (a Secure cookie would not be stored; SameSite=None needs Secure).
                assert cookie.endswith("; Path=/sockjs; HttpOnly; SameSite=Lax")
                assert len(cookie.split(";")[0].split("=")[1]) == 22
            else:
                assert cookies == []
        async with aiohttp.ClientSession() as http, http.get(server.url + "/") as response:
            assert await response.text() == "Welcome to SockJS!\n"


async def test_raw_xhr_session_text_bytes_and_handshake(sockjs: rtt.Transport) -> None:
    async with echo_server(sockjs, kind=SockjsServer) as (server, _):
        rec = Recorder().listen(server, "connect", "message")
        async with browser_like() as http:
            async with http.get(server.url + "/info") as response:
                assert response.status == 200
            url = new_session(server)
            async with http.post(url + "/xhr?room=7&t=1234") as response:
                assert await response.text() == "o\n"
            ((socket,),) = rec.of("connect")
            # SockJS's own query parameters are not the application's; the session id is not the socket id.
            assert socket.query == {"room": "7"} and socket.path == "/sockjs"
            assert url.rsplit("/", 1)[1] not in socket.id
            plain = ["plain", '{"json": [1]}', "ünï ✓", ""]
            rtt_peer = [encode_text(b"\x00\xff"), encode_text("\x00nul")]
            assert await post(http, url, json.dumps(plain + rtt_peer)) == 204
            received = [data for _, data in await rec.wait("message", 6)]
            assert received == [*plain, b"\x00\xff", "\x00nul"]
            status, body = await poll(http, url)
            assert status == 200 and json.loads(body[1:]) == plain + rtt_peer


async def test_second_client_with_an_existing_session_id_gets_nothing(sockjs: rtt.Transport) -> None:
    """With ``session_binding``, a second client presenting a live session id gets neither its
    messages nor its socket: its receiving requests get the close frame ``rejected``, its POSTs 403."""
    refused = (200, 'c[1008,"rejected"]\n')
    async with echo_server(sockjs, session_binding=True, kind=SockjsServer) as (server, _):
        rec = Recorder().listen(server, "connect", "message")
        async with browser_like() as owner, browser_like() as intruder:
            url = await open_xhr(owner, server)
            ((socket,),) = rec.of("connect")
            await server.send(socket.id, "for the owner only")
            async with intruder.get(server.url + "/info") as response:  # a cookie of its own
                assert response.status == 200
            # Polling, streaming, eventsource or posting with the stolen id: refused, nothing taken.
            assert await poll(intruder, url) == refused
            async with intruder.post(f"{url}/xhr_streaming") as r:
                assert r.status == 200 and await r.read() == PRELUDE + b'c[1008,"rejected"]\n'
            async with intruder.get(f"{url}/eventsource") as r:
                assert r.status == 200 and await r.read() == b'\r\ndata: c[1008,"rejected"]\r\n\r\n'
            async with intruder.get(f"{url}/jsonp?c=cb") as r:
                assert r.status == 200 and await r.text() == '/**/cb("c[1008,\\"rejected\\"]");\r\n'
            assert await post(intruder, url, '["as the owner"]') == 403
            # No cookie at all is refused the same way.
            async with aiohttp.ClientSession() as anonymous:
                assert await poll(anonymous, url) == refused
                assert await post(anonymous, url, '["as the owner"]') == 403
            # A WebSocket with the same id is a different session, with a socket of its own.
            ws = await intruder.ws_connect(url.replace("http", "ws", 1) + "/websocket")
            try:
                assert await ws.receive_str() == "o"
                await rec.wait("connect", 2)
                intruder_socket = rec.of("connect")[1][0]
                assert intruder_socket.id != socket.id
                await ws.send_str('["mine"]')
                assert await asyncio.wait_for(ws.receive_str(), 5) == 'a["mine"]'
            finally:
                await ws.close()
            assert [(s.id, data) for s, data in rec.of("message")] == [(intruder_socket.id, "mine")]
            # The owner's session is untouched: its message is still there for it.
            assert await poll(owner, url) == (200, 'a["for the owner only"]\n')
            assert await post(owner, url, '["owner"]') == 204
            assert await poll(owner, url) == (200, 'a["owner"]\n')


async def test_origins_and_authorize_refuse_before_a_session(sockjs: rtt.Transport) -> None:
    async def authorize(hs: rtt.Handshake) -> rtt.Reject | bool:
        return True if hs.query.get("token") == "ok" else rtt.Reject(401, "Unauthorized")

    async with echo_server(
        sockjs, allowed_origins=["https://app.example"], authorize=authorize, kind=SockjsServer
    ) as (server, _):
        async with browser_like() as http:
            evil = {"Origin": "https://evil.example"}
            async with http.get(server.url + "/info", headers=evil) as response:
                # Public, but a page from that origin may not read it (no CORS headers).
                assert response.status == 200
                assert "Access-Control-Allow-Origin" not in response.headers
            url = new_session(server)
            async with http.post(url + "/xhr?token=ok", headers=evil) as response:
                assert response.status == 403
            async with http.post(url + "/xhr_streaming") as response:
                assert (response.status, await response.text()) == (401, "Unauthorized")
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url.replace("http", "ws", 1) + "/websocket")
            assert refused.value.status == 401
            assert server.manager.sessions == {}, "a refused request leaves no session behind"
            good = {"Origin": "https://app.example"}
            async with http.post(url + "/xhr?token=ok", headers=good) as response:
                assert await response.text() == "o\n"
                # A cross-origin sockjs-client sends credentials: CORS must allow them.
                assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
                assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert server.stats.rejected == 3 and server.stats.connections == 1


async def test_oversize_messages_are_message_too_big(sockjs: rtt.Transport) -> None:
    limit = 1024
    async with echo_server(sockjs, max_message_size=limit, close_timeout=0.5, kind=SockjsServer) as (
        server,
        _,
    ):
        rec = Recorder().listen(server, "disconnect", "message")
        async with browser_like() as http:
            url = await open_xhr(http, server)
            assert await post(http, url, json.dumps(["x" * limit, "y" * (limit + 1)])) == 204
            assert await poll(http, url) == (200, 'a["' + "x" * limit + '"]\n')  # one frame per poll
            assert await poll(http, url) == (200, 'c[1009,"message too big"]\n')
            # Far past the limit: refused unread.
            url = await open_xhr(http, server)
            oversize = json.dumps(["z" * server.body_limit]).encode()
            async with http.post(url + "/xhr_send", data=io.BytesIO(oversize)) as response:
                assert response.status == 413
            ws = await http.ws_connect(new_session(server).replace("http", "ws", 1) + "/websocket")
            assert await ws.receive_str() == "o"
            await ws.send_str(json.dumps([encode_text(b"\x01" * (limit + 1))]))
            assert await asyncio.wait_for(ws.receive_str(), 5) == 'c[1009,"message too big"]'
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1009, "message too big")
            await ws.close()
        await rec.wait("disconnect", 3)
        assert [reason for _, reason in rec.of("disconnect")] == [rtt.CloseReason.MESSAGE_TOO_BIG] * 3
        assert [data for _, data in rec.of("message")] == ["x" * limit]


async def test_malformed_payloads_are_protocol_errors(sockjs: rtt.Transport) -> None:
    async with echo_server(sockjs, close_timeout=0.5, kind=SockjsServer) as (server, _):
        rec = Recorder().listen(server, "disconnect", "message")
        async with browser_like() as http:
            for payload in ('{"a": 1}', "[1, 2]", "not json", '["ok", null]'):
                url = await open_xhr(http, server)
                async with http.post(url + "/xhr_send", data=payload) as response:
                    assert (response.status, await response.text()) == (500, "Broken JSON encoding.")
                status, body = await poll(http, url)
                assert (status, body) == (200, 'c[1002,"protocol error"]\n')
            for frame in ("not json", b"\x00binary"):
                ws = await http.ws_connect(new_session(server).replace("http", "ws", 1) + "/websocket")
                assert await ws.receive_str() == "o"
                await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
                received = [await asyncio.wait_for(ws.receive(), 5) for _ in range(2)]
                assert received[0].data == 'c[1002,"protocol error"]'
                assert received[1].type is aiohttp.WSMsgType.CLOSE
                await ws.close()
        await rec.wait("disconnect", 6)
        assert {reason for _, reason in rec.of("disconnect")} == {rtt.CloseReason.PROTOCOL_ERROR}
        assert rec.of("message") == []


async def test_a_polling_client_that_stops_polling(sockjs: rtt.Transport) -> None:
    limit, chunk = 128 * 1024, "q" * (32 * 1024)
    async with echo_server(
        sockjs, outbound_limit=limit, ping_interval=0.2, ping_timeout=0.3, kind=SockjsServer
    ) as (server, _):
        rec = Recorder().listen(server, "disconnect")
        async with browser_like() as http:
            await open_xhr(http, server)  # and never polls again
            (socket_id,) = server.sockets
            sends = 0
            while socket_id in server.sockets:
                await server.send(socket_id, chunk)
                sends += 1
                assert sends <= limit // len(chunk) + 1, "memory must stay bounded"
            await open_xhr(http, server)  # quiet, and never polls again
            ((_, first), (_, second)) = await rec.wait("disconnect", 2, timeout=5)
            assert (first, second) == (rtt.CloseReason.SLOW_CONSUMER, rtt.CloseReason.PING_TIMEOUT)
            # The library keeps them only to repeat their close frame (CLOSED_GRACE), with nothing queued.
            kept = list(server.manager.sessions.values())
            assert all(s.rtt_conn.ended and not s.frames for s in kept), "the library's sessions are done too"


async def test_a_streaming_client_that_stops_reading(sockjs: rtt.Transport) -> None:
    limit, chunk = 256 * 1024, "s" * (64 * 1024)
    async with echo_server(
        sockjs, outbound_limit=limit, ping_interval=0.2, ping_timeout=0.3, kind=SockjsServer
    ) as (server, _):
        rec = Recorder().listen(server, "disconnect")
        async with browser_like() as http:
            async with http.get(server.url + "/info"):
                pass
            quiet = new_session(server)
            async with http.post(quiet + "/xhr_streaming") as response:
                # Reads the prelude and the open frame, then nothing more: the server ends
                # the response after a heartbeat and the client never comes back.
                assert await response.content.readexactly(len(PRELUDE) + 2) == PRELUDE + b"o\n"
                ((_, reason),) = await rec.wait("disconnect", timeout=5)
                assert reason is rtt.CloseReason.PING_TIMEOUT
            busy = new_session(server)
            async with http.post(busy + "/xhr_streaming") as response:
                assert await response.content.readexactly(len(PRELUDE) + 2) == PRELUDE + b"o\n"
                await eventually(lambda: len(server.sockets) == 1)
                (socket_id,) = server.sockets
                for _ in range(4096):  # bounded: far past any socket buffer on loopback
                    if socket_id not in server.sockets:
                        break
                    await server.broadcast(chunk)
                    await asyncio.sleep(0)
                await rec.wait("disconnect", 2, timeout=5)
                assert rec.of("disconnect")[1][1] is rtt.CloseReason.SLOW_CONSUMER


async def test_receiving_transports_of_the_library_stay_usable(sockjs: rtt.Transport) -> None:
    async with (
        echo_server(sockjs, ping_interval=0.3, ping_timeout=1, kind=SockjsServer) as (server, _),
        browser_like() as http,
    ):
        async with http.get(server.url + "/info"):
            pass
        url = new_session(server)
        async with http.get(url + "/eventsource") as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            assert await response.content.readline() == b"\r\n"
            assert await response.content.readline() == b"data: o\r\n"
            assert await post(http, url, '["via eventsource"]') == 204
            assert await response.content.readline() == b"\r\n"
            assert await response.content.readline() == b'data: a["via eventsource"]\r\n'
        url = new_session(server)
        async with http.get(url + "/jsonp?c=cb") as response:
            assert await response.text() == '/**/cb("o");\r\n'
        async with http.post(url + "/jsonp_send", data={"d": '["via jsonp"]'}) as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with http.get(url + "/jsonp?c=cb") as response:
            assert await response.text() == '/**/cb("a[\\"via jsonp\\"]");\r\n'
        # A JSONP request the library refuses leaves no session behind.
        async with http.get(new_session(server) + "/jsonp") as response:
            assert response.status == 500
        assert len(server.manager.sessions) == 2


async def test_close_reasons_reach_the_client(sockjs: rtt.Transport) -> None:
    async with echo_server(sockjs, close_timeout=1, kind=SockjsServer) as (server, _):
        rec = Recorder().listen(server, "connect", "disconnect")
        async with browser_like() as http:
            url = await open_xhr(http, server)
            ((socket,),) = await rec.wait("connect")
            await server.disconnect(socket.id)
            assert await poll(http, url) == (200, 'c[1000,"server closed"]\n')
            await rec.wait("disconnect")
            url = await open_xhr(http, server)
            assert await post(http, url, json.dumps([CLIENT_CLOSING])) == 204
            await rec.wait("disconnect", 2)
            assert [reason for _, reason in rec.of("disconnect")] == [
                rtt.CloseReason.SERVER_CLOSED,
                rtt.CloseReason.CLIENT_CLOSED,
            ]
            url = await open_xhr(http, server)
            pending = asyncio.ensure_future(poll(http, url))
            await eventually(lambda: len(server.sockets) == 1)
            await server.close()
            assert await pending == (200, 'c[1001,"shutdown"]\n')


async def test_mounted_in_an_aiohttp_application_beside_other_routes(sockjs: rtt.Transport) -> None:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from the app")

    app.router.add_get("/hello", hello)
    server = sockjs.server(port=0, sockjs_prefix="/realtime")
    assert isinstance(server, SockjsServer)
    server.attach(app)
    server.on("message", lambda s, d: server.send(s.id, d))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with server:
            url = f"http://127.0.0.1:{port}/realtime"
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/hello") as r:
                assert await r.text() == "hello from the app"
            for transports in (("websocket",), ("xhr-streaming",), ("xhr-polling",)):
                async with sockjs.client(url, transports=transports) as client:
                    await client.send(b"\x00mounted")
                    assert await client.recv() == b"\x00mounted"
            with pytest.raises(RuntimeError, match="already attached"):
                server.attach(web.Application())
    finally:
        await runner.cleanup()


async def test_broadcast_encodes_once(sockjs: rtt.Transport, monkeypatch: pytest.MonkeyPatch) -> None:
    async with echo_server(sockjs, kind=SockjsServer) as (server, _):
        clients = [sockjs.client(server.url, transports=(t,)) for t in ("websocket", "xhr-polling") * 2]
        for client in clients:
            await client.connect()
        calls: list[list[str]] = []
        original = messages_frame

        def counting(messages: list[str]) -> str:
            calls.append(messages)
            return original(messages)

        monkeypatch.setattr(sockjs_server, "messages_frame", counting)
        assert await server.broadcast(b"\x01\x02") == 4
        assert calls == [[encode_text(b"\x01\x02")]]
        for client in clients:
            assert await asyncio.wait_for(client.recv(), 5) == b"\x01\x02"
            await client.close()


def test_sockjs_options_are_validated() -> None:
    with pytest.raises(rtt.OptionError, match="transports must be"):
        rtt.load("sockjs", transports=("carrier-pigeon",))
    with pytest.raises(rtt.OptionError, match="sockjs_prefix must be"):
        rtt.load("sockjs", sockjs_prefix="sockjs")
    with pytest.raises(rtt.OptionError, match="assets_path"):
        rtt.load("sockjs", assets_path="/sockjs/")
    with pytest.raises(rtt.ConfigError, match="http"):
        rtt.load("sockjs").client("ws://127.0.0.1:1/sockjs")
    server = rtt.load("sockjs", sockjs_prefix="/rt/").server()
    assert isinstance(server, SockjsServer) and server.prefix == "/rt"
    client = rtt.load("sockjs", transports="xhr-polling").client("http://127.0.0.1:1/sockjs")
    assert isinstance(client, SockjsClient) and client.options.transports == ("xhr-polling",)
    transport = rtt.load("sockjs")
    assert isinstance(transport, SockjsTransport) and not transport.capabilities.binary


def _get(url: str) -> tuple[int, str | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Access-Control-Allow-Origin"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None, b""


async def test_browser_assets_are_served() -> None:
    transport = rtt.load("sockjs")
    assets = transport.browser_assets()
    assert set(assets) == {"rtt-client.js", "rtt-client.mjs", "rtt-sockjs.js", "rtt-sockjs.mjs"}
    async with transport.server() as server:
        host, port = server.address
        for name, file in assets.items():
            status, cors, body = await asyncio.to_thread(_get, f"http://{host}:{port}/rtt/{name}")
            assert (status, cors, body) == (200, "*", file.read_bytes())
        for path in ("rtt/nope.js", "rtt/../transport.py", "elsewhere"):
            assert (await asyncio.to_thread(_get, f"http://{host}:{port}/{path}"))[0] == 404
    async with transport.server(assets_path=None) as server:
        host, port = server.address
        assert (await asyncio.to_thread(_get, f"http://{host}:{port}/rtt/rtt-sockjs.js"))[0] == 404


@pytest.mark.timeout(600)
def test_fresh_virtualenv_install(fresh_venv: Any) -> None:
    """`pip install packages/rtt-core packages/rtt-sockjs` pulls in sockjs and aiohttp, no other rtt."""
    venv = fresh_venv("packages/rtt-core", "packages/rtt-sockjs")
    names = venv.distributions()
    assert {"rtt-core", "rtt-sockjs", "sockjs", "aiohttp"} <= names
    assert not {n for n in names if n.startswith("rtt-")} - {"rtt-core", "rtt-sockjs"}
    venv.run(
        """
import asyncio, warnings, rtt
warnings.simplefilter("ignore")  # sockjs's NotAppKeyWarning
assert [i.name for i in rtt.available()] == ["sockjs"]

async def main():
    transport = rtt.load("sockjs")
    async with transport.server() as server:
        server.on("message", lambda s, d: server.send(s.id, d))
        for transports in (("websocket",), ("xhr-streaming",)):
            async with transport.client(server.url, transports=transports) as client:
                await client.send(b"installed")
                assert await client.recv() == b"installed"

asyncio.run(main())
"""
    )


async def test_websocket_compression_is_never_negotiated(sockjs: rtt.Transport) -> None:
    # permessage-deflate would cost ~90 KiB per connection (browsers offer it); rtt-ws refuses it too.
    async with echo_server(sockjs, kind=SockjsServer) as (server, _), aiohttp.ClientSession() as http:
        url = new_session(server).replace("http", "ws", 1) + "/websocket"
        async with http.ws_connect(url, compress=15) as ws:
            assert ws.compress == 0
            assert await ws.receive_str() == "o"
            await ws.send_str('["plain"]')
            assert await asyncio.wait_for(ws.receive_str(), 5) == 'a["plain"]'


async def test_reuse_port_lets_two_servers_share_a_port(sockjs: rtt.Transport) -> None:
    """SPEC.md 7.1: with reuse_port both processes' listeners take connections on one port."""
    async with (
        sockjs.server(reuse_port=True) as first,
        sockjs.server(port=first.address[1], reuse_port=True) as second,
    ):
        assert first.url == second.url
        clients = []
        try:
            # The kernel hashes each connection to one listener: a few clients reach both. WebSocket
            # only, since one session's successive HTTP requests could reach either process.
            async with asyncio.timeout(20):
                while not (first.sockets and second.sockets):
                    client = sockjs.client(first.url, transports=("websocket",), reconnect=False)
                    await client.connect()
                    clients.append(client)
                    await eventually(lambda: len(first.sockets) + len(second.sockets) == len(clients))
        finally:
            for client in clients:
                await client.close()
