"""Pair ``ws``: rtt-ws (``rtt.load("ws")``) vs a bare ``websockets`` asyncio server.

Both servers run websockets' asyncio implementation with the settings rtt-ws
passes it (``WsServer._start``): no compression, ``max_size`` = rtt's
``max_message_size``, rtt's ``ping_interval``, ``ping_timeout`` and
``close_timeout``; every other websockets setting is left at its default on
both sides. The raw side is what a user would write without rtt: echo with
``async for message in ws: await ws.send(message)``, fan out with websockets'
own ``broadcast()`` over a set of open connections. Both are driven by the raw
websockets client (no compression, no proxy), so the server is the only
difference.

The default counts are the issue's: echo with 50 clients and 64-byte messages,
each client awaiting its echo; broadcast to 500 clients; memory over 2,000 idle
connections.
"""

from __future__ import annotations

from harness import HOST, Load, Pair, RttBenchServer, register
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

import rtt
import rtt_ws  # noqa: F401  # rtt.load("ws") needs it; if it is missing, the pair is skipped

#: rtt's defaults, which rtt-ws hands to websockets; the raw server uses the same.
_DEFAULTS = rtt.ServerOptions()


class RawWsServer:
    """The raw side: websockets' ``serve``, an echo handler and a set of connections."""

    def __init__(self) -> None:
        self._conns: set[ServerConnection] = set()
        self._listener: Server | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0, configured as rtt-ws configures websockets."""
        self._listener = await serve(
            self._handler,
            HOST,
            0,
            compression=None,
            max_size=_DEFAULTS.max_message_size,
            ping_interval=_DEFAULTS.ping_interval,
            ping_timeout=_DEFAULTS.ping_timeout,
            close_timeout=_DEFAULTS.close_timeout,
        )
        return int(next(iter(self._listener.sockets)).getsockname()[1])

    async def _handler(self, ws: ServerConnection) -> None:
        self._conns.add(ws)
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(ws)

    def connections(self) -> int:
        """Open connections."""
        return len(self._conns)

    async def broadcast(self, data: str) -> None:
        """websockets' own fan-out: encode once, write to every open connection."""
        broadcast(self._conns, data)

    async def close(self) -> None:
        """Close every connection and the listener."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()


async def connect_ws(port: int) -> ClientConnection:
    """Open a raw websockets client to ``ws://127.0.0.1:<port>/``; it fits ``harness.BenchClient``."""
    return await connect(
        f"ws://{HOST}:{port}/",
        compression=None,
        proxy=None,
        max_size=_DEFAULTS.max_message_size,
        close_timeout=_DEFAULTS.close_timeout,
    )


register(
    Pair(
        "ws",
        wrapped=lambda: RttBenchServer("ws"),
        raw=RawWsServer,
        connect=connect_ws,
        description="rtt-ws server vs a bare websockets asyncio server (websockets client for both)",
        load=Load(echo_clients=50, size=64, fanout_clients=500, idle_clients=2000),
    )
)
