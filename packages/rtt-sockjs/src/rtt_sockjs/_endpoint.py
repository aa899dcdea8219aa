"""The sockjs server's aiohttp side: the sub-application, its guard, the relay glue, assets, the site.

rtt serves the library's SockJS routes (:func:`rtt_sockjs._library.add_endpoint`)
in an aiohttp sub-application at the endpoint prefix, behind a middleware
(:meth:`Endpoint.guard`) that runs the origin check on every request and
``authorize`` before a session exists, with the ``session_binding`` option
binds each HTTP session to the client that opened it with a cookie (SockJS
session ids come from the client's URL, so without it anyone who learns one
can poll or post as that client: SPEC.md 8.3), answers message POSTs itself
(strictly parsed, bounded), and, with a broker, relays a request of an HTTP
session another process holds to that process (SPEC.md 13.8), so no sticky
sessions are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import secrets
import shutil
import socket as socket_module
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, unquote_plus, urlencode

import aiohttp
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from rtt import BrokerError, CloseReason, Handshake, Headers, Reject
from rtt.assets import asset_headers, read_asset
from rtt.handshake import origin_allowed
from rtt.listener import HEADER_TIMEOUT, Listener, RequestErrorLog
from rtt.relay import RelayedRequest

from ._library import RAW_WEBSOCKET, RttManager, add_endpoint, answer_closed, served_urls
from ._wire import BINDING_COOKIE, BINDING_REFUSED, close_frame

if TYPE_CHECKING:
    from .server import SockjsConn, SockjsServer

__all__ = ["Endpoint"]

logger = logging.getLogger("rtt.sockjs")

#: Transports whose request opens (or resumes) a session's receiving side.
RECEIVING: Final = frozenset({"websocket", "xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp"})
#: Transports that post messages into an existing session.
SENDING: Final = frozenset({"xhr_send", "jsonp_send"})
#: Query parameters SockJS clients add themselves (cache buster, JSONP callback, iframe id).
_PROTOCOL_QUERY: Final = frozenset({"t", "c", "i"})
#: SockJS's answers to a malformed message POST and its ``Cache-Control`` for private answers.
_BROKEN_JSON: Final = "Broken JSON encoding."
_NOT_CACHED: Final = "no-store, no-cache, must-revalidate, max-age=0"
#: Transports a cross-origin browser preflights (SockJS 0.3.3), and how long a preflight is cached.
PREFLIGHTED: Final = frozenset({"xhr", "xhr_send", "xhr_streaming"})
_PREFLIGHT_AGE: Final = 31_536_000  # one year, as SockJS 0.3.3 advises
#: Seconds a message POST's whole body may take once its headers are in: the headers' own
#: bound (SPEC.md 3.11), which neither aiohttp nor the library sets for a body.
BODY_TIMEOUT: Final = HEADER_TIMEOUT

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _advertise_heartbeat(response: web.StreamResponse, interval: float | None) -> None:
    """Add ``heartbeat_interval`` to the library's ``/info`` answer (SPEC.md 12.4).

    An HTTP transport's request whose way back went silent (a black hole)
    never ends by itself; the client can give up on it only once it knows
    how often a frame must come. SockJS has no field for it (its servers
    send ``h`` every 25 s by default): clients ignore fields they do not know.
    """
    if interval is None or not isinstance(response, web.Response) or response.text is None:
        return
    body = json.loads(response.text)
    if isinstance(body, dict):
        body["heartbeat_interval"] = interval
        response.text = json.dumps(body)


class Endpoint:
    """One server's aiohttp application parts: built once, mounted or run standalone."""

    def __init__(self, server: SockjsServer) -> None:
        self.server = server
        self.options = server.options
        self.prefix = server.options.sockjs_prefix
        self.sub = web.Application(middlewares=[self.guard])
        self.manager = RttManager(server, self.sub)
        #: The transport URL segments served (the ``transports`` option); the others are 404.
        self.served = served_urls(server.options.transports)
        add_endpoint(self.sub, self.manager, server.options.sockjs_client_url, server.options.transports)
        # The library routes no OPTIONS (it leaves CORS to aiohttp-cors): rtt answers preflights.
        self.sub.router.add_route(hdrs.METH_OPTIONS, "/info", self._preflight)
        self.sub.router.add_route(hdrs.METH_OPTIONS, "/{server}/{session}/{transport}", self._preflight)
        self.sub.on_response_prepare.append(self._decorate)
        self.runner: web.AppRunner | None = None
        self.listener: Listener | None = None
        self.relay_socket: str | None = None
        #: Mounted into an application of the user's (which owns the listener).
        self.mounted = False
        self._in_app = False

    # -- Mounting -----------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        """Mount the endpoint (and the browser assets) into the user's ``app``."""
        self._mount(app)
        self.mounted = True

    def _mount(self, app: web.Application) -> None:
        if self._in_app:
            raise RuntimeError("this server is already attached to an application")
        app.add_subapp(self.prefix, self.sub)
        if self.options.assets_path is not None:
            app.router.add_get(self.options.assets_path + "{name}", self._asset)
        self._in_app = True

    async def start_site(self, host: str, port: int, *, relay: bool) -> tuple[str, int]:
        """Run the endpoint on its own aiohttp server; with ``relay``, also on a Unix socket for relays."""
        app = web.Application(middlewares=[self._headers_read])
        self._mount(app)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.options.close_timeout,
            # A malformed request: one DEBUG line, not aiohttp's traceback quoting its bytes (SPEC 3.8).
            logger=RequestErrorLog(server_logger, (HttpProcessingError,)),
        )
        await runner.setup()
        try:
            assert runner.server is not None
            self.listener = await Listener.open(
                runner.server, host, port, reuse_port=self.options.reuse_port, ssl=self.options.ssl
            )
            if relay:
                # Relayed requests (SPEC.md 13.8) reach this process's own server here.
                path = str(Path(tempfile.mkdtemp(prefix="rtt-relay-")) / "http.sock")
                await web.UnixSite(runner, path).start()
                self.relay_socket = path
        except BaseException:
            self._close_listener()
            await runner.cleanup()
            self.remove_relay_socket()
            raise
        self.runner = runner
        return self.listener.address

    async def stop_site(self) -> None:
        """Stop the standalone server (if any) and remove the relay socket."""
        self._close_listener()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.remove_relay_socket()

    def _close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    @web.middleware
    async def _headers_read(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Lift the listener's header deadline while the request is handled (SPEC.md 3.11)."""
        if self.listener is None:
            return await handler(request)
        with self.listener.request(request.transport):
            return await handler(request)

    def remove_relay_socket(self) -> None:
        if self.relay_socket is not None:
            shutil.rmtree(Path(self.relay_socket).parent, ignore_errors=True)
            self.relay_socket = None

    async def _asset(self, request: web.Request) -> web.Response:
        found = read_asset(self.server.transport.browser_assets(), request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, body = found
        return web.Response(body=body, headers=asset_headers(content_type))

    # -- The guard: origins, authorize, binding, message POSTs ---------------

    @web.middleware
    async def guard(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Every request of the sub-application passes here before the library sees it."""
        server = self.server
        info = request.match_info
        transport = info.get("transport")
        manager = self.manager
        if transport is not None and transport not in self.served:
            return web.Response(status=404, text="Not found")  # a transport this server does not serve
        if info.route.name == RAW_WEBSOCKET:
            return await self._raw_websocket(request, handler)
        if request.method == hdrs.METH_OPTIONS:
            return await handler(request)
        session = manager.get(info["session"], default=None) if transport is not None else None
        if session is None and transport not in (None, "websocket") and server._relay_socket is not None:
            relayed = await self._forward(request, info["session"])
            if relayed is not None:
                return relayed
        if transport is None:  # greeting, info, iframe page: public, for any origin
            response = await handler(request)
            if request.method == hdrs.METH_GET and info.route.name == f"sockjs-info-{manager.name}":
                _advertise_heartbeat(response, self.options.ping_interval)
            return response
        opening = transport in RECEIVING and (session is None or transport == "websocket")
        if not opening and not origin_allowed(request.headers.get(hdrs.ORIGIN), self.options.allowed_origins):
            # (A request that opens a session has its origin checked by admit, with authorize.)
            return web.Response(status=403, text="Origin not allowed")
        if transport == "websocket" and request.method != hdrs.METH_GET:
            # SockJS's 405: no body, no content type; nothing is admitted or opened.
            return web.Response(status=405, headers={hdrs.ALLOW: hdrs.METH_GET})
        if transport in SENDING or (transport == "jsonp" and request.method == hdrs.METH_POST):
            conn = session.rtt_conn if session is not None else None
            if conn is None or conn.ended or not conn.http:
                return web.Response(status=404, text="No such session")
            if not _owns(conn, request):
                return _binding_refused()
            return await self._post(request, conn, jsonp=transport != "xhr_send")
        if transport not in RECEIVING or request.method == hdrs.METH_OPTIONS:
            return await handler(request)
        if not opening:
            assert session is not None
            conn = session.rtt_conn
            if conn is None or not conn.http:
                return web.Response(status=404, text="No such session")
            if not _owns(conn, request):
                # Answered here, never by the library's route: it would end the session of
                # the poll the owner has pending. The close frame reads as a refusal in every
                # SockJS client (a bare HTTP status would read as a network failure).
                return await answer_closed(manager, transport, request, close_frame(CloseReason.REJECTED))
            request["rtt.owner"] = conn
            return await _answer(handler, request)
        # A new session: admit it before the library creates it.
        handshake = self._handshake(request)
        decision = await server._admit(handshake)
        if isinstance(decision, Reject):
            return web.Response(status=decision.status, text=decision.reason)
        request["rtt.admitted"] = (handshake, decision.identity)
        if transport != "websocket":  # a WebSocket session lives and dies with its socket
            request["rtt.http"] = True
            if self.options.session_binding:
                request["rtt.key"] = _key(request)
        try:
            return await _answer(handler, request)
        finally:
            # A request the library refused before the session opened (a JSONP
            # request without its callback, say) must not leave a session nobody owns.
            manager.forget_orphan(info["session"])

    async def _raw_websocket(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """SockJS's raw WebSocket (``/websocket``): admitted as the framed WebSocket is, before the upgrade.

        Routed only while ``websocket`` is served; another method than GET gets
        SockJS's 405 (``Allow: GET``, no body), as the framed endpoint.
        """
        if request.method != hdrs.METH_GET:
            return web.Response(status=405, headers={hdrs.ALLOW: hdrs.METH_GET})
        handshake = self._handshake(request)
        decision = await self.server._admit(handshake)
        if isinstance(decision, Reject):
            return web.Response(status=decision.status, text=decision.reason)
        request["rtt.admitted"] = (handshake, decision.identity)
        return await _answer(handler, request)

    async def _forward(self, request: web.Request, key: str) -> web.StreamResponse | None:
        """Relay a request of a session another process holds to that process (SPEC.md 13.8)."""
        if _relayed(request):
            return None  # relayed here already: never relayed again
        try:
            body = await read_body(request, self.server.body_limit)
        except _BodyFailed as failed:
            return await failed.answer(request)
        if body is None:
            return web.Response(status=413, text="Payload too large")
        try:
            relayed = await self.server._relay_session(
                key,
                RelayedRequest.of(request, body),
            )
        except BrokerError as exc:
            logger.warning("cannot relay a request of session %s: %s", key, exc)
            return web.Response(status=503, text="Session held by another process, which cannot be reached")
        if relayed is None:
            return None  # no process holds it: a new session, or an unknown one
        response = web.StreamResponse(status=relayed.status, headers=relayed.headers)
        try:
            async with contextlib.aclosing(relayed.body) as parts:
                await response.prepare(request)
                async for part in parts:
                    await response.write(part)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left; closing the body told the holder to stop
        return response

    async def _decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        """Set the binding cookie and the CORS headers a cross-origin SockJS client needs.

        A session's HTTP requests (xhr, xhr_send, xhr_streaming, eventsource...)
        end their connection: Chromium sends a request again by itself, on a new
        connection, when the keep-alive connection it reused breaks before the
        response's headers come (``HttpNetworkTransaction::ShouldResendRequest``),
        and neither side could tell that repeat from the next request: a poll
        whose frames were written into the dead connection is answered with the
        frames after them, a POST already handled is handled twice. On a new
        connection the request fails instead and the client ends the session,
        which a resuming client resumes (SPEC.md 12.4, 17).
        """
        transport = request.match_info.get("transport")
        if transport is not None and transport != "websocket":
            # The headers are prepared before this hook runs: the header is set here too.
            response.force_close()
            response.headers[hdrs.CONNECTION] = "close"
        key = request.get("rtt.new_key")
        if key is not None:
            # The scheme the client used, a trusted proxy's word included (SPEC.md 8.5).
            admitted = request.get("rtt.admitted")
            secure = admitted[0].secure if admitted is not None else request.secure
            # aiohttp has already turned response.cookies into headers at this point.
            response.headers.add(hdrs.SET_COOKIE, binding_cookie(BINDING_COOKIE, key, self.prefix, secure))
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin_allowed(origin, self.options.allowed_origins):
            if origin == "null":  # a file:// page: echoing "null" reads as a refusal (SockJS 0.3.3)
                response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
            else:
                response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
                response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"

    async def _preflight(self, request: web.Request) -> web.Response:
        """A CORS preflight (SockJS 0.3.3): 204, cacheable for a year; refused origins get no grants."""
        transport = request.match_info.get("transport")
        if transport is not None and transport not in PREFLIGHTED:
            return web.Response(status=404, text="Not found")
        if not origin_allowed(request.headers.get(hdrs.ORIGIN), self.options.allowed_origins):
            return web.Response(status=403, text="Origin not allowed")
        headers = {
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: "OPTIONS, GET" if transport is None else "OPTIONS, POST",
            hdrs.ACCESS_CONTROL_MAX_AGE: str(_PREFLIGHT_AGE),
            hdrs.CACHE_CONTROL: f"public, max-age={_PREFLIGHT_AGE}",
            hdrs.EXPIRES: email.utils.formatdate(time.time() + _PREFLIGHT_AGE, usegmt=True),
        }
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if asked:
            headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
        return web.Response(status=204, headers=headers)

    def _handshake(self, request: web.Request) -> Handshake:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        remote = (str(peer[0]), int(peer[1])) if peer else None
        query = [
            (k, v)
            for k, v in parse_qsl(request.query_string, keep_blank_values=True)
            if k not in _PROTOCOL_QUERY
        ]
        return Handshake(
            headers=Headers.from_raw(request.raw_headers),
            path=self.prefix,
            query_string=urlencode(query),
            remote_address=remote,
            scheme="https" if request.secure else "http",
        )

    async def _post(self, request: web.Request, conn: SockjsConn, *, jsonp: bool) -> web.StreamResponse:
        """Messages posted over HTTP (``xhr_send``, ``jsonp_send``): read strictly, bounded.

        The answers are SockJS 0.3.3's (500 ``Payload expected.`` for nothing,
        500 ``Broken JSON encoding.`` for a malformed payload), never cached; a
        malformed payload also ends the session as ``protocol error`` (SPEC.md 12.4).
        """
        server = self.server
        try:
            body = await read_body(request, server.body_limit)
        except _BodyFailed as failed:
            return await failed.answer(request)  # nothing of it is delivered; the session goes on
        if body is None:
            server.violation(conn, CloseReason.MESSAGE_TOO_BIG)
            return _post_answer(request, 413, "Payload too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            server.violation(conn, CloseReason.PROTOCOL_ERROR)
            return _post_answer(request, 500, _BROKEN_JSON)
        if jsonp and request.content_type == "application/x-www-form-urlencoded":
            text = unquote_plus(text[2:]) if text.startswith("d=") else ""
        if not text:
            return _post_answer(request, 500, "Payload expected.")
        if not await server.deliver(conn, text) and conn.detected is CloseReason.PROTOCOL_ERROR:
            return _post_answer(request, 500, _BROKEN_JSON)
        if jsonp:
            return _post_answer(request, 200, "ok")
        return _post_answer(request, 204, None)


def _post_answer(request: web.Request, status: int, text: str | None) -> web.Response:
    """An answer to a message POST: plain text, never cached (SockJS 0.3.3: iOS 6 caches POSTs).

    It sets SockJS's ``JSESSIONID`` cookie (the client's, else ``dummy``), as
    every session answer does while ``/info`` says ``cookie_needed``: load
    balancers may stick sessions by it.
    """
    jsessionid = request.cookies.get("JSESSIONID", "dummy")
    if not jsessionid.isascii() or not all(c.isalnum() or c in "-_.~" for c in jsessionid):
        jsessionid = "dummy"  # never echo what could break the header
    headers = {
        hdrs.CONTENT_TYPE: "text/plain;charset=UTF-8",
        hdrs.CACHE_CONTROL: _NOT_CACHED,
        hdrs.SET_COOKIE: f"JSESSIONID={jsessionid}; Path=/",
    }
    return web.Response(status=status, body=text.encode() if text is not None else None, headers=headers)


def _key(request: web.Request) -> str:
    """The binding key of a request that opens a session: its cookie's, or a new one its response sets.

    A key the browser already holds is kept, so that several sessions of one
    browser (tabs) share the one cookie instead of overwriting each other's.
    """
    key = request.cookies.get(BINDING_COOKIE)
    if key is None or len(key) != 22:
        key = secrets.token_urlsafe(16)
        request["rtt.new_key"] = key
    return key


def binding_cookie(name: str, key: str, path: str, secure: bool) -> str:
    """The ``Set-Cookie`` value of a binding key (SPEC.md 8.3).

    Over HTTPS ``SameSite=None; Secure; Partitioned``, so a page on another site
    keeps its session where the browser allows third-party (partitioned)
    cookies; over plain HTTP ``SameSite=Lax`` (browsers refuse ``None`` without
    ``Secure``), which only pages of the same site send. ``secure`` is the
    handshake's scheme: the web server's, or a trusted proxy's
    ``X-Forwarded-Proto`` (SPEC.md 8.5), never an untrusted peer's.
    """
    same_site = "SameSite=None; Secure; Partitioned" if secure else "SameSite=Lax"
    return f"{name}={key}; Path={path}; HttpOnly; {same_site}"


def _binding_refused() -> web.Response:
    """The answer to a message POST without the session's binding key: a refusal (403), not a failure."""
    return web.Response(status=403, text=BINDING_REFUSED)


async def _answer(handler: _Handler, request: web.Request) -> web.StreamResponse:
    """The library's response to a receiving request, or nothing if its client has left.

    A poller that gives up (a client closing, a relay cancelled) leaves the
    library writing to a closed connection; that is no error of the server's.
    """
    try:
        return await handler(request)
    except ConnectionResetError:
        return web.Response(status=204)


def _relayed(request: web.Request) -> bool:
    """Whether ``request`` came over the relay's Unix socket."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    return sock is not None and sock.family == socket_module.AF_UNIX


class _BodyFailed(Exception):
    """A request body that did not arrive whole: too slowly (408), or its client left (400)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    async def answer(self, request: web.Request) -> web.StreamResponse:
        """Answer, then close the connection: the rest of the body is never read.

        (aiohttp would otherwise read and drop what still comes for up to its
        lingering time, 10 s, before it closes the connection.)
        """
        logger.debug("%s %s: %s", request.method, request.match_info.get("transport", request.path), self)
        response = _post_answer(request, self.status, self.text)
        response.force_close()
        transport = request.transport
        if transport is None or transport.is_closing():
            return response  # the client has gone: aiohttp sees it, and writes nothing
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:
            return response
        transport.close()  # after what is written: the answer goes out first
        return response


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None (unread) once it is past ``limit`` bytes.

    Raise :class:`_BodyFailed` if it has not all arrived within :data:`BODY_TIMEOUT`
    (a body sent a byte at a time would otherwise hold the request for ever), or if
    the connection ended inside it.
    """
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            return await _read_body(request, limit)
    except TimeoutError:
        raise _BodyFailed(408, f"Request body not received within {BODY_TIMEOUT:g} s") from None
    except (ConnectionResetError, asyncio.IncompleteReadError, aiohttp.ClientPayloadError) as exc:
        raise _BodyFailed(400, f"Request body incomplete ({type(exc).__name__})") from None


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    length = request.content_length
    if length is not None:
        if length > limit:
            return None
        return await request.content.readexactly(length) if length else b""
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _owns(conn: SockjsConn, request: web.Request) -> bool:
    """Whether ``request`` may use the HTTP session ``conn``: anyone with its id, unless it is bound."""
    key = conn.key
    if key is None:  # session_binding is off: the id is the only credential (SPEC.md 8.3)
        return True
    return secrets.compare_digest(key.encode(), request.cookies.get(BINDING_COOKIE, "").encode())
