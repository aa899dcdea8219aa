"""rtt-ws passes the conformance kit mounted: attached to an aiohttp application and served as an
ASGI application under uvicorn, with each of uvicorn's WebSocket implementations (SPEC.md 11, 12.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mount_support import AiohttpMounted, AsgiServed

import rtt
from rtt.testing import TransportTests


class _WsKit(TransportTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("ws", **options)


class TestWsInAiohttp(AiohttpMounted, _WsKit):
    """Attached to an aiohttp application (``server.attach(app)``) on a real site: rtt's own pings."""


class TestWsUnderUvicorn(AsgiServed, _WsKit):
    """Served as an ASGI application under uvicorn's websockets (Sans-I/O) implementation."""

    lacks: ClassVar[Mapping[str, str]] = {
        **AsgiServed.lacks,
        "server_pings": "the ASGI interface has no WebSocket ping or pong: rtt's heartbeats are not sent",
    }


class TestWsUnderUvicornWsproto(TestWsUnderUvicorn):
    """Served as an ASGI application under uvicorn's wsproto implementation (its send waits on the
    transport's write buffer too, so the slow-consumer cases hold)."""

    uvicorn_ws = "wsproto"
