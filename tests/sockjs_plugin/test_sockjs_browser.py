"""The browser client (rtt-client.js + rtt-sockjs.js over sockjs-client 1.6) in headless Chromium.

Pages are fulfilled by Playwright at the rtt-sockjs server's own origin, and
so are the scripts they load: sockjs-client's UMD bundle from the npm install
in ``tests/node`` (``dist/sockjs.js``, which defines ``SockJS``) and
rtt-sockjs's browser assets, read from the installed packages in the route
handler (``browser_support`` has the browser, the context and the pages).
Being same-origin, the page's requests carry the server's binding cookie
(``session_binding``) like any page's would; the cross-site cases open the
page on ``localhost`` instead. One Chromium serves the whole module and each test gets a
fresh context; servers run in the test's event loop and listen on 127.0.0.1
only.

The HTTP fallbacks are forced with variants registered through
``rtt.sockjs.register``, and the server's own record of each session's
transport (``SockjsConn.transport_name``) shows they were really used.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiohttp
import conftest
import pytest
from aiohttp import web
from browser_support import (
    FAST_RECONNECT,
    NODE_MODULES,
    RETRY_4503,
    BrowserClient,
    Message,
    Pages,
    check_application_close_is_final,
    check_retry_codes_reconnect,
    from_js,
    messages,
    send_all_and_check,
    summary,
    to_js,
    wait_for_event,
)
from playwright.async_api import Page
from tls_support import bound_socket, certificate_authority, client_context, https_app, server_context

import rtt
import rtt_sockjs
from rtt.codec import decode_text, encode_text
from rtt.testing import ROUND_TRIP as KIT_ROUND_TRIP
from rtt.testing import Recorder, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The kit's round trip set (empty, NUL-starting and unicode text, all 256 byte values),
# text that looks like SockJS frames, rtt's closing notice as an ordinary message (it must
# be escaped, not taken for the notice) and characters sockjs-client escapes itself.
ROUND_TRIP: list[Message] = [
    *KIT_ROUND_TRIP,
    "\x00c",
    "\x00b not base64",
    'a["x"]',
    'c[3000,"Go away!"]',
    "o",
    "h",
    "e\u0301 \u0591 \ufff0 combining and specials",
]

# The HTTP fallbacks, by sockjs-client's names (which the server's session reports too).
FALLBACKS = ["xhr-streaming", "xhr-polling", "eventsource"]

echo_server = partial(conftest.echo_server, "sockjs")
"""A sockjs server that records and echoes every message (``conftest.echo_server``)."""


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient(
        "sockjs",
        exports=("client", "CloseReason", "sockjs"),
        functions=("SockJS", "rtt.client", "rtt.sockjs.register"),
        library=NODE_MODULES / "sockjs-client" / "dist" / "sockjs.js",
        assets_from_disk=True,
    )


async def use_transport(page: Page, transport: str) -> str:
    """Register a variant restricted to one sockjs-client transport; return its name."""
    name = f"sockjs-{transport}"
    await page.evaluate(
        "([name, transport]) => rtt.sockjs.register(name, { transports: [transport] })", [name, transport]
    )
    return name


def transport_names(server: rtt.Server[Any]) -> set[str]:
    """The SockJS transport of each of ``server``'s sessions ("websocket", "xhr-polling", ...)."""
    assert isinstance(server, rtt_sockjs.SockjsServer)
    return {conn.transport_name for conn in server._conns.values()}


# -- Tests ----------------------------------------------------------------------------


async def test_text_encoding_matches_python(pages: Pages) -> None:
    """rtt.sockjs.encodeText/decodeText agree with rtt.codec on messages and on foreign text."""
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        encoded = await page.evaluate(
            "(all) => all.map((message) => rtt.sockjs.encodeText(fromPlain(message)))",
            [to_js(message) for message in ROUND_TRIP],
        )
        assert encoded == [encode_text(message) for message in ROUND_TRIP]
        wire = [
            *encoded,
            "plain",
            "\x00",
            "\x00x",
            "\x00b",
            "\x00bAAA",
            "\x00bA===",
            "\x00b!!!!",
            "\x00bAA=A",
            "\x00bAAAA\n",
        ]
        decoded = await page.evaluate("(all) => all.map((text) => plain(rtt.sockjs.decodeText(text)))", wire)
        assert [from_js(value) for value in decoded] == [decode_text(text) for text in wire]


