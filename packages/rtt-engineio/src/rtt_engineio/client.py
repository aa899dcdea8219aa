"""The engineio Python client: rtt's reconnecting client over ``engineio.AsyncClient``.

python-engineio's client does not reconnect; rtt's core does (SPEC.md 4.4).
Each attempt makes a fresh ``AsyncClient`` with its own aiohttp session.
rtt decodes what it needs from the library's packets: messages go to a
bounded inbox (a full inbox stops the library's read loop, so the server
sees the client stop reading), and the data of the server's ``CLOSE`` packet
is rtt's close reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import engineio  # type: ignore[import-untyped, unused-ignore]
from engineio import exceptions as eio_exceptions  # type: ignore[import-untyped, unused-ignore]
from engineio import packet  # type: ignore[import-untyped, unused-ignore]

from rtt import (
    Client,
    ClientConnection,
    Close,
    CloseReason,
    ConnectError,
    ConnectionClosed,
    RejectedError,
)
from rtt.client import Inbox
from rtt.codec import message_size
from rtt.handshake import refusal_reason
from rtt.resume import wire_limit as resume_wire_limit

from ._library import LibraryClient, forget_client, let_client_go, raw_text, send_close_packet
from ._wire import CLOSE, MESSAGE, check_polling_text, close_from_text, message_data, wire_limit

if TYPE_CHECKING:
    from .transport import EngineioClientOptions

__all__ = ["EngineioClient", "EngineioConnection"]

#: Messages the connection buffers beyond rtt's own inbox before the read loop waits.
INBOX_SIZE = 16
#: Packets one long-polling POST may carry (python-engineio servers refuse more than 16).
POLLING_BATCH = 8
#: Messages sent over WebSocket but not yet written to it before ``send()`` waits.
WEBSOCKET_QUEUE = 64
#: Smallest WebSocket frame the client accepts, so the server's handshake always fits.
HANDSHAKE_ROOM = 1024
#: Largest refusal body read for its reason (rtt's are one short line).
REFUSAL_BODY_LIMIT = 4096
#: Seconds a refusal body of unknown length may take to arrive before its reason is given up.
REFUSAL_READ_TIMEOUT = 5.0


class EngineioConnection(ClientConnection):
    """One Engine.IO session of a client (long-polling, WebSocket, or upgraded)."""

    def __init__(self, options: EngineioClientOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.max_message_size = options.max_message_size
        self.session = session
        self.inbox = Inbox(INBOX_SIZE)
        self.stalled: asyncio.Event | None = None
        self.close_text: object = None
        self.detected: CloseReason | None = None
        self.reason: CloseReason | None = None
        #: The server's close, read from its ``CLOSE`` packet (an application close keeps its code).
        self.server_close: Close | None = None
        self.ended = asyncio.Event()
        #: ``(status, reason)`` of every HTTP answer of 400 or more this session got (a trace fills it).
        self.refused: list[tuple[int, str]] = []
        self._batch = 0
        self._batch_limit = wire_limit(resume_wire_limit(options.max_message_size))
        self.eio = LibraryClient(
            self._on_packet,
            logger=False,
            request_timeout=max(options.connect_timeout, options.close_timeout, 5.0),
            http_session=session,
            handle_sigint=False,
            # The frame bound leaves room for the handshake packet (about 120 bytes), which a
            # small max_message_size would otherwise refuse; messages are checked one by one.
            websocket_extra_options={"max_msg_size": max(self._batch_limit, HANDSHAKE_ROOM) + 16},
        )
        self.eio.on("disconnect", self._on_disconnect)

    @property
    def transport(self) -> str | None:
        """``"polling"`` or ``"websocket"``: what the session runs on now."""
        current: str | None = self.eio.transport()
        return current

    def pause_reading(self) -> None:
        """Stop taking packets from the server: messages pile up, heartbeats go unanswered."""
        if self.stalled is None:
            self.stalled = asyncio.Event()

    async def _on_packet(self, pkt: packet.Packet) -> bool:
        """A packet from the server, before the library sees it; True if it was rtt's alone."""
        stalled = self.stalled
        if stalled is not None:
            await stalled.wait()  # a paused client takes nothing, heartbeats included
        kind = pkt.packet_type
        if kind == MESSAGE:
            data = message_data(pkt.data)
            limit = self.max_message_size
            if type(data) is str and data[:1] == "\x00":
                # Resume framing (SPEC.md 17.2) makes such a text a byte longer, and a welcome must
                # pass a tiny limit; the core checks the decoded message against the option.
                limit = resume_wire_limit(limit)
            if message_size(data) > limit:
                self.detected = CloseReason.MESSAGE_TOO_BIG
                await self.eio.disconnect(abort=True, reason=self.eio.reason.TRANSPORT_ERROR)
            else:
                await self.inbox.put(data)
            return True
        if kind == CLOSE:
            self.close_text = pkt.data
        return False

    def _on_disconnect(self, reason: str) -> None:
        if self.reason is None:
            eio = self.eio
            if self.detected is not None:
                self.reason = self.detected
            elif reason == eio.reason.CLIENT_DISCONNECT:
                self.reason = CloseReason.CLIENT_CLOSED
            elif reason == eio.reason.SERVER_DISCONNECT:
                self.server_close = close_from_text(self.close_text, CloseReason.SERVER_CLOSED)
                self.reason = self.server_close.reason
            else:
                ws = eio.websocket
                code = ws.close_code if ws is not None else None
                if code == 1009:
                    self.reason = CloseReason.MESSAGE_TOO_BIG
                elif any(status == 403 for status, _ in self.refused):
                    # A request of the open session refused (session binding: SPEC.md 8.3): a
                    # refusal, not a network failure, so it is not retried.
                    self.reason = CloseReason.REJECTED
                else:
                    self.reason = CloseReason.TRANSPORT_ERROR
        self.ended.set()
        self.inbox.close()

    async def recv(self) -> str | bytes:
        data = await self.inbox.get()
        if data is None:
            await self.dispose()  # the session ended by itself: release it
            close = self.server_close
            if close is not None and close.reason is self.reason:
                raise ConnectionClosed.of(close)
            raise ConnectionClosed(self.reason or CloseReason.TRANSPORT_ERROR)
        return data

    async def send(self, data: str | bytes) -> None:
        eio = self.eio
        self._check_writable()
        if eio.transport() == "polling":
            await self._bound_batch(data)
        elif eio.send_queue.unwritten >= WEBSOCKET_QUEUE:
            # python-engineio's send queue is unbounded: wait for the write loop to catch
            # up, so a server that stops reading pushes back instead of growing our memory.
            await self._written()
        await eio.send(data)

    def _check_writable(self) -> None:
        """Raise ``ConnectionClosed`` once nothing sent now would be written."""
        eio = self.eio
        if self.reason is not None or not eio.session_open or eio.rtt_write_ended.is_set():
            # A write loop that gave up (a refused POST, a failed WebSocket write) leaves the
            # session 'connected' until the read loop notices; its reason comes from there.
            raise ConnectionClosed(self.reason or CloseReason.TRANSPORT_ERROR)

    async def _written(self) -> None:
        """Wait until the write loop has written what is queued, or raise if it never will."""
        eio = self.eio
        await _first(eio.send_queue.join(), self.ended.wait(), eio.rtt_write_ended.wait())
        self._check_writable()

    async def _bound_batch(self, data: str | bytes) -> None:
        """Keep one long-polling POST within the server's limits (python-engineio batches all it has)."""
        queue = self.eio.send_queue
        size = 4 * len(data) // 3 + 2 if isinstance(data, bytes) else message_size(data) + 1
        if queue.qsize() == 0:
            self._batch = 0
        if queue.qsize() >= POLLING_BATCH or (self._batch and self._batch + size > self._batch_limit):
            await self._written()
            self._batch = 0
        self._batch += size

    async def close(self, reason: CloseReason) -> None:
        eio = self.eio
        if self.reason is None:
            self.reason = reason
        if self.stalled is not None:
            self.stalled.set()
        try:
            async with asyncio.timeout(self.options.close_timeout):
                if await send_close_packet(eio):
                    # Once the server has our CLOSE it reports ``client closed``; a
                    # connection that died meanwhile ends the wait as well.
                    await _first(eio.send_queue.join(), self.ended.wait(), eio.rtt_write_ended.wait())
        except (TimeoutError, OSError, aiohttp.ClientError):
            pass
        finally:
            await self.dispose()

    async def dispose(self) -> None:
        """Drop whatever is left of the session: tasks, sockets, the HTTP session."""
        eio = self.eio
        if let_client_go(eio):
            self._on_disconnect(eio.reason.CLIENT_DISCONNECT)
        eio.send_queue.put_nowait(None)  # ends the library's write loop
        ws = eio.websocket
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(min(1.0, self.options.close_timeout)):
                    await ws.close()
        tasks = [t for t in eio.rtt_tasks if t is not asyncio.current_task() and not t.done()]
        if tasks and self.reason is CloseReason.CLIENT_CLOSED:
            # The server has our CLOSE and ends the pending poll: let the loops finish
            # their requests rather than cancel them mid-response.
            await asyncio.wait(tasks, timeout=min(1.0, self.options.close_timeout))
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        forget_client(eio)
        await self.session.close()
        self.ended.set()
        self.inbox.close()


