"""rtt-ws mounted in an aiohttp application: rtt's plain WebSocket on aiohttp's server WebSocket.

Imported only by :meth:`WsServer.attach <rtt_ws.WsServer.attach>` (aiohttp is
an optional dependency: ``pip install rtt-ws[aiohttp]``). rtt drives
aiohttp's ``WebSocketResponse`` as rtt-sockjs does: no automatic pings (rtt's
own keepalive answers the client's pings and times out its own),
``max_msg_size`` one past :func:`rtt.resume.wire_limit` (aiohttp's bound is exclusive),
rtt's close texts on aiohttp's own closes, and the RFC 6455 mask check in front
of aiohttp's frame parser (:class:`rtt.rfc6455.MaskCheck`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from rtt import Close, CloseReason, Handshake, Headers, Reject, ServerState
from rtt.assets import asset_headers, read_asset
from rtt.resume import wire_limit
from rtt.rfc6455 import check_aiohttp_masks

from ._mounted import METHOD_NOT_ALLOWED_TEXT, UPGRADE_REQUIRED_TEXT, MountedConn, Outgoing

if TYPE_CHECKING:
    from .server import WsServer

__all__ = ["attach"]

#: Close codes of a peer's protocol error (RFC 6455 7.4.1: protocol error, invalid UTF-8).
_PROTOCOL_ERROR_CODES = frozenset({WSCloseCode.PROTOCOL_ERROR, WSCloseCode.INVALID_TEXT})
#: rtt's text for the closes aiohttp sends on its own (SPEC.md 6); aiohttp sends none.
_OWN_CLOSE_TEXT: dict[int, bytes] = {
    WSCloseCode.MESSAGE_TOO_BIG: CloseReason.MESSAGE_TOO_BIG.value.encode(),
    WSCloseCode.PROTOCOL_ERROR: CloseReason.PROTOCOL_ERROR.value.encode(),
    WSCloseCode.INVALID_TEXT: CloseReason.PROTOCOL_ERROR.value.encode(),
}


class _WebSocket(web.WebSocketResponse):
    """aiohttp's server WebSocket, failing an unmasked client frame and wording its closes as rtt does.

    Couplings (aiohttp's private parts, the same as rtt-sockjs's ``CheckedWebSocketResponse``):
    ``WebSocketResponse._post_start`` and ``_reader``, ``RequestHandler._payload_parser`` and
    ``_message_tail`` (bytes that came with the handshake), ``WebSocketDataQueue.set_exception``.
    """

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        def start() -> Any:
            super(_WebSocket, self)._post_start(request, protocol, writer)
            return self._reader

        check_aiohttp_masks(request.protocol, start, _unmasked_error)

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if not message:
            message = _OWN_CLOSE_TEXT.get(code, b"")
        return await super().close(code=code, message=message, drain=drain)


def _unmasked_error() -> WebSocketError:
    # What aiohttp's frame parser puts in the message queue for its own protocol errors.
    return WebSocketError(WSCloseCode.PROTOCOL_ERROR, "unmasked client frame")


class AiohttpConn(MountedConn):
    """One rtt WebSocket on aiohttp's ``WebSocketResponse``."""

    def __init__(self, server: WsServer, ws: _WebSocket, transport: asyncio.Transport | None) -> None:
        super().__init__(server)
        self.ws = ws
        self.transport = transport
        self.pong: asyncio.Future[None] | None = None

    @staticmethod
    def prepare(data: str | bytes) -> Outgoing:
        if isinstance(data, str):
            payload = data.encode("utf-8")
            return (payload, WSMsgType.TEXT), len(payload)
        return (data, WSMsgType.BINARY), len(data)

    async def _write(self, item: Any) -> None:
        payload, opcode = item
        await self.ws.send_frame(payload, opcode)

    async def _write_close(self, close: Close) -> None:
        await self.ws.close(code=close.code, message=close.text.encode())

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _transport_buffered(self) -> int:
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0


def attach(server: WsServer, app: web.Application, path: str) -> None:
    """Add rtt's WebSocket at ``path`` and the browser assets to ``app`` (SPEC.md 12.2, "Mounted")."""

    async def websocket(request: web.Request) -> web.StreamResponse:
        return await _serve(server, request)

    # Any method: a plain GET is 426 and another method 405, as standalone.
    app.router.add_route("*", path, websocket)
    assets_path = server.options.assets_path
    if assets_path is not None:

        async def asset(request: web.Request) -> web.Response:
            found = read_asset(server.transport.browser_assets(), request.match_info["name"])
            if found is None:
                raise web.HTTPNotFound()
            content_type, body = found
            return web.Response(body=body, headers=asset_headers(content_type))

        app.router.add_get(assets_path + "{name}", asset)


