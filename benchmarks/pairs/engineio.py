"""Pairs ``engineio`` and ``engineio-socketio``: rtt-engineio vs python-engineio and python-socketio.

``engineio``: the rtt-engineio standalone server (``rtt.load("engineio")``,
default options) against a bare python-engineio ``AsyncServer`` on aiohttp,
configured as rtt-engineio configures it (``async_handlers=False``, rtt's
heartbeat, ``max_http_buffer_size``, no HTTP compression, no cookie, both
transports allowed). The raw side is what a user would write without rtt: echo
with ``await eio.send(sid, data)`` in the message handler, and, since
python-engineio has no broadcast, fan out with a loop of ``await eio.send``
over the connected sids.

``engineio-socketio``: the same rtt-engineio server against python-socketio's
equivalent echo server (``sio.emit("message", data, to=sid)`` in the
``message`` event handler; broadcast with ``sio.emit("message", data)``). The
client speaks Socket.IO on top of Engine.IO, so both servers receive the same
bytes: rtt-engineio echoes the Socket.IO packet verbatim, python-socketio
decodes it and emits a new one.

Both pairs are driven by one minimal client: a raw ``websockets`` connection
speaking Engine.IO v4 framing over WebSocket only (no long-polling, no
upgrade), which answers heartbeats. It is cheaper than python-engineio's
``AsyncClient`` at 500-2,000 connections, so more of the server shows.
python-socketio imports are inside functions: it is an optional extra.

Default counts are the issue's: echo with 50 clients and 64-byte messages,
broadcast to 500 clients, memory over 1,000 idle connections.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import engineio  # type: ignore[import-untyped, unused-ignore]
from aiohttp import web
from harness import HOST, Load, Pair, RttBenchServer, register
from websockets.asyncio.client import ClientConnection, connect

import rtt
import rtt_engineio  # noqa: F401  # rtt.load("engineio") needs it; if it is missing, the pair is skipped

#: rtt's defaults, which rtt-engineio hands to python-engineio; the raw servers use the same.
_DEFAULTS = rtt.ServerOptions()
_PATH = "/engine.io/"
#: python-engineio's per-packet bound as rtt-engineio sets it: 2 x the longest packet + 1 KiB.
_BUFFER = 2 * (2 + 4 * ((_DEFAULTS.max_message_size + 2) // 3)) + 1024


def _engine_options() -> dict[str, Any]:
    """The python-engineio options rtt-engineio's standalone server uses (``server.py``)."""
    return {
        "async_mode": "aiohttp",
        "ping_interval": _DEFAULTS.ping_interval,
        "ping_timeout": _DEFAULTS.ping_timeout,
        "max_http_buffer_size": _BUFFER,
        "http_compression": False,
        "cookie": None,
        "cors_allowed_origins": "*",
        "logger": False,
        "async_handlers": False,
        "monitor_clients": True,
    }


