"""What rtt-engineio overrides or reads inside python-engineio (SPEC.md 12.3, library coupling)."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import engineio  # type: ignore[import-untyped, unused-ignore]
import engineio.base_client  # type: ignore[import-untyped, unused-ignore]
import pytest
from canary_support import Touch
from engineio.async_socket import AsyncSocket  # type: ignore[import-untyped, unused-ignore]

SERVER = "rtt_engineio/server.py"
CLIENT = "rtt_engineio/client.py"

TOUCHES = [
    Touch(AsyncSocket, "poll", ("self",), f"{SERVER}: _RttSocket.poll (batches, byte-counted queue)"),
    Touch(
        AsyncSocket,
        "close",
        ("self", "wait", "abort", "reason"),
        f"{SERVER}: _RttSocket.close (close reasons)",
    ),
    Touch(
        AsyncSocket, "handle_post_request", ("self", "environ"), f"{SERVER}: _RttSocket.handle_post_request"
    ),
    Touch(AsyncSocket, "_websocket_handler", ("self", "ws"), f"{SERVER}: _RttSocket._websocket_handler"),
    Touch(
        engineio.AsyncServer,
        "_handle_connect",
        ("self", "environ", "transport", "jsonp_index"),
        f"{SERVER}: _EngineServer._handle_connect (admission before a session)",
    ),
    Touch(
        engineio.AsyncServer,
        "_trigger_event",
        ("self", "event", "args", "kwargs"),
        f"{SERVER}: _RttSocket.close",
    ),
    Touch(
        engineio.AsyncServer,
        "start_background_task",
        ("self", "target", "args", "kwargs"),
        "rtt_engineio/_wire.py: TrackedTasks",
    ),
    Touch(
        engineio.AsyncClient,
        "_send_request",
        ("self", "method", "url", "headers", "body", "timeout"),
        f"{CLIENT}: the client's _send_request (handshake status and headers)",
    ),
    Touch(
        engineio.AsyncClient, "_receive_packet", ("self", "pkt"), f"{CLIENT}: the client's _receive_packet"
    ),
    Touch(engineio.AsyncClient, "_send_packet", ("self", "pkt"), f"{CLIENT}: close() sends CLOSE itself"),
    Touch(engineio.base_client, "connected_clients", None, f"{CLIENT}: close() leaves the library's list"),
    Touch(asyncio.Queue, "_unfinished_tasks", None, f"{CLIENT}: the send queue's bound (CPython's Queue)"),
]


@pytest.mark.parametrize("touch", TOUCHES, ids=lambda touch: touch.name)
def test_what_rtt_engineio_touches_is_still_there(touch: Touch) -> None:
    owner = asyncio.Queue() if touch.owner is asyncio.Queue else touch.owner
    Touch(owner, touch.name, touch.parameters, touch.where).check(
        "python-engineio", version("python-engineio")
    )


def test_a_canary_names_the_symbol_that_moved() -> None:
    moved = Touch(AsyncSocket, "poll", ("self", "timeout"), "somewhere")
    with pytest.raises(AssertionError, match=r"changed engineio\.async_socket\.AsyncSocket\.poll\('self',\)"):
        moved.check("python-engineio", "9.9")
    gone = Touch(AsyncSocket, "no_such_method", None, "somewhere")
    with pytest.raises(AssertionError, match=r"has no engineio\.async_socket\.AsyncSocket\.no_such_method"):
        gone.check("python-engineio", "9.9")