async def _first(*aws: Coroutine[Any, Any, Any]) -> None:
    """Wait until one of ``aws`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class EngineioClient(Client):
    """A client of an Engine.IO server at ``http://host:port/engine.io/`` (or ``ws://``).

    ``transports`` (an option) chooses long-polling, WebSocket, or both (the
    default: long-polling first, then the upgrade). Any Engine.IO v4 server
    works; an rtt server also tells it why it closed.
    """

    options: EngineioClientOptions
    _connection: EngineioConnection | None = None

    @property
    def connection(self) -> EngineioConnection | None:
        """The current session (an escape hatch, and for fault tests)."""
        return self._connection

    @property
    def engineio_client(self) -> engineio.AsyncClient | None:
        """The current ``engineio.AsyncClient``."""
        return self._connection.eio if self._connection is not None else None

    async def send(self, data: str | bytes) -> None:
        """As :meth:`rtt.Client.send`; with long-polling among the client's ``transports``, a text
        containing U+001E raises :class:`~rtt.errors.InvalidMessageError` before anything is sent
        or queued (SPEC.md 12.3: the long-polling payload separates packets with it)."""
        check_polling_text(data, self.options.transports)
        await super().send(data)

    def pause_reading(self) -> None:
        """Freeze the session (SPEC.md 10.3): the library answers heartbeats in the loop that
        takes packets, so pausing it stops both (a WebSocket is no longer read; long-polling
        stops polling)."""
        cast(EngineioConnection, self._current_connection()).pause_reading()

    async def _connect(self) -> ClientConnection:
        parts = urlsplit(self.connect_url)
        scheme = "https" if parts.scheme in ("https", "wss") else "http"
        base = urlunsplit((scheme, parts.netloc, "/", parts.query, ""))
        path = parts.path.strip("/") or "engine.io"
        refused: list[tuple[int, str]] = []

        async def on_request_end(
            session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
        ) -> None:
            response = params.response
            if response.status >= 400:
                # The server's reason is the body (SPEC.md 8.2); read() keeps it for the library too.
                length = response.content_length
                if length is None:
                    body = await _read_bounded(response.content, REFUSAL_BODY_LIMIT)
                else:
                    body = await response.read() if length <= REFUSAL_BODY_LIMIT else b""
                refused.append((response.status, refusal_reason(body, response.reason or "")))

        failures: list[BaseException] = []

        async def on_request_exception(
            session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestExceptionParams
        ) -> None:
            # The library turns a failed request into its own ConnectionError and drops the
            # cause (a certificate that failed verification, say): rtt keeps it here.
            failures.append(params.exception)

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(on_request_end)
        trace.on_request_exception.append(on_request_exception)
        session = aiohttp.ClientSession(
            trace_configs=[trace],
            # The default jar ignores cookies from IP-address hosts (127.0.0.1): the server's
            # session binding cookie must be kept whatever the host.
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            # Every request and the WebSocket use it (the library's ssl_verify stays True, so it
            # passes no context of its own); True verifies against the system's CAs.
            connector=aiohttp.TCPConnector(ssl=self.options.ssl or True),
        )
        # aiohttp sends a GET again, once, when its connection breaks; for a poll that breaks
        # Engine.IO's rule that a failed request ends the session: the first GET's packets may
        # have been taken and lost, and the session would go on past the gap (SPEC.md 12.3, 17.1).
        # The attribute is private, in every aiohttp this plugin allows (3.11 and later).
        session._retry_connection = False
        conn = EngineioConnection(self.options, session)
        conn.refused = refused
        try:
            with raw_text():  # messages that come with the handshake keep their text
                await conn.eio.connect(
                    base,
                    headers=dict(self.options.headers),
                    transports=list(self.options.transports),
                    engineio_path=path,
                )
        except BaseException as exc:
            await conn.dispose()
            if isinstance(exc, eio_exceptions.ConnectionError):
                if refused:
                    status, reason = refused[0]
                    raise RejectedError(status, reason) from None
                if failures:
                    raise ConnectError(f"cannot connect to {self.url}: {failures[0]}") from failures[0]
                raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
            if isinstance(exc, aiohttp.ClientError | ValueError):
                raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
            raise
        self._connection = conn
        return conn


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """A body of unknown length (chunked), if it ends within ``limit`` bytes and a few seconds; else b"".

    What is read is gone for the library, which only fails the connection on a refusal anyway.
    """
    body = b""
    try:
        async with asyncio.timeout(REFUSAL_READ_TIMEOUT):
            while not stream.at_eof() and len(body) <= limit:
                body += await stream.read(limit + 1 - len(body))
    except (TimeoutError, aiohttp.ClientError):
        return b""
    return body if len(body) <= limit else b""
