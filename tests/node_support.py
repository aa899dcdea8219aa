"""Node's `ws` client against a plain-WebSocket rtt server (rtt-ws, rtt-picows; standalone or mounted).

The checks the interop tests of both transports and of rtt-ws's mounted modes share; the Node
scripts are ``tests/node/ws-interop.mjs`` and ``tests/node/ws-close-watcher.mjs``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tls_support import run_node

import rtt
from rtt.testing import Recorder


async def check_node_ws_echo(server: rtt.Server[Any]) -> None:
    """Node's `ws` client sends a text and a binary frame to ``server`` (which echoes), reads both
    back as it sent them, and closes with 1000: the server's ``disconnect`` says ``client closed``."""
    rec = Recorder().listen(server, "message", "disconnect")
    status, result = await run_node("ws-interop.mjs", server.url)
    assert status == 0, result
    assert result["seen"] == [{"text": "hello from node"}, {"binary": [0, 1, 2, 255]}]
    assert [data for _, data in rec.of("message")] == ["hello from node", b"\x00\x01\x02\xff"]
    assert result["code"] == 1000
    ((_, reason),) = await rec.wait("disconnect")
    assert reason is rtt.CloseReason.CLIENT_CLOSED


async def check_node_ws_sees_the_application_close(server: rtt.Server[Any]) -> None:  # SPEC 6.3
    """``server`` closes Node's `ws` client with 4001 and a non-ASCII text after its hello: Node reads
    that code and text, and the server's ``disconnect`` says ``application``."""
    rec = Recorder().listen(server, "message", "disconnect")
    watcher = asyncio.create_task(run_node("ws-close-watcher.mjs", server.url))
    try:
        ((socket, data),) = await rec.wait("message")
        assert data == "hello"
        text = "déjà connecté ailleurs"
        await server.disconnect(socket.id, code=4001, reason=text)
        status, result = await watcher
    finally:
        if not watcher.done():  # the watcher's own 10 s timer ends the Node process
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    assert status == 0, result
    assert result == {"code": 4001, "reason": text}
    assert await rec.wait("disconnect") == [(socket, rtt.CloseReason.APPLICATION)]
