"""Abandoned HTTP sessions: clients that open sessions and vanish without closing (SPEC.md 12.3, 12.4).

Each session is opened by hand and its connection then reset, either idle
(no request pending) or in the middle of a poll. The server reaps every one
within ``ping_interval + ping_timeout`` (with a margin), its ``disconnect``
fires with ``ping timeout`` (idle) or ``transport error`` (a poll cut), and
its session tables, descriptors and memory return to where they were.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

import rtt
from rtt.testing import Recorder, echo, eventually

from .wire_support import http_request, open_fds, reset, rss_bytes

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

PING_INTERVAL = 1.0
PING_TIMEOUT = 1.0
#: Generous for a loaded 2-core machine.
MARGIN = 5.0
#: sockjs keeps an ended HTTP session's id this long to repeat its close frame (SPEC 12.4).
CLOSED_GRACE = 5.0
WAIT = 60.0
COUNT = 30
#: The healthy client's HTTP pool may hold one more keep-alive connection (both ends in this process).
SLACK_FDS = 2
#: RSS growth allowed once every session is reaped.
RSS_BOUND = 16 * 1024 * 1024
#: The soak case: rounds of many abandoned sessions.
MANY = 1000
ROUNDS = 3


def session_tables(server: rtt.Server[Any]) -> int:
    """Entries in the server's and its library's session tables."""
    if server.transport.name == "engineio":
        return len(server._by_sid) + len(server.engineio_server.sockets)  # type: ignore[attr-defined]
    manager = server.manager  # type: ignore[attr-defined]
    return len(manager.sessions) + len(manager.acquired)


async def abandon(wire: Wire, url: str, *, mid_poll: bool) -> None:
    """Open a session, then reset its connection, idle or with a poll pending."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    host, port = parts.hostname, parts.port
    if wire.name == "engineio":
        base = f"{parts.path or '/'}?EIO=4&transport=polling"
        opened = await http_request(host, port, "GET", base)
        assert opened.status == 200 and opened.body.startswith(b"0{"), (opened.status, opened.body)
        sid = opened.body.split(b'"sid":"', 1)[1].split(b'"', 1)[0].decode()
        poll = f"GET {base}&sid={sid} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
    else:
        target = f"{parts.path.rstrip('/')}/000/{secrets.token_hex(8)}/xhr"
        opened = await http_request(host, port, "POST", target)
        assert opened.status == 200 and opened.body == b"o\n", (opened.status, opened.body)
        poll = f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\n\r\n"
    if mid_poll:
        opened.writer.write(poll.encode())
        await opened.writer.drain()
    reset(opened.writer)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mid_poll", [False, True], ids=["idle", "mid-poll"])
async def test_abandoned_sessions_are_reaped_in_bounds_and_leave_nothing_behind(
    http_wire: Wire, mid_poll: bool
) -> None:
    transport = http_wire.transport()
    server = transport.server(port=0, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)
    async with echo(server):
        rec = Recorder().listen(server, "connect", "disconnect")
        healthy = transport.client(server.url, reconnect=False)
        async with healthy:
            await rec.wait("connect", timeout=WAIT)
            await healthy.send("warm-up")  # its POST opens the client's second connection
            assert await asyncio.wait_for(healthy.recv(), 10) == "warm-up"
            tables, fds = session_tables(server), open_fds()
            for _ in range(COUNT):
                await abandon(http_wire, server.url, mid_poll=mid_poll)
            abandoned = time.monotonic()
            await rec.wait("connect", count=COUNT + 1, timeout=WAIT)
            closed = await rec.wait("disconnect", count=COUNT, timeout=WAIT)
            took = time.monotonic() - abandoned
            assert took < PING_INTERVAL + PING_TIMEOUT + MARGIN, f"reaped after {took:.1f} s"
            reasons = {reason for _, reason in closed}
            if mid_poll:
                assert reasons <= {rtt.CloseReason.TRANSPORT_ERROR, rtt.CloseReason.PING_TIMEOUT}, reasons
            else:
                assert reasons == {rtt.CloseReason.PING_TIMEOUT}, reasons
            assert len(server.sockets) == 1
            await eventually(
                lambda: session_tables(server) == tables,
                CLOSED_GRACE + MARGIN,
                f"the session tables back to {tables} (at {session_tables(server)})",
            )
            await eventually(lambda: open_fds() <= fds + SLACK_FDS, MARGIN, f"descriptors back to {fds}")
            await healthy.send("still here")
            assert await asyncio.wait_for(healthy.recv(), 10) == "still here"


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_rounds_of_many_abandoned_sessions_return_memory_and_tables_to_baseline(
    http_wire: Wire,
) -> None:
    transport = http_wire.transport()
    server = transport.server(port=0, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)
    async with echo(server):
        rec = Recorder().listen(server, "disconnect")
        tables, fds = session_tables(server), open_fds()
        after_round = []
        for round_ in range(1, ROUNDS + 1):
            for start in range(0, MANY, 50):
                await asyncio.gather(
                    *(abandon(http_wire, server.url, mid_poll=i % 2 == 1) for i in range(start, start + 50))
                )
            abandoned = time.monotonic()
            await rec.wait("disconnect", count=round_ * MANY, timeout=WAIT)
            took = time.monotonic() - abandoned
            assert took < PING_INTERVAL + PING_TIMEOUT + 2 * MARGIN, f"round {round_}: {took:.1f} s"
            assert not server.sockets
            await eventually(lambda: session_tables(server) == tables, CLOSED_GRACE + MARGIN, "tables")
            await eventually(lambda: open_fds() <= fds, MARGIN, f"descriptors back to {fds}")
            after_round.append(rss_bytes())
        # What the first round grew (allocator pools, caches) may stay; later rounds add nothing.
        assert after_round[-1] - after_round[0] < RSS_BOUND, [r >> 20 for r in after_round]
        assert server.stats.disconnects == ROUNDS * MANY
