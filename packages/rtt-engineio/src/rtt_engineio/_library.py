"""Everything rtt-engineio does inside python-engineio's (and asyncio's) private parts.

python-engineio has no hooks for what rtt needs (admission with rtt's HTTP
status before a session exists, raw text, byte-counted and batched queues,
rtt's close reasons, knowing its tasks), so this module subclasses its server,
socket and client and reads or writes some of their attributes. Nothing else
in rtt-engineio touches a private part of python-engineio or asyncio: the rest
of the plugin uses this module and public APIs only.

Written against python-engineio 4.15.1 and checked against 4.13.0 (the range
the distribution allows is :data:`ENGINEIO_RANGE`). :data:`COUPLING` lists
every override and access, with the upstream symbol and the reason; the
canary tests (``tests/engineio_plugin/test_engineio_canaries.py``) check each
entry against the installed release and SPEC.md 12.3 lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import aiohttp
import aiohttp._websocket.reader
import aiohttp.web_protocol
import engineio  # type: ignore[import-untyped, unused-ignore]
import engineio.async_drivers.aiohttp  # type: ignore[import-untyped, unused-ignore]
import engineio.async_drivers.asgi  # type: ignore[import-untyped, unused-ignore]
import engineio.async_server  # type: ignore[import-untyped, unused-ignore]
import engineio.base_client  # type: ignore[import-untyped, unused-ignore]
from aiohttp import WebSocketError, WSMsgType, web
from engineio import exceptions as eio_exceptions  # type: ignore[import-untyped, unused-ignore]
from engineio import packet  # type: ignore[import-untyped, unused-ignore]
from engineio.async_socket import AsyncSocket  # type: ignore[import-untyped, unused-ignore]

from rtt import CloseReason
from rtt.listener import HEADER_TIMEOUT
from rtt.rfc6455 import check_aiohttp_masks

from ._wire import (
    BINDING_REFUSED,
    CLOSE,
    MESSAGE,
    NOOP,
    OPEN,
    PING,
    PONG,
    RECORD_SEPARATOR,
    UPGRADE,
    binding_cookie,
    binding_key,
    decode_packet,
    owns,
)

if TYPE_CHECKING:
    from .server import EngineioConn, EngineioServer

__all__ = [
    "COUPLING",
    "ENGINEIO_RANGE",
    "Coupling",
    "LibraryClient",
    "LibraryServer",
    "RttSocket",
    "SendQueue",
    "TrackedTasks",
    "aiohttp_request",
    "answer_and_close",
    "asgi_scope",
    "binding_key_of",
    "binding_refused",
    "forget_client",
    "let_client_go",
    "raw_text",
    "send_close_packet",
]

#: The python-engineio releases this module was written and checked against.
ENGINEIO_RANGE = ">=4.13,<4.16"

#: Packets in one long-polling response: python-engineio's client refuses a payload of more than 16.
PACKETS_PER_POLL = 16


@dataclass(frozen=True)
class Coupling:
    """One private part of a library that rtt-engineio overrides, calls, reads or writes."""

    owner: Any
    """The upstream class, module or function."""
    names: tuple[str, ...]
    """The attributes touched (for ``how="environ key"``: the keys the driver puts in the environ)."""
    how: str
    """``overrides``, ``calls``, ``reads``, ``writes`` or ``environ key``."""
    why: str
    """Why rtt touches it, and why no public API does instead."""
    parameters: tuple[str, ...] | None = None
    """A method's parameters (``self`` included) as written against; ``None``: presence only."""
    instance: bool = False
    """The names are set on instances (in ``__init__``), so are checked on one."""


_Server = engineio.AsyncServer
_Client = engineio.AsyncClient

