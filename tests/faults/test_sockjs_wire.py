"""Bad input on the SockJS wire (issue 12: defects 4 and 5, SockJS 0.3.3 points; SPEC.md 12.4).

Raw aiohttp clients send what no rtt client sends, over SockJS's framed
WebSocket and its xhr transports, and each case checks the answer (status,
body, headers, close frame), the server's ``disconnect`` reason and the log.
The last cases turn it around: a hand-written server sends the same input to
rtt's Python client, and hypothesis feeds both parsers (``rtt_sockjs._wire``)
whatever it likes. Every case runs on the SockJS wires it applies to
(WebSocket, xhr): the payloads and statuses are SockJS's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

import rtt
from rtt.testing import Recorder
from rtt_sockjs import SockjsServer
from rtt_sockjs._library import served_urls
from rtt_sockjs._wire import FrameError, parse_client_payload, parse_server_frame

# sockjs 0.13 stores its state under string keys of the aiohttp application.
pytestmark = [
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
    pytest.mark.timeout(60),
]

#: 50000 levels of arrays: valid JSON, far past Python's recursion limit, well within the frame bound.
DEEP = "[" * 50_000 + "]" * 50_000
#: What SockJS 0.3.3 asks of every answer to a message POST: never cached.
NOT_CACHED = "no-store, no-cache, must-revalidate, max-age=0"
#: Every bound on the network below; generous for a loaded 2-core machine.
BOUND = 20


@asynccontextmanager
async def sockjs_server(**options: Any) -> AsyncIterator[tuple[SockjsServer, Recorder]]:
    """A started sockjs server that echoes every message, and a recorder of its disconnects."""
    server = rtt.load("sockjs").server(port=0, close_timeout=0.5, **options)
    assert isinstance(server, SockjsServer)
    async with server:

        @server.on("message")
        async def echo(socket: rtt.Socket, data: str | bytes) -> None:
            await server.send(socket.id, data)

        yield server, Recorder().listen(server, "disconnect")


@asynccontextmanager
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client with a cookie jar (cookies for 127.0.0.1 too), every wait bounded."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with asyncio.timeout(BOUND), aiohttp.ClientSession(cookie_jar=jar) as http:
        yield http


def session_url(server: SockjsServer) -> str:
    return f"{server.url}/000/{secrets.token_urlsafe(8)}"


async def open_xhr(http: aiohttp.ClientSession, server: SockjsServer) -> str:
    """Fetch /info (the binding cookie), open an xhr-polling session, return its URL."""
    async with http.get(server.url + "/info") as response:
        assert response.status == 200
    url = session_url(server)
    async with http.post(url + "/xhr") as response:
        assert await response.text() == "o\n"
    return url


async def answer(response: aiohttp.ClientResponse) -> tuple[int, str]:
    return response.status, await response.text()


def no_tracebacks(caplog: pytest.LogCaptureFixture, most: int = 0) -> None:
    """Nothing logged at ERROR, no traceback at all, and at most ``most`` short lines at WARNING."""
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in loud if r.levelno >= logging.ERROR or r.exc_info], [r.getMessage() for r in loud]
    assert len(loud) <= most and all(len(r.getMessage()) < 200 for r in loud), [r.getMessage() for r in loud]


# -- Defect 4: deeply nested JSON ----------------------------------------------


@pytest.mark.parametrize("kind", ["websocket", "xhr"])
async def test_deeply_nested_json_closes_the_session_as_a_protocol_error(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with sockjs_server() as (server, rec), http_client() as http:
        assert len(DEEP) < server.frame_limit  # refused for its shape, not its size
        if kind == "websocket":
            ws = await http.ws_connect(session_url(server).replace("http", "ws", 1) + "/websocket")
            assert await ws.receive_str() == "o"
            await ws.send_str(DEEP)
            assert await ws.receive_str() == 'c[1002,"protocol error"]'
            closing = await ws.receive()
            assert (closing.type, closing.data, closing.extra) == (
                aiohttp.WSMsgType.CLOSE,
                1002,
                "protocol error",
            )
            await ws.close()
        else:
            url = await open_xhr(http, server)
            async with http.post(url + "/xhr_send", data=DEEP) as response:
                assert await answer(response) == (500, "Broken JSON encoding.")
            async with http.post(url + "/xhr") as response:
                assert await answer(response) == (200, 'c[1002,"protocol error"]\n')
        ((_, reason),) = await rec.wait("disconnect", 1, timeout=BOUND)
        assert reason is rtt.CloseReason.PROTOCOL_ERROR
        assert server.sockets == {}
        no_tracebacks(caplog)


# -- SockJS 0.3.3: malformed and empty message POSTs -----------------------------


@pytest.mark.parametrize(
    ("endpoint", "body", "content_type"),
    [
        ("xhr_send", b'["x', "text/plain"),
        ("xhr_send", b'["\xff"]', "text/plain"),
        ("xhr_send", b"[1]", "text/plain"),
        ("xhr_send", b'{"x": "y"}', "text/plain"),
        ("jsonp_send", b"d=%5B%22x", "application/x-www-form-urlencoded"),
        ("jsonp_send", b'["x', "text/plain"),
    ],
    ids=["truncated", "not-utf8", "not-strings", "object", "jsonp-form", "jsonp-text"],
)
async def test_a_malformed_payload_is_500_broken_json_and_ends_the_session(
    endpoint: str, body: bytes, content_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The protocol's answer; rtt then closes the session as ``protocol error`` (SPEC 12.4)."""
    caplog.set_level(logging.INFO)
    async with sockjs_server() as (server, rec), http_client() as http:
        url = await open_xhr(http, server)
        headers = {"Content-Type": content_type}
        async with http.post(f"{url}/{endpoint}", data=body, headers=headers) as response:
            assert await answer(response) == (500, "Broken JSON encoding.")
            assert response.headers["Cache-Control"] == NOT_CACHED
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'c[1002,"protocol error"]\n')
        ((_, reason),) = await rec.wait("disconnect", 1, timeout=BOUND)
        assert reason is rtt.CloseReason.PROTOCOL_ERROR
        no_tracebacks(caplog)