class _AiohttpSide:
    """A library server attached to its own aiohttp application on 127.0.0.1, port 0."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._sids: set[str] = set()

    async def _listen(self, attach: Any) -> int:
        app = web.Application(client_max_size=_BUFFER)
        attach(app, _PATH)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=_DEFAULTS.close_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    def connections(self) -> int:
        """Connected sessions."""
        return len(self._sids)

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class RawEngineioServer(_AiohttpSide):
    """The raw side: python-engineio's ``AsyncServer`` on aiohttp, echo and a per-client send loop."""

    def __init__(self) -> None:
        super().__init__()
        self._eio = engineio.AsyncServer(**_engine_options())
        self._eio.on("connect", self._connect)
        self._eio.on("disconnect", self._disconnect)
        self._eio.on("message", self._message)

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0, at ``/engine.io/``."""
        return await self._listen(self._eio.attach)

    async def _connect(self, sid: str, environ: dict[str, Any]) -> None:
        self._sids.add(sid)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        self._sids.discard(sid)

    async def _message(self, sid: str, data: str | bytes) -> None:
        await self._eio.send(sid, data)

    async def broadcast(self, data: str) -> None:
        """python-engineio has no broadcast: one ``send`` per connected client."""
        for sid in list(self._sids):
            await self._eio.send(sid, data)

    async def close(self) -> None:
        """Close every session and the listener."""
        await self._eio.shutdown()
        await self._cleanup()


class SocketioServer(_AiohttpSide):
    """python-socketio's echo server: re-emit each ``message`` event to its sender."""

    def __init__(self) -> None:
        import socketio  # type: ignore[import-not-found, import-untyped, unused-ignore]

        super().__init__()
        self._sio = socketio.AsyncServer(**_engine_options())
        self._sio.on("connect", self._connect)
        self._sio.on("disconnect", self._disconnect)
        self._sio.on("message", self._message)

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0, at ``/engine.io/`` (the client's path for both sides)."""
        return await self._listen(lambda app, path: self._sio.attach(app, socketio_path=path))

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        self._sids.add(sid)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        self._sids.discard(sid)

    async def _message(self, sid: str, data: object) -> None:
        await self._sio.emit("message", data, to=sid)

    async def broadcast(self, data: str) -> None:
        """python-socketio's own broadcast: one emit to everyone."""
        await self._sio.emit("message", data)

    async def close(self) -> None:
        """Close every session and the listener."""
        await self._sio.shutdown()
        await self._cleanup()


class EngineioWsClient:
    """A bare Engine.IO v4 client over WebSocket: ``4`` + text, answering ``2`` (ping) with ``3``."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, data: str) -> None:
        """Send one text message packet."""
        await self._ws.send("4" + data)

    async def recv(self) -> str:
        """The next message packet's text; heartbeats are answered on the way."""
        while True:
            frame = await self._ws.recv()
            if not isinstance(frame, str):
                raise TypeError(f"unexpected binary frame {frame!r:.40}")
            if frame[:1] == "4":
                return frame[1:]
            if frame[:1] == "2":
                await self._ws.send("3" + frame[1:])
            elif frame[:1] == "1":
                raise ConnectionError("the server closed the Engine.IO session")

    async def close(self) -> None:
        """Send a ``CLOSE`` packet, then close the WebSocket."""
        try:
            await self._ws.send("1")
        finally:
            await self._ws.close()


async def _open(port: int) -> EngineioWsClient:
    ws = await connect(
        f"ws://{HOST}:{port}{_PATH}?EIO=4&transport=websocket",
        compression=None,
        proxy=None,
        max_size=_BUFFER,
        close_timeout=_DEFAULTS.close_timeout,
    )
    try:
        opening = await ws.recv()
        if not (isinstance(opening, str) and opening.startswith("0{")):
            raise ConnectionError(f"expected an Engine.IO OPEN packet, got {opening!r:.80}")
    except BaseException:
        await ws.close()
        raise
    return EngineioWsClient(ws)


async def connect_engineio(port: int) -> EngineioWsClient:
    """Open one Engine.IO v4 WebSocket session to ``127.0.0.1:<port>/engine.io/``."""
    return await _open(port)


class SocketioWsClient:
    """The same client, speaking Socket.IO v5 events (``2["message", data]``) on top.

    It receives the plain text a ``broadcast`` of rtt-engineio sends as is.
    """

    def __init__(self, eio: EngineioWsClient) -> None:
        self._eio = eio

    async def send(self, data: str) -> None:
        """Emit a ``message`` event."""
        await self._eio.send('2["message",' + json.dumps(data) + "]")

    async def recv(self) -> str:
        """The next ``message`` event's data (or plain text)."""
        text = await self._eio.recv()
        if text.startswith('2["message",'):
            value = json.loads(text[1:])[1]
            return str(value)
        return text

    async def close(self) -> None:
        """Close the Engine.IO session."""
        await self._eio.close()


async def connect_socketio(port: int) -> SocketioWsClient:
    """Open a session and join the default namespace (``0`` -> ``0{"sid":..}``)."""
    eio = await _open(port)
    try:
        await eio.send("0")
        await eio.recv()  # python-socketio: 0{"sid": ...}; rtt-engineio: the echo of "0"
    except BaseException:
        await eio.close()
        raise
    return SocketioWsClient(eio)


_LOAD = Load(echo_clients=50, size=64, fanout_clients=500, idle_clients=1000, timeout=120.0)

register(
    Pair(
        "engineio",
        wrapped=lambda: RttBenchServer("engineio"),
        raw=RawEngineioServer,
        connect=connect_engineio,
        description="rtt-engineio server vs a bare python-engineio AsyncServer on aiohttp "
        "(Engine.IO v4 over a websockets client for both)",
        load=_LOAD,
    )
)

if importlib.util.find_spec("socketio") is not None:  # python-socketio is optional
    register(
        Pair(
            "engineio-socketio",
            wrapped=lambda: RttBenchServer("engineio"),
            raw=SocketioServer,
            connect=connect_socketio,
            description="rtt-engineio server vs python-socketio's echo server on aiohttp "
            "(Socket.IO v5 over Engine.IO over a websockets client for both)",
            load=_LOAD,
        )
    )