#: Every override and private access of this module (SPEC.md 12.3, library coupling).
COUPLING: tuple[Coupling, ...] = (
    # -- The server -----------------------------------------------------------
    Coupling(
        _Server,
        ("_handle_connect",),
        "overrides",
        "LibraryServer: admission (origins, authorize) before a session exists, refused with rtt's "
        "status; the library's only hook, the connect event, runs after and can only answer 401",
        ("self", "environ", "transport", "jsonp_index"),
    ),
    Coupling(
        _Server,
        ("_make_response",),
        "overrides",
        "every HTTP answer passes here with its environ: a POST rtt refused is 400 (the library "
        "answers 200 whatever its body), another method 400 (the library: 405), a POST `ok` (the "
        "library: `OK`), as Engine.IO v4 says, a POST whose body timed out 408 and its connection "
        "closed; no public hook sees the response",
        ("self", "response_dict", "environ"),
    ),
    Coupling(
        engineio.base_server.BaseServer,  # where AsyncServer inherits it from
        ("_log_error_once",),
        "overrides",
        "the library logs every refused request at ERROR with the session id (`Invalid session "
        "<sid>`) or the Origin header in it, which would hand a session to whoever reads the log "
        "(SPEC 3.8); rtt logs one DEBUG line naming the kind of refusal; no option quiets it",
        ("self", "message", "message_key"),
    ),
    Coupling(
        engineio.async_server.async_socket,
        ("AsyncSocket",),
        "reads",
        "adopt(): _handle_connect builds async_socket.AsyncSocket by name (no factory), so the new "
        "socket's __class__ is switched to RttSocket in the connect event, before any packet arrives",
    ),
    Coupling(
        _Server,
        ("sockets",),
        "writes",
        "the session table: find the new session's socket, forget an ended one, empty it on stop",
        instance=True,
    ),
    Coupling(
        _Server,
        ("_trigger_event",),
        "calls",
        "RttSocket.close fires the disconnect event as the library's close does",
        ("self", "event", "args", "kwargs"),
    ),
    Coupling(
        _Server,
        ("ping_interval", "ping_timeout", "max_http_buffer_size", "reason"),
        "reads",
        "RttSocket's timeouts and limits, and the library's disconnect reasons",
        instance=True,
    ),
    Coupling(
        _Server,
        ("start_background_task",),
        "overrides",
        "TrackedTasks: the library forgets its tasks; rtt keeps them to cancel them on close",
        ("self", "target", "args", "kwargs"),
    ),
    # -- The server's socket --------------------------------------------------
    Coupling(
        AsyncSocket,
        ("poll",),
        "overrides",
        "at most 16 packets per long-poll (python-engineio's client refuses more), no task per "
        "WebSocket packet, and the outgoing bytes counted as the client takes them",
        ("self",),
    ),
    Coupling(
        AsyncSocket,
        ("close",),
        "overrides",
        "rtt's close reason as the data of the CLOSE packet, and the queue freed on abort",
        ("self", "wait", "abort", "reason"),
    ),
    Coupling(
        AsyncSocket,
        ("handle_get_request",),
        "overrides",
        "Engine.IO v4's polling rules: a poll without the mandatory transport parameter is 400 (the "
        "library defaults it to polling), a second poll while one waits is 400 and closes the "
        "session, a poll past the ping timeout is 400, the poll an ended session leaves waiting "
        "is answered with a noop (the library: an empty body)",
        ("self", "environ"),
    ),
    Coupling(
        AsyncSocket,
        ("_send_ping",),
        "overrides",
        "the ping timeout on a timer from the PING (the library only checks when it next sends, "
        "or in its client monitor, up to a ping timeout late)",
        ("self",),
    ),
    Coupling(
        AsyncSocket,
        ("last_ping",),
        "reads",
        "when the unanswered PING was sent (None once answered)",
        instance=True,
    ),
    Coupling(
        AsyncSocket,
        ("check_ping_timeout",),
        "overrides",
        "the library's own ping timeout check (closes the session with `ping timeout` when past), "
        "called as it is except while rtt's message handler for the socket runs: its PONG waits "
        "behind the message then, and the library's client monitor would time it out",
        ("self",),
    ),
    Coupling(
        AsyncSocket,
        ("handle_post_request",),
        "overrides",
        "rtt decodes long-polling bodies: text stays text, any number of packets, oversize and "
        "malformed bodies close the session with rtt's reason, a malformed or empty one is 400 "
        "(the library answers 200 and goes on, or logs a traceback for an empty body), a body "
        "not received within the header deadline is 408 (the library waits for ever)",
        ("self", "environ"),
    ),
    Coupling(
        AsyncSocket,
        ("receive",),
        "overrides",
        "messages go to rtt in order, an unknown packet is a protocol error",
        ("self", "pkt"),
    ),
    Coupling(
        AsyncSocket,
        ("_websocket_handler",),
        "overrides",
        "reads frames through rtt's decoder and tells why the WebSocket ended (client close, "
        "oversize, malformed, ping timeout); the library's loop dies on a bad packet",
        ("self", "ws"),
    ),
    Coupling(
        AsyncSocket,
        ("send",),
        "calls",
        "what the library's own receive and handler call: queue a packet",
    ),
    Coupling(
        AsyncSocket,
        ("schedule_ping",),
        "overrides",
        "the next heartbeat on the first PONG after a PING only, on every supported release (4.13 "
        "starts one per PONG, and rtt sends several PINGs while a handler is busy); the library's "
        "first heartbeat, scheduled before rtt adopts the socket on 4.13, runs rtt's _send_ping",
        ("self",),
    ),
    Coupling(
        AsyncSocket,
        ("queue", "connected", "upgrading", "upgraded", "closing", "closed"),
        "writes",
        "the socket's queue and state flags, as the library's own methods use them; adopt() "
        "rewrites the queued OPEN packet with the real pingInterval in ms",
        instance=True,
    ),
    Coupling(
        engineio.async_drivers.aiohttp.WebSocket,
        ("_sock",),
        "reads",
        "the aiohttp WebSocketResponse under the driver's wrapper, to tell a client close and an "
        "oversize frame (1009) from a failure",
        instance=True,
    ),
    Coupling(
        _Server,
        ("_async",),
        "writes",
        "the async driver's table, copied per server with DriverWebSocket as its WebSocket class: "
        "AsyncSocket._upgrade_websocket builds the class it names, and the driver's class builds "
        "aiohttp's WebSocketResponse by name, with no factory",
        instance=True,
    ),
    Coupling(
        engineio.async_drivers.aiohttp.WebSocket,
        ("__call__",),
        "overrides",
        "DriverWebSocket: the driver's call on CheckedWebSocketResponse instead of aiohttp's own",
        ("self", "environ"),
    ),
    Coupling(
        engineio.async_drivers.aiohttp.WebSocket,
        ("handler",),
        "reads",
        "what the driver's __call__ reads: the socket's WebSocket handler (a bound method of the "
        "socket, whose server gives max_http_buffer_size: 4.13's driver keeps no server)",
        instance=True,
    ),
    # -- aiohttp (written against 3.14.5; the lowest environment runs 3.11.0) --
    Coupling(
        web.WebSocketResponse,
        ("_post_start",),
        "overrides",
        "CheckedWebSocketResponse: puts MaskCheck in front of the frame parser aiohttp has just "
        "made (RFC 6455 5.1: a server must fail an unmasked client frame; aiohttp takes it)",
        ("self", "request", "protocol", "writer"),
    ),
    Coupling(
        web.WebSocketResponse,
        ("_reader",),
        "reads",
        "the parser's message queue, which MaskCheck fails with WebSocketError(1002) as aiohttp's "
        "parser fails it for its own protocol errors",
        instance=True,
    ),
    Coupling(
        aiohttp._websocket.reader.WebSocketDataQueue,
        ("set_exception",),
        "calls",
        "MaskCheck fails the queue as aiohttp's parser does: receive() then closes with 1002",
        ("self", "exc", "exc_cause"),
    ),
    Coupling(
        aiohttp.web_protocol.RequestHandler,
        ("_payload_parser", "_message_tail"),
        "writes",
        "the connection's frame parser (MaskCheck wraps it) and the bytes that came with the "
        "handshake (checked before the parser sees them); RequestHandler has no other hook",
    ),
    Coupling(
        web.WebSocketResponse,
        ("close",),
        "overrides",
        "a close aiohttp sends on its own for a peer's protocol error (1002, 1007) carries rtt's "
        "`protocol error` text (SPEC.md 6); relies on receive() closing with the error's code",
        ("self", "code", "message", "drain"),
    ),
    Coupling(
        engineio.async_drivers.asgi.WebSocket,
        ("asgi_receive",),
        "reads",
        "the ASGI receive callable, for the close code of websocket.disconnect",
        instance=True,
    ),
    Coupling(
        engineio.async_drivers.aiohttp.translate_request,
        ("aiohttp.request",),
        "environ key",
        "the aiohttp request: headers, peer address and path of a handshake, the transport to "
        "abort, the body of a POST",
    ),
    Coupling(
        engineio.async_drivers.asgi.translate_request,
        ("asgi.scope",),
        "environ key",
        "the ASGI scope: headers, client address and path of a handshake",
    ),
    # -- The client -----------------------------------------------------------
    Coupling(
        _Client,
        ("_receive_packet",),
        "overrides",
        "messages go to rtt's bounded inbox (a full one stops the read loop), the CLOSE packet's "
        "data is rtt's reason, a paused client takes nothing",
        ("self", "pkt"),
    ),
    Coupling(
        _Client,
        ("_send_request",),
        "overrides",
        "reads and releases POST and error responses, which the library leaves checked out",
        ("self", "method", "url", "headers", "body", "timeout"),
    ),
    Coupling(
        _Client,
        ("_send_packet",),
        "calls",
        "close() queues CLOSE and waits for it to be written; disconnect() would not wait",
        ("self", "pkt"),
    ),
    Coupling(
        _Client,
        ("_write_loop",),
        "overrides",
        "tells rtt when the loop ends: it gives up on a refused POST or a failed WebSocket write "
        "without ending the session, and a send waiting for the queue must not wait for ever",
        ("self",),
    ),
    Coupling(
        _Client,
        ("create_queue",),
        "overrides",
        "SendQueue, which counts the packets the write loop has not written yet",
        ("self", "args", "kwargs"),
    ),
    Coupling(
        _Client,
        ("state", "queue", "ws", "write_loop_task"),
        "writes",
        "the session's state (set to disconnected to let go without a handshake), its send queue, "
        "its WebSocket (for the close code), whether its write loop runs",
        instance=True,
    ),
    Coupling(
        _Client,
        ("start_background_task",),
        "overrides",
        "TrackedTasks, as for the server; the client's tasks decode packets as raw text",
        ("self", "target", "args", "kwargs"),
    ),
    Coupling(
        engineio.base_client,
        ("connected_clients",),
        "writes",
        "a client rtt lets go leaves the library's list (kept for its SIGINT handler)",
    ),
    Coupling(
        packet.Packet,
        ("json",),
        "writes",
        "the client's json= option sets this class attribute for the whole process; rtt installs "
        "a module that keeps text raw only in rtt clients' tasks and is json elsewhere",
    ),
    # -- asyncio --------------------------------------------------------------
    Coupling(
        asyncio.Queue,
        ("put", "put_nowait", "task_done"),
        "overrides",
        "SendQueue counts puts and task_done() calls (public methods) instead of reading "
        "CPython's private Queue._unfinished_tasks",
    ),
)


