"""rtt-ws as an ASGI application: rtt's plain WebSocket on the ASGI server's WebSocket.

No library: the ASGI server (uvicorn, hypercorn, daphne) does the framing,
the size limit of its own, pings and the TCP connection; rtt sees messages.
What ASGI cannot say is in SPEC.md 12.2 ("Mounted"): no pings of rtt's
own, no write buffer to measure, no abort.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from rtt import Close, CloseReason, Handshake, Headers, Reject, ServerState
from rtt.asgi import ASGIApp, Receive, Scope, Send, route_path, serve_lifespan
from rtt.assets import asset_headers, read_asset
from rtt.codec import message_size

from ._mounted import METHOD_NOT_ALLOWED_TEXT, UPGRADE_REQUIRED_TEXT, MountedConn, Outgoing

if TYPE_CHECKING:
    from .server import WsServer

__all__ = ["asgi_app"]

_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
#: The ASGI extension that lets an application answer a WebSocket handshake with an HTTP response.
_HTTP_RESPONSE = "websocket.http.response"


class AsgiConn(MountedConn):
    """One rtt WebSocket on the ASGI server's WebSocket."""

    def __init__(self, server: WsServer, send: Send) -> None:
        super().__init__(server)
        self.send = send
        self.reader: asyncio.Task[CloseReason] | None = None

    @staticmethod
    def prepare(data: str | bytes) -> Outgoing:
        # One event for every connection of a broadcast: ASGI servers only read it.
        if isinstance(data, str):
            return {"type": "websocket.send", "text": data}, message_size(data)
        return {"type": "websocket.send", "bytes": data}, len(data)

    async def _write(self, item: Any) -> None:
        await self.send(item)

    async def _write_close(self, close: Close) -> None:
        await self.send({"type": "websocket.close", "code": close.code, "reason": close.text})
        # The ASGI server finishes the closing handshake; its websocket.disconnect ends the reader.
        if self.reader is not None:
            await asyncio.wait({self.reader})

    def _drop(self) -> None:
        # ASGI has no abort: the application stops reading and returns, and the ASGI
        # server closes the connection as it does when an application ends.
        if self.reader is not None:
            self.reader.cancel()


def asgi_app(server: WsServer, other_app: ASGIApp | None, path: str) -> ASGIApp:
    """The ASGI application of ``server`` (SPEC.md 12.2, "Mounted")."""
    assets_path = server.options.assets_path

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await serve_lifespan(server, scope, receive, send, other_app)
            return
        where = route_path(scope)
        if kind == "websocket" and where == path:
            await _serve(server, scope, receive, send)
        elif kind == "http" and where == path:
            await _plain_request(scope, send)
        elif kind == "http" and assets_path is not None and where.startswith(assets_path):
            await _asset(server, where[len(assets_path) :], send)
        elif other_app is not None:
            await other_app(scope, receive, send)
        elif kind == "http":
            await _respond(send, 404, b"Not Found\n")
        elif kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1000})  # answered 403 by the ASGI server

    return app


async def _respond(send: Send, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [_TEXT_PLAIN, *headers]})
    await send({"type": "http.response.body", "body": body})


async def _plain_request(scope: Scope, send: Send) -> None:
    if scope["method"] != "GET":
        await _respond(send, 405, METHOD_NOT_ALLOWED_TEXT.encode(), (b"allow", b"GET"))
    else:
        await _respond(send, 426, UPGRADE_REQUIRED_TEXT.encode(), (b"upgrade", b"websocket"))


async def _asset(server: WsServer, name: str, send: Send) -> None:
    found = read_asset(server.transport.browser_assets(), name)
    if found is None:
        await _respond(send, 404, b"Not Found\n")
        return
    content_type, body = found
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in asset_headers(content_type).items()
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
    """Refuse the handshake with ``status`` where the ASGI server lets us, else as it answers a close."""
    if _HTTP_RESPONSE in scope.get("extensions", {}):
        start = {"type": f"{_HTTP_RESPONSE}.start", "status": status, "headers": [_TEXT_PLAIN]}
        await send(start)
        await send({"type": f"{_HTTP_RESPONSE}.body", "body": f"{reason}\n".encode()})
    else:
        await send({"type": "websocket.close", "code": 1008})  # 403, whatever the status


def _handshake(scope: Scope) -> Handshake:
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    client = scope.get("client")
    return Handshake(
        headers=Headers.from_raw(scope["headers"]),
        path=path or "/",
        query_string=scope.get("query_string", b"").decode("latin-1"),
        remote_address=(str(client[0]), int(client[1])) if client else None,
        scheme="https" if scope.get("scheme") in ("https", "wss") else "http",
    )


async def _serve(server: WsServer, scope: Scope, receive: Receive, send: Send) -> None:
    connect = await receive()
    if connect["type"] != "websocket.connect":  # the client left before the handshake was handed over
        return
    if server.state is not ServerState.RUNNING:
        await _refuse(scope, send, 503, "Server not running")
        return
    handshake = _handshake(scope)
    decision = await server._admit(handshake)
    if isinstance(decision, Reject):
        await _refuse(scope, send, decision.status, decision.reason)
        return
    await send({"type": "websocket.accept"})
    conn = AsgiConn(server, send)
    server._live.add(conn)
    socket = None
    reason = CloseReason.TRANSPORT_ERROR
    try:
        socket = conn.socket = await server._opened(conn, handshake, decision.identity)
        del handshake, decision  # the socket keeps what it needs
        conn.reader = asyncio.get_running_loop().create_task(_read(server, conn, receive))
        await asyncio.wait({conn.reader})
        if not conn.reader.cancelled():  # cancelled: rtt dropped it, and knows why
            failure = conn.reader.exception()
            if failure is None:
                reason = conn.reader.result()
            elif not isinstance(failure, OSError):  # an ASGI server's "client disconnected" is one
                raise failure
    finally:
        if conn.reader is not None and not conn.reader.done():
            conn.reader.cancel()  # the ASGI server cancelled this application
        conn.ended_now()
        server._live.discard(conn)
        if socket is not None:
            await server._closed(socket, reason)


async def _read(server: WsServer, conn: AsgiConn, receive: Receive) -> CloseReason:
    """Deliver messages until the client's side ends; how it ended."""
    socket = conn.socket
    assert socket is not None
    while True:
        event: MutableMapping[str, Any] = await receive()
        kind = event["type"]
        if kind == "websocket.receive":
            data = event.get("text")
            if data is None:
                data = event.get("bytes") or b""
            await server._received(socket, data)
        elif kind == "websocket.disconnect":
            code = event.get("code", 1005)
            return CloseReason.from_client(code, event.get("reason") or "", resumable=socket.resumable)
