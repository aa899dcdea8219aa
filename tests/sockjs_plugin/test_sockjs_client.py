"""The rtt-sockjs Python client (SPEC.md 12.4) against the raw ``sockjs`` library and hand-written servers.

The raw library's echo server shows the client speaks SockJS as the library
does; the hand-written :class:`Fake` endpoint sends what no honest server
sends (malformed, hostile or silent answers) and records what it receives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sockjs  # type: ignore[import-untyped, unused-ignore]
from aiohttp import WSMsgType, web

import rtt
import rtt_sockjs.client
from rtt.codec import encode_text
from rtt.testing import eventually
from rtt_sockjs import SockjsClient
from rtt_sockjs._wire import BINDING_COOKIE, CLIENT_CLOSING, encode_payload, frame_limit
from rtt_sockjs.client import INBOX_SIZE, PRELUDE, SockjsConnection

# sockjs 0.13 stores its state under string keys of the aiohttp application.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")

TRANSPORTS = ("websocket", "xhr-streaming", "xhr-polling")
#: A line longer than the frame bound of a client whose max_message_size is 1.
PAST_BOUND = frame_limit(1) + 10
HTTP_TRANSPORTS = ("xhr-streaming", "xhr-polling")
#: The URL segment of each transport's receiving request.
ENDPOINTS = {"websocket": "websocket", "xhr-streaming": "xhr_streaming", "xhr-polling": "xhr"}
TOKEN = "token-1"


# -- Servers ------------------------------------------------------------------


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yield ``http://127.0.0.1:PORT``."""
    # Handlers that wait forever end when their client leaves, or soon after shutdown begins.
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_sockjs(**endpoint: Any) -> AsyncIterator[tuple[str, list[web.BaseRequest]]]:
    """The ``sockjs`` library's echo endpoint at ``/sockjs``, and every request it got.

    The message ``"close me"`` makes it close the session with 3000 "Go away!".
    """
    requests: list[web.BaseRequest] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        requests.append(request)
        response: web.StreamResponse = await handler(request)
        return response

    async def echo(manager: Any, session: Any, msg: Any) -> None:
        if msg.type is sockjs.MsgType.MESSAGE:
            if msg.data == "close me":
                session.close(3000, "Go away!")
            else:
                session.send(msg.data)

    app = web.Application(middlewares=[record])
    sockjs.add_endpoint(app, echo, prefix="/sockjs", **endpoint)
    async with serve(app) as base:
        yield base + "/sockjs", requests


