"""The browser client's resume through 20 drops on every wire, in Chromium (SPEC.md 17, issue 17).

The case of ``test_resume_drops.py`` with a page instead of rtt's Python
client: a server with ``resume_window`` echoes each message and pushes a
numbered tick to each of its sockets at a steady rate; a page in headless
Chromium reaches it through the loopback proxy (``rtt.testing.Proxy``) with
the browser client (``rtt-client.js`` and the transport's adapter) and sends
numbered messages at the same rate. The proxy drops the connection 20 times,
alternating a reset of both sides and a black hole whose client side is cut a
moment later. Afterwards the server has handled every message once and in
order, the page has received every echo and every tick once and in order, the
socket kept its id, and neither side saw the session end.

Chromium sends a request again by itself when the keep-alive connection it
reused was reset before the response came; the HTTP fallbacks (Engine.IO's
long-polling, SockJS's xhr and eventsource) must not let such a request make
the session go on past a gap or a repeat (SPEC.md 12.3, 12.4).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

import rtt
from rtt.testing import Proxy, Recorder

pytest.importorskip("playwright", reason="the browser cases need Playwright (and Debian's chromium)")

from browser_support import NODE_MODULES, WAIT_MS, BrowserClient, Pages

from .resume_support import DROPS, HTTP_RATE, PING, RATE, WAIT, Traffic, drop, running, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The pause between drops.
BETWEEN = 0.4
RECONNECT = {"minDelay": 0.02, "maxDelay": 0.1, "factor": 2, "jitter": 0}


@dataclass(frozen=True)
class BrowserWire:
    """One transport's browser client, restricted to one of its library's wire transports."""

    name: str
    """The rtt transport."""
    transports: tuple[str, ...] = ()
    """The library's transports the page registers its variant with (empty: the adapter's default)."""
    http: bool = False
    """Every message may cost an HTTP request: traffic at ``HTTP_RATE``."""

    @property
    def id(self) -> str:
        return "-".join((self.name, *self.transports))

    def client(self) -> BrowserClient:
        """How the page loads the client (the library's bundle first, for engineio and sockjs)."""
        if self.name == "engineio":
            bundle = NODE_MODULES / "engine.io-client" / "dist" / "engine.io.js"
            return BrowserClient(
                "engineio", ("client",), ("eio", "rtt.client"), bundle, assets_from_disk=True
            )
        if self.name == "sockjs":
            bundle = NODE_MODULES / "sockjs-client" / "dist" / "sockjs.js"
            return BrowserClient(
                "sockjs", ("client",), ("SockJS", "rtt.client"), bundle, assets_from_disk=True
            )
        return BrowserClient(self.name, ("client",))


#: Every transport's browser wires, each HTTP fallback included.
BROWSER_WIRES = (
    BrowserWire("ws"),
    BrowserWire("picows"),
    BrowserWire("engineio", ("websocket",)),
    BrowserWire("engineio", ("polling",), http=True),
    BrowserWire("engineio", ("polling", "websocket")),
    BrowserWire("sockjs", ("websocket",)),
    BrowserWire("sockjs", ("xhr-polling",), http=True),
    BrowserWire("sockjs", ("xhr-streaming",), http=True),
    BrowserWire("sockjs", ("eventsource",), http=True),
)


@pytest.fixture(params=BROWSER_WIRES, ids=[wire.id for wire in BROWSER_WIRES])
def browser_wire(request: pytest.FixtureRequest) -> BrowserWire:
    wire: BrowserWire = request.param
    return wire


@pytest.fixture
def browser_client(browser_wire: BrowserWire) -> BrowserClient:
    return browser_wire.client()


# The page's side of the traffic: what it receives, in order, and c-1, c-2, ... sent RATE a second.
PAGE = """([rate]) => {
  window.drops = { received: [], sent: 0, errors: [], lost: [], closes: 0, reconnects: 0 };
  client.on('message', (m) => drops.received.push(m));
  client.on('session_lost', (detail) => drops.lost.push(String(detail)));
  client.on('close', () => { drops.closes += 1; });
  client.on('reconnected', () => { drops.reconnects += 1; });
  drops.timer = setInterval(() => {
    try { client.send(`c-${drops.sent + 1}`); drops.sent += 1; }
    catch (error) { drops.errors.push(String(error)); }
  }, 1000 / rate);
}"""


def gaps(handled: list[str]) -> list[tuple[int, str]]:
    """Where the server's ``c-`` numbers do not go up by one (for the failure message)."""
    numbers = [int(m[2:]) for m in handled]
    return [
        (i, f"{a}->{b}") for i, (a, b) in enumerate(zip([0, *numbers], numbers, strict=False)) if b != a + 1
    ][:10]


@pytest.mark.timeout(150)
async def test_twenty_drops_lose_and_repeat_nothing_in_chromium(
    pages: Pages, browser_wire: BrowserWire
) -> None:
    transport = rtt.load(browser_wire.name)
    server = transport.server(port=0, resume_window=30, ping_interval=PING, ping_timeout=PING)
    traffic = Traffic(server, HTTP_RATE if browser_wire.http else RATE)
    server_events = Recorder().listen(server, "connect", "away", "back", "disconnect")
    async with server, Proxy(*server.address) as proxy:
        page = await pages.classic(server)
        name = browser_wire.name
        if browser_wire.transports:
            name = f"{browser_wire.name}-drops"
            await page.evaluate(
                f"([name, transports]) => rtt.{browser_wire.name}.register(name, {{ transports }})",
                [name, list(browser_wire.transports)],
            )
        await pages.connect(page, proxy.url_for(server.url), {"reconnect": RECONNECT}, transport=name)
        ((socket,),) = await server_events.wait("connect", timeout=WAIT)
        await page.wait_for_function("client.socketId !== null", timeout=WAIT_MS)
        assert await page.evaluate("client.socketId") == socket.id

        async def count(what: str) -> int:
            result: int = await page.evaluate(f"drops.{what}")
            return result

        async def wait_count(what: str, at_least: int, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while await count(what) < at_least:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.02)
            return True

        await page.evaluate(PAGE, [traffic.rate])
        async with running(traffic.push_ticks()):
            attempts = 0
            while (closes := await count("closes")) < DROPS:
                attempts += 1
                assert attempts <= 3 * DROPS, f"{attempts} attempts made only {closes} drops"
                await asyncio.sleep(BETWEEN)
                await drop(proxy, attempts)
                # Between two polls no connection may be open, and an idle keep-alive connection
                # cut is only opened again: such an attempt drops nothing, and the next one tries.
                await wait_count("closes", closes + 1, 2.0)
                closes = await count("closes")
                assert await wait_count("reconnects", closes, WAIT), f"no reconnection after {closes} drops"
            await page.evaluate("clearInterval(drops.timer)")
            await asyncio.sleep(BETWEEN)
        # The traffic stopped: everything sent arrives, once.
        sent = await count("sent")
        ticks = traffic.ticks_sent.get(socket.id, 0)
        await until(
            lambda: len(traffic.handled) >= sent,
            f"the server to handle {sent} messages",
            detail=lambda: (len(traffic.handled), traffic.handled[-3:], gaps(traffic.handled)),
        )
        expected = {f"e:c-{k}" for k in range(1, sent + 1)} | {f"t:{k}" for k in range(1, ticks + 1)}
        received: list[str] = []

        async def missing() -> list[str]:
            received[:] = await page.evaluate("drops.received")
            return sorted(expected - set(received))

        deadline = time.monotonic() + WAIT
        while gap := await missing():
            assert time.monotonic() < deadline, f"the page never received {gap[:20]} ({len(gap)})"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # a duplicate would arrive now
        received[:] = await page.evaluate("drops.received")
        state = await page.evaluate(
            "[client.socketId, drops.lost, drops.errors, drops.closes, drops.reconnects]"
        )
        await page.evaluate("client.close()")
        await server_events.wait("disconnect", timeout=WAIT)
    socket_id, lost, page_errors, closes, reconnects = state
    assert traffic.errors == []
    assert page_errors == []
    assert traffic.handled == [f"c-{k}" for k in range(1, sent + 1)]
    echoes = [m for m in received if m.startswith("e:")]
    tick_list = [m for m in received if m.startswith("t:")]
    assert echoes == [f"e:c-{k}" for k in range(1, sent + 1)]
    assert tick_list == [f"t:{k}" for k in range(1, ticks + 1)]
    assert len(received) == len(echoes) + len(tick_list)
    # One session throughout: every drop was an away and a back, and nothing ended it.
    assert socket_id == socket.id
    assert lost == []
    assert closes >= DROPS
    assert reconnects == closes
    assert len(server_events.of("connect")) == 1
    assert len(server_events.of("back")) >= closes
    assert len(server_events.of("away")) >= closes
    assert [reason for (_socket, reason) in server_events.of("disconnect")] == [rtt.CloseReason.CLIENT_CLOSED]
    assert pages.rtt_errors() == []