# -- Tasks --------------------------------------------------------------------


class TrackedTasks:
    """Mixin for python-engineio's client and server: the background tasks it starts.

    The library fires and forgets its tasks; rtt keeps them in ``rtt_tasks`` so
    that closing a client or server can wait for or cancel every one of them.
    """

    rtt_tasks: set[asyncio.Task[Any]]

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        sock = getattr(target, "__self__", None)
        if isinstance(sock, AsyncSocket) and getattr(target, "__name__", "") == "_send_ping":
            # python-engineio 4.13 schedules the first heartbeat before the connect event in
            # which rtt adopts the socket: run the heartbeat of the socket's class when it starts.
            coro = _heartbeat(sock)
        else:
            coro = target(*args, **kwargs)
        task = asyncio.get_running_loop().create_task(coro)
        self.rtt_tasks.add(task)
        task.add_done_callback(self._rtt_task_done)
        return task

    def _rtt_task_done(self, task: asyncio.Task[Any]) -> None:
        self.rtt_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # e.g. a heartbeat task that found its socket closed
            logging.getLogger("rtt.engineio").debug("engine.io task ended: %r", task.exception())


async def _heartbeat(sock: Any) -> None:
    await type(sock)._send_ping(sock)


# -- JSON -----------------------------------------------------------------------

_HANDSHAKE_KEYS = frozenset({"sid", "upgrades", "pingInterval", "pingTimeout"})

#: True in the tasks of an rtt client: packets they decode keep their text.
_RAW_TEXT: ContextVar[bool] = ContextVar("rtt_engineio_raw_text", default=False)


class _ScopedJson:
    """python-engineio's JSON module while an rtt client exists: raw text in rtt's tasks only.

    python-engineio decodes every text packet as JSON when it can (``'"a"'``
    arrives as ``'a'``), and its ``json=`` option replaces the module for
    the whole process (a class attribute of ``Packet``). Inside an rtt
    client's tasks (:func:`raw_text`) ``loads`` returns the text unchanged
    unless it is the handshake object the library needs as a dict; anywhere
    else it is the module that was installed before, so other python-engineio
    clients and servers in the process see no difference.
    """

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        text: str = self.fallback.dumps(obj, **kwargs)
        return text

    def loads(self, text: str | bytes, **kwargs: Any) -> Any:
        if not _RAW_TEXT.get():
            return self.fallback.loads(text, **kwargs)
        if isinstance(text, str) and text.startswith('{"sid":'):
            try:
                value = json.loads(text, **kwargs)
            except ValueError:
                return text
            if isinstance(value, dict) and value.keys() >= _HANDSHAKE_KEYS:
                return value
        return text


def _scoped_json() -> _ScopedJson:
    current = packet.Packet.json
    return current if isinstance(current, _ScopedJson) else _ScopedJson(current)


@contextlib.contextmanager
def raw_text() -> Iterator[None]:
    """Packets decoded in this block (and in tasks started from it) keep their text."""
    token = _RAW_TEXT.set(True)
    try:
        yield
    finally:
        _RAW_TEXT.reset(token)


# -- The server -------------------------------------------------------------------