class Fake:
    """A hand-written SockJS endpoint at ``/sockjs`` that sends scripted frames and records what it gets.

    ``frames`` answer the first receiving request of a session (WebSocket,
    ``xhr`` or ``xhr_streaming``): a ``str`` is one frame, ``bytes`` go out as
    they are (a binary WebSocket frame). Later receiving requests get
    ``later(n)`` (``n`` counts receiving requests from 1) and end; when
    ``later`` is None they wait forever, and so does the first streaming
    response once its frames are sent. ``status`` answers an endpoint (``info``, ``websocket``,
    ``xhr``, ``xhr_streaming``, ``xhr_send``) with that HTTP status instead;
    ``hang`` names endpoints that never answer. While ``gate`` is set to an
    unset event, a later HTTP receiving request waits for it before it is
    answered; ``held`` is set once one waits there, and ``answered`` once such
    a request's answer is written.
    """

    def __init__(self, frames: Sequence[str | bytes] = ("o",), *, websocket: bool = True) -> None:
        self.frames = list(frames)
        self.websocket = websocket
        self.later: Callable[[int], list[str | bytes]] | None = None
        self.prelude = PRELUDE + b"\n"
        self.status: dict[str, int] = {}
        self.later_status: int | None = None
        self.hang: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.held = asyncio.Event()
        self.answered = asyncio.Event()
        #: (endpoint, Cookie header) of every request, in order.
        self.cookies: list[tuple[str, str]] = []
        #: xhr_send bodies and WebSocket text frames, in order.
        self.payloads: list[str] = []
        #: Close code and reason of the client's WebSocket close frame.
        self.ws_close: tuple[int, str] | None = None
        #: After its frames, the WebSocket closes with this code and reason ("drop": no close frame).
        self.ws_end: tuple[int, str] | str | None = None
        self.pongs = 0
        self.receiving = 0
        #: Session paths (``/server/session``) in the order they opened.
        self.sessions: list[str] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.upgrades: list[web.Request] = []
        self.app = web.Application()
        self.app.router.add_get("/sockjs/info", self._info)
        self.app.router.add_get("/sockjs/{server}/{session}/websocket", self._websocket)
        self.app.router.add_post("/sockjs/{server}/{session}/{endpoint}", self._http)

    async def ping(self) -> None:
        """Ping every open WebSocket, as a SockJS server's heartbeat does."""
        for ws in self.sockets:
            await ws.ping()

    async def _refusal(self, name: str, request: web.Request) -> web.Response | None:
        self.cookies.append((name, request.headers.get("Cookie", "")))
        if name in self.hang:
            await asyncio.Event().wait()
        status = self.status.get(name)
        if status is None and name != "xhr_send" and self.receiving and self.later_status is not None:
            status = self.later_status
        if status is not None:
            return web.Response(status=status, text=f"no {name} here")
        return None

    async def _info(self, request: web.Request) -> web.StreamResponse:
        refusal = await self._refusal("info", request)
        if refusal is not None:
            return refusal
        response = web.json_response({"websocket": self.websocket, "cookie_needed": True, "entropy": 1})
        response.set_cookie(BINDING_COOKIE, TOKEN, path="/sockjs", httponly=True, samesite="Lax")
        return response

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        refusal = await self._refusal("websocket", request)
        if refusal is not None:
            return refusal
        self.receiving += 1
        self.sessions.append(f"/{request.match_info['server']}/{request.match_info['session']}")
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.sockets.append(ws)
        self.upgrades.append(request)
        for frame in self.frames:
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
        if self.ws_end == "drop":
            assert request.transport is not None
            request.transport.abort()
        elif isinstance(self.ws_end, tuple):
            await ws.close(code=self.ws_end[0], message=self.ws_end[1].encode())
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                self.payloads.append(msg.data)
            elif msg.type is WSMsgType.PONG:
                self.pongs += 1
            elif msg.type is WSMsgType.CLOSE:
                self.ws_close = (msg.data, msg.extra or "")
                await ws.close()
                return ws
            elif msg.type is not WSMsgType.PING:
                return ws

    async def _http(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["endpoint"]
        refusal = await self._refusal(name, request)
        if refusal is not None:
            return refusal
        if name == "xhr_send":
            self.payloads.append(await request.text())
            return web.Response(status=204)
        self.receiving += 1
        session = f"/{request.match_info['server']}/{request.match_info['session']}"
        opening = session not in self.sessions
        if opening:
            self.sessions.append(session)
        response = web.StreamResponse()
        await response.prepare(request)
        if name == "xhr_streaming":
            await response.write(self.prelude)
        gate = None if opening else self.gate
        if gate is not None:
            self.held.set()
            await gate.wait()
        frames = self.frames if opening else self.later(self.receiving) if self.later else []
        for frame in frames:
            await response.write(frame.encode() + b"\n" if isinstance(frame, str) else frame)
        if self.later is None and (name == "xhr_streaming" or not opening):
            await asyncio.Event().wait()
        await response.write_eof()
        if gate is not None:
            self.answered.set()
        return response


@asynccontextmanager
async def fake_server(fake: Fake) -> AsyncIterator[str]:
    async with serve(fake.app) as base:
        yield base + "/sockjs"


# -- Helpers ------------------------------------------------------------------


def make_client(url: str, transport: str | None = None, **options: Any) -> SockjsClient:
    """An rtt sockjs client that does not reconnect (so a test sees why the connection ended)."""
    if transport is not None:
        options["transports"] = (transport,)
    client = rtt.load("sockjs").client(url, **{"reconnect": None, "connect_timeout": 5, **options})
    assert isinstance(client, SockjsClient)
    return client


def connection(client: rtt.Client) -> SockjsConnection:
    assert isinstance(client, SockjsClient) and client.connection is not None
    return client.connection


async def closed(client: rtt.Client) -> rtt.CloseReason:
    async with asyncio.timeout(10):
        return await client.wait_closed()


async def recv(client: rtt.Client) -> str | bytes:
    async with asyncio.timeout(10):
        return await client.recv()


# -- Against the raw sockjs library -------------------------------------------


def test_the_entry_point_builds_a_sockjs_client() -> None:
    assert set(rtt_sockjs.client.__all__) == {"SockjsClient", "SockjsConnection"}
    assert isinstance(rtt.load("sockjs").client("http://127.0.0.1:1/sockjs"), SockjsClient)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_echo_of_text_and_bytes(transport: str) -> None:
    async with raw_sockjs() as (url, _), make_client(url, transport) as client:
        assert connection(client).transport == transport
        for message in ("hello", "é ✓ 😀", "\x00 starts with NUL", "", b"\x00\xff bytes", b""):
            await client.send(message)
            assert await recv(client) == message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_order_of_200_messages(transport: str) -> None:
    async with raw_sockjs() as (url, _), make_client(url, transport, max_queue=500) as client:
        for i in range(100):
            await client.send(f"one by one {i}")
        # Sent together: over HTTP they share xhr_send POSTs.
        await asyncio.gather(*(client.send(f"together {i}") for i in range(100)))
        received = [await recv(client) for _ in range(200)]
        assert received == [f"one by one {i}" for i in range(100)] + [f"together {i}" for i in range(100)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_query_string_and_headers_go_on_every_request(transport: str) -> None:
    async with raw_sockjs() as (url, requests):
        async with make_client(url + "?room=1&who=me", transport, headers={"X-Token": "secret"}) as client:
            await client.send("x")
            assert await recv(client) == "x"
        endpoints = {request.path.rsplit("/", 1)[-1] for request in requests}
        sending = set() if transport == "websocket" else {"xhr_send"}
        assert endpoints >= {"info", ENDPOINTS[transport], *sending}
        for request in requests:
            # rtt_resume=1: the client asks every server for resume; this raw one ignores it (SPEC.md 17.2).
            assert request.query_string == "room=1&who=me&rtt_resume=1", request.path
            assert request.headers["X-Token"] == "secret", request.path


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_sockjs_servers_go_away_is_an_application_close(transport: str) -> None:
    # The library's session.close() sends SockJS's c[3000,"Go away!"]: a code of the application range.
    async with raw_sockjs() as (url, _):
        client = make_client(url, transport)
        await client.connect()
        await client.send("close me")
        assert await closed(client) is rtt.CloseReason.APPLICATION
        assert (client.close_code, client.close_text) == (3000, "Go away!")
        with pytest.raises(rtt.ConnectionClosed) as caught:
            await connection(client).send("too late")
        assert (caught.value.reason, caught.value.code, caught.value.text) == (
            rtt.CloseReason.APPLICATION,
            3000,
            "Go away!",
        )


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("close", "expected"),
    [
        ('c[4001,"logged in elsewhere"]', (rtt.CloseReason.APPLICATION, 4001, "logged in elsewhere")),
        ('c[4999,"server closed"]', (rtt.CloseReason.APPLICATION, 4999, "server closed")),
        ('c[3000,""]', (rtt.CloseReason.APPLICATION, 3000, "")),
        ('c[2010,"Another connection still open"]', (rtt.CloseReason.PROTOCOL_ERROR, None, None)),
        ('c[1002,"Connection interrupted"]', (rtt.CloseReason.TRANSPORT_ERROR, None, None)),
        ('c[1000,"application"]', (rtt.CloseReason.SERVER_CLOSED, None, None)),
        ('c[1001,"shutdown"]', (rtt.CloseReason.SHUTDOWN, None, None)),
    ],
    ids=["app-4001", "app-code-wins-over-rtt-text", "app-no-text", "2010", "1002", "not-app", "shutdown"],
)
async def test_a_close_frame_decides_the_reason_code_and_text(
    transport: str, close: str, expected: tuple[rtt.CloseReason, int | None, str | None]
) -> None:
    async with fake_server(Fake(["o", 'a["before"]', close])) as url:
        client = make_client(url, transport, reconnect=False)
        await client.connect()
        assert await recv(client) == "before"
        assert await closed(client) is expected[0]
        assert (client.close_reason, client.close_code, client.close_text) == expected
        with pytest.raises(rtt.ConnectionClosed) as caught:
            await client.recv()
        assert (caught.value.reason, caught.value.code, caught.value.text) == expected


async def test_falls_back_when_the_server_disables_websocket() -> None:
    async with raw_sockjs(disable_transports=("websocket",)) as (url, requests):
        async with make_client(url, transports=("websocket", "xhr-streaming")) as client:
            assert connection(client).transport == "xhr-streaming"
            await client.send("over http")
            assert await recv(client) == "over http"
        # /info said so: no WebSocket request was even tried.
        assert not any(request.path.endswith("/websocket") for request in requests)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_close_sends_client_closing_last(transport: str) -> None:
    fake = Fake()
    async with fake_server(fake) as url:
        client = make_client(url, transport)
        await client.connect()
        await client.send("last words")
        conn = connection(client)
        await client.close()
        await conn.close(rtt.CloseReason.CLIENT_CLOSED)  # idempotent
        assert fake.payloads == [encode_payload(["last words"]), encode_payload([CLIENT_CLOSING])]
        if transport == "websocket":
            await eventually(lambda: fake.ws_close is not None)
            assert fake.ws_close == (1000, "client closed")
        with pytest.raises(rtt.ConnectionClosed):
            await conn.send("after close")


async def test_raw_sockjs_sees_client_closing_as_a_message() -> None:
    """The raw library knows nothing of CLIENT_CLOSING: it reaches the handler as a message."""
    seen: list[str] = []

    async def handler(manager: Any, session: Any, msg: Any) -> None:
        if msg.type is sockjs.MsgType.MESSAGE:
            seen.append(msg.data)

    app = web.Application()
    sockjs.add_endpoint(app, handler, prefix="/sockjs")
    async with serve(app) as base:
        client = make_client(base + "/sockjs", "xhr-polling")
        await client.connect()
        await client.close()
        await eventually(lambda: seen == [CLIENT_CLOSING])


# -- Opening: refusals, fallbacks, timeouts ------------------------------------


async def test_info_refused_is_rejected() -> None:
    fake = Fake()
    fake.status["info"] = 403
    async with fake_server(fake) as url:
        with pytest.raises(rtt.RejectedError) as caught:
            await make_client(url).connect()
    assert caught.value.status == 403 and caught.value.reason == "no info here"


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming"])
async def test_a_refused_session_is_rejected_and_stops_the_fallbacks(transport: str) -> None:
    endpoint = ENDPOINTS[transport]
    fake = Fake()
    fake.status[endpoint] = 503
    async with fake_server(fake) as url:
        with pytest.raises(rtt.RejectedError) as caught:
            await make_client(url, transports=(transport, "xhr-polling")).connect()
    assert caught.value.status == 503
    assert [name for name, _ in fake.cookies] == ["info", endpoint]


async def test_a_transport_answering_404_falls_back() -> None:
    fake = Fake()
    fake.status["websocket"] = 404
    fake.status["xhr_streaming"] = 404
    async with fake_server(fake) as url, make_client(url, transports=TRANSPORTS) as client:
        assert connection(client).transport == "xhr-polling"
    fake.status["xhr"] = 404
    async with fake_server(fake) as url:
        with pytest.raises(
            rtt.ConnectError, match=r"websocket: HTTP 404.*xhr-streaming: HTTP 404.*xhr-polling"
        ):
            await make_client(url, transports=TRANSPORTS).connect()


async def test_a_hanging_transport_leaves_time_for_the_next() -> None:
    fake = Fake()
    fake.hang.add("websocket")
    async with fake_server(fake) as url:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with make_client(url, transports=("websocket", "xhr-polling"), connect_timeout=1.0) as client:
            assert connection(client).transport == "xhr-polling"
            assert loop.time() - start < 1.0


async def test_a_server_that_never_answers_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(5):
            with pytest.raises(rtt.ConnectError, match="timed out"):
                await make_client(f"http://127.0.0.1:{port}/sockjs", connect_timeout=0.3).connect()
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_nothing_listening_is_a_connect_error() -> None:
    async with serve(web.Application()) as base:
        pass  # the port is free again
    with pytest.raises(rtt.ConnectError):
        await make_client(base + "/sockjs").connect()


async def test_not_a_sockjs_endpoint() -> None:
    app = web.Application()

    async def info(request: web.Request) -> web.Response:
        return web.Response(text="<html>hi</html>")

    app.router.add_get("/sockjs/info", info)
    async with serve(app) as base:
        with pytest.raises(rtt.ConnectError, match="not a SockJS endpoint"):
            await make_client(base + "/sockjs").connect()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("first", ["x", 'a["hi"]', "h", 'c[3000,"Go away!"]'])
async def test_a_first_frame_other_than_o_is_a_protocol_error(transport: str, first: str) -> None:
    fake = Fake([first])
    async with fake_server(fake) as url:
        with pytest.raises(rtt.ConnectError, match="protocol error"):
            await make_client(url, transport).connect()
    assert fake.receiving == 1  # no other transport was tried


async def test_a_streaming_response_without_its_prelude_is_a_protocol_error() -> None:
    fake = Fake()
    fake.prelude = b"hhh\n"
    async with fake_server(fake) as url:
        with pytest.raises(rtt.ConnectError, match="prelude"):
            await make_client(url, "xhr-streaming").connect()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_binding_cookie_goes_back_on_every_request(transport: str) -> None:
    fake = Fake()
    async with fake_server(fake) as url, make_client(url, transport) as client:
        await client.send("x")
        await eventually(lambda: fake.payloads)
    names = [name for name, _ in fake.cookies]
    sending = set() if transport == "websocket" else {"xhr_send"}
    assert names[0] == "info" and set(names) == {"info", ENDPOINTS[transport], *sending}
    for name, cookie in fake.cookies[1:]:
        assert f"{BINDING_COOKIE}={TOKEN}" in cookie, name


# -- After the open: hostile frames, limits, failures ---------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("bad", ['a["x"', "a[1]", 'a{"x":1}', "c[3000]", 'c["x","y"]', "q", "o", ""])
async def test_a_malformed_frame_is_a_protocol_error(transport: str, bad: str) -> None:
    async with fake_server(Fake(["o", 'a["before"]', bad, 'a["after"]'])) as url:
        client = make_client(url, transport)
        await client.connect()
        assert await recv(client) == "before"
        assert await closed(client) is rtt.CloseReason.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("frames", "end", "reason"),
    [
        (["o"], (1001, ""), rtt.CloseReason.SHUTDOWN),
        (["o"], (1000, "slow consumer"), rtt.CloseReason.SLOW_CONSUMER),
        (["o"], (1014, ""), rtt.CloseReason.TRANSPORT_ERROR),
        (["o"], (1002, ""), rtt.CloseReason.PROTOCOL_ERROR),
        (["o"], (4000, ""), rtt.CloseReason.APPLICATION),
        (["o"], (4001, "server closed"), rtt.CloseReason.APPLICATION),
        (["o", 'c[3000,"Go away!"]'], (1011, ""), rtt.CloseReason.APPLICATION),
        (["o", 'c[1011,"ping timeout"]'], (1000, ""), rtt.CloseReason.PING_TIMEOUT),
        (["o"], "drop", rtt.CloseReason.TRANSPORT_ERROR),
    ],
    ids=[
        "1001",
        "reason-text",
        "unknown-code",
        "websocket-1002",
        "app-code",
        "app-code-wins",
        "c-frame-wins",
        "rtt-reason-in-c",
        "no-close-frame",
    ],
)
async def test_how_a_websocket_ends_decides_the_reason(
    frames: list[str], end: tuple[int, str] | str, reason: rtt.CloseReason
) -> None:
    fake = Fake(frames)
    fake.ws_end = end
    async with fake_server(fake) as url:
        client = make_client(url, "websocket")
        await client.connect()
        assert await closed(client) is reason


