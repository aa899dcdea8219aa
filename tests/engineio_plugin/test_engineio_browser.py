"""The browser client (rtt-client.js + rtt-engineio.js over engine.io-client 6) in headless Chromium.

Pages are fulfilled by Playwright at the rtt-engineio server's own origin,
and so are the scripts they load: engine.io-client's UMD bundle from the npm
install in ``tests/node`` (``dist/engine.io.js``, which defines ``eio``) and
rtt-engineio's browser assets, read from the installed packages in the route
handler (``browser_support`` has the browser, the context and the pages).
One Chromium serves the whole module and each test gets a fresh context;
servers run in the test's event loop and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import conftest
import pytest
import trustme
import uvicorn
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
    messages,
    send_all_and_check,
    summary,
    wait_for_event,
)
from tls_support import (
    NAMES,
    bound_socket,
    certificate_authority,
    client_context,
    https_app,
    server_context,
)

import rtt
import rtt_engineio
from rtt.testing import ROUND_TRIP as KIT_ROUND_TRIP
from rtt.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The kit's round trip set (text that looks like Engine.IO framing or JSON, NUL, line
# separators, empty and all 256 byte values) and a text that starts with "b", which a
# long-polling payload must not take for base64 binary.
ROUND_TRIP: list[Message] = [*KIT_ROUND_TRIP, "bAAAA", "ünïcødé ✓ 🚀"]

echo_server = partial(conftest.echo_server, "engineio")
"""An engineio server that records and echoes every message (``conftest.echo_server``)."""


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient(
        "engineio",
        exports=("client", "CloseReason", "engineio"),
        functions=("eio", "rtt.client", "rtt.engineio.register"),
        library=NODE_MODULES / "engine.io-client" / "dist" / "engine.io.js",
        assets_from_disk=True,
    )


def transport_names(server: rtt.Server[Any]) -> set[str]:
    """The Engine.IO transport each socket of ``server`` uses now ("polling" or "websocket")."""
    assert isinstance(server, rtt_engineio.EngineioServer)
    eio = server.engineio_server
    return {"websocket" if eio.sockets[sid].upgraded else "polling" for sid in eio.sockets}


# -- Tests ----------------------------------------------------------------------------


async def test_echoes_text_and_binary(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
        assert await page.evaluate("log") == [["open"]]
        await send_all_and_check(page, received, ROUND_TRIP)
        # Received binary is always a Uint8Array.
        binary = sum(isinstance(message, bytes) for message in ROUND_TRIP)
        assert await page.evaluate("log.filter((e) => e[0] === 'message' && e[1].bytes).length") == binary

        await page.evaluate("client.close()")
        await eventually(lambda: not server.sockets, what="the page's socket to close")
        assert summary(await page.evaluate("log")).endswith("close:client closed")
    assert pages.rtt_errors() == []


async def test_es_module_entry(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.module(server)
        exports = await page.evaluate(
            """() => {
                const { rtt, client, CloseReason, engineio } = window.imported;
                return [rtt === globalThis.rtt, client === rtt.client, CloseReason.SHUTDOWN,
                        engineio === rtt.engineio];
            }"""
        )
        assert exports == [True, True, "shutdown", True]
        await page.evaluate(
            """async (url) => {
                window.client = record(window.imported.client("engineio", url));
                await client.connect();
                client.send("from a module");
            }""",
            server.url,
        )
        await wait_for_event(page, "message")
        assert received == ["from a module"]
        assert await messages(page) == ["from a module"]


async def test_websocket_upgrade_then_echo(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        await eventually(lambda: transport_names(server) == {"websocket"}, what="the upgrade to WebSocket")
        await send_all_and_check(page, received, ROUND_TRIP)


async def test_polling_only(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await pages.connect(page, server.url, transport="engineio-polling")
        await send_all_and_check(page, received, ROUND_TRIP)
        assert transport_names(server) == {"polling"}
        await page.evaluate("client.close()")
        await eventually(lambda: not server.sockets, what="the page's socket to close")
    assert pages.rtt_errors() == []


async def test_polling_only_server(pages: Pages) -> None:
    """A server that allows long-polling only: the default client never tries WebSocket."""
    async with echo_server(transports=("polling",)) as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        await send_all_and_check(page, received, ROUND_TRIP)
        assert transport_names(server) == {"polling"}


async def test_broadcast_reaches_the_other_page(pages: Pages) -> None:
    async with rtt.load("engineio").server(host="127.0.0.1", port=0) as server:

        @server.on("message")
        async def relay(socket: rtt.Socket, data: Message) -> None:
            await server.broadcast(data, exclude=socket.id)

        sender = await pages.classic(server)
        listener = await pages.classic(server)
        await pages.connect(sender, server.url)
        await pages.connect(listener, server.url)
        await eventually(lambda: len(server.sockets) == 2, what="both pages connected")

        await sender.evaluate("() => { client.send('to everyone'); client.send(new Uint8Array([1, 2, 3])); }")
        await wait_for_event(listener, "message", 2)
        assert await messages(listener) == ["to everyone", b"\x01\x02\x03"]
        assert await messages(sender) == []


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_server_closed_is_final_and_comes_after_the_last_message(
    pages: Pages, transports: list[str]
) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
        await eventually(lambda: len(server.sockets) == 1, what="the page connected")
        socket_id = next(iter(server.sockets))
        await server.send(socket_id, "last words")
        await server.disconnect(socket_id)
        await wait_for_event(page, "close")
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "server closed"]
        assert summary(await page.evaluate("log")) == "open message close:server closed"
        assert await messages(page) == ["last words"]


@pytest.mark.parametrize("transports", [["polling", "websocket"], ["polling"], ["websocket"]])
async def test_server_restart_reconnects_and_flushes_the_offline_queue(
    pages: Pages, transports: list[str]
) -> None:
    async with echo_server() as (first, _):
        port = first.address[1]
        page = await pages.classic(first)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await pages.connect(page, first.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
        await eventually(lambda: len(first.sockets) == 1, what="the page connected")
        if "websocket" in transports:  # the CLOSE arrives over WebSocket (after the upgrade if any)
            await eventually(lambda: transport_names(first) == {"websocket"}, what="WebSocket in use")
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


async def test_session_binding_on_the_same_site_over_polling(pages: Pages) -> None:
    """With ``session_binding`` a page of the server's own site keeps its long-polling session."""
    async with echo_server(session_binding=True) as (server, received):
        page = await pages.classic(server)
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await pages.connect(page, server.url, transport="engineio-polling")
        await send_all_and_check(page, received, ["after the handshake", "and more polls"])
        assert transport_names(server) == {"polling"}
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]