async def _chunked_nothing() -> AsyncIterator[bytes]:
    """A request body sent chunked, with no chunk at all."""
    nothing: tuple[bytes, ...] = ()
    for part in nothing:
        yield part


async def test_an_empty_payload_is_500_payload_expected_and_the_session_lives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defect 5: SockJS's answer to an empty POST, no traceback, and the session goes on."""
    caplog.set_level(logging.INFO)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with sockjs_server() as (server, rec), http_client() as http:
        url = await open_xhr(http, server)
        empties: list[tuple[str, object, dict[str, str]]] = [
            ("xhr_send", b"", {}),  # Content-Length: 0
            ("xhr_send", _chunked_nothing(), {}),  # chunked, no chunk
            ("jsonp_send", b"", form),
            ("jsonp_send", b"d=", form),
            ("jsonp_send", b"p=p", form),
        ]
        for endpoint, body, headers in empties:
            async with http.post(f"{url}/{endpoint}", data=body, headers=headers) as response:
                assert await answer(response) == (500, "Payload expected."), endpoint
                assert response.headers["Cache-Control"] == NOT_CACHED
        async with http.post(url + "/xhr_send", data='["still here"]') as response:
            assert response.status == 204
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'a["still here"]\n')
        assert len(server.sockets) == 1 and rec.of("disconnect") == []
        no_tracebacks(caplog)  # while it runs: its shutdown warns about the session left open