async def test_each_attempt_opens_a_fresh_session() -> None:
    fake = Fake(["o", 'c[1011,"transport error"]'])  # a reason worth reconnecting for
    async with fake_server(fake) as url:
        client = make_client(
            url, "xhr-polling", reconnect={"min_delay": 0.01, "max_delay": 0.02, "jitter": 0}
        )
        await client.connect()
        await eventually(lambda: len(fake.sessions) >= 3)
        await client.close()
    server, session = fake.sessions[0].split("/")[1:]
    assert len(server) == 3 and server.isdigit() and len(session) == 16


def test_the_query_string_follows_every_url() -> None:
    endpoint = rtt_sockjs.client._Endpoint("https://example.com:8443/app/sockjs/?a=b&c=%C3%A9")
    assert endpoint.url("/info") == "https://example.com:8443/app/sockjs/info?a=b&c=%C3%A9"
    assert (
        endpoint.url("/1/2/websocket", websocket=True)
        == "wss://example.com:8443/app/sockjs/1/2/websocket?a=b&c=%C3%A9"
    )


async def test_a_binary_websocket_frame_is_a_protocol_error() -> None:
    async with fake_server(Fake(["o", b"a[]"])) as url:
        client = make_client(url, "websocket")
        await client.connect()
        assert await closed(client) is rtt.CloseReason.PROTOCOL_ERROR


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
@pytest.mark.parametrize(
    "bad",
    [b'a["\xff"]\n', b'a["' + b"x" * PAST_BOUND, b'a["' + b"x" * PAST_BOUND + b'"]\n', b'a["no newline"]'],
    ids=["not-utf8", "endless-line", "long-line", "truncated"],
)
async def test_malformed_http_bodies_are_protocol_errors(transport: str, bad: bytes) -> None:
    fake = Fake(["o", bad])
    fake.later = lambda n: []
    async with fake_server(fake) as url:
        # A line longer than _wire.frame_limit(1) is refused before it is parsed.
        client = make_client(url, transport, max_message_size=1)
        await client.connect()
        assert await closed(client) is rtt.CloseReason.PROTOCOL_ERROR