@pytest.mark.parametrize("binding", [False, True], ids=["binding-off", "binding-on"])
async def test_page_on_another_site_over_plain_http(pages: Pages, binding: bool) -> None:
    """A page on ``localhost`` talking to the server on ``127.0.0.1`` (another site), long-polling.

    Without binding it works (no cookie is needed). With binding over plain
    HTTP the browser keeps no cookie from a cross-site answer (``SameSite=Lax``;
    ``SameSite=None`` needs HTTPS), so the first poll is refused: the page reads
    ``rejected`` and does not retry, rather than looping on ``transport error``.
    """
    async with echo_server(session_binding=binding) as (server, received):
        _, port = server.address
        page = await pages.classic(f"http://localhost:{port}")
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport="engineio-polling")
        if not binding:
            await send_all_and_check(page, received, ["from another site"])
            return
        await wait_for_event(page, "close")
        assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "rejected"]
        assert summary(await page.evaluate("log")) == "open close:rejected"


# -- Application close codes (SPEC.md 6.3) ------------------------------------------------


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_application_close_reaches_the_page_and_is_final(pages: Pages, transports: list[str]) -> None:
    """The code and text travel as the CLOSE packet's data (``"4001 logged in elsewhere"``)."""
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT}, transport="eio-test")
        await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
        assert transport_names(server) == set(transports)
        await check_application_close_is_final(page, server)
    assert pages.rtt_errors() == []


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_application_close_in_retry_codes_reconnects(pages: Pages, transports: list[str]) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await page.evaluate("(transports) => rtt.engineio.register('eio-test', { transports })", transports)
        await pages.connect(page, server.url, RETRY_4503, transport="eio-test")
        await check_retry_codes_reconnect(page, server, received, (4001, "not this one"))
    assert pages.rtt_errors() == []