class LibraryServer(TrackedTasks, engineio.AsyncServer):  # type: ignore[misc]
    """``engineio.AsyncServer`` that asks rtt before it opens a session and tracks its tasks."""

    def __init__(self, rtt: EngineioServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rtt = rtt
        self.rtt_tasks: set[asyncio.Task[Any]] = set()
        if kwargs.get("async_mode") == "aiohttp":
            # A copy: the driver's table is shared by every server of the process.
            driver: dict[str, Any] = vars(self)["_async"]
            self._async = {**driver, "websocket": DriverWebSocket}

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: Any = None) -> Any:
        if not transport_given(environ):
            # The library defaults a missing transport to polling; the protocol makes it mandatory.
            return bad_request("Missing transport")
        refused = await self.rtt._admit_handshake(environ)
        if refused is not None:
            return {
                "status": f"{refused.status} {refused.reason}",
                "headers": [("Content-Type", "text/plain; charset=utf-8")],
                "response": f"{refused.reason}\n".encode(),
            }
        if not (self.rtt.options.session_binding and transport == "polling"):
            # A session opened on WebSocket lives on that connection: nothing to bind.
            return await super()._handle_connect(environ, transport, jsonp_index)
        key, new = binding_key(environ.get("HTTP_COOKIE"))
        environ[_KEY] = key  # the connect event gives it to the session
        # The scheme the client used, a trusted proxy's word included (SPEC.md 8.5); read
        # before the connect event takes the admitted handshake.
        secure = environ["rtt.admitted"][0].secure if "rtt.admitted" in environ else _secure(environ)
        response = await super()._handle_connect(environ, transport, jsonp_index)
        if new and isinstance(response, dict) and str(response["status"]).startswith("200"):
            cookie = binding_cookie(key, environ.get("PATH_INFO") or self.rtt.path, secure)
            response["headers"] = [*response["headers"], ("Set-Cookie", cookie)]
        return response

    def _log_error_once(self, message: str, message_key: str) -> None:
        # Never the message: it names the session id, or echoes the Origin header.
        _logger.debug("python-engineio refused a request (%s)", message_key)

    async def _make_response(self, response_dict: dict[str, Any], environ: dict[str, Any]) -> Any:
        """Every HTTP answer of the library passes here: rtt's refusals and the protocol's statuses.

        A POST rtt refused (:func:`refuse_request`) is 400 (the library would answer 200); a
        method the protocol does not use is 400 (the library: 405); a POST is answered ``ok``
        (the library: ``OK``). Every answer but an upgrade closes its connection (:func:`closing`).
        """
        refused: str | None = environ.pop(_REFUSED, None)
        status = str(response_dict["status"])
        timed_out = environ.pop(_TIMED_OUT, False)
        if timed_out:
            response_dict = body_timed_out()
        elif environ.pop(_BINDING, False):
            response_dict = binding_refused()
        elif refused is not None:
            response_dict = bad_request(refused)
        elif status.startswith("405"):
            response_dict = bad_request("Method not allowed")
        elif status.startswith("200") and response_dict["response"] == b"OK":
            response_dict = {**response_dict, "response": b"ok"}
        if not _is_upgrade(environ):
            response_dict = closing(response_dict)
        scope = asgi_scope(environ)
        if scope is not None and scope["type"] == "http":
            response_dict = with_content_length(response_dict)
        response = await super()._make_response(response_dict, environ)
        request = aiohttp_request(environ)
        if isinstance(response, web.StreamResponse):
            # The header alone would leave aiohttp keeping the connection (see closing()).
            response.force_close()
            if timed_out and request is not None:
                await answer_and_close(request, response)
        return response

    def adopt(self, sid: str, conn: EngineioConn) -> RttSocket:
        """Make the socket of a session being opened (in its connect event) rtt's socket.

        The handshake's ``OPEN`` packet, queued just before the event, gets the real
        ``pingInterval`` in ms: the library advertises ``int(seconds) * 1000`` (0.3 s as 0).
        """
        sock = self.sockets[sid]
        sock.__class__ = RttSocket
        sock.rtt_conn = conn
        assert isinstance(sock, RttSocket)
        queue: asyncio.Queue[Any] = sock.queue
        queued = []
        while not queue.empty():
            queued.append(queue.get_nowait())
            queue.task_done()
        for pkt in queued:
            if pkt is not None and pkt.packet_type == OPEN and isinstance(pkt.data, dict):
                pkt.data["pingInterval"] = round(self.ping_interval * 1000)
                pkt.data["pingTimeout"] = round(self.ping_timeout * 1000)
            queue.put_nowait(pkt)
        return sock

    def forget(self, sid: str, sock: RttSocket) -> None:
        """Remove an ended session from the library's table (unless a new one took its id)."""
        if self.sockets.get(sid) is sock:
            del self.sockets[sid]

    def drop_all(self) -> None:
        """Mark every socket closed, free its queue, and forget it: the server is stopping."""
        for sock in list(self.sockets.values()):
            sock.closed = True
            drop_queue(sock)
        self.sockets.clear()


#: The environ key of a request rtt refused while the library handled it: the reason, answered 400.
_REFUSED = "rtt.refused"
#: The environ key of a POST whose body did not arrive within BODY_TIMEOUT: answered 408.
_TIMED_OUT = "rtt.timed_out"
#: Seconds a POST's body has to arrive once the request is handled: the listener's header
#: deadline (SPEC.md 3.11), so that a request, headers or body, cannot hold a connection longer.
BODY_TIMEOUT = HEADER_TIMEOUT
#: The environ key of a request refused for session binding (answered 403), and of a handshake's key.
_BINDING = "rtt.binding_refused"
_KEY = "rtt.key"

_logger = logging.getLogger("rtt.engineio")


def binding_refused() -> dict[str, Any]:
    """The answer to a request without its session's binding key: 403, a refusal (SPEC.md 8.3)."""
    return {
        "status": "403 FORBIDDEN",
        "headers": [("Content-Type", "text/plain; charset=utf-8")],
        "response": f"{BINDING_REFUSED}\n".encode(),
    }


def binding_key_of(environ: dict[str, Any]) -> str | None:
    """The binding key the handshake of ``environ`` gave its session (None: not bound)."""
    key: str | None = environ.get(_KEY)
    return key


def _secure(environ: dict[str, Any]) -> bool:
    """Whether the request came over TLS, as the web server knows it (a proxy's word is the core's, 8.5)."""
    request = aiohttp_request(environ)
    if request is not None:
        return request.secure
    scope = asgi_scope(environ)
    return scope is not None and scope.get("scheme") in ("https", "wss")


async def answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Write ``response`` now, then close the connection: the rest of the body is never read.

    aiohttp would otherwise read and drop what still comes of an unread body for
    up to its lingering time (10 s) before it closes the connection. aiohttp
    then finds the response written and writes nothing more.
    """
    response.force_close()
    transport = request.transport
    if transport is None or transport.is_closing():
        return  # the client has gone: aiohttp sees it, and writes nothing
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        return
    transport.close()  # after what is written: the answer goes out first


def body_timed_out() -> dict[str, Any]:
    """The answer to a POST whose body did not arrive within :data:`BODY_TIMEOUT`: 408."""
    return {
        "status": "408 REQUEST TIMEOUT",
        "headers": [("Content-Type", "text/plain; charset=utf-8")],
        "response": b"Request body timed out\n",
    }


def bad_request(reason: str) -> dict[str, Any]:
    """A 400 answer in the library's response form, with ``reason`` as a plain-text body."""
    return {
        "status": "400 BAD REQUEST",
        "headers": [("Content-Type", "text/plain; charset=utf-8")],
        "response": f"{reason}\n".encode(),
    }


def refuse_request(environ: dict[str, Any], reason: str) -> None:
    """Answer the request of ``environ`` with 400 and ``reason`` once the library has handled it."""
    environ[_REFUSED] = reason


def _is_upgrade(environ: dict[str, Any]) -> bool:
    """Whether a GET asks for a WebSocket upgrade (as the library's ``handle_get_request`` tells)."""
    connection = {part.strip() for part in environ.get("HTTP_CONNECTION", "").lower().split(",")}
    return "upgrade" in connection and environ.get("HTTP_UPGRADE", "").lower() == "websocket"