async def test_register_checks_its_settings(pages: Pages) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        errors = await page.evaluate(
            """() => [
                thrown(() => rtt.sockjs.register("x", { transport: ["websocket"] })),
                thrown(() => rtt.sockjs.register("x", { transports: [] })),
                thrown(() => rtt.sockjs.register("x", { transports: ["polling"] })),
                thrown(() => rtt.sockjs.register("x", { transports: ["websocket", "websocket"] })),
                thrown(() => rtt.sockjs.register("x", { SockJS: "SockJS" })),
                thrown(() => rtt.sockjs.register("x", null)),
            ]"""
        )
        assert [error and error["error"] for error in errors] == ["TypeError"] * len(errors)
        assert "valid settings: transports, SockJS" in errors[0]["message"]
        assert '"xhr-polling"' in errors[2]["message"]
        # Without sockjs-client the attempt fails with a ConnectError that says what to load.
        error = await page.evaluate(
            """async (url) => {
                rtt.sockjs.register("no-sockjs", { SockJS: undefined });
                const saved = globalThis.SockJS;
                delete globalThis.SockJS;
                try {
                    await rtt.client("no-sockjs", url).connect();
                    return null;
                } catch (error) {
                    return plain(error);
                } finally {
                    globalThis.SockJS = saved;
                }
            }""",
            server.url,
        )
        assert error["error"] == "ConnectError"
        assert "dist/sockjs.min.js" in error["message"]


async def test_echoes_text_and_binary_over_websocket(pages: Pages) -> None:
    async with echo_server() as (server, received):
        rec = Recorder().listen(server, "disconnect")
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
        assert await page.evaluate("log") == [["open"]]
        assert transport_names(server) == {"websocket"}  # sockjs-client's first choice
        await send_all_and_check(page, received, ROUND_TRIP)
        # Received binary is always a Uint8Array.
        binary = sum(isinstance(message, bytes) for message in ROUND_TRIP)
        assert await page.evaluate("log.filter((e) => e[0] === 'message' && e[1].bytes).length") == binary

        await page.evaluate("client.close()")
        ((socket, reason),) = await rec.wait("disconnect")
        assert socket.transport == "sockjs"
        assert reason is rtt.CloseReason.CLIENT_CLOSED
        assert summary(await page.evaluate("log")).endswith("close:client closed")
    assert pages.rtt_errors() == []