async def test_message_posts_are_answered_never_cached() -> None:
    async with sockjs_server() as (server, _), http_client() as http:
        url = await open_xhr(http, server)
        async with http.post(url + "/xhr_send", data='["x"]') as response:
            assert await answer(response) == (204, "")
            xhr_send = response.headers
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        async with http.post(url + "/jsonp_send", data="d=%5B%22y%22%5D", headers=form) as response:
            assert await answer(response) == (200, "ok")
            jsonp_send = response.headers
        for headers in (xhr_send, jsonp_send):
            assert headers["Cache-Control"] == NOT_CACHED
            assert headers["Content-Type"].replace(" ", "") == "text/plain;charset=UTF-8"
            assert "Expires" not in headers and "Last-Modified" not in headers
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'a["x","y"]\n')


# -- SockJS 0.3.3: a POST to the WebSocket endpoint ----------------------------


async def test_a_post_to_websocket_is_405_with_no_body_and_opens_nothing() -> None:
    """The protocol's 405 (``Allow``, no body, no content type), before ``authorize`` runs."""
    asked: list[rtt.Handshake] = []

    async def authorize(handshake: rtt.Handshake) -> None:
        asked.append(handshake)

    async with sockjs_server(authorize=authorize) as (server, _), http_client() as http:
        upgrade = {"Upgrade": "WebSocket", "Connection": "Upgrade"}
        for headers in ({}, upgrade):
            async with http.post(session_url(server) + "/websocket", headers=headers) as response:
                assert response.status == 405
                assert response.headers["Allow"] == "GET"
                assert "Content-Type" not in response.headers
                assert await response.read() == b""
        assert asked == [] and server.sockets == {} and server.manager.sessions == {}


# -- The Python client reading the same input from a server --------------------