async def _serve(server: WsServer, request: web.Request) -> web.StreamResponse:
    if request.method != "GET":
        return web.Response(status=405, text=METHOD_NOT_ALLOWED_TEXT, headers={"Allow": "GET"})
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return web.Response(status=426, text=UPGRADE_REQUIRED_TEXT, headers={"Upgrade": "websocket"})
    if server.state is not ServerState.RUNNING:
        return web.Response(status=503, text="Server not running\n")
    parts = urlsplit(request.raw_path)
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    handshake = Handshake(
        headers=Headers.from_raw(request.raw_headers),
        path=parts.path or "/",
        query_string=parts.query,
        remote_address=(str(peer[0]), int(peer[1])) if peer else None,
        scheme="https" if request.secure else "http",
    )
    decision = await server._admit(handshake)
    if isinstance(decision, Reject):
        return web.Response(status=decision.status, text=f"{decision.reason}\n")
    options = server.options
    # No permessage-deflate (as standalone): it costs memory per connection and CPU per message.
    ws = _WebSocket(
        autoping=False,
        max_msg_size=wire_limit(options.max_message_size) + 1,
        compress=False,
        timeout=options.close_timeout,
    )
    await ws.prepare(request)
    conn = AiohttpConn(server, ws, request.transport)
    server._live.add(conn)
    socket = None
    reason = CloseReason.TRANSPORT_ERROR
    keepalive = None
    try:
        socket = conn.socket = await server._opened(conn, handshake, decision.identity)
        del handshake, decision  # the socket keeps what it needs
        if options.ping_interval is not None and socket.id in server.sockets:
            keepalive = asyncio.create_task(_keepalive(server, conn, socket.id, options.ping_interval))
        ended = await _read(server, conn)
        if ended is None:
            await conn.finished()  # rtt's close: its closing handshake ends first
        else:
            reason = ended
    finally:
        if keepalive is not None:
            keepalive.cancel()
        conn.ended_now()
        if not ws.closed:
            conn.abort()  # the handler was cancelled or failed: nothing is left open
        server._live.discard(conn)
        if socket is not None:
            await server._closed(socket, reason)
    return ws


async def _read(server: WsServer, conn: AiohttpConn) -> CloseReason | None:
    """Deliver messages until the connection ends; how it ended (``None``: rtt is closing it)."""
    ws = conn.ws
    socket = conn.socket
    assert socket is not None
    while True:
        msg = await ws.receive()
        kind = msg.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            await server._received(socket, msg.data)
        elif kind is WSMsgType.PING:
            with contextlib.suppress(Exception):  # the peer left: the next receive says so
                await ws.pong(msg.data)
        elif kind is WSMsgType.PONG:
            if conn.pong is not None and not conn.pong.done():
                conn.pong.set_result(None)
        elif kind is WSMsgType.CLOSE:
            return CloseReason.from_client(msg.data, msg.extra or "")
        elif kind is WSMsgType.ERROR:
            code = getattr(msg.data, "code", None) or ws.close_code
            if code == WSCloseCode.MESSAGE_TOO_BIG:
                return CloseReason.MESSAGE_TOO_BIG
            if code in _PROTOCOL_ERROR_CODES:
                return CloseReason.PROTOCOL_ERROR
            return CloseReason.TRANSPORT_ERROR
        elif kind is WSMsgType.CLOSING:
            return None  # rtt's close is under way (the writer task sends it)
        else:  # CLOSED: the connection was dropped
            return CloseReason.TRANSPORT_ERROR


async def _keepalive(server: WsServer, conn: AiohttpConn, socket_id: str, interval: float) -> None:
    """Ping every ``interval``; no pong within ``ping_timeout`` drops the socket (SPEC.md 6).

    While a ``message`` handler of the socket runs, the reader is not taking
    frames, so the pong may be waiting behind the message: the clock restarts
    (SPEC.md 10.2).
    """
    loop = asyncio.get_running_loop()
    timeout = server.options.ping_timeout
    while True:
        await asyncio.sleep(interval)
        pong = conn.pong = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await conn.ws.ping()
        except TimeoutError:
            pass  # the peer does not read: the pong will not come either
        except Exception:
            return  # the connection ended; the handler reports how
        while True:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(pong)
                break
            except TimeoutError:
                if not server._handling(socket_id):
                    server._begin_close(socket_id, CloseReason.PING_TIMEOUT)
                    return
