"""rtt-engineio passes the conformance kit mounted: in an aiohttp application and as an ASGI
application under uvicorn, with its default transports (long-polling, then the upgrade; SPEC.md 11, 12.3)."""

from __future__ import annotations

from typing import Any

from mount_support import AiohttpMounted, AsgiServed

import rtt
from rtt.testing import TransportTests


class _EngineioKit(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("engineio", **options)


class TestEngineioInAiohttp(AiohttpMounted, _EngineioKit):
    """Attached to an aiohttp application (``server.attach(app)``) on a real site."""


class TestEngineioUnderUvicorn(AsgiServed, _EngineioKit):
    """Served as an ASGI application (``server.asgi_app()``) under uvicorn."""

    # uvicorn's wsproto backend: wsproto comes with python-engineio (through simple-websocket); the
    # engineio environment installs no websockets, which uvicorn's other backend needs.
    uvicorn_ws = "wsproto"