@asynccontextmanager
async def hostile_server(frame: str, *, info: str | None = None) -> AsyncIterator[str]:
    """A SockJS endpoint at ``/sockjs`` that opens every session and then sends ``frame``.

    ``info`` replaces the ``/info`` answer.
    """
    polls: dict[str, int] = {}

    async def info_page(request: web.Request) -> web.Response:
        if info is not None:
            return web.Response(text=info, content_type="application/json")
        return web.json_response({"websocket": True, "cookie_needed": False, "entropy": 1})

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("o")
        await ws.send_str(frame)
        async for _ in ws:  # until the client goes
            pass
        return ws

    async def xhr(request: web.Request) -> web.Response:
        session = request.match_info["session"]
        polls[session] = polls.get(session, 0) + 1
        return web.Response(text=("o" if polls[session] == 1 else frame) + "\n")

    app = web.Application()
    app.router.add_get("/sockjs/info", info_page)
    app.router.add_get("/sockjs/{server}/{session}/websocket", websocket)
    app.router.add_post("/sockjs/{server}/{session}/xhr", xhr)
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/sockjs"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
async def test_the_client_reads_a_deeply_nested_frame_as_a_protocol_error(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with hostile_server("a" + DEEP) as url:
        client = rtt.load("sockjs").client(url, transports=(transport,), reconnect=None, connect_timeout=5)
        async with asyncio.timeout(BOUND):
            await client.connect()
            assert await client.wait_closed() is rtt.CloseReason.PROTOCOL_ERROR
            await client.close()
    no_tracebacks(caplog)


async def test_the_client_refuses_a_deeply_nested_info_answer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    deep_info = "[" * 30_000 + "]" * 30_000  # within the client's bound on an /info answer
    async with hostile_server("h", info=deep_info) as url:
        client = rtt.load("sockjs").client(url, reconnect=None, connect_timeout=5)
        async with asyncio.timeout(BOUND):
            with pytest.raises(rtt.ConnectError, match="not a SockJS endpoint"):
                await client.connect()
            await client.close()
    no_tracebacks(caplog)


# -- Fuzzing the parsers both sides use ----------------------------------------

#: Any JSON value, nested a little.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    return opener * depth + closer * depth


@given(JSON)
def test_a_client_payload_is_an_array_of_strings_or_a_frame_error(value: object) -> None:
    text = json.dumps(value)
    try:
        messages = parse_client_payload(text)
    except FrameError:
        assert not (isinstance(value, str) or _strings(value))
    else:
        assert messages == ([value] if isinstance(value, str) else value)


@given(st.sampled_from(["", "a", "c", "o", "h", "x"]), st.one_of(st.text(), JSON.map(json.dumps)))
def test_a_server_frame_parses_to_its_shape_or_is_a_frame_error(kind: str, body: str) -> None:
    try:
        parsed, content = parse_server_frame(kind + body)
    except FrameError:
        return
    assert parsed in ("o", "h", "a", "c")
    if parsed == "a":
        assert _strings(content)
    elif parsed == "c":
        assert isinstance(content, tuple) and type(content[0]) is int and type(content[1]) is str
    else:
        assert content is None and kind + body == parsed


@given(st.integers(2, 200_000), st.sampled_from("[{"), st.sampled_from(["", "a", "c"]))
def test_nesting_of_any_depth_is_a_frame_error(depth: int, opener: str, kind: str) -> None:
    with pytest.raises(FrameError):
        parse_client_payload(nested(depth, opener))
    with pytest.raises(FrameError):
        parse_server_frame((kind or "a") + nested(depth, opener))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(type(item) is str for item in value)


# -- SockJS 0.3.3: CORS preflight on the session transports ----------------------

#: SockJS 0.3.3 wants preflight answers cached for a long time: "one year (31536000) is best".
YEAR = 31_536_000


@pytest.mark.parametrize("endpoint", ["xhr", "xhr_send", "xhr_streaming", "info"])
async def test_a_preflight_is_204_cacheable_with_cors_grants(endpoint: str) -> None:
    async with sockjs_server(allowed_origins=["http://good.example"]) as (server, _), http_client() as http:
        url = server.url + "/info" if endpoint == "info" else f"{session_url(server)}/{endpoint}"
        methods = "OPTIONS, GET" if endpoint == "info" else "OPTIONS, POST"
        asked = {"Access-Control-Request-Method": methods.split(", ")[1]}
        good = {**asked, "Origin": "http://good.example", "Access-Control-Request-Headers": "a, b"}
        async with http.options(url, headers=good) as response:
            assert await answer(response) == (204, "")
            headers = response.headers
            assert headers["Access-Control-Allow-Methods"] == methods
            assert headers["Access-Control-Max-Age"] == str(YEAR)
            assert headers["Cache-Control"] == f"public, max-age={YEAR}"
            assert headers["Expires"]
            assert headers["Access-Control-Allow-Origin"] == "http://good.example"
            assert headers["Access-Control-Allow-Credentials"] == "true"
            assert headers["Access-Control-Allow-Headers"] == "a, b"
        async with http.options(url, headers={**asked, "Origin": "http://evil.example"}) as response:
            assert response.status == 403
            assert not [h for h in response.headers if h.lower().startswith("access-control-allow")]
        assert server.sockets == {}


async def test_a_preflight_from_a_null_origin_gets_a_star_without_credentials() -> None:
    """SockJS 0.3.3: a page from file:// sends ``Origin: null``, which must be answered ``*``."""
    async with sockjs_server() as (server, _), http_client() as http:
        headers = {"Origin": "null", "Access-Control-Request-Method": "POST"}
        async with http.options(session_url(server) + "/xhr", headers=headers) as response:
            assert await answer(response) == (204, "")
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in response.headers


# -- SockJS 0.3.3: the JSESSIONID cookie when /info says cookie_needed -----------


async def test_message_posts_set_jsessionid_as_info_says() -> None:
    async with sockjs_server() as (server, _), http_client() as http:
        async with http.get(server.url + "/info") as response:
            assert (await response.json())["cookie_needed"] is True
        url = await open_xhr(http, server)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        for endpoint, body, headers, cookie in [
            ("xhr_send", '["x"]', {}, "JSESSIONID=dummy"),
            ("jsonp_send", "d=%5B%22y%22%5D", form, "JSESSIONID=dummy"),
            ("xhr_send", '["z"]', {}, "JSESSIONID=abcdef"),  # the client's own is echoed
        ]:
            if cookie.endswith("abcdef"):
                http.cookie_jar.update_cookies({"JSESSIONID": "abcdef"}, URL(server.url))
            async with http.post(f"{url}/{endpoint}", data=body, headers=headers) as response:
                assert response.status in (200, 204)
                (set_cookie,) = [c for c in response.headers.getall("Set-Cookie") if "JSESSIONID" in c]
                parts = [part.strip() for part in set_cookie.split(";")]
                assert parts[0] == cookie and parts[1].lower() == "path=/", set_cookie


# -- SockJS 0.3.3: a closed session repeats its close frame ----------------------


#: How long a closed session answers with its close frame (SockJS's usual disconnect delay; SPEC 12.4).
CLOSED_GRACE = 5.0


async def test_a_closed_session_repeats_its_close_frame_for_the_grace_period() -> None:
    async with sockjs_server() as (server, rec), http_client() as http:
        url = await open_xhr(http, server)
        (socket_id,) = server.sockets
        await server.disconnect(socket_id)
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'c[1000,"server closed"]\n')
        await rec.wait("disconnect", 1, timeout=BOUND)
        loop = asyncio.get_running_loop()
        for _ in range(2):  # "until the timeout occurs, the server must constantly serve the close message"
            async with http.post(url + "/xhr") as response:
                assert await answer(response) == (200, 'c[1000,"server closed"]\n')
        assert server.sockets == {} and len(rec.of("disconnect")) == 1
        # Then it is forgotten, CLOSED_GRACE after its end: the same id opens a new session.
        (closed,) = [s.rtt_conn for s in server.manager.sessions.values()]
        assert closed is not None and closed.forget is not None
        assert 0 < closed.forget.when() - loop.time() <= CLOSED_GRACE
        forgotten = asyncio.Event()
        loop.call_at(closed.forget.when(), forgotten.set)  # runs with the timer; the wait wakes after it
        await forgotten.wait()
        assert server.manager.sessions == {}
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, "o\n")
        assert len(server.sockets) == 1