def transport_given(environ: dict[str, Any]) -> bool:
    """Whether the request names its transport (mandatory in Engine.IO v4; the library defaults it)."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return bool(query.get("transport", [""])[0])


def aiohttp_request(environ: dict[str, Any]) -> web.Request | None:
    """The aiohttp request python-engineio's aiohttp driver put in ``environ``."""
    request: web.Request | None = environ.get("aiohttp.request")
    return request


def asgi_scope(environ: dict[str, Any]) -> dict[str, Any] | None:
    """The ASGI scope python-engineio's ASGI driver put in ``environ``."""
    scope: dict[str, Any] | None = environ.get("asgi.scope")
    return scope


def with_content_length(response_dict: dict[str, Any]) -> dict[str, Any]:
    """``response_dict`` with a ``Content-Length`` header for its body, unless it has one.

    The library's ASGI driver sends none, so the ASGI server sends the body chunked and a
    client that reads a refusal's reason only from a body of known length loses it. The
    aiohttp driver's responses have one already.
    """
    body = response_dict.get("response")
    headers = list(response_dict.get("headers") or [])
    if not isinstance(body, bytes) or any(name.lower() == "content-length" for name, _ in headers):
        return response_dict
    return {**response_dict, "headers": [*headers, ("Content-Length", str(len(body)))]}


def closing(response_dict: dict[str, Any]) -> dict[str, Any]:
    """``response_dict`` with ``Connection: close``: no HTTP request of Engine.IO reuses a connection.

    A browser sends a request again by itself, on a new connection, when the
    keep-alive connection it reused breaks before the response's headers come
    (Chromium's ``HttpNetworkTransaction::ShouldResendRequest``). Neither side
    can tell such a repeat from the next request: a poll whose packets the
    server had already written into the dead connection is answered with the
    packets after them, a POST the server had already handled is handled
    twice, and the session goes on past the gap or the repeat. Chromium does
    not resend a request sent on a connection it opened for it, so the request
    fails instead, the client ends the session and a
    resuming client replays what was lost (SPEC.md 12.3, 17).
    """
    headers = [
        (name, value) for name, value in response_dict.get("headers") or [] if name.lower() != "connection"
    ]
    return {**response_dict, "headers": [*headers, ("Connection", "close")]}


def drop_queue(sock: AsyncSocket) -> None:
    """Free everything queued for a socket and wake its pending poll or writer."""
    queue: asyncio.Queue[Any] = sock.queue
    while True:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        queue.task_done()
    queue.put_nowait(None)
    if isinstance(sock, RttSocket):
        sock.rtt_conn.queued = 0


def message_packet(data: str | bytes, size: int) -> packet.Packet:
    """A ``MESSAGE`` packet carrying rtt's size of its message, for the outgoing byte count."""
    pkt = packet.Packet(MESSAGE, data)
    pkt.rtt_size = size
    return pkt


