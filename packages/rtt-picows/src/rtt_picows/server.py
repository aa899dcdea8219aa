"""The picows server: rtt's server template over picows's Cython WebSocket protocol.

The upgrade request is read here, on a small asyncio protocol, because rtt's
handshake hooks are async (``authorize``) and picows asks for the decision
synchronously, in the middle of parsing the request. Once the request is
admitted, the connection is handed to picows's protocol (``WSProtocol``, the
class ``ws_create_server`` builds) and the request's bytes are replayed into
it: picows then answers 101 and owns the connection, with rtt's listener
(:class:`_Conn`) getting its frames.

Mapping of the normalised options (SPEC.md 12): ``max_message_size``, with
:func:`rtt.resume.wire_limit`'s slack, is picows's ``max_frame_size`` and the
bound on a fragmented message (1009; the core refuses the rest);
origins and ``authorize`` run before the upgrade and refuse with an HTTP
status; ``ping_interval``/``ping_timeout`` drive one heartbeat for the whole
server, which drops a socket whose pong is late at once; ``close_timeout``
bounds the closing handshake; ``outbound_limit`` is the high-water mark of
each connection's write buffer, reported by the asyncio transport.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast
from urllib.parse import urlsplit

from picows import (
    WSAutoPingStrategy,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from rtt import (
    Accept,
    Close,
    CloseReason,
    ConnectionClosed,
    Handshake,
    Headers,
    Reject,
    Server,
    Socket,
)
from rtt.assets import asset_headers, read_asset
from rtt.listener import HEADER_TIMEOUT, quiet_accept_errors
from rtt.resume import wire_limit

from ._frames import Assembler, Violation, close_reason, code_of, reply_code, violation_text, whole, wire_code

if TYPE_CHECKING:
    from .transport import PicowsServerOptions, PicowsTransport

__all__ = ["PicowsServer"]

_TEXT: Final = WSMsgType.TEXT
_BINARY: Final = WSMsgType.BINARY
_HEADROOM: Final = 14
"""Bytes picows needs in front of a payload for the largest frame header (send_reuse_external_bytearray)."""
_MAX_HEAD: Final = 16000
"""Largest request head (request line and headers) taken; more is 431 (picows itself takes 16 KiB)."""
_MAX_HEADERS: Final = 128
_QUEUE: Final = 16
"""Messages a connection may have waiting for its handlers before its socket is no longer read."""
_READ_BUFFER: Final = 1024
"""picows's first read buffer per connection (it doubles as frames need): its default 16 KiB is most
of an idle connection's memory."""
_REPLAY: Final = (
    b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %b\r\n\r\n"
)
"""What picows is given of an admitted request (see :meth:`_Upgrade._upgrade`)."""
_SHARED: Final = frozenset(
    {
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "host",
        "origin",
        "pragma",
        "sec-websocket-extensions",
        "sec-websocket-version",
        "upgrade",
        "user-agent",
    }
)
"""Headers whose lines most clients send alike: their parsed pairs are shared between sockets."""
_MAX_SHARED: Final = 1024
_LINES: dict[str, tuple[str, str]] = {}
"""Parsed pairs of :data:`_SHARED` header lines, by line: every socket keeps its headers, so
identical lines cost one pair for all (emptied when full, so it stays bounded)."""
_NAMES: dict[str, str] = {}
"""The names of other headers (``Sec-WebSocket-Key``, ``Cookie``), shared the same way."""
_V = TypeVar("_V")
_FAILED: Final = "Failed to open a WebSocket connection: "
_WS_VERSION: Final = "13"