# -- A server serving some of SockJS's transports --------------------------------


async def test_a_server_without_websocket_says_so_and_refuses_its_urls() -> None:
    async with sockjs_server(transports=("xhr-polling",)) as (server, _), http_client() as http:
        async with http.get(server.url + "/info") as response:
            info = await response.json()
        assert info["websocket"] is False
        for endpoint in ("websocket", "xhr_streaming", "eventsource"):
            async with http.get(f"{session_url(server)}/{endpoint}") as response:
                assert response.status == 404, endpoint
        async with http.post(f"{session_url(server)}/xhr_streaming") as response:
            assert response.status == 404
        url = await open_xhr(http, server)  # the one it serves
        async with http.post(url + "/xhr_send", data='["x"]') as response:
            assert response.status == 204
        async with http.post(url + "/xhr") as response:
            assert await answer(response) == (200, 'a["x"]\n')
        assert len(server.sockets) == 1


def test_the_transports_option_is_validated() -> None:
    server = rtt.load("sockjs").server(transports=("websocket", "eventsource"))
    assert isinstance(server, SockjsServer) and server.options.transports == ("websocket", "eventsource")
    # Every transport that posts through xhr_send keeps it (sockjs-client's xhr-streaming does).
    assert served_urls(("xhr-streaming",)) == {"xhr_streaming", "xhr_send"}
    assert served_urls(("jsonp-polling",)) == {"jsonp", "jsonp_send"}
    for bad in [(), ("carrier-pigeon",), ("websocket", "websocket"), 3]:
        with pytest.raises(rtt.OptionError, match="option transports must be"):
            rtt.load("sockjs").server(transports=bad)