class RttSocket(AsyncSocket):  # type: ignore[misc]
    """python-engineio's socket with rtt's accounting, decoding and close reasons.

    The library creates a plain ``AsyncSocket``; :meth:`LibraryServer.adopt`
    switches its class to this one in the ``connect`` event, before any
    message can arrive.
    """

    rtt_conn: EngineioConn
    server: LibraryServer
    closed: bool
    closing: bool
    connected: bool
    upgraded: bool
    upgrading: bool
    last_ping: float | None

    #: Polls (long-polling GETs) waiting for packets: Engine.IO v4 allows one at a time.
    rtt_polls = 0
    #: The waiting poll's aiohttp request (``None`` under ASGI): tells a broken client from a broken network.
    rtt_poll: web.Request | None = None

    # -- What rtt's server uses -------------------------------------------

    @property
    def open(self) -> bool:
        """Not closing or closed: messages may still be queued."""
        return not (self.closing or self.closed)

    @property
    def on_websocket(self) -> bool:
        """Upgraded to (or opened as) WebSocket."""
        return self.upgraded

    def put(self, pkt: packet.Packet) -> None:
        """Queue ``pkt`` without waiting (the queue is unbounded; rtt measures it)."""
        self.queue.put_nowait(pkt)

    def cut(self) -> None:
        """Closing: free the queue at once and wake whoever waits on it."""
        self.closing = True
        drop_queue(self)

    # -- Overrides ----------------------------------------------------------

    async def poll(self) -> list[packet.Packet]:
        """Next packets to send: all queued on WebSocket, at most :data:`PACKETS_PER_POLL` on long-polling.

        python-engineio's client refuses a polling payload of more than 16
        packets; a WebSocket writer sends each packet as its own frame.
        """
        queue = self.queue
        try:
            if self.upgraded:
                # The WebSocket writer needs no timeout (the reader watches the
                # heartbeat), and wait_for would cost a task per message.
                first = await queue.get()
            else:
                async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                    first = await queue.get()
            queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise eio_exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        limit = None if self.upgraded else PACKETS_PER_POLL
        while limit is None or len(packets) < limit:
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            queue.task_done()
            if pkt is None:
                queue.put_nowait(None)
                break
            packets.append(pkt)
        if not self.upgraded:
            # Long-polling: these are the answer to a poll, taken now. (On WebSocket
            # the writer counts each packet once it is written.)
            conn = self.rtt_conn
            for pkt in packets:
                conn.queued -= getattr(pkt, "rtt_size", 0)
        return packets

    async def close(self, wait: bool = True, abort: bool = False, reason: str | None = None) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        await self.server._trigger_event(
            "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
        )
        if not abort:
            conn = self.rtt_conn
            chosen = conn.rtt_reason
            text = conn.close_text or (chosen.value if chosen is not None else None)
            await self.send(packet.Packet(CLOSE, text))
            if wait:
                # Still open meanwhile: a long-polling client must be able to fetch the CLOSE.
                await self.queue.join()
        self.closed = True
        if abort:
            drop_queue(self)

    async def handle_get_request(self, environ: dict[str, Any]) -> Any:
        """A poll or an upgrade, with Engine.IO v4's rules for polls.

        400 without the ``transport`` parameter (the library defaults it); a second
        poll while one waits is 400 and closes the session with ``protocol error``
        (the waiting one gets the ``CLOSE`` packet), or ``transport error`` when the
        waiting one's connection is already broken; a poll once the ping timeout has
        passed is 400 (the session closes with ``ping timeout`` if the timer has not
        yet); the poll an ended session leaves waiting gets a noop packet, not an
        empty body.
        """
        if not owns(self.rtt_conn.key, environ.get("HTTP_COOKIE")):
            # Before anything else: a stranger's poll must not even count as an overlapping one.
            return binding_refused()
        if not transport_given(environ):
            return bad_request("Missing transport")
        if _is_upgrade(environ) or self.upgrading or self.upgraded:
            return await super().handle_get_request(environ)
        if self.rtt_polls:
            # aiohttp runs a handler on after its connection broke, so the waiting poll may be
            # dead already: then the client is polling again because the network failed (aiohttp's
            # client retries a GET on a reset keep-alive connection), not breaking the protocol,
            # and the session ends as a drop, which a client may resume (SPEC.md 17).
            waiting = self.rtt_poll
            gone = waiting is not None and (waiting.transport is None or waiting.transport.is_closing())
            reason = CloseReason.TRANSPORT_ERROR if gone else CloseReason.PROTOCOL_ERROR
            self.rtt_conn.server._wire_violation(self.rtt_conn, reason)
            return bad_request("Overlapping poll")
        if not await self.check_ping_timeout():
            return bad_request("Ping timeout")
        self.rtt_polls += 1
        self.rtt_poll = aiohttp_request(environ)
        try:
            packets = await super().handle_get_request(environ)
        finally:
            self.rtt_polls -= 1
            self.rtt_poll = None
        if packets == []:  # the session ended while the poll waited (the client's CLOSE, a drop)
            return [packet.Packet(NOOP)]
        return packets

    async def _send_ping(self) -> None:
        """The library's heartbeat, and then the ping timeout on a timer from the ``PING``.

        The library checks the timeout only when it next sends, or in its client
        monitor (which visits each session once per ping timeout); Engine.IO v4
        closes the session as the timeout passes, and refuses a later poll.
        """
        server = self.server
        await asyncio.sleep(server.ping_interval)
        if self.closing or self.closed:
            return
        sent = self.last_ping = time.time()
        await self.send(packet.Packet(PING))
        # Checked in steps rather than once at the deadline: while rtt's message handler for this
        # socket runs, the PONG waits behind the message (the frame unread, the POST unanswered),
        # so there is no timeout meanwhile and the clock restarts when it ends (SPEC.md 10.2);
        # PINGs go on every ping_interval, as the client drops a server silent for pingInterval +
        # pingTimeout. Each gets a PONG, and schedule_ping acts on the first only.
        step = min(server.ping_interval, server.ping_timeout) / 2
        busy = False
        while True:
            await asyncio.sleep(step)
            # A PONG set last_ping to None (and started the next heartbeat).
            if self.last_ping != sent or self.closing or self.closed:
                return
            now = time.time()
            if self._handler_busy():
                busy = True
                if now - sent >= server.ping_interval:
                    sent = self.last_ping = now
                    await self.send(packet.Packet(PING))
            elif busy:
                busy = False
                sent = self.last_ping = now
            elif now - sent >= server.ping_timeout:
                await self.close(wait=False, abort=False, reason=server.reason.PING_TIMEOUT)
                return

    def schedule_ping(self) -> None:
        """The next heartbeat, on the first PONG after a PING only.

        python-engineio 4.15 has this guard and 4.13 does not; rtt sends more
        than one PING while a handler is busy (see ``_send_ping``), and each gets
        a PONG, so without it every extra PONG would start one more heartbeat.
        """
        if self.last_ping:
            self.last_ping = None
            self.server.start_background_task(self._send_ping)

    async def check_ping_timeout(self) -> bool:
        """The library's check, sparing a socket whose message handler runs (see ``_send_ping``)."""
        if not self.closed and self._handler_busy():
            return True
        result: bool = await super().check_ping_timeout()
        return result

    def _handler_busy(self) -> bool:
        """Whether rtt's message handler for this socket runs, holding up the socket's reading."""
        socket = self.rtt_conn.socket
        return socket is not None and self.rtt_conn.server._handling(socket.id)

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """Decode a long-polling body; an undecodable one is 400 and closes with ``protocol error``."""
        conn = self.rtt_conn
        if not owns(conn.key, environ.get("HTTP_COOKIE")):
            environ[_BINDING] = True  # unread, undelivered: 403
            return
        if not transport_given(environ):
            refuse_request(environ, "Missing transport")
            return
        limit = self.server.max_http_buffer_size
        length = int(environ.get("CONTENT_LENGTH") or "0")
        if length > limit:
            conn.server._wire_violation(conn, CloseReason.MESSAGE_TOO_BIG)
            return
        try:
            async with asyncio.timeout(BODY_TIMEOUT):  # a timer, not a task per POST
                body = await _read_body(environ, length, limit)
        except TimeoutError:
            # Slowloris after the headers (the listener's deadline is lifted while a request is
            # handled): 408, nothing of the body delivered; the session goes on.
            self._log_refusal(f"body not received within {BODY_TIMEOUT:g} s")
            environ[_TIMED_OUT] = True
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            refuse_request(environ, "Incomplete body")  # the client left: nobody reads the answer
            return
        if body is None:
            conn.server._wire_violation(conn, CloseReason.MESSAGE_TOO_BIG)
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(environ, "Payload is not UTF-8")
            return
        if not text:
            # No packet at all (a payload has at least one); the library's read of it raised.
            self._refuse(environ, "Empty payload")
            return
        # Every packet decoded before any is delivered: a payload with a malformed packet
        # (a text message a client sent with U+001E in it, split there) is refused whole.
        packets = [decode_packet(encoded) for encoded in text.split(RECORD_SEPARATOR)]
        for pkt in packets:
            if pkt is None:
                self._refuse(environ, "Malformed packet")
                return
        for pkt in packets:
            await self.receive(pkt)
            if conn.detected is CloseReason.PROTOCOL_ERROR:  # a packet a client must not send
                self._refuse(environ, "Unexpected packet", closed=True)
                return
            if self.closing or self.closed:
                return

    def _refuse(self, environ: dict[str, Any], reason: str, *, closed: bool = False) -> None:
        """An undecodable POST: 400, and the session closed with ``protocol error`` unless ``closed``."""
        self._log_refusal(reason)
        refuse_request(environ, reason)
        if not closed:
            self.rtt_conn.server._wire_violation(self.rtt_conn, CloseReason.PROTOCOL_ERROR)

    async def receive(self, pkt: packet.Packet) -> None:
        kind = pkt.packet_type
        if kind == MESSAGE:
            await self.rtt_conn.server._on_message(self.rtt_conn, pkt.data)
        elif kind == PONG:
            self.schedule_ping()
        elif kind == CLOSE:
            waiting = self.rtt_poll
            if waiting is not None and (waiting.transport is None or waiting.transport.is_closing()):
                # engine.io-client's polling transport sends CLOSE as it tears down after a failed
                # request too: with the waiting poll's connection broken, that is a drop, which a
                # client may resume (SPEC.md 17), not the client's own close.
                self.rtt_conn.detected = CloseReason.TRANSPORT_ERROR
            await self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)
        elif kind == UPGRADE:
            await self.send(packet.Packet(NOOP))
        elif kind != NOOP:
            self.rtt_conn.server._wire_violation(self.rtt_conn, CloseReason.PROTOCOL_ERROR)

    async def _websocket_handler(self, ws: Any) -> None:
        """The library's WebSocket loop, reading through rtt's decoder and reporting why it ended."""
        conn = self.rtt_conn
        server = self.server
        socket = conn.socket
        receive = _frame_reader(ws, resumable=socket is not None and socket.resumable)
        if self.connected:  # an upgrade from long-polling
            self.upgrading = True
            try:
                probe = await receive()
                if probe != "2probe":
                    self.upgrading = False
                    return
                await ws.send("3probe")
                if self.rtt_polls:
                    # Ends the waiting poll, so that the client can pause polling; marked so
                    # that the WebSocket writer drops it if the poll took 16 packets before it.
                    wake = packet.Packet(NOOP)
                    wake.rtt_wake = True
                    await self.queue.put(wake)
                if await receive() != "5":
                    self.upgrading = False
                    return
            except (OSError, _FrameError):
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True
        conn.ws = ws
        ended = conn.ws_ended = asyncio.get_running_loop().create_future()

        async def writer() -> None:
            try:
                while True:
                    try:
                        packets = await self.poll()
                    except eio_exceptions.QueueEmpty:
                        break
                    if not packets:
                        break
                    for pkt in packets:
                        if getattr(pkt, "rtt_wake", False):
                            continue  # a noop meant for a poll: never sent on the WebSocket
                        await ws.send(pkt.encode())
                        conn.queued -= getattr(pkt, "rtt_size", 0)
            except Exception as exc:
                # The peer went away, or a packet could not be written: what is still queued
                # never will be, so the session ends now as a transport error (SPEC.md 12.3),
                # without a closing handshake the peer would answer as if all went well.
                _logger.debug("WebSocket writer of socket %s failed: %r", _socket_id(conn), exc)
                conn.detected = conn.detected or CloseReason.TRANSPORT_ERROR
                drop_queue(self)
                if conn.request_transport is not None:
                    conn.request_transport.abort()
                    return
            with contextlib.suppress(Exception):
                await ws.close()

        writer_task = server.start_background_task(writer)
        reason = server.reason.TRANSPORT_CLOSE
        timeout = server.ping_interval + server.ping_timeout
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout):  # a timer, not a task per frame
                        frame = await receive()
                except TimeoutError:
                    reason = server.reason.PING_TIMEOUT
                    break
                except _FrameError as exc:
                    if exc.reason is not None and conn.detected is None:
                        conn.detected = exc.reason
                    break
                except OSError:
                    break
                if self.closing:
                    continue  # rtt is closing it: the rest is read and dropped until the peer closes
                pkt = decode_packet(frame)
                if pkt is None:
                    # rtt's CLOSE packet (``protocol error``), as for a packet receive() refuses;
                    # ending here would close with 1000 and no reason (``server closed``).
                    conn.server._wire_violation(conn, CloseReason.PROTOCOL_ERROR)
                    continue
                try:
                    await self.receive(pkt)
                except eio_exceptions.SocketIsClosedError:
                    break
                if self.closed:
                    break
        finally:
            await self.queue.put(None)  # lets the writer finish
            await asyncio.wait({writer_task}, timeout=server.rtt.options.close_timeout)
            writer_task.cancel()
            await self.close(wait=False, abort=True, reason=reason)
            ended.set_result(None)

    def _log_refusal(self, reason: str) -> None:
        socket = self.rtt_conn.socket
        # The socket's rtt id, never the Engine.IO sid: whoever reads the log must not get a session.
        logging.getLogger("rtt.engineio").info(
            "refused a POST of socket %s: %s", socket.id if socket is not None else "?", reason
        )


