"""The browser client's resume (SPEC.md 17.4, 4.7) in headless Chromium, against rtt-ws with resume on.

A smoke test of the JavaScript resume layer (``rtt-client.js``) against the
real server: the welcome, the hello, escapes and acks on a live connection,
then a drop through :class:`rtt.testing.Proxy` with numbered messages both
ways. The state machine itself is tested in Node (``tests/js/resume.test.mjs``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import conftest
import pytest
from browser_support import FAST_RECONNECT, WAIT_MS, BrowserClient, Pages, from_js, messages, summary

import rtt
from rtt.testing import Proxy, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

echo_server = partial(conftest.echo_server, "ws", resume_window=30)
"""A ws server with resume on that records and echoes every message (``conftest.echo_server``)."""

COUNT = 50
"""Messages each side sends before the drop, and again after it."""

# The page records session_lost too (the recorder of browser_support predates it).
RECORD_LOSSES = "client.on('session_lost', (detail) => log.push(['session_lost', detail]))"


@pytest.fixture
def browser_client() -> BrowserClient:
    return BrowserClient("ws", exports=("client",))


async def test_a_page_gets_the_servers_socket_id_and_messages_cross_both_ways(pages: Pages) -> None:
    async with echo_server() as (server, received):
        page = await pages.classic(server)
        await pages.connect(page, server.url)
        await page.evaluate(RECORD_LOSSES)
        await eventually(lambda: len(server.sockets) == 1, what="the page's socket")
        (socket,) = server.sockets.values()
        await page.wait_for_function("client.socketId !== null", timeout=WAIT_MS)
        assert await page.evaluate("[client.socketId, client.resumed]") == [socket.id, False]
        assert "rtt_resume" not in socket.query

        # Text that starts with U+0000 is escaped on the wire and arrives as written.
        sent: list[str | bytes] = ["plain", "\x00 starts with NUL", "\x00A12", b"\x00W{}", "last"]
        await page.evaluate(
            "(all) => all.forEach((m) => client.send(fromPlain(m)))",
            [{"bytes": list(m)} if isinstance(m, bytes) else m for m in sent],
        )
        await page.wait_for_function("log.filter((e) => e[0] === 'message').length >= 5", timeout=WAIT_MS)
        assert received == sent
        assert await messages(page) == sent
        assert summary(await page.evaluate("log")) == "open " + " ".join(["message"] * len(sent))
    assert pages.rtt_errors() == []


async def test_a_drop_loses_and_doubles_nothing_either_way(pages: Pages) -> None:
    away: list[str] = []
    back: list[str] = []
    gone: list[Any] = []
    async with echo_server() as (server, received):
        server.on("away", lambda socket, reason: away.append(socket.id))
        server.on("back", lambda socket: back.append(socket.id))
        server.on("disconnect", lambda socket, reason: gone.append(reason))
        async with Proxy(*server.address) as proxy:
            page = await pages.classic(server)
            await pages.connect(page, proxy.url_for(server.url), {"reconnect": FAST_RECONNECT})
            await page.evaluate(RECORD_LOSSES)
            await page.wait_for_function("client.socketId !== null", timeout=WAIT_MS)
            socket_id = await page.evaluate("client.socketId")
            assert list(server.sockets) == [socket_id]

            async def both_send(first: int) -> None:
                numbers = list(range(first, first + COUNT))
                await page.evaluate("(ns) => ns.forEach((n) => client.send(`c-${n}`))", numbers)
                for n in numbers:
                    await server.send(socket_id, f"s-{n}")

            await both_send(1)
            assert proxy.sever() >= 1
            await both_send(1 + COUNT)  # while the connection is down, or not yet noticed
            await page.wait_for_function("log.some((e) => e[0] === 'reconnected')", timeout=WAIT_MS)
            # A last round trip: in order, so once it is back everything sent before it is too.
            await page.evaluate("client.send('end')")
            await page.wait_for_function(
                "log.some((e) => e[0] === 'message' && e[1] === 'end')", timeout=WAIT_MS
            )

            got = [from_js(m) for m in await messages(page)]
            numbered = [f"c-{n}" for n in range(1, 2 * COUNT + 1)]
            assert received == [*numbered, "end"]
            assert [m for m in got if isinstance(m, str) and m.startswith("c-")] == numbered
            assert [m for m in got if isinstance(m, str) and m.startswith("s-")] == [
                f"s-{n}" for n in range(1, 2 * COUNT + 1)
            ]
            assert len(got) == 4 * COUNT + 1
            events = summary([e for e in await page.evaluate("log") if e[0] != "message"])
            assert events == "open close:transport error reconnecting open reconnected"
            assert await page.evaluate("[client.socketId, client.resumed]") == [socket_id, True]
            assert away == back == [socket_id]
            assert gone == []
    assert pages.rtt_errors() == []


async def test_a_session_past_its_window_is_reported_lost_with_a_new_socket_id(pages: Pages) -> None:
    gone: list[tuple[str, rtt.CloseReason]] = []
    async with conftest.echo_server("ws", resume_window=0.5) as (server, received):
        server.on("disconnect", lambda socket, reason: gone.append((socket.id, reason)))
        async with Proxy(*server.address) as proxy:
            page = await pages.classic(server)
            await pages.connect(page, proxy.url_for(server.url), {"reconnect": FAST_RECONNECT})
            await page.evaluate(RECORD_LOSSES)
            await page.wait_for_function("client.socketId !== null", timeout=WAIT_MS)
            old = await page.evaluate("client.socketId")

            proxy.refuse()  # the client cannot come back in time
            proxy.sever()
            await eventually(lambda: gone == [(old, rtt.CloseReason.SESSION_LOST)], what="the session's end")
            await page.evaluate("client.send('queued while away')")
            proxy.refuse(False)
            await page.wait_for_function("log.some((e) => e[0] === 'reconnected')", timeout=WAIT_MS)

            new = await page.evaluate("client.socketId")
            assert new != old
            assert list(server.sockets) == [new]
            log = await page.evaluate("log")
            assert [e[0] for e in log if e[0] != "message"][-3:] == ["open", "session_lost", "reconnected"]
            assert ["session_lost", "unknown"] in log
            assert await page.evaluate("[client.resumed, client.unconfirmed]") == [False, []]
            # The offline queue goes to the new session.
            await page.wait_for_function("log.some((e) => e[0] === 'message')", timeout=WAIT_MS)
            assert received == ["queued while away"]
            assert await messages(page) == ["queued while away"]
    assert pages.rtt_errors() == []
