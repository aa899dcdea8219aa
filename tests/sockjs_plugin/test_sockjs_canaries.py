"""What rtt-sockjs overrides or reads inside sockjs (SPEC.md 12.4, library coupling)."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
import sockjs  # type: ignore[import-untyped, unused-ignore]
from canary_support import Touch
from sockjs.transports import transport_handlers  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports.base import StreamingTransport  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports.websocket import WebSocketTransport  # type: ignore[import-untyped, unused-ignore]

SERVER = "rtt_sockjs/server.py"

TOUCHES = [
    Touch(sockjs.Session, "tick", ("self", "timeout"), f"{SERVER}: _RttSession.tick"),
    Touch(sockjs.Session, "_heartbeat_task", ("self",), f"{SERVER}: _RttSession._heartbeat_task (periodic)"),
    Touch(
        sockjs.Session, "feed", ("self", "frame", "data"), f"{SERVER}: _RttSession.feed (byte-counted queue)"
    ),
    Touch(sockjs.Session, "get_frame", ("self", "pack"), f"{SERVER}: _RttSession.get_frame"),
    Touch(
        sockjs.SessionManager,
        "__init__",
        ("self", "name", "app", "handler", "heartbeat_delay", "disconnect_delay", "debug"),
        f"{SERVER}: _RttManager.__init__",
    ),
    Touch(sockjs.SessionManager, "start", ("self",), f"{SERVER}: _RttManager.start (no collector)"),
    Touch(sockjs.SessionManager, "stop", ("self", "_app"), f"{SERVER}: _RttManager.stop"),
    Touch(sockjs.SessionManager, "clear", ("self",), f"{SERVER}: _RttManager.clear"),
    Touch(
        sockjs.SessionManager,
        "acquire",
        ("self", "session", "request"),
        f"{SERVER}: _RttManager.acquire (binding)",
    ),
    Touch(sockjs.SessionManager, "release", ("self", "s"), f"{SERVER}: _RttManager.release (expiry)"),
    Touch(
        sockjs.SessionManager,
        "remote_close",
        ("self", "session", "exc"),
        f"{SERVER}: _RttManager.remote_close",
    ),
    Touch(
        sockjs.SessionManager, "remote_closed", ("self", "session"), f"{SERVER}: _RttManager.remote_closed"
    ),
    Touch(StreamingTransport, "handle_session", ("self",), f"{SERVER}: _Receiving.handle_session"),
    Touch(WebSocketTransport, "process", ("self",), f"{SERVER}: _RttWebSocket.process"),
]


@pytest.mark.parametrize("touch", TOUCHES, ids=lambda touch: f"{touch.owner.__name__}.{touch.name}")
def test_what_rtt_sockjs_touches_is_still_there(touch: Touch) -> None:
    touch.check("sockjs", version("sockjs"))


def test_the_transport_table_and_add_endpoint_are_as_rtt_expects() -> None:
    """rtt gives add_endpoint's route its own transport table, by name (rtt_sockjs/server.py: _endpoint)."""
    expected = {
        "eventsource",
        "htmlfile",
        "jsonp",
        "jsonp_send",
        "websocket",
        "xhr",
        "xhr_send",
        "xhr_streaming",
    }
    assert expected <= set(transport_handlers), (
        f"sockjs {version('sockjs')} changed its transport table: {sorted(transport_handlers)}; "
        "review _HANDLERS in rtt_sockjs/server.py"
    )
    parameters = set(inspect.signature(sockjs.add_endpoint).parameters)
    wanted = {
        "app",
        "handler",
        "name",
        "prefix",
        "manager",
        "sockjs_cdn",
        "cookie_needed",
        "disable_transports",
    }
    assert wanted <= parameters, (
        f"sockjs {version('sockjs')} changed add_endpoint{sorted(parameters)}; "
        "review _endpoint in rtt_sockjs/server.py"
    )