# -- Session binding across sites over HTTPS (SPEC.md 8.3) ------------------------------


@asynccontextmanager
async def asgi_https(
    server: rtt_engineio.EngineioServer, ca: trustme.CA, sock: Any, tmp_path: Path
) -> AsyncIterator[None]:
    """Serve ``server.asgi_app()`` under uvicorn over TLS on ``sock``; the ASGI lifespan runs the server."""
    cert = ca.issue_cert(*NAMES)
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    config = uvicorn.Config(
        server.asgi_app(),
        lifespan="on",
        log_level="warning",
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
        timeout_graceful_shutdown=2,
    )
    uv = uvicorn.Server(config)
    serving = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        await eventually(lambda: uv.started or serving.done(), 10, "uvicorn to start")
        assert not serving.done(), "uvicorn did not start"
        yield
    finally:
        uv.should_exit = True
        await asyncio.wait_for(serving, 15)
        sock.close()


@asynccontextmanager
async def aiohttp_https(
    server: rtt_engineio.EngineioServer, ca: trustme.CA, sock: Any, tmp_path: Path
) -> AsyncIterator[None]:
    """Serve an aiohttp application with ``server`` attached over TLS on ``sock``."""
    app = web.Application()
    server.attach(app)
    async with https_app(app, server_context(ca), sock), server:
        yield


Mount = Callable[[rtt_engineio.EngineioServer, trustme.CA, Any, Path], AbstractAsyncContextManager[None]]


@pytest.mark.parametrize("mount", [aiohttp_https, asgi_https], ids=["aiohttp", "asgi"])
async def test_a_page_on_another_site_keeps_its_bound_session_over_https(
    https_pages: Pages, mount: Mount, tmp_path: Path
) -> None:
    """A page on ``https://localhost`` keeps a bound long-polling session on ``https://127.0.0.1``.

    Over HTTPS the binding cookie is ``SameSite=None; Secure; Partitioned``,
    which Chromium keeps for a cross-site request with credentials; a request
    with the session id but without the cookie is refused. TLS is the
    application's server's (aiohttp, or uvicorn for the ASGI mount, with a
    throwaway CA), as for any mounted rtt server.
    """
    ca = certificate_authority()
    sock, port = bound_socket()
    server = rtt.load("engineio").server(host="127.0.0.1", port=port, session_binding=True)
    assert isinstance(server, rtt_engineio.EngineioServer)
    received: list[str | bytes] = []

    @server.on("message")
    async def echo(socket: rtt.Socket, data: str | bytes) -> None:
        received.append(data)
        await server.send(socket.id, data)

    url = f"https://127.0.0.1:{port}/engine.io/"
    async with mount(server, ca, sock, tmp_path):
        page = await https_pages.classic(f"https://localhost:{port}")
        await page.evaluate("rtt.engineio.register('engineio-polling', { transports: ['polling'] })")
        await https_pages.connect(page, url, transport="engineio-polling")
        await send_all_and_check(page, received, ["from another site", "over https", "poll after poll"])
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]

        # The binding is on: the page's session id alone, without the page's cookie, is refused.
        eio = server.engineio_server
        await eventually(lambda: len(eio.sockets) == 1, what="the page's session")
        (sid,) = eio.sockets
        connector = aiohttp.TCPConnector(ssl=client_context(ca))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(url, params={"EIO": "4", "transport": "polling", "sid": sid}) as answer,
        ):
            assert answer.status == 403
            assert "Session binding" in await answer.text()
        # The refused request ended nothing: the page's session goes on.
        await page.evaluate("client.send('still bound to the page')")
        await wait_for_event(page, "message", 4)
        assert received[-1] == "still bound to the page"
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
    assert https_pages.rtt_errors() == []
