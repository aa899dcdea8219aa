"""Origin and ``authorize`` refusals on every wire (SPEC.md 8: 403, the hook's status, ``stats.rejected``).

Each refusal reaches the rtt client as ``RejectedError`` with the HTTP
status (every Python client of rtt exposes it, SPEC 12), reaches a raw
client of the wire as that HTTP status on the handshake request itself,
creates no socket and fires no event, is counted in ``stats.rejected``, and
logs nothing at ERROR: a refusal is the server working, not failing. (A
good client's session ending afterwards is not checked here: on Engine.IO
long-polling that logs ``Invalid session <sid>`` at ERROR, issue 12 defect
9, which test_churn and test_silent_peer hold.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
import pytest

import rtt
from rtt.testing import Recorder

from .wire_support import websocket_target

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

WAIT = 15.0
GOOD, EVIL = "https://good.example", "https://evil.example"


def authorize(handshake: rtt.Handshake) -> rtt.Reject | bool:
    token = handshake.query.get("token")
    if token == "good":
        return True
    if token == "false":
        return False
    return rtt.Reject(401, "Unauthorized")


async def raw_handshake_status(wire: Wire, url: str, query: str, headers: dict[str, str]) -> int:
    """The HTTP status a plain client of the wire gets for its opening request."""
    host, port, target = websocket_target(wire, url)
    sep = "&" if "?" in target else "?"
    async with aiohttp.ClientSession() as session:
        if not wire.http:
            try:
                async with session.ws_connect(f"ws://{host}:{port}{target}{sep}{query}", headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as refused:
                return refused.status
        if wire.name == "engineio":
            method, target = "GET", target.replace("websocket", "polling")
        else:
            method, target = "POST", target.replace("/websocket", "/xhr")
        async with session.request(method, f"http://{host}:{port}{target}{sep}{query}", headers=headers) as r:
            await r.read()
            return r.status


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


CASES: list[tuple[str, dict[str, str], str, int]] = [
    ("origin", {"Origin": EVIL}, "token=good", 403),
    ("authorize-reject", {}, "token=bad", 401),
    ("authorize-false", {}, "token=false", 403),
]


@pytest.mark.timeout(90)
async def test_refusals_give_the_status_count_and_log_nothing_at_error(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transport = wire.transport()
    server = transport.server(port=0, allowed_origins=[GOOD], authorize=authorize)
    async with server:
        rec = Recorder().listen(server, "connect", "disconnect")
        for name, headers, query, status in CASES:
            client = transport.client(with_query(server.url, query), reconnect=False, headers=headers)
            with pytest.raises(rtt.RejectedError) as refused:
                await asyncio.wait_for(client.connect(), WAIT)
            assert refused.value.status == status, name
            assert client.state is rtt.ClientState.CLOSED
            assert client.close_reason is rtt.CloseReason.REJECTED, name
            raw = await raw_handshake_status(wire, server.url, query, headers)
            assert raw == status, (name, raw)
        assert server.stats.rejected == 2 * len(CASES)
        assert not server.sockets and not rec.events and server.stats.connections == 0
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
        # The same server admits a good client: from the allowed origin, with the token.
        good = transport.client(
            with_query(server.url, "token=good"), reconnect=False, headers={"Origin": GOOD}
        )
        async with good:
            await rec.wait("connect", timeout=WAIT)
            assert server.stats.connections == 1