def _socket_id(conn: EngineioConn) -> str:
    """The socket's rtt id for a log line, never the Engine.IO sid (SPEC.md 3.8)."""
    return conn.socket.id if conn.socket is not None else "?"


async def _read_body(environ: dict[str, Any], length: int, limit: int) -> bytes | None:
    """A POST's body (``None`` once a body without ``Content-Length`` passes ``limit`` bytes)."""
    request = aiohttp_request(environ)
    if request is None:  # ASGI: the driver has read it already
        body: bytes = await environ["wsgi.input"].read(length)
        return body
    if length:
        return await request.content.readexactly(length)
    if request.body_exists:  # chunked: no Content-Length
        return await _read_at_most(request, limit)
    return b""


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """A request body without ``Content-Length``; ``None`` once it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


class _FrameError(Exception):
    """The WebSocket ended; ``reason`` says why when rtt can tell."""

    def __init__(self, reason: CloseReason | None) -> None:
        super().__init__(reason)
        self.reason = reason


def _frame_reader(ws: Any, *, resumable: bool) -> Callable[[], Coroutine[Any, Any, str | bytes]]:
    """Read WebSocket frames from either driver, telling a clean close from an oversize frame.

    ``resumable``: the socket's client negotiated resume, so an ASGI disconnect without a status
    is a drop (``CloseReason.from_client``; uvicorn reports a reset as 1005).
    """
    sock = getattr(ws, "_sock", None)
    if isinstance(sock, web.WebSocketResponse):
        return _AiohttpFrames(sock).receive
    return _AsgiFrames(ws.asgi_receive, resumable).receive


class _AiohttpFrames:
    # A slotted object rather than a closure: one lives as long as each connection.
    __slots__ = ("sock",)

    def __init__(self, sock: web.WebSocketResponse) -> None:
        self.sock = sock

    async def receive(self) -> str | bytes:
        sock = self.sock
        msg = await sock.receive()
        if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
            data: str | bytes = msg.data
            return data
        if msg.type is WSMsgType.ERROR:
            code = getattr(msg.data, "code", None) or sock.close_code
            if code == 1009:
                raise _FrameError(CloseReason.MESSAGE_TOO_BIG)
            if code in PROTOCOL_ERROR_CODES:  # aiohttp closed it (CheckedWebSocketResponse.close)
                raise _FrameError(CloseReason.PROTOCOL_ERROR)
        if msg.type is WSMsgType.CLOSE:
            raise _FrameError(CloseReason.from_client(msg.data, msg.extra or ""))
        raise _FrameError(None)


class _AsgiFrames:
    __slots__ = ("asgi_receive", "resumable")

    def __init__(
        self, asgi_receive: Callable[[], Coroutine[Any, Any, dict[str, Any]]], resumable: bool
    ) -> None:
        self.asgi_receive = asgi_receive
        self.resumable = resumable

    async def receive(self) -> str | bytes:
        event = await self.asgi_receive()
        if event["type"] == "websocket.receive":
            if event.get("bytes") is not None:
                data: bytes = event["bytes"]
                return data
            if event.get("text") is not None:
                text: str = event["text"]
                return text
        elif event["type"] == "websocket.disconnect":
            # The ASGI server's code: the client's, or 1006 for a broken connection.
            code, text = event.get("code", 1005), event.get("reason") or ""
            raise _FrameError(CloseReason.from_client(code, text, resumable=self.resumable))
        raise _FrameError(None)


# -- aiohttp's server WebSocket, as RFC 6455 asks ------------------------------------


class DriverWebSocket(engineio.async_drivers.aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp WebSocket wrapper, on :class:`CheckedWebSocketResponse`.

    The driver builds aiohttp's ``WebSocketResponse`` by name, with no
    factory; this is its ``__call__`` with rtt's response, sized by the
    server's ``max_http_buffer_size`` as python-engineio 4.15 sizes it (4.13
    left it unbounded).
    """

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        socket: RttSocket = self.handler.__self__  # the handler is RttSocket._websocket_handler
        limit = socket.server.max_http_buffer_size
        self._sock = sock = CheckedWebSocketResponse(max_msg_size=limit)
        await sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return sock


