"""Pair ``sockjs``: rtt-sockjs (``rtt.load("sockjs")``) vs a bare aiohttp ``sockjs`` endpoint.

The wrapped side is the rtt-sockjs standalone server (default options): an
aiohttp application with the library's endpoint in a sub-application at
``/sockjs``, rtt's guard middleware, its own framed-WebSocket transport and a
byte-counting session queue.

The raw side is what a user would write without rtt: an aiohttp application
with ``sockjs.add_endpoint(app, handler, prefix="/sockjs")``, configured as
rtt-sockjs configures the library (``server.py: SockjsServer._endpoint``):
heartbeat every rtt ``ping_interval`` (20 s), the raw-WebSocket route
disabled, ``cookie_needed=True``; the web server runs as rtt's does (no access
log, rtt's ``close_timeout`` as the shutdown timeout). ``disconnect_delay``
stays at the library's default (5 s): rtt expires sessions itself. The
handler echoes with ``session.send(msg.data)`` and the fan-out is the
library's own ``manager.broadcast(data)`` (one ``a[...]`` frame encoded once,
queued on every session).

Both are driven by one minimal client: a raw ``websockets`` connection to
SockJS's framed WebSocket, ``/sockjs/000/<session>/websocket`` (no ``/info``
request: the WebSocket transport needs no cookie). It waits for ``o``, sends
each message as a JSON array of one string, and splits each ``a[...]`` frame
into messages. The framed WebSocket sends heartbeats as WebSocket pings, which
websockets answers by itself. The client offers no compression, so neither
server compresses (aiohttp would accept permessage-deflate if offered).

Default counts are the issue's: echo with 50 clients and 64-byte messages,
broadcast to 500 clients, memory over 1,000 idle connections.
"""

from __future__ import annotations

import collections
import json
import uuid
import warnings
from typing import Any

import sockjs  # type: ignore[import-untyped, unused-ignore]
from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from harness import HOST, Load, Pair, RttBenchServer, register
from websockets.asyncio.client import ClientConnection, connect

import rtt
import rtt_sockjs  # noqa: F401  # rtt.load("sockjs") needs it; if it is missing, the pair is skipped

#: rtt's defaults, which rtt-sockjs hands to the library; the raw server uses the same.
_DEFAULTS = rtt.ServerOptions()
_PREFIX = "/sockjs"
_NAME = "raw"
#: Compact JSON, as sockjs-client sends it (``JSON.stringify``).
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class RawSockjsServer:
    """The raw side: ``sockjs.add_endpoint`` on an aiohttp application; echo and the library's broadcast."""

    def __init__(self) -> None:
        self._manager: Any = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0, with the endpoint at ``/sockjs``."""
        app = web.Application()
        with warnings.catch_warnings():
            # The library keeps its managers under a str key of the application.
            warnings.simplefilter("ignore", NotAppKeyWarning)
            sockjs.add_endpoint(
                app,
                self._handler,
                name=_NAME,
                prefix=_PREFIX,
                heartbeat_delay=_DEFAULTS.ping_interval,
                disable_transports=("websocket-raw",),
                cookie_needed=True,
            )
        self._manager = sockjs.get_manager(_NAME, app)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=_DEFAULTS.close_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _handler(self, manager: Any, session: Any, msg: Any) -> None:
        if msg.type is sockjs.MsgType.MESSAGE:
            session.send(msg.data)

    def connections(self) -> int:
        """Open sessions (a closed WebSocket leaves its session closing until the library's collector)."""
        if self._manager is None:
            return 0
        is_open = sockjs.SessionState.OPEN
        return sum(1 for s in self._manager.sessions.values() if s.state is is_open)

    async def broadcast(self, data: str) -> None:
        """The library's fan-out: one ``a[...]`` frame, queued on every live session."""
        self._manager.broadcast(data)

    async def close(self) -> None:
        """Stop the web server; the library's manager closes its sessions on cleanup."""
        if self._runner is not None:
            await self._runner.cleanup()


class SockjsWsClient:
    """A bare client of SockJS's framed WebSocket: JSON arrays out, ``a[...]`` frames in."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        #: Messages of a frame not handed out yet (one ``a[...]`` frame may carry several).
        self._inbox: collections.deque[str] = collections.deque()

    async def send(self, data: str) -> None:
        """Send one message: a frame holding a JSON array of one string."""
        await self._ws.send(_dumps([data]))

    async def recv(self) -> str:
        """The next message; ``o`` and ``h`` frames are skipped, ``c`` ends the session."""
        inbox = self._inbox
        while not inbox:
            frame = await self._ws.recv()
            if not isinstance(frame, str):
                raise TypeError(f"unexpected binary frame {frame!r:.40}")
            kind = frame[:1]
            if kind == "a":
                inbox.extend(json.loads(frame[1:]))
            elif kind == "c":
                raise ConnectionError(f"the server closed the SockJS session: {frame:.80}")
        return inbox.popleft()

    async def close(self) -> None:
        """Close the WebSocket (normal closure), which ends the session on both servers."""
        await self._ws.close()


async def connect_sockjs(port: int) -> SockjsWsClient:
    """Open one framed SockJS WebSocket to ``127.0.0.1:<port>/sockjs`` and wait for its ``o`` frame."""
    ws = await connect(
        f"ws://{HOST}:{port}{_PREFIX}/000/{uuid.uuid4().hex}/websocket",
        compression=None,
        proxy=None,
        close_timeout=_DEFAULTS.close_timeout,
    )
    try:
        opening = await ws.recv()
        if opening != "o":
            raise ConnectionError(f"expected a SockJS open frame 'o', got {opening!r:.80}")
    except BaseException:
        await ws.close()
        raise
    return SockjsWsClient(ws)


register(
    Pair(
        "sockjs",
        wrapped=lambda: RttBenchServer("sockjs"),
        raw=RawSockjsServer,
        connect=connect_sockjs,
        description="rtt-sockjs server vs a bare sockjs endpoint on aiohttp "
        "(SockJS framed WebSocket over a websockets client for both)",
        load=Load(echo_clients=50, size=64, fanout_clients=500, idle_clients=1000, timeout=120.0),
    )
)
