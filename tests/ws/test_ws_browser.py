"""The browser client (rtt-client.js + rtt-ws.js) in real headless Chromium (SPEC.md 4, 5, 6, 7.2).

Pages are fulfilled by Playwright at the rtt-ws server's own origin and load
the client files the server hands out under ``/rtt/`` (``browser_support``
has the browser, the context and the pages). One Chromium serves the whole
module and each test gets a fresh context; servers run in the test's event
loop and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import re
from functools import partial

import conftest
import pytest
from browser_support import (
    FAST_RECONNECT,
    RETRY_4503,
    WAIT_MS,
    BrowserClient,
    Message,
    Pages,
    check_application_close_is_final,
    check_retry_codes_reconnect,
    from_js,
    messages,
    summary,
    to_js,
    wait_for_event,
)

import rtt
from rtt.testing import ROUND_TRIP, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

echo_server = partial(conftest.echo_server, "ws")
"""A ws server that records and echoes every message (``conftest.echo_server``)."""


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient("ws", exports=("client", "Client", "CloseReason", "StateError"))


# -- Connecting and messages (SPEC.md 4.1, 5) ----------------------------------------


async def test_classic_script_echoes_text_and_binary(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        assert await page.evaluate("[client.state, client.closeReason]") == ["open", None]
        assert await page.evaluate("log") == [["open"]]

        await page.evaluate(
            "(all) => all.forEach((message) => client.send(fromPlain(message)))",
            [to_js(message) for message in ROUND_TRIP],
        )
        await wait_for_event(page, "message", len(ROUND_TRIP))
        assert received == list(ROUND_TRIP)  # list equality also compares str vs bytes
        assert await messages(page) == list(ROUND_TRIP)
        assert await page.evaluate("log.filter((e) => e[0] === 'message').every((e) => e.length === 2)")
    assert pages.rtt_errors() == []


async def test_every_binary_view_is_sent_as_its_bytes(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        await page.evaluate(
            """() => {
                const all = new Uint8Array(256).map((_, i) => i);
                client.send(all.buffer);                                   // ArrayBuffer
                client.send(all.subarray(250));                            // a view with an offset
                client.send(new DataView(all.buffer, 1, 2));               // DataView
                client.send(new Uint16Array([0x0102, 0x0304]).subarray(1)); // other element sizes
                client.send(new ArrayBuffer(0));
            }"""
        )
        await wait_for_event(page, "message", 5)
        assert received == [bytes(range(256)), bytes(range(250, 256)), b"\x01\x02", b"\x04\x03", b""]
        # Received binary is always a Uint8Array, whatever was sent.
        assert await page.evaluate("log.slice(1).every((e) => e[1].bytes !== undefined)")


async def test_es_module_entry_exports_the_client(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.module(server)
        exports = await page.evaluate(
            """() => {
                const { rtt, client, Client, CloseReason, StateError } = window.imported;
                return {
                    sameGlobal: rtt === globalThis.rtt,
                    named: client === rtt.client && Client === rtt.Client
                        && CloseReason === rtt.CloseReason && StateError === rtt.StateError,
                    frozen: Object.isFrozen(CloseReason),
                };
            }"""
        )
        assert exports == {"sameGlobal": True, "named": True, "frozen": True}
        await page.evaluate(
            """async (url) => {
                window.client = record(window.imported.client("ws", url));
                await client.connect();
                client.send("from a module");
                client.send(new Uint8Array([0, 255]));
            }""",
            server.url,
        )
        await wait_for_event(page, "message", 2)
        assert received == ["from a module", b"\x00\xff"]
        assert await messages(page) == ["from a module", b"\x00\xff"]


async def test_loading_the_core_twice_keeps_registered_transports(pages: Pages) -> None:
    # A page may have the classic scripts and then import the module as well.
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        result = await page.evaluate(
            """async () => {
                const before = rtt.Client;
                const module = await import("/rtt/rtt-ws.mjs");
                return [module.default === rtt, module.Client === before, typeof rtt.client("ws", "ws://x/")];
            }"""
        )
        assert result == [True, True, "object"]


async def test_broadcast_reaches_the_other_page(pages: Pages) -> None:
    async with rtt.load("ws").server() as server:

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


async def test_plain_websocket_talks_to_the_rtt_server(pages: Pages) -> None:
    # No rtt JavaScript at all: the ws wire is plain WebSocket frames.
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        echoed = await page.evaluate(
            """(url) => new Promise((resolve, reject) => {
                const ws = new WebSocket(url);
                ws.binaryType = "arraybuffer";
                const got = [];
                ws.onopen = () => { ws.send("plain text"); ws.send(new Uint8Array([9, 8, 7])); };
                ws.onmessage = (event) => {
                    got.push(typeof event.data === "string" ? event.data : plain(new Uint8Array(event.data)));
                    if (got.length === 2) ws.close(1000);
                };
                ws.onclose = () => resolve(got);
                ws.onerror = () => reject(new Error("websocket error"));
            })""",
            server.url,
        )
        assert received == ["plain text", b"\t\x08\x07"]
        assert [from_js(value) for value in echoed] == ["plain text", b"\t\x08\x07"]


# -- Reconnection and the offline queue (SPEC.md 4.2, 4.4) ---------------------------


async def test_server_restart_reconnects_and_flushes_the_offline_queue(pages: Pages) -> None:
    async with echo_server() as (first, _):
        port = first.address[1]
        page = await pages.classic(first)
        await pages.connect(page, first.url, {"reconnect": FAST_RECONNECT})
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
        assert all(0 <= event[2] <= FAST_RECONNECT["maxDelay"] for event in attempts)
        assert ["reconnected", len(attempts)] in log
        assert {event[1]["error"] for event in log if event[0] == "error"} == {"ConnectError"}
        # The flush happened before `open`: the echoes of the queue follow it.
        assert await messages(page) == ["queued 1", b"\x01\x02", "queued 2", "after"]
        await page.evaluate("client.close()")
        await eventually(lambda: not second.sockets, what="the page's socket to close")
    assert pages.rtt_errors() == []


async def test_reconnect_failed_after_max_attempts(pages: Pages) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"reconnect": {**FAST_RECONNECT, "maxAttempts": 3}})
        # Queue a message while reconnecting (from the page: the attempts are quick).
        await page.evaluate("client.on('reconnecting', (n) => n === 1 && client.send('never sent'))")
    await wait_for_event(page, "reconnect_failed")

    log = await page.evaluate("log")
    assert summary(log) == (
        "open close:shutdown reconnecting error reconnecting error reconnecting error reconnect_failed"
    )
    assert log[-1] == ["reconnect_failed", 3]
    assert [event[1] for event in log if event[0] == "reconnecting"] == [1, 2, 3]
    state = await page.evaluate(
        """async () => [
            client.state,
            client.closeReason,
            await client.waitClosed(),
            thrown(() => client.send("late")),
            client.unsent,
        ]"""
    )
    assert state[:3] == ["closed", "transport error", "transport error"]
    assert state[3]["error"] == "StateError"
    assert state[4] == ["never sent"]


async def test_server_closed_is_final(pages: Pages) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT})
        await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
        await server.disconnect(next(iter(server.sockets)))
        await wait_for_event(page, "close")
        await asyncio.sleep(0.3)  # longer than a reconnect delay: nothing else may happen
        assert await page.evaluate("[log, client.state, client.closeReason]") == [
            [["open"], ["close", "server closed"]],
            "closed",
            "server closed",
        ]


async def test_application_close_reaches_the_page_and_is_final(pages: Pages) -> None:  # SPEC 6.3
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT})
        await check_application_close_is_final(page, server)
    assert pages.rtt_errors() == []


async def test_application_close_in_retry_codes_reconnects(pages: Pages) -> None:  # SPEC 6.3, 7
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url, RETRY_4503)
        await check_retry_codes_reconnect(page, server, received, (4001, "not this one"))
    assert pages.rtt_errors() == []


async def test_plain_websocket_sees_the_application_close(pages: Pages) -> None:
    # No rtt JavaScript: the application's code and text are the close frame's own.
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await page.evaluate(
            """(url) => {
                window.plainClose = new Promise((resolve, reject) => {
                    const ws = new WebSocket(url);
                    ws.onopen = () => ws.send("hello");
                    ws.onclose = (event) => resolve([event.code, event.reason, event.wasClean]);
                    ws.onerror = () => reject(new Error("websocket error"));
                });
            }""",
            server.url,
        )
        await eventually(lambda: len(server.sockets) == 1, what="the plain socket")
        text = "déjà connecté ailleurs"
        await server.disconnect(next(iter(server.sockets)), code=4001, reason=text)
        assert await page.evaluate("plainClose") == [4001, text, True]


async def test_deliberate_close_fires_close_and_nothing_after(pages: Pages) -> None:
    reasons: list[rtt.CloseReason] = []
    async with echo_server() as (server, _):
        server.on("disconnect", lambda socket, reason: reasons.append(reason))
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"reconnect": FAST_RECONNECT})
        await page.evaluate("() => { client.close(); client.close(); }")
        assert await page.evaluate("[log, client.state, client.closeReason]") == [
            [["open"], ["close", "client closed"]],
            "closed",
            "client closed",
        ]
        await eventually(lambda: reasons == [rtt.CloseReason.CLIENT_CLOSED], what="the server's disconnect")
        await asyncio.sleep(0.3)
        assert await page.evaluate("log.length") == 2


async def test_first_attempt_is_not_retried(pages: Pages) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        url = server.url
    result = await page.evaluate(
        """async (url) => {
            window.client = record(rtt.client("ws", url, { reconnect: { minDelay: 0.01 } }));
            const connecting = client.connect();
            const state = client.state;
            try { await connecting; return "connected"; }
            catch (error) { return [state, plain(error), client.state, client.closeReason, log]; }
        }""",
        url,
    )
    assert result[0] == "connecting"
    assert result[1]["error"] == "ConnectError"
    assert result[2:] == ["closed", "transport error", []]


async def test_connect_timeout(pages: Pages) -> None:
    # A TCP server that accepts and never answers the handshake.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = listener.sockets[0].getsockname()[1]
        async with echo_server() as (server, _):
            page = await pages.classic(server)
            result = await page.evaluate(
                """async (url) => {
                    const client = rtt.client("ws", url, { connectTimeout: 0.3 });
                    const started = performance.now();
                    try { await client.connect(); return "connected"; }
                    catch (error) { return [plain(error), performance.now() - started, client.state]; }
                }""",
                f"ws://127.0.0.1:{port}/",
            )
    finally:
        listener.close()
        await listener.wait_closed()
    error, elapsed_ms, state = result
    assert error["error"] == "ConnectError" and "timed out after 0.3 s" in error["message"]
    assert 250 <= elapsed_ms < 2000
    assert state == "closed"


@pytest.mark.parametrize(
    "close",
    [
        pytest.param("client.close()", id="in-handler"),
        pytest.param("setTimeout(() => client.close(), 20)", id="during-wait"),
    ],
)
async def test_close_while_reconnecting_stops_for_good(pages: Pages, close: str) -> None:
    async with echo_server() as (server, _):
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"reconnect": {"minDelay": 0.2, "maxDelay": 0.2, "jitter": 0}})
        # Closing from the page, so that it surely happens before the 0.2 s wait ends.
        await page.evaluate(f"client.on('reconnecting', () => {{ {close}; }})")
    await page.wait_for_function("client.state === 'closed'", timeout=WAIT_MS)
    await asyncio.sleep(0.4)  # past the reconnect delay
    log = await page.evaluate("log")
    assert summary(log) == "open close:shutdown reconnecting"
    assert await page.evaluate("[client.state, client.closeReason]") == ["closed", "client closed"]


# -- Limits, options and errors (SPEC.md 4.6, 5.2, 7.2, 9) ---------------------------


async def test_message_size_limits_in_both_directions(pages: Pages) -> None:
    reasons: list[rtt.CloseReason] = []
    async with echo_server() as (server, received):
        server.on("disconnect", lambda socket, reason: reasons.append(reason))
        page = await pages.classic(server)
        await pages.connect(page, server.url, {"maxMessageSize": 1000, "reconnect": FAST_RECONNECT})
        errors = await page.evaluate(
            """() => [
                thrown(() => client.send("x".repeat(1000))),
                thrown(() => client.send(new Uint8Array(1000))),
                thrown(() => client.send("é".repeat(501))),      // 501 characters, 1002 UTF-8 bytes
                thrown(() => client.send("🚀".repeat(251))),     // surrogate pairs: 1004 bytes
                thrown(() => client.send(new Uint8Array(1001))),
            ]"""
        )
        assert errors[:2] == [None, None]
        assert [error["error"] for error in errors[2:]] == ["MessageTooBigError"] * 3
        assert "1002 bytes exceeds maxMessageSize=1000" in errors[2]["message"]
        assert "1004 bytes" in errors[3]["message"]
        await eventually(lambda: len(received) == 2, what="the two messages at the limit")

        # A message over the client's own limit is not delivered and drops the connection.
        socket_id = next(iter(server.sockets))
        await wait_for_event(page, "message", 2)
        await server.send(socket_id, "y" * 1001)
        await wait_for_event(page, "reconnected")
        log = await page.evaluate("log")
        assert summary(log) == "open message message close:message too big reconnecting open reconnected"
        # The browser cannot send close code 1009; rtt's reason text still tells the server why.
        assert reasons == [rtt.CloseReason.MESSAGE_TOO_BIG]


async def test_offline_queue_bound_while_connecting(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        result = await page.evaluate(
            """async (url) => {
                window.client = record(rtt.client("ws", url, { offlineQueueSize: 2 }));
                const before = thrown(() => client.send("too early"));
                const connecting = client.connect();
                client.send("a");
                client.send(new Uint8Array([7]));
                const full = thrown(() => client.send("c"));
                const unsent = client.unsent.map(plain);
                await connecting;
                client.send("d");
                return [before, full, unsent, client.unsent.length];
            }""",
            server.url,
        )
        before, full, unsent, left = result
        assert before["error"] == "StateError" and "idle" in before["message"]
        assert full["error"] == "OfflineQueueFullError" and "(2 messages)" in full["message"]
        assert unsent == ["a", {"bytes": [7]}] and left == 0
        await eventually(lambda: len(received) == 3, what="the flushed queue")
        assert received == ["a", b"\x07", "d"]