async def test_a_websocket_frame_past_the_bound_is_message_too_big() -> None:
    async with fake_server(Fake(["o", 'a["' + "x" * 5000 + '"]'])) as url:
        client = make_client(url, "websocket", max_message_size=1)
        await client.connect()
        assert await closed(client) is rtt.CloseReason.MESSAGE_TOO_BIG


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("big", ["123456789", encode_text(b"123456789")], ids=["str", "bytes"])
async def test_an_oversize_message_is_message_too_big_and_never_delivered(transport: str, big: str) -> None:
    frame = "a" + json.dumps(["ok", big, "never"])
    async with fake_server(Fake(["o", frame])) as url:
        client = make_client(url, transport, max_message_size=8)
        await client.connect()
        assert await recv(client) == "ok"
        assert await closed(client) is rtt.CloseReason.MESSAGE_TOO_BIG
        with pytest.raises(rtt.ConnectionClosed):
            await client.recv()


async def test_a_message_of_exactly_the_limit_is_delivered() -> None:
    messages: list[str | bytes] = [bytes(range(8)), "éééé", "\x00" * 8]  # 8 bytes each
    frame = "a" + json.dumps([encode_text(m) for m in messages])
    async with fake_server(Fake(["o", frame])) as url, make_client(url, max_message_size=8) as client:
        assert [await recv(client) for _ in messages] == messages


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
async def test_later_receiving_requests_continue_the_stream(transport: str) -> None:
    fake = Fake()
    fake.later = lambda n: ["h", f'a["{n}"]']  # one frame per response, then the response ends
    async with fake_server(fake) as url, make_client(url, transport) as client:
        assert [await recv(client) for _ in range(5)] == ["2", "3", "4", "5", "6"]


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
async def test_a_full_inbox_stops_receiving(transport: str) -> None:
    fake = Fake()
    fake.later = lambda n: [f'a["{n}"]']
    async with fake_server(fake) as url, make_client(url, transport, max_queue=1) as client:
        await eventually(lambda: fake.receiving > INBOX_SIZE)
        await asyncio.sleep(0.3)
        stopped = fake.receiving
        # The 'o' response, then one message each: in rtt's inbox (max_queue) and its reader's
        # hand, in our inbox and in our reader's hand; then no more requests.
        assert stopped <= 1 + 1 + 1 + INBOX_SIZE + 1
        await asyncio.sleep(0.2)
        assert fake.receiving == stopped
        assert [await recv(client) for _ in range(40)] == [str(n) for n in range(2, 42)]


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
async def test_a_failing_xhr_send_is_a_transport_error(transport: str) -> None:
    fake = Fake()
    fake.status["xhr_send"] = 404
    async with fake_server(fake) as url:
        client = make_client(url, transport)
        await client.connect()
        with pytest.raises(rtt.ConnectionClosed):
            await client.send("lost")
        assert await closed(client) is rtt.CloseReason.TRANSPORT_ERROR