async def test_es_module_entry(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.module(server)
        exports = await page.evaluate(
            """() => {
                const { rtt, client, CloseReason, sockjs } = window.imported;
                return [rtt === globalThis.rtt, client === rtt.client, CloseReason.SHUTDOWN,
                        sockjs === rtt.sockjs];
            }"""
        )
        assert exports == [True, True, "shutdown", True]
        await page.evaluate(
            """async (url) => {
                window.client = record(window.imported.client("sockjs", url));
                await client.connect();
                client.send("from a module");
                client.send(new Uint8Array([0, 255]));
            }""",
            server.url,
        )
        await wait_for_event(page, "message", 2)
        assert received == ["from a module", b"\x00\xff"]
        assert await messages(page) == ["from a module", b"\x00\xff"]


@pytest.mark.parametrize("transport", FALLBACKS)
async def test_http_fallback_echoes(pages: Pages, transport: str) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        variant = await use_transport(page, transport)
        await pages.connect(page, server.url, transport=variant)
        assert transport_names(server) == {transport}
        await send_all_and_check(page, received, ROUND_TRIP)
        assert transport_names(server) == {transport}
    assert pages.rtt_errors() == []


UPLOAD_PIECE = 32768
UPLOAD_PAUSE = 0.02
"""The slow upload proxy forwards this many bytes, then waits this many seconds."""


@asynccontextmanager
async def slow_upload_proxy(target: tuple[str, int]) -> AsyncIterator[str]:
    """A TCP proxy on 127.0.0.1 to ``target`` whose uploads arrive in pieces; yields its base URL.

    What the browser sends is forwarded ``UPLOAD_PIECE`` bytes at a time, with a pause
    between pieces, as over a slow network: a large request body then reaches the
    server in many reads. Downloads pass unchanged.
    """
    tasks: set[asyncio.Task[None]] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool) -> None:
        try:
            while data := await reader.read(UPLOAD_PIECE if slow else 65536):
                writer.write(data)
                await writer.drain()
                if slow:
                    await asyncio.sleep(UPLOAD_PAUSE)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve(down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            down_writer.close()
            return
        await asyncio.gather(pump(down_reader, up_writer, True), pump(up_reader, down_writer, False))

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    proxy = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        host, port = proxy.sockets[0].getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        proxy.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await proxy.wait_closed()


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "xhr-streaming"])
async def test_large_messages_over_a_slow_upload(pages: Pages, transport: str) -> None:
    """Messages of about max_message_size (1 MiB) travel both ways when uploads arrive in pieces.

    (A large xhr_send body then reaches the server in many reads: the server must read it
    whole, not parse what one read returned.)
    """
    big_text = "ü" * 500_000  # 1,000,000 UTF-8 bytes
    big_bytes = bytes(range(256)) * 3000  # 768,000 bytes, 1,024,002 characters as rtt's text
    async with echo_server() as (server, received), slow_upload_proxy(server.address) as base:
        page = await pages.classic(base)
        variant = await use_transport(page, transport)
        await pages.connect(page, f"{base}/sockjs", transport=variant)
        # One at a time: two queued at once would pass the server's outbound_limit (1 MiB).
        await page.evaluate("() => client.send('ü'.repeat(500000))")
        await wait_for_event(page, "message", 1)
        await page.evaluate("() => client.send(new Uint8Array(768000).map((_, i) => i % 256))")
        await wait_for_event(page, "message", 2)
        assert received == [big_text, big_bytes]
        # Checked in the page: a million numbers are slow to hand over to Python.
        echoed = await page.evaluate(
            """() => {
                const [text, bytes] = log.filter((e) => e[0] === "message").map((e) => e[1]);
                return [text === "ü".repeat(500000), bytes.bytes.length,
                        bytes.bytes.every((value, i) => value === i % 256)];
            }"""
        )
        assert echoed == [True, len(big_bytes), True]
        assert await page.evaluate("log.map((event) => event[0]).join(' ')") == "open message message"
        await page.evaluate("client.close()")
        await eventually(lambda: not server.sockets, what="the page's socket to close")


async def test_broadcast_reaches_the_other_page(pages: Pages) -> None:
    async with rtt.load("sockjs").server(host="127.0.0.1", port=0) as server:

        @server.on("message")
        async def relay(socket: rtt.Socket, data: Message) -> None:
            await server.broadcast(data, exclude=socket.id)

        sender = await pages.classic(server)
        listener = await pages.classic(server)
        other = await pages.classic(server)
        await pages.connect(sender, server.url)
        await pages.connect(listener, server.url)
        await pages.connect(other, server.url, transport=await use_transport(other, "xhr-polling"))
        await eventually(lambda: len(server.sockets) == 3, what="all pages connected")

        await sender.evaluate("() => { client.send('to everyone'); client.send(new Uint8Array([1, 2, 3])); }")
        await wait_for_event(listener, "message", 2)
        await wait_for_event(other, "message", 2)
        assert await messages(listener) == ["to everyone", b"\x01\x02\x03"]
        assert await messages(other) == ["to everyone", b"\x01\x02\x03"]
        assert await messages(sender) == []


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "xhr-streaming"])
async def test_server_closed_is_final_and_comes_after_the_last_message(pages: Pages, transport: str) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        variant = await use_transport(page, transport)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport=variant)
        socket_id = next(iter(server.sockets))
        await server.send(socket_id, "last words")
        await server.disconnect(socket_id)
        await wait_for_event(page, "close")
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "server closed"]
        await asyncio.sleep(0.5)  # many reconnection delays of FAST_RECONNECT: none may start
        assert summary(await page.evaluate("log")) == "open message close:server closed"
        assert await messages(page) == ["last words"]
        assert not server.sockets
    assert pages.rtt_errors() == []


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "xhr-streaming", "eventsource"])
async def test_client_close_is_client_closed_on_the_server(pages: Pages, transport: str) -> None:
    async with echo_server() as (server, received):
        rec = Recorder().listen(server, "disconnect")
        page = await pages.classic(server)
        variant = await use_transport(page, transport)
        await pages.connect(page, server.url, transport=variant)
        # Sent just before the close: the closing notice goes after it.
        await page.evaluate("() => { client.send('before closing'); client.close(); }")
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.CLIENT_CLOSED
        assert received == ["before closing"]
        assert summary(await page.evaluate("log")) == "open close:client closed"
        assert not server.sockets
    assert pages.rtt_errors() == []


