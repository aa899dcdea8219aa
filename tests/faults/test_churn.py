"""Connect/disconnect churn with TCP resets (SPEC.md 3.4, 3.7, 3.8, 6).

Each of a bounded number of raw clients opens a session on the wire (the
WebSocket handshake, Engine.IO's polling handshake, SockJS's ``xhr``) and
resets its TCP connection at once (``SO_LINGER`` 0, then close), some
while a healthy rtt client exchanges messages beside them. Afterwards every
session has left (``socket_count()`` back to 0 within a bound: an HTTP
session has no connection to lose and goes at its heartbeat deadline),
nothing was logged at ERROR with a traceback, and this process's open file
descriptors are back near where they started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest

from rtt.testing import Recorder, echo, eventually

from .wire_support import open_fds, open_session, reset

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

COUNT = 200
#: Sessions opened at once; the churn stays well within the default fd limit.
BATCH = 20
PING_INTERVAL = 1.0
PING_TIMEOUT = 1.0
WAIT = 30.0
#: Descriptors a server may keep beyond its start (a pooled connection, an epoll fd): generous.
FD_SLACK = 10


@pytest.mark.timeout(120)
async def test_churn_with_resets_leaves_no_socket_no_fd_and_no_traceback(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transport = wire.transport()
    fds_before = open_fds()
    server = transport.server(port=0, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, close_timeout=2)
    async with echo(server):
        rec = Recorder().listen(server, "connect", "disconnect")
        fds_started = open_fds()

        async def churn_one() -> None:
            reset(await open_session(wire, server.url))

        for start in range(0, COUNT, BATCH):
            await asyncio.gather(*(churn_one() for _ in range(min(BATCH, COUNT - start))))
        # The server is healthy during and after the churn: a well-behaved client gets its echo.
        async with transport.client(server.url, reconnect=False) as healthy:
            await healthy.send("still here")
            assert await asyncio.wait_for(healthy.recv(), WAIT) == "still here"
        await rec.wait("disconnect", count=COUNT + 1, timeout=WAIT)

        async def count() -> int:
            return await server.socket_count()

        deadline = asyncio.get_running_loop().time() + WAIT
        while await count() or len(server.sockets):
            assert asyncio.get_running_loop().time() < deadline, f"{len(server.sockets)} sockets left"
            await asyncio.sleep(0.1)
        assert server.stats.connections == COUNT + 1
        assert len(rec.of("connect")) == COUNT + 1
        assert server.stats.disconnects == COUNT + 1
        await eventually(lambda: open_fds() <= fds_started + FD_SLACK, WAIT, "the churn's fds to close")
    await eventually(lambda: open_fds() <= fds_before + FD_SLACK, WAIT, "the server's fds to close")
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