async def test_a_refused_poll_after_the_open_is_a_transport_error() -> None:
    fake = Fake()
    fake.later_status = 500
    async with fake_server(fake) as url:
        client = make_client(url, "xhr-polling")
        await client.connect()
        assert await closed(client) is rtt.CloseReason.TRANSPORT_ERROR


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_silent_server_is_a_transport_error(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtt_sockjs.client, "LIVENESS_TIMEOUT", 0.3)
    async with fake_server(Fake()) as url:
        client = make_client(url, transport)
        await client.connect()
        assert await closed(client) is rtt.CloseReason.TRANSPORT_ERROR


async def test_pause_reading_leaves_websocket_pings_unanswered() -> None:
    fake = Fake()
    async with fake_server(fake) as url, make_client(url, "websocket") as client:
        await fake.ping()
        await eventually(lambda: fake.pongs == 1)
        connection(client).pause_reading()
        await fake.ping()
        await asyncio.sleep(0.3)
        assert fake.pongs == 1


async def test_pause_reading_stops_polling() -> None:
    fake = Fake()
    fake.later = lambda n: ["h"]
    fake.gate = asyncio.Event()
    async with fake_server(fake) as url, make_client(url, "xhr-polling") as client:
        async with asyncio.timeout(5):
            await fake.held.wait()  # a poll waits for its answer: the client has no other one out
        connection(client).pause_reading()
        paused = fake.receiving
        fake.gate.set()
        async with asyncio.timeout(5):
            await fake.answered.wait()  # the paused client has its frame, and must not poll again
        await asyncio.sleep(0.3)  # the bounded window in which nothing more may happen
        assert fake.receiving == paused >= 2


async def test_close_returns_within_close_timeout_when_the_server_hangs() -> None:
    fake = Fake()
    fake.hang.add("xhr_send")
    async with fake_server(fake) as url:
        client = make_client(url, "xhr-polling", close_timeout=0.3)
        await client.connect()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await client.close()
        assert loop.time() - start < 1.0
        assert client.close_reason is rtt.CloseReason.CLIENT_CLOSED


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_closing_a_paused_client_after_the_server_left(transport: str) -> None:
    # Everything is released (the conftest's garbage collection would report a leak).
    fake = Fake()
    fake.later = lambda n: ["h"]
    async with fake_server(fake) as url:
        client = make_client(url, transport, close_timeout=0.5)
        await client.connect()
        connection(client).pause_reading()
        await fake.ping()  # the paused reader holds it, unanswered
        await asyncio.sleep(0.1)
        for request in fake.upgrades:
            assert request.transport is not None
            request.transport.abort()
    async with asyncio.timeout(5):
        await client.close()
    assert client.close_reason is rtt.CloseReason.CLIENT_CLOSED