class CheckedWebSocketResponse(web.WebSocketResponse):
    """aiohttp's server WebSocket, failing the connection where RFC 6455 says a server must.

    - An unmasked client frame is a protocol error (RFC 6455 5.1: the server
      MUST close the connection); aiohttp's reader takes it as if masked
      (:class:`rtt.rfc6455.MaskCheck`).
    - A close aiohttp sends on its own for a peer's protocol error (1002, or
      1007 for invalid UTF-8) carries rtt's ``protocol error`` text (SPEC.md 6);
      aiohttp sends no text.
    """

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        def start() -> Any:
            super(CheckedWebSocketResponse, self)._post_start(request, protocol, writer)
            return self._reader

        check_aiohttp_masks(request.protocol, start, _unmasked_error)

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if not message and code in PROTOCOL_ERROR_CODES:
            message = PROTOCOL_ERROR_TEXT
        return await super().close(code=code, message=message, drain=drain)


#: Close codes of a peer's protocol error (RFC 6455 7.4.1: protocol error, invalid UTF-8).
PROTOCOL_ERROR_CODES = frozenset({1002, 1007})
PROTOCOL_ERROR_TEXT = CloseReason.PROTOCOL_ERROR.value.encode()


def _unmasked_error() -> WebSocketError:
    # What aiohttp's frame parser puts in the message queue for its own protocol errors.
    return WebSocketError(1002, "unmasked client frame")


# -- The client -------------------------------------------------------------------


class SendQueue(asyncio.Queue[Any]):
    """python-engineio's client send queue, telling how many packets are not yet written.

    The library's write loop takes every queued packet at once and marks each
    done once written, so the queue's own size says nothing about backlog;
    counting puts and ``task_done()`` calls does. The queue is unbounded, so
    ``put`` never waits.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rtt_unwritten = 0

    @property
    def unwritten(self) -> int:
        """Packets put and not yet marked done by the write loop."""
        return self._rtt_unwritten

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        self._rtt_unwritten += 1

    def task_done(self) -> None:
        super().task_done()
        self._rtt_unwritten -= 1


class LibraryClient(TrackedTasks, engineio.AsyncClient):  # type: ignore[misc]
    """``engineio.AsyncClient`` that hands packets to rtt first and tracks its tasks.

    ``on_packet`` sees every packet the server sends; when it returns True
    the packet is rtt's (a message), else the library handles it too.
    """

    def __init__(
        self, on_packet: Callable[[packet.Packet], Coroutine[Any, Any, bool]], **kwargs: Any
    ) -> None:
        super().__init__(json=_scoped_json(), **kwargs)
        self.rtt_on_packet = on_packet
        self.rtt_tasks: set[asyncio.Task[Any]] = set()
        self.rtt_write_ended = asyncio.Event()

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        with raw_text():  # the task copies this context: its packets keep their text
            return super().start_background_task(target, *args, **kwargs)

    def create_queue(self, *args: Any, **kwargs: Any) -> SendQueue:
        assert not args and not kwargs, "rtt's send queue is unbounded, as the library's"
        return SendQueue()

    @property
    def session_open(self) -> bool:
        """Whether the library considers the session connected."""
        return bool(self.state == "connected")

    @property
    def websocket(self) -> aiohttp.ClientWebSocketResponse | None:
        """The session's WebSocket, once it has one."""
        ws: aiohttp.ClientWebSocketResponse | None = self.ws
        return ws

    @property
    def send_queue(self) -> SendQueue:
        """The library's send queue (made by :meth:`create_queue`)."""
        queue: SendQueue = self.queue
        return queue

    async def _send_request(
        self, method: str, url: str, headers: Any = None, body: Any = None, timeout: Any = None
    ) -> Any:
        response = await super()._send_request(method, url, headers=headers, body=body, timeout=timeout)
        if isinstance(response, aiohttp.ClientResponse) and (method == "POST" or response.status >= 300):
            # The library never reads a POST's answer, nor an error's, which keeps their
            # connections checked out.
            with contextlib.suppress(aiohttp.ClientError):
                await response.read()
            response.release()
        return response

    async def _receive_packet(self, pkt: packet.Packet) -> None:
        if not await self.rtt_on_packet(pkt):
            await super()._receive_packet(pkt)

    async def _write_loop(self) -> None:
        try:
            await super()._write_loop()
        finally:
            # The library's loop also gives up on a refused POST or a failed WebSocket write
            # and leaves the session 'connected': what it had queued is never written, so
            # whoever waits for the queue must learn it from this event.
            self.rtt_write_ended.set()


async def send_close_packet(eio: LibraryClient) -> bool:
    """Queue the client's ``CLOSE`` packet if its session runs; False if it does not.

    ``disconnect()`` would not let rtt wait for the packet to be written.
    """
    if eio.state != "connected" or eio.write_loop_task is None:
        return False
    await eio._send_packet(packet.Packet(CLOSE))
    return True


def let_client_go(eio: LibraryClient) -> bool:
    """Mark a connected client disconnected without a closing handshake; True if it was connected."""
    if eio.state != "connected":
        return False
    eio.state = "disconnected"  # no more handshakes: the loops end at their next turn
    return True


def forget_client(eio: LibraryClient) -> None:
    """Take a client rtt let go off the library's list of connected clients."""
    with contextlib.suppress(ValueError):
        engineio.base_client.connected_clients.remove(eio)