class _PicowsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows's logger, quiet about peers: a line per connection at DEBUG, never an ERROR a peer caused.

    picows logs every accepted connection and every disconnect at INFO, and a
    malformed frame from the peer (``WS parser error``) at ERROR; rtt logs its
    sockets at DEBUG (SPEC.md 3.8), and a peer's mistake is not the server's error.
    """

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if level == logging.INFO or (isinstance(msg, str) and msg.startswith("WS parser error")):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


_LOG = _PicowsLog(logging.getLogger("picows.server"), {})


class _Conn(WSListener):
    """One WebSocket connection: picows's listener, and the ``C`` of ``Server[C]``.

    picows calls it synchronously for each frame; messages that come while
    one is being handled wait in :attr:`queue` and are reported to rtt in order (:meth:`_report`), so a
    handler that awaits delays only its own socket, and the socket stops being
    read once :data:`_QUEUE` messages wait. The report starts at once, inside
    picows's callback, and becomes a task only if a handler really waits
    (:func:`_go_on`): most messages cost no task and no turn of the loop.
    """

    __slots__ = (
        "assembler",
        "dead",
        "handshake",
        "identity",
        "paused",
        "ping_at",
        "pinged",
        "queue",
        "reporting",
        "server",
        "socket",
        "ws",
    )

    def __init__(self, server: PicowsServer, handshake: Handshake, identity: Any) -> None:
        self.server = server
        self.handshake: Handshake | None = handshake
        self.identity = identity
        self.socket: Socket | None = None
        self.ws: WSTransport = None  # type: ignore[assignment]  # set by on_ws_connected, before anything else
        # Made on the first fragment: most connections never send one.
        self.assembler: Assembler | None = None
        self.queue: collections.deque[object] | None = None
        self.reporting = False
        self.paused = False
        self.dead = False
        self.ping_at: float | None = None
        self.pinged = 0.0

    # -- picows's callbacks ---------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.ws = transport
        # picows keeps the request it parsed for the connection's life but never reads it
        # again once it has answered (the socket has the client's own headers): about 1 KB per
        # idle connection, most of it the headers.
        request = transport.request
        request.headers = None  # type: ignore[assignment]
        request.method = request.version = b""
        self.server._all.add(self)
        self.pinged = self.server._loop_time()
        self._push(self)  # itself stands for "opened"

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.dead:
            return
        kind = frame.msg_type
        if kind is WSMsgType.PONG:
            self.ping_at = None
            return
        if kind is WSMsgType.CLOSE:
            self.dead = True
            if not transport.is_close_frame_sent:
                transport.send_close(wire_code(reply_code(code_of(frame.get_close_code()))))
            # RFC 6455 7.1.1: the server closes the TCP connection first.
            transport.disconnect()
            return
        if kind is WSMsgType.PING:
            return  # answered by picows (enable_auto_pong)
        assembler = self.assembler
        try:
            if assembler is None:
                if frame.fin:
                    data: str | bytes | None = whole(frame, kind, self.server._frame_limit)
                else:
                    assembler = self.assembler = Assembler(self.server._frame_limit)
                    data = assembler.feed(frame)
            else:
                data = assembler.feed(frame)
        except Violation as exc:
            self.dead = True
            transport.send_close(wire_code(exc.code), violation_text(exc.code).encode())
            transport.disconnect()
            return
        if data is not None:
            self._push(data)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.dead = True
        self.server._all.discard(self)
        self._push(close_reason(transport, peer_is_client=True))

    def pause_writing(self) -> None:
        # Called from inside a write: only note it; the server acts once the write returns.
        self.server._over_limit.append(self)

    def resume_writing(self) -> None:
        pass

    # -- Reporting to rtt, in order ---------------------------------------------

    def _push(self, item: object) -> None:
        if self.reporting:
            queue = self.queue
            if queue is None:
                # Only for a socket whose handler waits: an idle connection holds no queue.
                queue = self.queue = collections.deque()
            queue.append(item)
            if len(queue) >= _QUEUE and not self.paused and not self.dead:
                self.paused = True
                self.ws.underlying_transport.pause_reading()
            return
        self.reporting = True
        # A task, so handlers get what asyncio promises a coroutine (current_task(),
        # asyncio.timeout(), their own context); eager where Python has it (3.12+), so a
        # report that never waits costs no trip through the event loop.
        self.server._spawn(self._report(item), eager=True)

    async def _report(self, item: object) -> None:
        """Report ``item``, then whatever was queued meanwhile, in order."""
        server = self.server
        try:
            while True:
                if item is self:
                    assert self.handshake is not None
                    self.socket = await server._opened(self, self.handshake, self.identity)
                    self.handshake = self.identity = None  # the socket keeps what it needs
                elif type(item) is CloseReason:
                    assert self.socket is not None
                    await server._closed(self.socket, item)
                else:
                    assert self.socket is not None
                    await server._received(self.socket, item)  # type: ignore[arg-type]
                queue = self.queue
                if not queue:
                    return
                item = queue.popleft()
                if self.paused and len(queue) < _QUEUE // 2:
                    self.paused = False
                    if not self.ws.is_disconnected:
                        self.ws.underlying_transport.resume_reading()
        finally:
            self.reporting = False


class _Upgrade(asyncio.Protocol):
    """A new connection until its upgrade request is admitted: reads and checks the request (SPEC.md 8).

    The request's headers must be complete within ``HEADER_TIMEOUT`` (3.11).
    An admitted request is replayed into picows's protocol, which then owns
    the connection; anything else is answered with its HTTP status and closed.
    """

    __slots__ = ("buffer", "deadline", "server", "task", "transport")

    def __init__(self, server: PicowsServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.deadline: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is one without subclassing asyncio.Transport).
        self.transport = transport = cast(asyncio.Transport, transport)
        limit = self.server.options.outbound_limit
        transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.server._pending.add(self)
        self.deadline = asyncio.get_running_loop().call_later(HEADER_TIMEOUT, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def _done(self) -> None:
        self.server._pending.discard(self)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def data_received(self, data: bytes) -> None:
        if self.task is not None:
            self.buffer += data  # the start of the WebSocket stream, replayed with the request
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self._respond(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large.")
            elif b"\n\n" in self.buffer:
                self._respond(HTTPStatus.BAD_REQUEST, "not a valid HTTP request.")
            return
        if end > _MAX_HEAD:
            self._respond(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large.")
            return
        assert self.transport is not None
        self.transport.pause_reading()
        if self.deadline is not None:
            self.deadline.cancel()  # lifted while the request is handled (3.11)
            self.deadline = None
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]  # what is left is the start of the WebSocket stream
        self.task = self.server._spawn(self._handle(head))

    def eof_received(self) -> bool:
        return False

    def _respond(
        self,
        status: int,
        text: str,
        headers: dict[str, str] | None = None,
        *,
        phrase: str | None = None,
        raw: bool = False,
    ) -> None:
        """Answer the request with plain text; ``raw`` sends ``text`` as the whole body."""
        body = (text if raw else f"{_FAILED}{text}\n").encode()
        self._write(status, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}, body, phrase)

    def _write(self, status: int, headers: dict[str, str], body: bytes, phrase: str | None = None) -> None:
        """Write one response and close the connection: one response per connection, no keep-alive."""
        transport = self.transport
        assert transport is not None
        lines = [f"HTTP/1.1 {status} {phrase or HTTPStatus(status).phrase}"]
        for name, value in {**headers, "Content-Length": str(len(body)), "Connection": "close"}.items():
            lines.append(f"{name}: {value}")
        transport.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        transport.close()
        self._done()

    def _asset(self, name: str) -> None:
        found = read_asset(self.server.transport.browser_assets(), name)
        if found is None:
            self._write(HTTPStatus.NOT_FOUND, {}, b"")
            return
        content_type, body = found
        self._write(HTTPStatus.OK, asset_headers(content_type), body)

    async def _handle(self, head: bytes) -> None:
        transport = self.transport
        assert transport is not None
        request = _parse(head)
        if not isinstance(request, _Request):
            self._respond(*request)
            return
        target, pairs = request.target, request.headers
        refused = _check(request)
        if refused is not None:
            self._respond(*refused)
            return
        parts = urlsplit(target)
        assets_path = self.server.options.assets_path
        if (
            assets_path is not None
            and request.method == "GET"
            and not _upgrade_to_websocket(Headers(pairs))
            and parts.path.startswith(assets_path)
        ):
            self._asset(parts.path[len(assets_path) :])
            return
        refused = _check_upgrade(request)
        if refused is not None:
            self._respond(*refused)
            return
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) != 2:
            peer = (peer[0], peer[1])  # IPv6's has four fields
        handshake = Handshake(
            headers=Headers(pairs),
            path=parts.path or "/",
            query_string=parts.query,
            remote_address=peer if isinstance(peer, tuple) else None,
        )
        decision = await self.server._admit(handshake)
        if isinstance(decision, Reject):
            reason = decision.reason
            phrase = reason if reason.isascii() else None
            self._respond(decision.status, f"{reason}\n", phrase=phrase, raw=True)
            return
        if transport.is_closing():
            self._done()
            return
        self._upgrade(handshake, decision)

    def _upgrade(self, handshake: Handshake, accept: Accept) -> None:
        transport = self.transport
        assert transport is not None
        server = self.server
        conn = _Conn(server, handshake, accept.identity)
        protocol = server._protocol(conn)
        self._done()
        # uvloop's transport keeps the last data_received it was given, and picows's protocol has
        # none: set straight after this one, it would keep this object and its finished task for
        # the connection's life (about 1 KB). The stand-in's is one function for all.
        transport.set_protocol(_REPLACED)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        # picows parses a request again and keeps it for the connection's life: it gets the
        # shortest request that asks for the same upgrade, not the client's (checked above; the
        # socket keeps its headers), which also spares it tokens it would misread
        # (``Connection: keep-alive, Upgrade``).
        key = handshake.headers["Sec-WebSocket-Key"]
        data = memoryview(_REPLAY % key.encode("ascii") + self.buffer)
        while data:
            # picows answers 101.
            space = memoryview(protocol.get_buffer(-1))
            size = min(len(space), len(data))
            space[:size] = data[:size]
            protocol.buffer_updated(size)
            data = data[size:]
        data.release()
        self.buffer = bytearray()
        transport.resume_reading()


class _Replaced(asyncio.Protocol):
    """What a transport's protocol was before picows's: its ``data_received`` is never called."""

    __slots__ = ()

    @staticmethod
    def data_received(data: bytes) -> None:
        raise AssertionError("an upgraded connection's bytes go to picows's buffer")


_REPLACED: Final = _Replaced()


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]


_Refusal = tuple[int, str] | tuple[int, str, dict[str, str]]
_TOKEN: Final = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _parse(head: bytes) -> _Request | _Refusal:
    """The request line and headers of an HTTP/1.1 request head (RFC 9112), or why it is refused."""
    bad = (HTTPStatus.BAD_REQUEST, "not a valid HTTP request.")
    lines = head.decode("latin-1").split("\r\n")
    if len(lines) - 1 > _MAX_HEADERS:
        return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers."
    fields = lines[0].split(" ")
    if (
        len(fields) != 3
        or not fields[0]
        or set(fields[0]) - _TOKEN
        or fields[2] not in ("HTTP/1.1", "HTTP/1.0")
    ):
        return bad
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        pair = _LINES.get(line)
        if pair is None:
            name, colon, value = line.partition(":")
            if not colon or not name or set(name) - _TOKEN:
                return bad
            value = value.strip(" \t")
            if any((char < " " and char != "\t") or char == "\x7f" for char in value):
                return bad
            if name.lower() in _SHARED:
                pair = _keep(_LINES, line, (name, value))
            else:
                pair = (_NAMES.get(name) or _keep(_NAMES, name, name), value)
        pairs.append(pair)
    return _Request(fields[0], fields[1], fields[2], pairs)


def _keep(cache: dict[str, _V], key: str, value: _V) -> _V:
    """``value``, kept in ``cache`` for the next socket (:data:`_LINES`, :data:`_NAMES`): emptied
    when full, so it stays bounded."""
    if len(cache) >= _MAX_SHARED:
        cache.clear()
    cache[key] = value
    return value


def _check(request: _Request) -> _Refusal | None:
    """Refuse what HTTP or RFC 6455 does not allow in any request, before anything else runs."""
    target = request.target
    headers = Headers(request.headers)
    # RFC 9112 3.2: a request-target is visible ASCII.
    if not target or not all("!" <= char <= "~" for char in target):
        return HTTPStatus.BAD_REQUEST, "invalid target."
    if len(headers.get_all("Host")) != 1:
        return HTTPStatus.BAD_REQUEST, "missing or repeated Host header."
    versions = headers.get_all("Sec-WebSocket-Version")
    if versions and versions != [_WS_VERSION]:
        return (
            HTTPStatus.UPGRADE_REQUIRED,
            f"unsupported WebSocket version, use {_WS_VERSION}.",
            {"Sec-WebSocket-Version": _WS_VERSION},
        )
    return None


def _upgrade_to_websocket(headers: Headers) -> bool:
    """Whether a request asks for a WebSocket (``Upgrade: websocket``)."""
    return "websocket" in [token.strip().lower() for token in ",".join(headers.get_all("Upgrade")).split(",")]


def _check_upgrade(request: _Request) -> _Refusal | None:
    """Refuse what is no WebSocket upgrade (RFC 6455 4.2.1); None for one picows will accept."""
    method, version = request.method, request.version
    headers = Headers(request.headers)
    versions = headers.get_all("Sec-WebSocket-Version")
    if method != "GET":
        return HTTPStatus.METHOD_NOT_ALLOWED, "only GET opens a WebSocket.", {"Allow": "GET"}
    if version != "HTTP/1.1":
        return HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "a WebSocket needs HTTP/1.1."
    if headers.get("Transfer-Encoding") is not None or headers.get("Content-Length", "0") != "0":
        return HTTPStatus.BAD_REQUEST, "not a valid HTTP request."
    connection = [token.strip().lower() for token in ",".join(headers.get_all("Connection")).split(",")]
    if not _upgrade_to_websocket(headers) or "upgrade" not in connection:
        return HTTPStatus.UPGRADE_REQUIRED, "expected a WebSocket upgrade.", {"Upgrade": "websocket"}
    if not versions:
        return HTTPStatus.BAD_REQUEST, "missing Sec-WebSocket-Version header."
    keys = headers.get_all("Sec-WebSocket-Key")
    try:
        valid = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except ValueError:  # binascii.Error, or a character past ASCII
        valid = False
    if not valid:
        return HTTPStatus.BAD_REQUEST, "missing or invalid Sec-WebSocket-Key header."
    return None


class PicowsServer(Server[_Conn]):
    """A server at ``ws://host:port/`` (``wss://`` with ``ssl``); any path is reported in ``socket.path``.

    Plain HTTP GETs under ``assets_path`` (default ``/rtt/``) get the browser
    client files, so a page can load exactly the code that talks to this server.
    """

    options: PicowsServerOptions
    # picows writes large frames with the transport's writelines(), which on Python 3.12 and 3.13
    # (asyncio's sendmsg) buffers without calling pause_writing: there the core also reads each
    # written socket's buffer size after a send. On 3.11 (writelines joins and writes, and
    # uvloop's pauses as its write does) pause_writing never misses, and that read is waste.
    _reports_slow_consumers = sys.version_info < (3, 12)

    def __init__(
        self, transport: PicowsTransport, options: PicowsServerOptions, host: str, port: int
    ) -> None:
        super().__init__(transport, options, host, port)
        self._listener: asyncio.Server | None = None
        self._quiet_accept: Callable[[], None] = lambda: None
        self._over_limit: list[_Conn] = []
        self._pending: set[_Upgrade] = set()
        self._all: set[_Conn] = set()
        self._loop_time: Callable[[], float] = lambda: 0.0
        # One byte of slack for resume's escape; the core checks the message itself.
        self._frame_limit = wire_limit(options.max_message_size)
        # The 101 response for every connection: picows keeps the response it sent for the
        # connection's life, so one object for all saves each its own (picows sets the
        # Sec-WebSocket-Accept header on it just before it writes it, in the same call).
        self._response = WSUpgradeResponse.create_101_response()

    def _protocol(self, conn: _Conn) -> asyncio.BufferedProtocol:
        """picows's protocol for one admitted connection, with ``conn`` as its listener."""
        options = self.options
        protocol: asyncio.BufferedProtocol = WSProtocol(
            None,  # host and port: a client's
            None,  # path: a client's
            False,  # server side
            lambda request: WSUpgradeResponseWithListener(self._response, conn),
            _LOG,
            True,  # disconnect_on_exception
            None,  # handshake timeout: the request is in already
            False,  # picows's auto-ping: rtt's own heartbeat (_heartbeat) spares busy sockets
            options.ping_interval or 20.0,
            options.ping_timeout,
            WSAutoPingStrategy.PING_WHEN_IDLE,  # unused
            True,  # answer pings
            wire_limit(options.max_message_size),
            None,  # extra headers: a client's
            _READ_BUFFER,
        )
        return protocol

    def _check_over_limit(self) -> None:
        over, self._over_limit = self._over_limit, []
        for conn in over:
            if conn.socket is not None:
                self._slow_consumer(conn.socket.id)

    async def _heartbeat(self, interval: float, timeout: float) -> None:
        """Ping every socket every ``interval``; one whose pong is ``timeout`` late is dropped (SPEC.md 6).

        One task for the server, ticking at the shorter of the two, rather than
        a task per socket. A socket whose ``message`` handler is running gets
        its clock restarted (SPEC.md 10.2).
        """
        loop = asyncio.get_running_loop()
        tick = min(interval, timeout)
        slack = tick / 100  # a timer may fire a clock tick early
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for socket_id, conn in list(self._conns.items()):
                if conn.ping_at is not None:
                    if now - conn.ping_at >= timeout - slack:
                        if self._handling(socket_id):
                            conn.ping_at = now
                        else:
                            # Dropped at once: the peer is not reading, a closing handshake would hang.
                            self._begin_close(socket_id, CloseReason.PING_TIMEOUT)
                elif now - conn.pinged >= interval - slack and not conn.dead:
                    conn.ws.send_ping()
                    conn.ping_at = conn.pinged = now
            if self._over_limit:
                self._check_over_limit()

    # -- rtt.Server hooks ---------------------------------------------------

    async def _start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._loop_time = loop.time
        tls = self.options.ssl
        self._listener = await loop.create_server(
            lambda: _Upgrade(self),
            self.host,
            self.port,
            reuse_port=self.options.reuse_port or None,
            ssl=tls,
            # The TLS handshake gets the request head's deadline (3.11) before the head's own starts.
            ssl_handshake_timeout=HEADER_TIMEOUT if tls is not None else None,
        )
        # Out of file descriptors: a few WARNING lines, not asyncio's traceback per accept() (SPEC 3.11).
        self._quiet_accept = quiet_accept_errors(self._listener.sockets)
        options = self.options
        if options.ping_interval is not None:
            self._spawn(self._heartbeat(options.ping_interval, options.ping_timeout))
        host, port = self._listener.sockets[0].getsockname()[:2]
        return host, port

    def _url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{'wss' if self.options.ssl is not None else 'ws'}://{host}:{port}/"

    async def _send(self, conn: _Conn, data: str | bytes) -> None:
        ws = conn.ws
        if ws.is_close_frame_sent or ws.is_disconnected:
            raise ConnectionClosed(close_reason(ws, peer_is_client=True))
        ws.send(_TEXT if type(data) is str else _BINARY, data)  # writes at once, without waiting
        if self._over_limit:
            self._check_over_limit()

    async def _broadcast(self, conns: list[_Conn], data: str | bytes) -> None:
        # One frame for all: a server frame is unmasked, so the same bytes go to every peer; picows
        # writes its header into the room in front of the payload, the same header each time.
        kind = _TEXT if type(data) is str else _BINARY
        payload = data.encode() if isinstance(data, str) else data
        frame = bytearray(_HEADROOM)
        frame += payload
        for conn in conns:
            ws = conn.ws
            if not (ws.is_close_frame_sent or ws.is_disconnected):
                ws.send_reuse_external_bytearray(kind, frame, _HEADROOM)
        if self._over_limit:
            self._check_over_limit()

    def _buffered(self, conn: _Conn) -> int:
        return int(conn.ws.underlying_transport.get_write_buffer_size())

    async def _close(self, conn: _Conn, close: Close) -> None:
        ws = conn.ws
        if ws.is_disconnected:
            return  # its end is reported by on_ws_disconnected
        if not ws.is_close_frame_sent:
            ws.send_close(wire_code(close.code), close.text.encode())
        try:
            # The peer's close frame makes this side close the TCP connection (on_ws_frame).
            async with asyncio.timeout(self.options.close_timeout):
                await ws.wait_disconnected()
        except TimeoutError:
            ws.disconnect(graceful=False)

    def _abort(self, conn: _Conn) -> None:
        conn.dead = True
        conn.ws.disconnect(graceful=False)

    async def _stop_accepting(self) -> None:
        if self._listener is not None:
            # Stop listening; rtt closes the open connections itself with its own reason.
            self._listener.close()
            self._quiet_accept()

    async def _stop(self) -> None:
        for pending in list(self._pending):
            if pending.transport is not None:
                pending.transport.abort()
            pending._done()
        for conn in list(self._all):
            conn.ws.disconnect(graceful=False)
        if self._listener is not None:
            self._listener.close()
            self._quiet_accept()
            await self._listener.wait_closed()