async def test_refused_connection_is_a_connect_error(pages: Pages) -> None:
    """sockjs-client hides the HTTP status of a refusal: ConnectError, not RejectedError."""
    async with echo_server(authorize=lambda handshake: False) as (server, _):
        page = await pages.classic(server)
        variant = await page.evaluate(
            "() => { rtt.sockjs.register('sockjs-two', { transports: ['websocket', 'xhr-polling'] }); "
            "return 'sockjs-two'; }"
        )
        error = await page.evaluate(
            """async ([transport, url]) => {
                window.client = record(rtt.client(transport, url));
                try { await client.connect(); return null; } catch (error) { return plain(error); }
            }""",
            [variant, server.url],
        )
        assert error is not None and error["error"] == "ConnectError", error
        assert "2000" in error["message"]  # sockjs-client's "All transports failed"
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "transport error"]
        assert not server.sockets
        assert server.stats.rejected == 2  # once per transport tried


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "xhr-streaming"])
async def test_server_restart_reconnects_and_flushes_the_offline_queue(pages: Pages, transport: str) -> None:
    async with echo_server() as (first, _):
        port = first.address[1]
        page = await pages.classic(first)
        variant = await use_transport(page, transport)
        await pages.connect(page, first.url, {"reconnect": FAST_RECONNECT}, transport=variant)
        # Leaving the block shuts the server down: the page sees "shutdown" and reconnects.
    await wait_for_event(page, "reconnecting")
    await page.evaluate(
        """() => {
            if (client.state !== "reconnecting") throw new Error(client.state);
            client.send("queued 1");
            client.send(new Uint8Array([1, 2]));
            client.send("queued 2");
        }"""
    )
    assert await page.evaluate("client.unsent.map(plain)") == ["queued 1", {"bytes": [1, 2]}, "queued 2"]

    await wait_for_event(page, "error")  # at least one attempt failed while the port was closed
    async with echo_server(port=port) as (second, received):
        await wait_for_event(page, "reconnected")
        # Sent after `reconnected`: must come after the whole queue.
        await page.evaluate("client.send('after')")
        await wait_for_event(page, "message", 4)
        assert received == ["queued 1", b"\x01\x02", "queued 2", "after"]
        assert await page.evaluate("[client.state, client.unsent.length]") == ["open", 0]
        assert transport_names(second) == {transport}

        log = await page.evaluate("log")
        expected = r"open close:shutdown (reconnecting error )+reconnecting open reconnected( message)*"
        assert re.fullmatch(expected, summary(log)), summary(log)
        attempts = [event for event in log if event[0] == "reconnecting"]
        assert [event[1] for event in attempts] == list(range(1, len(attempts) + 1))
        assert ["reconnected", len(attempts)] in log
        assert {event[1]["error"] for event in log if event[0] == "error"} == {"ConnectError"}
        assert await messages(page) == ["queued 1", b"\x01\x02", "queued 2", "after"]
        await page.evaluate("client.close()")
        await eventually(lambda: not second.sockets, what="the page's socket to close")
    assert pages.rtt_errors() == []


# -- Session binding (SPEC.md 8.3) ------------------------------------------------------


@pytest.mark.parametrize("transport", FALLBACKS)
async def test_session_binding_on_the_same_site(pages: Pages, transport: str) -> None:
    """With ``session_binding`` a page of the server's own site keeps its HTTP session."""
    async with echo_server(session_binding=True) as (server, received):
        page = await pages.classic(server)
        variant = await use_transport(page, transport)
        await pages.connect(page, server.url, transport=variant)
        await send_all_and_check(page, received, ["after the open", "and more requests"])
        assert transport_names(server) == {transport}
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]


@pytest.mark.parametrize("binding", [False, True], ids=["binding-off", "binding-on"])
async def test_page_on_another_site_over_plain_http(pages: Pages, binding: bool) -> None:
    """A page on ``localhost`` talking to the server on ``127.0.0.1`` (another site), xhr-polling.

    Without binding it works (no cookie is needed). With binding over plain
    HTTP the browser keeps no cookie from a cross-site answer (``SameSite=Lax``;
    ``SameSite=None`` needs HTTPS), so the first poll after the open is refused
    with the close frame ``rejected``: the page reads it and does not retry.
    """
    async with echo_server(session_binding=binding) as (server, received):
        _, port = server.address
        page = await pages.classic(f"http://localhost:{port}")
        variant = await use_transport(page, "xhr-polling")
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport=variant)
        if not binding:
            await send_all_and_check(page, received, ["from another site"])
            return
        await wait_for_event(page, "close")
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "rejected"]
        assert summary(await page.evaluate("log")) == "open close:rejected"


# -- Application close codes (SPEC.md 6.3) ------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
async def test_application_close_reaches_the_page_and_is_final(pages: Pages, transport: str) -> None:
    """SockJS's c[4001,"logged in elsewhere"] is sockjs-client's close event code and reason."""
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        variant = await use_transport(page, transport)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport=variant)
        assert transport_names(server) == {transport}
        await check_application_close_is_final(page, server)
    assert pages.rtt_errors() == []


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
async def test_application_close_in_retry_codes_reconnects(pages: Pages, transport: str) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        variant = await use_transport(page, transport)
        await pages.connect(page, server.url, RETRY_4503, transport=variant)
        # A code not in retryCodes is final; SockJS's own 3000 "Go away!" is an application's too.
        await check_retry_codes_reconnect(page, server, received, (3000, "Go away!"))
    assert pages.rtt_errors() == []


# -- Session binding across sites over HTTPS (SPEC.md 8.3) ------------------------------


@pytest.mark.parametrize("transport", ["xhr-polling", "xhr-streaming"])
async def test_a_page_on_another_site_keeps_its_bound_session_over_https(
    https_pages: Pages, transport: str
) -> None:
    """A page on ``https://localhost`` keeps a bound session on ``https://127.0.0.1``.

    Over HTTPS the binding cookie is ``SameSite=None; Secure; Partitioned``,
    which Chromium keeps for a cross-site request with credentials; a POST
    with the session id but without the cookie is refused. TLS is the
    application's server's (aiohttp with a throwaway CA).
    """
    ca = certificate_authority()
    sock, port = bound_socket()
    server = rtt.load("sockjs").server(host="127.0.0.1", port=port, session_binding=True)
    assert isinstance(server, rtt_sockjs.SockjsServer)
    received: list[str | bytes] = []

    @server.on("message")
    async def echo(socket: rtt.Socket, data: str | bytes) -> None:
        received.append(data)
        await server.send(socket.id, data)

    app = web.Application()
    server.attach(app)
    url = f"https://127.0.0.1:{port}/sockjs"
    async with https_app(app, server_context(ca), sock), server:
        page = await https_pages.classic(f"https://localhost:{port}")
        variant = await use_transport(page, transport)
        await https_pages.connect(page, url, transport=variant)
        await send_all_and_check(page, received, ["from another site", "over https", "request after request"])
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
        await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
        (socket_id,) = server.sockets
        conn = server._conns[socket_id]
        assert conn.transport_name == transport

        # The binding is on: the page's session id alone, without the page's cookie, is refused.
        connector = aiohttp.TCPConnector(ssl=client_context(ca))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.post(f"{url}/000/{conn.session.id}/xhr_send", data='["as the page"]') as answer,
        ):
            assert answer.status == 403
        # The refused request ended nothing: the page's session goes on.
        await page.evaluate("client.send('still bound to the page')")
        await wait_for_event(page, "message", 4)
        assert received[-1] == "still bound to the page"
        assert "as the page" not in received
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
    assert https_pages.rtt_errors() == []
