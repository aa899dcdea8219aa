"""The conformance kit: every MUST of SPEC.md as an executable test.

A plugin's test file subclasses :class:`TransportTests` (or some of the
mixins) with a ``Test`` name and overrides :meth:`Kit.make_transport`; the
default :meth:`Kit.stall_client` calls :meth:`rtt.Client.pause_reading`.
A server that mounts into an application runs the same cases mounted: the
test class sets :attr:`Kit.mounted` and overrides :meth:`Kit.mount`, and
names in :attr:`Kit.lacks` what that mode cannot do. Cases run by declared
capability and mode feature, never by name. Each case cites the SPEC.md
section it checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import socket as socketlib
import string
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..client import Client, ClientState
from ..errors import (
    ConfigError,
    ConnectError,
    ConnectionClosed,
    InvalidCloseError,
    InvalidMessageError,
    MessageTooBigError,
    OfflineQueueFullError,
    RejectedError,
    StateError,
    UnknownSocketError,
)
from ..events import Close, CloseReason
from ..handshake import Accept, Handshake, Reject
from ..resume import ACK_EVERY
from ..server import Server, ServerState, Socket
from ..transport import Capabilities, Transport
from . import _tls
from ._support import LogCapture, Recorder, case, eventually
from ._support import echo as echo_messages
from .proxy import Proxy

__all__ = [
    "ClientTests",
    "Drops",
    "Kit",
    "LimitTests",
    "MessageTests",
    "ResumeTests",
    "SecurityTests",
    "ServerTests",
    "ShutdownTests",
    "TlsTests",
    "TransportTests",
]

E = TypeVar("E", bound=BaseException)

_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")

#: Messages every transport carries exactly (SPEC.md 5.1), both directions.
ROUND_TRIP: tuple[str | bytes, ...] = (
    "",
    "hello",
    "héllo wörld, こんにちは, 🚀",
    '{"json": [1, 2, "three"]}\n\ttabs and newlines\r\n',
    "\x00 starts with NUL",
    "\x00bAAAA",
    "\x00\x00",
    b"",
    b"\x00",
    bytes(range(256)),
    b"\x00bAAAA",
    "\u2028\u2029 line separators",
)


class Drops(Protocol):
    """Cuts the connections between a case's server and its clients on command (SPEC.md 11).

    :class:`~rtt.testing.Proxy` is one (11.1 says what each method does);
    a server without a TCP address offers its own from ``kit_drops()``.
    """

    def url_for(self, server_url: str) -> str:
        """The URL a client uses to reach the server through these drops."""
        ...

    def sever(self) -> int:
        """Reset every open connection at once, both sides; return how many."""
        ...

    def blackhole(self, *, client_side_cut_after: float | None = None) -> None:
        """Stop forwarding on every open connection (and new ones), sockets kept open.

        With ``client_side_cut_after``, cut only the client side of each open
        connection that many seconds later.
        """
        ...

    def restore(self) -> None:
        """Let new connections through again after :meth:`blackhole`."""
        ...

    def refuse(self, on: bool = True) -> None:
        """Make each new connection fail at once (``on=False``: pass them again)."""
        ...

    async def close(self) -> None:
        """Undo everything; the kit calls it after the case."""
        ...


class Kit:
    """Factory hooks and helpers shared by every mixin."""

    #: Seconds one case may take before it fails.
    timeout: ClassVar[float] = 60.0
    #: Host servers bind in the kit.
    host: ClassVar[str] = "127.0.0.1"
    #: Heartbeat used by the ping cases (a transport with coarse timers may raise it). A healthy
    #: peer must answer within ping_timeout even on a loaded machine (coverage, several test workers):
    #: at 0.4 s one sometimes did not.
    ping_interval: ClassVar[float] = 0.2
    ping_timeout: ClassVar[float] = 0.8
    #: Reconnect policy used by the reconnect cases; jitter 0 makes delays exact.
    reconnect: ClassVar[dict[str, Any]] = {"min_delay": 0.05, "max_delay": 0.2, "factor": 2.0, "jitter": 0.0}
    #: Serve every case's server through :meth:`mount`, in an application that owns the listener.
    mounted: ClassVar[bool] = False
    #: What this serving mode cannot do: names of :data:`rtt.testing.MODE_FEATURES`, each with the
    #: reason shown when a case that needs it is skipped.
    lacks: ClassVar[Mapping[str, str]] = {}

    _servers: list[Server[Any]]
    _clients: list[Client]
    _hosts: list[_Host]

    # -- Hooks a plugin's test class overrides --------------------------------

    def make_transport(self, **options: Any) -> Transport:
        """Return the transport under test, built with ``options``."""
        raise NotImplementedError("override make_transport() to return the transport under test")

    async def stall_client(self, client: Client) -> None:
        """Make ``client`` stop reading and stop answering heartbeats, connection left open.

        The default calls :meth:`Client.pause_reading`, which every plugin's
        client implements (SPEC.md 10.3); override it to freeze a client some
        other way.
        """
        client.pause_reading()

    def client_url(self, server: Server[Any]) -> str:
        """The URL a Python client uses to reach ``server`` (default: ``server.url``)."""
        return server.url

    async def drops(self, server: Server[Any]) -> Drops:
        """What the resume cases cut ``server``'s connections with (closed after the case).

        The default is a started :class:`~rtt.testing.Proxy` in front of
        ``server.address``, which the cases' clients reach through
        ``url_for(client_url(server))``: it serves every transport whose
        clients connect over TCP to that address. A server that has no TCP
        address to stand in front of offers its own: a ``kit_drops()``
        method that returns a :class:`Drops` (rtt-mock's cuts its in-memory
        links). Override this hook to cut connections some other way.
        """
        offered = getattr(server, "kit_drops", None)
        made: Drops
        if callable(offered):
            made = offered()
        else:
            proxy = Proxy(*server.address, host=self.host)
            await proxy.start()
            made = proxy
        self._drops = [*getattr(self, "_drops", []), made]
        return made

    def mount(
        self, server: Server[Any], listener: socketlib.socket
    ) -> contextlib.AbstractAsyncContextManager[Iterable[asyncio.Task[Any]] | None]:
        """Serve ``server`` in a host application listening on ``listener`` (with :attr:`mounted`).

        Standalone (the default, ``mounted = False``) the kit calls
        ``server.start()`` and the server listens itself. A test class of a
        mounted mode sets ``mounted = True`` and returns an async context
        manager here. The kit has already bound ``listener`` (a listening
        socket on :attr:`host`, port 0 making it a free one) and made
        ``server`` with that port, so ``server.url`` and ``server.address``
        name it. Entering the context must serve the application on
        ``listener`` with ``server`` mounted in it and leave ``server``
        running (started by the hook or by the application's startup, as
        the mode does it); its value is the host's own long-lived tasks
        (an ASGI server's main loop), which the shutdown case's "every task
        finished" check leaves out, or ``None``. Exiting must stop the host
        application within bounds; the kit closes ``server`` first, and
        closes ``listener`` after.

        The kit stops a host after its case, and before a case starts a new
        server on the port of a closed one (a restart), so the port is free.
        """
        raise NotImplementedError("a mounted mode (mounted = True) overrides mount() to serve its servers")

    # -- Helpers ----------------------------------------------------------------

    def transport_capabilities(self) -> Capabilities:
        """The capabilities the transport under test declares."""
        return self.make_transport().capabilities

    async def _close_all(self) -> None:
        """Close every client, server, drops and host the case made, in that order; re-raise a failure."""
        clients, servers = getattr(self, "_clients", []), getattr(self, "_servers", [])
        hosts: list[_Host] = getattr(self, "_hosts", [])
        drops: list[Drops] = getattr(self, "_drops", [])
        self._clients, self._servers, self._hosts, self._drops = [], [], [], []
        closes = [asyncio.wait_for(c.close(), 10) for c in clients]
        failures = [r for r in await asyncio.gather(*closes, return_exceptions=True) if r is not None]
        closes = [asyncio.wait_for(s.close(), 15) for s in servers]
        failures += [r for r in await asyncio.gather(*closes, return_exceptions=True) if r is not None]
        closes = [asyncio.wait_for(d.close(), 10) for d in drops]
        failures += [r for r in await asyncio.gather(*closes, return_exceptions=True) if r is not None]
        stops = [host.stop() for host in hosts]
        failures += [r for r in await asyncio.gather(*stops, return_exceptions=True) if r is not None]
        if failures:
            raise failures[0]

    async def server(self, *, port: int = 0, echo: bool = False, **options: Any) -> Server[Any]:
        """A started server (closed after the case); ``echo`` sends messages back.

        Served by :meth:`mount` when the class is :attr:`mounted`.
        """
        if not self.mounted:
            server = self.make_transport().server(host=self.host, port=port, **options)
            if echo:
                echo_messages(server)
            self._servers = [*getattr(self, "_servers", []), server]
            await server.start()
            return server
        await self._stop_hosts(port)
        family = socketlib.AF_INET6 if ":" in self.host else socketlib.AF_INET
        host = _Host(socketlib.create_server((self.host, port), family=family))
        self._hosts = [*getattr(self, "_hosts", []), host]
        server = self.make_transport().server(host=self.host, port=host.port, **options)
        if echo:
            echo_messages(server)
        self._servers = [*getattr(self, "_servers", []), server]
        host.server = server
        tasks = await host.stack.enter_async_context(self.mount(server, host.listener))
        host.tasks = set(tasks or ())
        if server.state is not ServerState.RUNNING:
            raise AssertionError(f"mount() left the server {server.state.name}, not RUNNING")
        return server

    async def _stop_hosts(self, port: int) -> None:
        """Stop the hosts of closed servers on ``port`` (0: none), so a restart can bind it."""
        hosts: list[_Host] = getattr(self, "_hosts", [])
        done = [h for h in hosts if port and h.port == port and h.closed()]
        self._hosts = [h for h in hosts if h not in done]
        for host in done:
            await host.stop()

    def _tasks(self) -> set[asyncio.Task[Any]]:
        """The running tasks, less the long-lived tasks of the hosts :meth:`mount` serves in."""
        hosts: list[_Host] = getattr(self, "_hosts", [])
        return asyncio.all_tasks().difference(*(h.tasks for h in hosts))

    def client(
        self, server: Server[Any], *, query: str = "", via: Drops | None = None, **options: Any
    ) -> Client:
        """An unconnected client of ``server`` (closed after the case); reconnect off unless given.

        ``via`` (from :meth:`drops`) makes the client reach the server through it.
        """
        url = self.client_url(server)
        if via is not None:
            url = via.url_for(url)
        if query:
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))
        options.setdefault("reconnect", False)
        client = self.make_transport().client(url, **options)
        self._clients = [*getattr(self, "_clients", []), client]
        return client

    async def connected(self, server: Server[Any], **options: Any) -> Client:
        """A connected client of ``server``, once the server has its socket.

        When no other client connects meanwhile, :meth:`socket_of` then gives
        the server's socket for it.
        """
        before = set(server.sockets)
        client = self.client(server, **options)
        await client.connect()
        await eventually(lambda: len(set(server.sockets) - before) >= 1, 5, "the server to see the socket")
        new = set(server.sockets) - before
        if len(new) == 1:
            self._socket_of: dict[int, Socket] = {
                **getattr(self, "_socket_of", {}),
                id(client): server.sockets[new.pop()],
            }
        return client

    def socket_of(self, client: Client) -> Socket:
        """The server-side socket of a client made by :meth:`connected`."""
        return self._socket_of[id(client)]


@dataclass(eq=False)
class _Host:
    """A host application :meth:`Kit.mount` serves one server in, on a listener the kit bound."""

    listener: socketlib.socket
    server: Server[Any] | None = None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.port: int = self.listener.getsockname()[1]
        self.stack.callback(self.listener.close)

    def closed(self) -> bool:
        return self.server is None or self.server.state is ServerState.CLOSED

    async def stop(self) -> None:
        """Stop the host application and close the listener, within 15 s."""
        await asyncio.wait_for(self.stack.aclose(), 15)


class ServerTests(Kit):
    """SPEC.md 3: the server API, socket ids, events and their order."""

    @case()
    async def test_port_zero_binds_a_free_port(self) -> None:
        server = await self.server()
        _, port = server.address
        assert port > 0
        assert str(port) in server.url
        assert server.state is ServerState.RUNNING

    @case()
    async def test_socket_ids_are_random_strings(self) -> None:  # SPEC 3.3
        server = await self.server()
        for _ in range(3):
            await self.connected(server)
        ids = list(server.sockets)
        assert len(set(ids)) == 3
        for socket_id in ids:
            assert isinstance(socket_id, str)
            assert len(socket_id) >= 16, "at least 96 random bits"
            assert set(socket_id) <= _URLSAFE
            assert not socket_id.isdigit()

    @case()
    async def test_socket_view_describes_the_handshake(self) -> None:  # SPEC 3.4
        server = await self.server()
        client = await self.connected(server, query="room=blue&n=1", headers={"X-Rtt-Kit": "yes"})
        socket = self.socket_of(client)
        assert socket.transport == self.make_transport().name
        assert socket.remote_address is not None
        assert socket.remote_address[0] in ("127.0.0.1", "::1", "::ffff:127.0.0.1")
        assert socket.headers["x-rtt-kit"] == "yes"
        assert socket.query["room"] == "blue" and socket.query["n"] == "1"
        assert "room=blue" in socket.query_string
        raises_now(TypeError, lambda: operator.setitem(server.sockets, "x", socket))  # type: ignore[call-overload]

    @case()
    async def test_server_events_in_order(self) -> None:  # SPEC 3.5
        server = await self.server()
        rec = Recorder()
        rec.listen(server, "connect", "message", "disconnect")
        client = await self.connected(server)
        for i in range(3):
            await client.send(f"m{i}")
        await rec.wait("message", 3)
        await client.close()
        await rec.wait("disconnect")
        assert rec.names() == ["connect", "message", "message", "message", "disconnect"]
        socket = rec.of("connect")[0][0]
        assert [args[1] for args in rec.of("message")] == ["m0", "m1", "m2"]
        assert all(args[0] is socket for args in rec.of("message"))
        assert rec.of("disconnect") == [(socket, CloseReason.CLIENT_CLOSED)]
        assert socket.id not in server.sockets

    @case()
    async def test_async_and_sync_handlers_and_decorators(self) -> None:  # SPEC 3.5
        server = await self.server()
        seen: list[str] = []

        @server.on("message")
        async def async_handler(socket: Socket, data: str | bytes) -> None:
            await asyncio.sleep(0)
            seen.append(f"async:{data!s}")

        def sync_handler(socket: Socket, data: str | bytes) -> None:
            seen.append(f"sync:{data!s}")

        assert server.on("message", sync_handler) is sync_handler
        client = await self.connected(server)
        await client.send("x")
        await eventually(lambda: len(seen) == 2)
        assert seen == ["async:x", "sync:x"]
        server.off("message", sync_handler)
        await client.send("y")
        await eventually(lambda: len(seen) == 3)
        assert seen[-1] == "async:y"
        raises_now(ValueError, lambda: server.on("nope"))  # type: ignore[call-overload]

    @case()
    async def test_send_reaches_only_its_socket(self) -> None:  # SPEC 3.6
        server = await self.server()
        a = await self.connected(server)
        b = await self.connected(server)
        await server.send(self.socket_of(a).id, "for a")
        await server.send(self.socket_of(b).id, "for b")
        assert await a.recv() == "for a"
        assert await b.recv() == "for b"

    @case()
    async def test_send_errors(self) -> None:  # SPEC 3.6, 9
        server = await self.server()
        socket = self.socket_of(await self.connected(server))
        unknown = await raises(UnknownSocketError, server.send("no-such-socket", "x"))
        assert unknown.socket_id == "no-such-socket"
        for bad in (1, None, bytearray(b"x"), ["x"]):
            await raises(InvalidMessageError, server.send(socket.id, bad))  # type: ignore[arg-type]
        unstarted = self.make_transport().server(host=self.host)
        await raises(StateError, unstarted.send("x", "y"))
        raises_now(StateError, lambda: unstarted.address)
        await unstarted.close()

    @case()
    async def test_text_that_is_not_unicode_is_refused_everywhere(self) -> None:  # SPEC 5.1
        server = await self.server(echo=True)
        client = await self.connected(server)
        socket_id = self.socket_of(client).id
        lone = "half a pair \ud83d"
        for attempt in (server.send(socket_id, lone), server.broadcast(lone), client.send(lone)):
            error = await raises(InvalidMessageError, attempt)
            assert "lone surrogate" in str(error)
        await client.send("whole 🚀")
        assert await client.recv() == "whole 🚀", "a refused message is not sent and ends nothing"

    @case()
    async def test_handlers_run_in_a_task(self) -> None:  # SPEC 3.5, 10
        # What asyncio promises a coroutine: a current task, so asyncio.timeout() works (a broker
        # publish uses it). A plugin that drives handlers outside a task breaks them.
        server = await self.server()
        seen: list[tuple[str, bool]] = []

        async def check(event: str) -> None:
            async with asyncio.timeout(5):
                await asyncio.sleep(0)
            seen.append((event, asyncio.current_task() is not None))

        server.on("connect", lambda socket: check("connect"))
        server.on("message", lambda socket, data: check("message"))
        server.on("disconnect", lambda socket, reason: check("disconnect"))
        client = await self.connected(server)
        await client.send("x")
        await client.close()
        await eventually(lambda: len(seen) == 3, what="the three handlers")
        assert seen == [("connect", True), ("message", True), ("disconnect", True)]

    @case()
    async def test_broadcast_with_exclude(self) -> None:  # SPEC 3.6
        server = await self.server()
        clients = [await self.connected(server) for _ in range(3)]
        excluded = self.socket_of(clients[2])
        assert await server.broadcast("all but one", exclude=excluded.id) == 2
        assert await server.broadcast("everyone") == 3
        assert await server.broadcast(b"\x01\x02", exclude=[excluded.id]) == 2
        got = [[await c.recv() for _ in range(3 if c is not clients[2] else 1)] for c in clients]
        assert got[0] == got[1] == ["all but one", "everyone", b"\x01\x02"]
        assert got[2] == ["everyone"]

    @case()
    async def test_server_disconnect(self) -> None:  # SPEC 3.6, 6
        server = await self.server()
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        client = await self.connected(server, reconnect=self.reconnect)
        crec = Recorder()
        crec.listen(client, "close", "reconnecting")
        socket = self.socket_of(client)
        await server.disconnect(socket.id)
        assert socket.id not in server.sockets
        assert (await rec.wait("disconnect"))[0] == (socket, CloseReason.SERVER_CLOSED)
        assert (await client.wait_closed()) is CloseReason.SERVER_CLOSED
        assert crec.of("close") == [(CloseReason.SERVER_CLOSED,)]
        await asyncio.sleep(3 * self.reconnect["max_delay"])
        assert crec.of("reconnecting") == [], "a server-closed client must not reconnect"
        await raises(UnknownSocketError, server.disconnect(socket.id))

    @case()
    async def test_application_close_reaches_the_client(self) -> None:  # SPEC 6.3
        server = await self.server()
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        client = await self.connected(server, reconnect=self.reconnect)
        crec = Recorder()
        seen: list[tuple[int | None, str | None]] = []
        client.on("close", lambda _reason: seen.append((client.close_code, client.close_text)))
        crec.listen(client, "close", "reconnecting")
        socket = self.socket_of(client)
        # Non-ASCII and the longest text there is: every protocol must carry it whole.
        text = "déjà connecté ailleurs " + "x" * (123 - len("déjà connecté ailleurs ".encode()))
        await server.disconnect(socket.id, code=4001, reason=text)
        assert (await rec.wait("disconnect"))[0] == (socket, CloseReason.APPLICATION)
        assert (await client.wait_closed()) is CloseReason.APPLICATION
        assert (client.close_code, client.close_text) == (4001, text)
        assert seen == [(4001, text)], "close_code and close_text are set when the close event fires"
        error = await raises(ConnectionClosed, client.recv())
        assert (error.reason, error.code, error.text) == (CloseReason.APPLICATION, 4001, text)
        await asyncio.sleep(3 * self.reconnect["max_delay"])
        assert crec.of("reconnecting") == [], "an application close is final by default"
        # A code from the SockJS range, with no text.
        other = await self.connected(server)
        await server.disconnect(self.socket_of(other).id, code=3000)
        assert (await other.wait_closed()) is CloseReason.APPLICATION
        assert (other.close_code, other.close_text) == (3000, "")

    @case()
    async def test_application_close_in_retry_codes_reconnects(self) -> None:  # SPEC 6.3, 7
        server = await self.server()
        client = await self.connected(server, reconnect={**self.reconnect, "retry_codes": [4503]})
        rec = Recorder()
        rec.listen(client, "close", "reconnected")
        first = self.socket_of(client)
        await server.disconnect(first.id, code=4503, reason="come back later")
        await rec.wait("reconnected")
        assert rec.of("close") == [(CloseReason.APPLICATION,)]
        assert (client.close_code, client.close_text) == (4503, "come back later")
        assert client.state is ClientState.OPEN
        await eventually(lambda: len(server.sockets) == 1, what="the reconnected socket")
        (second,) = server.sockets
        assert second != first.id
        await server.disconnect(second, code=4001, reason="not this one")
        assert (await client.wait_closed()) is CloseReason.APPLICATION
        assert client.close_code == 4001

    @case()
    async def test_invalid_application_close_raises_at_once(self) -> None:  # SPEC 6.3
        server = await self.server()
        client = await self.connected(server)
        socket_id = self.socket_of(client).id
        bad: list[dict[str, Any]] = [
            {"code": 1000},
            {"code": 2999},
            {"code": 5000},
            {"code": True},
            {"code": "4001"},
            {"code": 4001, "reason": "x" * 124},
            {"code": 4001, "reason": "é" * 62},
            {"code": 4001, "reason": "two\nlines"},
            {"code": 4001, "reason": b"bytes"},
            {"reason": "text without a code"},
        ]
        for kwargs in bad:
            error = await raises(InvalidCloseError, server.disconnect(socket_id, **kwargs))
            assert isinstance(error, ValueError), kwargs
        assert socket_id in server.sockets, "a refused close closes nothing"
        await client.send("still open")

    @case()
    async def test_each_reason_sent_with_a_close_reaches_the_client(self) -> None:  # SPEC 6
        # The reasons rtt closes with a closing handshake; ping timeout and slow consumer are
        # drops without one (the peer is not reading), so a client sees those as transport errors.
        limit = 1024
        server = await self.server(max_message_size=limit)
        reasons: list[CloseReason] = []
        disconnected = await self.connected(server)
        await server.disconnect(self.socket_of(disconnected).id)
        reasons.append(await disconnected.wait_closed())
        too_big = await self.connected(server, max_message_size=limit * 2)
        await too_big.send("z" * (limit + 1))
        reasons.append(await too_big.wait_closed())
        shut = await self.connected(server)
        await server.close()
        reasons.append(await shut.wait_closed())
        assert reasons == [CloseReason.SERVER_CLOSED, CloseReason.MESSAGE_TOO_BIG, CloseReason.SHUTDOWN]
        for client, reason in zip((disconnected, too_big, shut), reasons, strict=True):
            assert client.close_reason is reason
            assert (await raises(ConnectionClosed, client.recv())).reason is reason

    @case()
    async def test_stats_count_traffic(self) -> None:  # SPEC 3.7
        server = await self.server(echo=True)
        client = await self.connected(server)
        await client.send("abc")
        await client.send(b"\x00\x01")
        await client.send("é")
        for _ in range(3):
            await client.recv()
        stats = server.stats
        assert stats.connections == 1
        assert (stats.messages_in, stats.bytes_in) == (3, 7)
        assert (stats.messages_out, stats.bytes_out) == (3, 7)
        await client.close()
        await eventually(lambda: server.stats.disconnects == 1)
        assert server.stats.drops == 0

    @case()
    async def test_raising_handler_is_logged_and_isolated(self) -> None:  # SPEC 3.8
        server = await self.server(echo=True)

        # Built at run time so no traceback source line can contain them.
        body, token = "-".join(("boom", "s3cr3t", "body")), "-".join(("tok", "s3cr3t"))

        @server.on("message")
        def explode(socket: Socket, data: str | bytes) -> None:
            if data == body:
                raise RuntimeError("handler failure")

        with LogCapture() as logs:
            a = await self.connected(server, headers={"Authorization": f"Bearer {token}"})
            b = await self.connected(server)
            await a.send(body)
            assert await a.recv() == body
            await b.send("still fine")
            assert await b.recv() == "still fine"
            await a.send("after")
            assert await a.recv() == "after"
        errors = logs.text(logging.ERROR)
        assert "handler failure" in errors and "Traceback" in errors
        assert all(r.name.startswith("rtt") for r in logs.records)
        visible = logs.text(logging.INFO)
        assert body not in visible and token not in visible


class MessageTests(Kit):
    """SPEC.md 5: str and bytes, sizes, ordering, many clients."""

    @case()
    async def test_round_trip_str_and_bytes(self) -> None:  # SPEC 5.1
        server = await self.server(echo=True)
        client = await self.connected(server)
        for message in ROUND_TRIP:
            await client.send(message)
            echoed = await client.recv()
            assert type(echoed) is type(message), f"{message!r} came back as {echoed!r}"
            assert echoed == message

    @case()
    async def test_messages_up_to_the_size_limit(self) -> None:  # SPEC 5.2
        limit = 64 * 1024
        server = await self.server(echo=True, max_message_size=limit)
        client = await self.connected(server, max_message_size=limit)
        exact: tuple[str | bytes, ...] = (
            "a" * limit,
            b"\xff" * limit,
            "é" * (limit // 2),
            "🚀" * (limit // 4),
        )
        for message in exact:
            await client.send(message)
            assert await client.recv() == message
        for over in ("a" * (limit + 1), b"\x00" * (limit + 1), "é" * (limit // 2) + "a"):
            await raises(MessageTooBigError, client.send(over))
            too_big = await raises(MessageTooBigError, server.broadcast(over))
            assert (too_big.size, too_big.limit) == (limit + 1, limit)

    @case()
    async def test_one_byte_over_the_limit_closes(self) -> None:  # SPEC 5.2, 6
        limit = 4096
        for over in ("x" * (limit + 1), b"\x00" * (limit + 1)):
            server = await self.server(echo=True, max_message_size=limit)
            rec = Recorder()
            server.on("disconnect", rec.handler("disconnect"))
            server.on("message", rec.handler("message"))
            client = await self.connected(server, max_message_size=limit * 2)
            socket = self.socket_of(client)
            await client.send(over)
            assert await rec.wait("disconnect") == [(socket, CloseReason.MESSAGE_TOO_BIG)]
            assert rec.of("message") == [], "an oversize message must never reach handlers"
            assert (await client.wait_closed()) is CloseReason.MESSAGE_TOO_BIG
            assert server.stats.drops == 1
            await server.close()

    @case()
    async def test_the_clients_own_size_limit(self) -> None:  # SPEC 5.2, 6, 7.2
        limit = 4096
        server = await self.server(max_message_size=limit * 4)
        client = await self.connected(server, max_message_size=limit, reconnect=False)
        got: list[str | bytes] = []
        socket = self.socket_of(client)
        await server.send(socket.id, "x" * limit)
        got.append(await client.recv())
        await server.send(socket.id, "y" * (limit + 1))
        closed = await raises(ConnectionClosed, client.recv())
        assert closed.reason is CloseReason.MESSAGE_TOO_BIG, closed.reason
        assert client.close_reason is CloseReason.MESSAGE_TOO_BIG
        assert got == ["x" * limit], "a message over the client's limit must never be delivered"

    @case()
    async def test_order_is_kept_under_load(self) -> None:  # SPEC 5.3
        count = 2000
        server = await self.server(echo=True)
        client = await self.connected(server)
        for i in range(count):
            await client.send(str(i) if i % 2 else str(i).encode())
        received = [await client.recv() for _ in range(count)]
        assert received == [str(i) if i % 2 else str(i).encode() for i in range(count)]
        socket = self.socket_of(client)
        for i in range(count):
            await server.send(socket.id, f"s{i}")
        assert [await client.recv() for _ in range(count)] == [f"s{i}" for i in range(count)]

    @case()
    async def test_many_clients(self) -> None:  # SPEC 5.4
        n = 50
        server = await self.server(echo=True)
        clients = await asyncio.gather(*(self.connected(server) for _ in range(n)))
        await eventually(lambda: len(server.sockets) == n)

        async def echo_once(client: Client, i: int) -> str | bytes:
            await client.send(f"c{i}")
            return await client.recv()

        assert await asyncio.gather(*(echo_once(c, i) for i, c in enumerate(clients))) == [
            f"c{i}" for i in range(n)
        ]
        assert await server.broadcast("to all") == n
        assert await asyncio.gather(*(c.recv() for c in clients)) == ["to all"] * n
        assert server.stats.connections == n


class SecurityTests(Kit):
    """SPEC.md 8: the origin allow-list and the ``authorize`` hook."""

    @case()
    async def test_origin_allow_list(self) -> None:  # SPEC 8.1
        server = await self.server(echo=True, allowed_origins=["https://good.example"])
        connects = Recorder()
        server.on("connect", connects.handler("connect"))
        good = await self.connected(server, headers={"Origin": "https://GOOD.example"})
        await good.send("ok")
        assert await good.recv() == "ok"
        await self.connected(server)  # no Origin: not a browser, not a hijack
        bad = self.client(server, headers={"Origin": "https://evil.example"})
        assert (await raises(RejectedError, bad.connect())).status == 403
        assert bad.state is ClientState.CLOSED and bad.close_reason is CloseReason.REJECTED
        assert server.stats.rejected == 1
        assert len(connects.of("connect")) == 2

    @case(needs=("refusal_status",))
    async def test_authorize_accepts_rejects_and_attaches_identity(self) -> None:  # SPEC 8.2
        seen: list[Handshake] = []

        async def authorize(handshake: Handshake) -> Accept | Reject | bool:
            seen.append(handshake)
            token = handshake.headers.get("authorization") or handshake.query.get("token")
            if token == "Bearer good" or token == "good":
                return Accept(identity={"user": "ann"})
            if token == "plain-false":
                return False
            if token == "explode":
                raise RuntimeError("hook bug")
            return Reject(401, "Unauthorized")

        server = await self.server(authorize=authorize)
        ann = await self.connected(server, headers={"Authorization": "Bearer good"})
        assert self.socket_of(ann).identity == {"user": "ann"}
        await self.connected(server, query="token=good")
        assert seen[0].remote_address is not None and seen[0].remote_address[0] in (
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
        )
        assert seen[1].query["token"] == "good"
        for kwargs, status in (
            ({}, 401),
            ({"query": "token=plain-false"}, 403),
            ({"query": "token=explode"}, 500),
        ):
            client = self.client(server, query=kwargs.get("query", ""))
            assert (await raises(RejectedError, client.connect())).status == status, kwargs
        assert len(server.sockets) == 2
        assert server.stats.rejected == 3

    @case(needs=("refusal_status",))
    async def test_a_refusal_carries_its_status_and_reason(self) -> None:  # SPEC 8.2, 9
        server = await self.server(authorize=lambda hs: Reject(401, "Token expired"))
        refused = await raises(RejectedError, self.client(server).connect())
        assert refused.status == 401
        assert refused.reason == "Token expired", f"the server's reason is lost: {refused.reason!r}"

    @case()
    async def test_sync_authorize(self) -> None:  # SPEC 8.2
        server = await self.server(authorize=lambda hs: hs.query.get("k") == "v")
        await self.connected(server, query="k=v")
        client = self.client(server, query="k=w")
        assert (await raises(RejectedError, client.connect())).status == 403


class LimitTests(Kit):
    """SPEC.md 7.1: slow consumers and heartbeats keep the server's memory and sockets bounded."""

    @case(needs=("write_buffer",))
    async def test_slow_consumer_is_disconnected(self) -> None:  # SPEC 7.1
        limit = 256 * 1024
        chunk = b"\xab" * (64 * 1024)
        server = await self.server(outbound_limit=limit, max_message_size=len(chunk))
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        reader = await self.connected(server, max_queue=1, max_message_size=len(chunk))
        reader_socket = self.socket_of(reader)
        healthy = await self.connected(server, max_message_size=len(chunk))
        # ``reader`` has no handlers and never calls recv(): it stops reading by itself.
        # Bounded: 64 MiB in all is far past any socket buffer on loopback.
        for _ in range(1024):
            if reader_socket.id not in server.sockets:
                break
            await server.broadcast(chunk)
            assert await healthy.recv() == chunk
            await asyncio.sleep(0)
        else:
            raise AssertionError("a client that never reads was not disconnected")
        ((socket, reason),) = await rec.wait("disconnect")
        assert socket is reader_socket and reason is CloseReason.SLOW_CONSUMER
        assert server.stats.drops == 1
        await raises(UnknownSocketError, server.send(reader_socket.id, "more"))
        await server.send(self.socket_of(healthy).id, "healthy still served")
        assert await healthy.recv() == "healthy still served"

    @case(needs=("write_buffer",))
    async def test_slow_consumer_through_send(self) -> None:  # SPEC 7.1
        limit = 256 * 1024
        chunk = "s" * (32 * 1024)
        server = await self.server(outbound_limit=limit, max_message_size=len(chunk))
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        reader = await self.connected(server, max_queue=1, max_message_size=len(chunk))
        socket = self.socket_of(reader)
        for _ in range(2048):  # 64 MiB at most: far past any socket buffer on loopback
            try:
                await server.send(socket.id, chunk)
            except (UnknownSocketError, ConnectionClosed):
                break
            await asyncio.sleep(0)
        else:
            raise AssertionError("a client that never reads was not disconnected by send()")
        assert (await rec.wait("disconnect")) == [(socket, CloseReason.SLOW_CONSUMER)]
        await raises(UnknownSocketError, server.send(socket.id, "more"))

    @case()
    async def test_no_heartbeats_drop_nobody(self) -> None:  # SPEC 7.1
        # An idle client, not a stalled one: on HTTP fallbacks a client that stops polling is
        # an abandoned session, which the protocol's session timeout still ends (12.3, 12.4).
        server = await self.server(echo=True, ping_interval=None, ping_timeout=self.ping_timeout)
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        idle = await self.connected(server)
        # Many heartbeat periods of the kit's own: nothing on either side may expect one.
        await asyncio.sleep(6 * (self.ping_interval + self.ping_timeout))
        assert rec.events == [], f"ping_interval=None dropped {rec.events}"
        assert len(server.sockets) == 1
        assert idle.state is ClientState.OPEN
        await idle.send("still here")
        assert await idle.recv() == "still here"

    @case()
    async def test_a_busy_handler_keeps_its_client(self) -> None:  # SPEC 3.5, 7.1
        # A message handler that takes longer than ping_timeout pushes back on the sender
        # (5.3); the client is healthy, so heartbeats must still be answered and counted.
        busy_for = 4 * (self.ping_interval + self.ping_timeout)
        server = await self.server(ping_interval=self.ping_interval, ping_timeout=self.ping_timeout)
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        handled: list[str | bytes] = []

        async def slow(socket: Socket, data: str | bytes) -> None:
            if data == "work":
                await asyncio.sleep(busy_for)
            handled.append(data)
            await server.send(socket.id, data)

        server.on("message", slow)
        client = await self.connected(server)
        await client.send("work")
        await client.send("after")
        assert await client.recv() == "work"
        assert await client.recv() == "after"
        assert handled == ["work", "after"]
        assert rec.events == [], f"a busy handler cost its client the connection: {rec.events}"
        assert client.state is ClientState.OPEN

    @case(needs=("server_pings",))
    async def test_ping_timeout_drops_a_silent_peer(self) -> None:  # SPEC 7.1
        server = await self.server(ping_interval=self.ping_interval, ping_timeout=self.ping_timeout)
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        healthy = await self.connected(server)
        healthy_socket = self.socket_of(healthy)
        silent = await self.connected(server)
        silent_socket = self.socket_of(silent)
        await self.stall_client(silent)
        limit = 4 * (self.ping_interval + self.ping_timeout) + 5
        ((socket, reason),) = await rec.wait("disconnect", timeout=limit)
        assert socket is silent_socket and reason is CloseReason.PING_TIMEOUT
        await asyncio.sleep(2 * (self.ping_interval + self.ping_timeout))
        assert healthy_socket.id in server.sockets, "a peer that answers heartbeats must stay"
        assert healthy.state is ClientState.OPEN
        assert server.stats.drops == 1


class ClientTests(Kit):
    """SPEC.md 4: client events, iteration, reconnection and the offline queue."""

    @case()
    async def test_client_events_in_order(self) -> None:  # SPEC 4.2
        server = await self.server(echo=True)
        client = self.client(server)
        rec = Recorder()
        rec.listen(client, "open", "message", "close", "reconnecting", "reconnected", "reconnect_failed")
        assert state(client) is ClientState.IDLE
        await client.connect()
        assert state(client) is ClientState.OPEN
        await client.send("hi")
        await rec.wait("message")
        await client.close()
        assert rec.events == [("open",), ("message", "hi"), ("close", CloseReason.CLIENT_CLOSED)]
        assert state(client) is ClientState.CLOSED and client.close_reason is CloseReason.CLIENT_CLOSED
        await client.close()  # idempotent

    @case()
    async def test_iteration_and_recv(self) -> None:  # SPEC 4.3
        server = await self.server()
        client = await self.connected(server)
        socket = self.socket_of(client)
        for message in ("a", b"b", "c"):
            await server.send(socket.id, message)
        await server.disconnect(socket.id)
        assert [m async for m in client] == ["a", b"b", "c"]
        assert (await raises(ConnectionClosed, client.recv())).reason is CloseReason.SERVER_CLOSED
        idle = self.client(server)
        await raises(StateError, idle.send("x"))
        await raises(StateError, idle.recv())

    @case()
    async def test_recv_is_refused_with_message_handlers(self) -> None:  # SPEC 4.3
        server = await self.server()
        client = await self.connected(server)
        client.on("message", lambda data: None)
        await raises(StateError, client.recv())

    @case()
    async def test_raising_client_handler_fires_error(self) -> None:  # SPEC 4.2
        server = await self.server(echo=True)
        client = self.client(server)
        errors = Recorder()
        client.on("error", errors.handler("error"))
        got: list[str | bytes] = []

        @client.on("message")
        def handle(data: str | bytes) -> None:
            if data == "bad":
                raise ValueError("client handler failure")
            got.append(data)

        await client.connect()
        with LogCapture():
            await client.send("bad")
            await client.send("good")
            await eventually(lambda: got == ["good"])
        ((exc,),) = errors.of("error")
        assert isinstance(exc, ValueError)

    @case()
    async def test_reconnect_with_backoff_after_restart(self) -> None:  # SPEC 4.4, 7.2
        server = await self.server()
        port = server.address[1]
        client = self.client(server, reconnect=self.reconnect)
        rec = Recorder()
        rec.listen(client, "open", "close", "reconnecting", "reconnected", "reconnect_failed")
        await client.connect()
        await server.close()
        await rec.wait("close")
        assert rec.of("close") == [(CloseReason.SHUTDOWN,)]
        await rec.wait("reconnecting", 3, timeout=10)
        for i in range(3):
            await client.send(f"queued {i}")
        await client.send(b"queued bytes")
        assert client.state is ClientState.RECONNECTING
        queued = client.unsent
        assert queued == ("queued 0", "queued 1", "queued 2", b"queued bytes")
        got: list[str | bytes] = []
        restarted = await self.server(port=port)
        restarted.on("message", lambda socket, data: got.append(data))
        attempts = await rec.wait("reconnected", timeout=10)
        await eventually(lambda: len(got) == 4)
        assert got == ["queued 0", "queued 1", "queued 2", b"queued bytes"]
        assert state(client) is ClientState.OPEN
        assert not client.unsent
        reconnecting = rec.of("reconnecting")
        assert [a for a, _ in reconnecting] == list(range(1, len(reconnecting) + 1))
        policy = self.reconnect
        expected = [
            min(policy["max_delay"], policy["min_delay"] * policy["factor"] ** i)
            for i in range(len(reconnecting))
        ]
        assert [round(d, 6) for _, d in reconnecting] == [round(d, 6) for d in expected]
        assert attempts == [(len(reconnecting),)]
        names = rec.names()
        assert names[:2] == ["open", "close"] and names[-2:] == ["open", "reconnected"]
        await client.send("live again")
        await eventually(lambda: got[-1:] == ["live again"])

    @case()
    async def test_reconnect_failed_after_max_attempts(self) -> None:  # SPEC 4.4
        server = await self.server()
        client = self.client(server, reconnect={**self.reconnect, "max_attempts": 3})
        rec = Recorder()
        rec.listen(client, "close", "reconnecting", "reconnect_failed", "error")
        await client.connect()
        await server.close()
        assert (await rec.wait("reconnect_failed", timeout=10)) == [(3,)]
        assert [a for a, _ in rec.of("reconnecting")] == [1, 2, 3]
        assert len(rec.of("error")) == 3
        assert client.state is ClientState.CLOSED
        assert [m async for m in client] == []
        await raises(StateError, client.send("late"))

    @case()
    async def test_offline_queue_overflow_is_an_error(self) -> None:  # SPEC 4.4
        server = await self.server()
        port = server.address[1]
        client = self.client(server, reconnect=self.reconnect, offline_queue_size=3)
        rec = Recorder()
        client.on("reconnecting", rec.handler("reconnecting"))
        client.on("reconnected", rec.handler("reconnected"))
        await client.connect()
        await server.close()
        await rec.wait("reconnecting")
        for i in range(3):
            await client.send(i.to_bytes(1, "big"))
        assert (await raises(OfflineQueueFullError, client.send("one too many"))).size == 3
        got: list[str | bytes] = []
        restarted = await self.server(port=port)
        restarted.on("message", lambda socket, data: got.append(data))
        await rec.wait("reconnected", timeout=10)
        await eventually(lambda: len(got) == 3)
        assert got == [b"\x00", b"\x01", b"\x02"]

    @case()
    async def test_deliberate_close_never_reconnects(self) -> None:  # SPEC 4.4
        server = await self.server()
        client = self.client(server, reconnect=self.reconnect)
        rec = Recorder()
        client.on("reconnecting", rec.handler("reconnecting"))
        await client.connect()
        await client.close()
        await asyncio.sleep(4 * self.reconnect["max_delay"])
        assert rec.events == [] and client.state is ClientState.CLOSED
        await eventually(lambda: not server.sockets, 5, "the server to drop the socket")

    @case()
    async def test_connect_failure_is_reported(self) -> None:  # SPEC 4.1
        server = await self.server()
        await server.close()
        client = self.client(server, reconnect=self.reconnect, connect_timeout=5)
        await raises(ConnectError, client.connect())
        assert client.state is ClientState.CLOSED


class ShutdownTests(Kit):
    """SPEC.md 3.9: graceful shutdown."""

    @case()
    async def test_graceful_shutdown(self) -> None:  # SPEC 3.9
        tasks_before = self._tasks()
        server = await self.server()
        port = server.address[1]
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        clients = [await self.connected(server) for _ in range(3)]
        for socket_id in list(server.sockets):
            await server.send(socket_id, "last words")
        await server.close()
        assert server.state is ServerState.CLOSED
        assert sorted(r for _, r in rec.of("disconnect")) == [CloseReason.SHUTDOWN] * 3
        assert server.sockets == {}
        for client in clients:
            assert await client.recv() == "last words"
            assert (await client.wait_closed()) is CloseReason.SHUTDOWN
        for client in clients:
            await client.close()
        await raises(StateError, server.send("x", "y"))
        await eventually(lambda: self._tasks() <= tasks_before, 5, "every task to finish after shutdown")
        again = await self.server(port=port)
        assert again.address[1] == port

    @case()
    async def test_shutdown_with_a_stalled_client_keeps_to_close_timeout(self) -> None:  # SPEC 3.9
        close_timeout = 1.0
        server = await self.server(close_timeout=close_timeout)
        rec = Recorder()
        server.on("disconnect", rec.handler("disconnect"))
        healthy = await self.connected(server)
        stalled = await self.connected(server)
        await self.stall_client(stalled)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.close()
        took = loop.time() - started
        # The bound is a promise of SPEC 3.9, with a generous margin for a loaded machine.
        assert took < close_timeout + 4, f"shutdown took {took:.1f} s with close_timeout={close_timeout}"
        assert sorted(r for _, r in rec.of("disconnect")) == [CloseReason.SHUTDOWN] * 2
        assert (await healthy.wait_closed()) is CloseReason.SHUTDOWN


class TlsTests(Kit):
    """SPEC.md 8.4: a standalone server with ``ssl`` and the Python client over TLS.

    Each case makes its own throwaway CA (trustme, from ``rtt-core[testing]``);
    the server's certificate names ``127.0.0.1``, where the kit's clients connect.
    """

    @case(requires=("python_client", "tls"), needs=("server_tls",))
    async def test_tls_carries_messages_both_ways(self) -> None:  # SPEC 8.4, 5.1
        ca = _tls.authority()
        server = await self.server(echo=True, ssl=_tls.server_context(ca))
        client = await self.connected(server, ssl=_tls.client_context(ca))
        for message in ROUND_TRIP:
            await client.send(message)
            echoed = await client.recv()
            assert type(echoed) is type(message), f"{message!r} came back over TLS as {echoed!r}"
            assert echoed == message
        # Larger than one TLS record (16 KiB), both from the server alone and as a broadcast.
        big_text, big_bytes = "é" * 40_000, bytes(range(256)) * 400
        socket = self.socket_of(client)
        await server.send(socket.id, big_text)
        await server.broadcast(big_bytes)
        assert await client.recv() == big_text
        assert await client.recv() == big_bytes
        assert socket.remote_address is not None

    @case(requires=("python_client", "tls"), needs=("server_tls",))
    async def test_tls_url_is_the_secure_scheme(self) -> None:  # SPEC 8.4, 3.2
        ca = _tls.authority()
        plain = await self.server()
        secure = await self.server(ssl=_tls.server_context(ca))
        plain_scheme, secure_scheme = urlsplit(plain.url).scheme, urlsplit(secure.url).scheme
        assert secure_scheme == plain_scheme + "s", f"{secure.url} is not the TLS twin of {plain.url}"
        assert urlsplit(secure.url).port == secure.address[1]
        # The plain URL with a context would be sent in plain text: refused before connecting.
        raises_now(ConfigError, lambda: self.make_transport().client(plain.url, ssl=_tls.client_context(ca)))

    @case(requires=("python_client", "tls"), needs=("server_tls",))
    async def test_tls_untrusted_certificate_is_refused(self) -> None:  # SPEC 8.4, 4.1
        ca = _tls.authority()
        server = await self.server(ssl=_tls.server_context(ca))
        rec = Recorder().listen(server, "connect")
        wrong_ca = _tls.client_context(_tls.authority())
        # The system's CAs (ssl=None) do not know the test CA either.
        for context in (wrong_ca, None):
            client = self.client(server, ssl=context)
            error = await raises(ConnectError, client.connect())
            assert not isinstance(error, RejectedError), "a certificate failure is not a refusal"
            assert "certificate" in str(error), f"the error should say it was the certificate: {error}"
            assert client.state is ClientState.CLOSED
        # A certificate from the trusted CA for another host name.
        elsewhere = await self.server(ssl=_tls.server_context(ca, "rtt.example"))
        client = self.client(elsewhere, ssl=_tls.client_context(ca))
        error = await raises(ConnectError, client.connect())
        assert "certificate" in str(error), f"the error should say it was the certificate: {error}"
        assert rec.of("connect") == []
        assert not server.sockets and not elsewhere.sockets

    @case(requires=("python_client", "tls"), needs=("server_tls",))
    async def test_tls_client_certificate(self) -> None:  # SPEC 8.4
        ca = _tls.authority()
        server = await self.server(echo=True, ssl=_tls.server_context(ca, client_certificates=True))
        rec = Recorder().listen(server, "connect")
        # The ssl option's context carries the client's certificate (mutual TLS).
        client = await self.connected(server, ssl=_tls.client_context(ca, certificate=True))
        await client.send("with a client certificate")
        assert await client.recv() == "with a client certificate"
        await client.close()
        # Without one, the server refuses the TLS handshake: no socket, a ConnectError.
        bare = self.client(server, ssl=_tls.client_context(ca))
        await raises(ConnectError, bare.connect())
        assert bare.state is ClientState.CLOSED
        assert len(rec.of("connect")) == 1

    @case(requires=("python_client", "tls"), needs=("server_tls",))
    async def test_tls_certificate_failure_ends_reconnection(self) -> None:  # SPEC 8.4, 4.4
        ca = _tls.authority()
        server = await self.server(ssl=_tls.server_context(ca))
        port = server.address[1]
        client = self.client(
            server, ssl=_tls.client_context(ca), reconnect={**self.reconnect, "max_attempts": None}
        )
        rec = Recorder()
        rec.listen(client, "close", "reconnecting", "reconnect_failed", "error")
        await client.connect()
        await server.close()
        await rec.wait("close")
        # The same address now answers with a certificate the client does not trust.
        await self.server(port=port, ssl=_tls.server_context(_tls.authority()))
        await rec.wait("reconnect_failed", timeout=10)
        assert (await client.wait_closed()) is CloseReason.TRANSPORT_ERROR
        errors = [e for (e,) in rec.of("error")]
        assert "certificate" in str(errors[-1]), f"the last error should be the certificate's: {errors[-1]}"
        assert isinstance(errors[-1], ConnectError)
        assert rec.of("reconnect_failed") == [(len(rec.of("reconnecting")),)]


class ResumeTests(Kit):
    """SPEC.md 17: what resume needs of a plugin, with rtt's own Python client.

    The plugin's client opens ``Client.connect_url``; its size limits leave
    room for resume framing; a connection cut either way (a reset both sides
    see, or a black hole only the client notices) loses and repeats nothing;
    the session's end comes as ``session lost`` and ``session_lost``; a
    client without resume sees plain messages; and no id-keyed call follows a
    connection's ``_closed`` report (10.2). Drops come from :meth:`Kit.drops`.
    """

    #: Seconds a session is kept in the cases that must not lose it.
    resume_window: ClassVar[float] = 30.0
    #: Seconds after a black hole starts that its client side is cut.
    cut_after: ClassVar[float] = 0.2

    async def resuming(self, server: Server[Any], via: Drops, **options: Any) -> Client:
        """A connected client of ``server`` through ``via``, once the server's welcome has arrived."""
        # Short timeouts: a request stuck in a black hole (an HTTP poll) ends within seconds.
        defaults = {"reconnect": self.reconnect, "connect_timeout": 3.0, "close_timeout": 1.0}
        client = self.client(server, via=via, **{**defaults, **options})
        await client.connect()
        await _welcomed(client, server)
        return client

    @case()
    async def test_the_client_opens_connect_url(self) -> None:  # SPEC 10.3, 17.2
        server = await self.server(echo=True, resume_window=self.resume_window)
        client = await self.connected(server)
        socket = self.socket_of(client)
        await _welcomed(client, server)
        assert client.socket_id == socket.id and socket.resumable
        assert "rtt_resume" not in socket.query, "the core keeps the resume parameter from applications"
        for message in ("\x00", "\x00A1", "\x00\x00W{}", "plain", b"\x00A1"):
            await client.send(message)
            assert await client.recv() == message, f"{message!r} in resume framing"

    @case()
    async def test_resume_framing_fits_the_size_limit(self) -> None:  # SPEC 5.2, 17.2
        # 16 bytes is below a welcome's size: the library's limit is wire_limit(), not the option.
        for limit in (16, 4096):
            server = await self.server(echo=True, max_message_size=limit, resume_window=self.resume_window)
            rec = Recorder().listen(server, "message", "disconnect")
            client = await self.connected(server, max_message_size=limit)
            await _welcomed(client, server)
            exact = "\x00" + "x" * (limit - 1)  # escaped, one byte over the limit on the wire
            await client.send(exact)
            assert await client.recv() == exact, f"a text of max_message_size={limit} starting with U+0000"
            await client.send("x" * limit)
            assert await client.recv() == "x" * limit
            over = await self.connected(server, max_message_size=limit * 2)
            socket = self.socket_of(over)
            await _welcomed(over, server)
            await over.send("\x00" + "x" * limit)
            assert (await rec.wait("disconnect")) == [(socket, CloseReason.MESSAGE_TOO_BIG)]
            assert (await over.wait_closed()) is CloseReason.MESSAGE_TOO_BIG
            assert [data for (_, data) in rec.of("message")] == [exact, "x" * limit]
            assert client.state is ClientState.OPEN
            await server.close()

    @case(needs=("drop_reason",))
    async def test_a_reset_connection_loses_and_repeats_nothing(self) -> None:  # SPEC 17.1, 17.3
        await self._through_a_drop("sever")

    @case()
    async def test_a_black_hole_loses_and_repeats_nothing(self) -> None:  # SPEC 17.1, 17.3
        await self._through_a_drop("blackhole")

    async def _through_a_drop(self, how: str) -> None:
        """Numbered messages both ways, half before a drop and half right after it.

        ``sever`` resets both sides. ``blackhole`` silences the connections and
        then cuts their client side only: the client comes back (let through
        once it has seen its connection close) while the server may still hold
        the old connection, which the resume detaches.
        """
        count = 10
        # Quick heartbeats, so a side whose connection went silent without a cut notices it
        # (an HTTP poll made during the black hole is never cut).
        server = await self.server(
            resume_window=self.resume_window, ping_interval=self.ping_interval, ping_timeout=self.ping_timeout
        )
        handled: list[str | bytes] = []

        async def echo(socket: Socket, data: str | bytes) -> None:
            handled.append(data)
            await server.send(socket.id, f"e:{data!s}")

        server.on("message", echo)
        events = Recorder().listen(server, "connect", "away", "back", "disconnect")
        drops = await self.drops(server)
        client = await self.resuming(server, drops)
        socket_id = client.socket_id
        assert socket_id is not None
        crec = Recorder().listen(client, "close", "reconnected", "session_lost")
        received: list[str | bytes] = []
        client.on("message", received.append)
        for k in range(1, count + 1):
            await client.send(f"c-{k}")
            await server.send(socket_id, f"s-{k}")
        if how == "sever":
            assert drops.sever() >= 1, "no connection to sever"
        else:
            drops.blackhole(client_side_cut_after=self.cut_after)
        # Into the gap: a resumable socket takes sends whether it is connected, closing or away.
        for k in range(count + 1, 2 * count + 1):
            await server.send(socket_id, f"s-{k}")
            await client.send(f"c-{k}")
        # An HTTP poll between two requests has no connection open to cut: sever again until one was.
        severs = 1
        while how == "sever" and not crec.of("close") and severs < 20:
            with contextlib.suppress(AssertionError):
                await crec.wait("close", timeout=0.5)
            if not crec.of("close"):
                drops.sever()
                severs += 1
        await crec.wait("close", timeout=10)
        drops.restore()
        await crec.wait("reconnected", timeout=10)
        # The last message each way: a duplicate or a replay would come before it.
        await client.send("c-end")
        await eventually(lambda: "e:c-end" in received, 10, "the echo of the client's last message")
        numbers = range(1, 2 * count + 1)
        assert handled == [*(f"c-{k}" for k in numbers), "c-end"], f"handled once each, in order: {handled}"
        assert [m for m in received if str(m).startswith("s-")] == [f"s-{k}" for k in numbers]
        assert [m for m in received if str(m).startswith("e:")] == [*(f"e:c-{k}" for k in numbers), "e:c-end"]
        assert len(received) == 4 * count + 1, f"unexpected messages: {received}"
        # One session throughout: away and back in turn, never a disconnect or a lost session.
        names = events.names()
        assert names[0] == "connect" and len(names) >= 3 and names[1:] == ["away", "back"] * (len(names) // 2)
        assert all(event[1].id == socket_id for event in events.events)
        assert all(reason.reconnect for (_, reason) in events.of("away"))
        assert crec.of("session_lost") == []
        assert client.socket_id == socket_id and client.resumed
        assert server.sockets[socket_id].resumes == len(events.of("back"))

    @case(needs=("server_pings",))
    async def test_a_session_past_its_window_is_lost(self) -> None:  # SPEC 17.1, 17.3, 17.4
        server = await self.server(
            resume_window=0.5, ping_interval=self.ping_interval, ping_timeout=self.ping_timeout
        )
        events = Recorder().listen(server, "connect", "away", "back", "disconnect")
        drops = await self.drops(server)
        client = await self.resuming(server, drops)
        first = client.socket_id
        crec = Recorder().listen(client, "close", "session_lost", "reconnected")
        # The client is cut off and kept out; the server notices by its heartbeat, then waits.
        drops.refuse()
        drops.blackhole(client_side_cut_after=0)
        ((socket, reason),) = await events.wait("disconnect", timeout=10)
        assert (socket.id, reason) == (first, CloseReason.SESSION_LOST), f"disconnect({reason})"
        assert events.names() == ["connect", "away", "disconnect"]
        assert events.of("away")[0][1] is CloseReason.PING_TIMEOUT
        assert first not in server.sockets
        drops.restore()
        drops.refuse(False)
        await crec.wait("reconnected", timeout=10)
        assert crec.of("session_lost") == [("unknown",)]
        assert crec.names()[-2:] == ["session_lost", "reconnected"]
        (new,) = server.sockets
        assert client.socket_id == new != first and not client.resumed
        assert [s.id for (s,) in events.of("connect")] == [first, new]

    @case()
    async def test_a_client_without_resume_sees_no_controls(self) -> None:  # SPEC 17.2
        server = await self.server(echo=True, resume_window=self.resume_window)
        handled = Recorder().listen(server, "message")
        client = await self.connected(server, resume=False)
        socket = self.socket_of(client)
        # More than ACK_EVERY messages: an ack, were one sent, would come before the last echo.
        sent: list[str | bytes] = [*ROUND_TRIP, *(f"m{i}" for i in range(ACK_EVERY + 6))]
        for message in sent:
            await client.send(message)
        await handled.wait("message", len(sent))
        await server.send(socket.id, "\x00W{}")
        got = [await client.recv() for _ in range(len(sent) + 1)]
        assert got == [*sent, "\x00W{}"], "a plain client gets its messages as they are, and nothing else"
        assert [data for (_, data) in handled.of("message")] == sent
        assert not socket.resumable and client.socket_id is None and not client.resumed

    @case(needs=("server_pings",))
    async def test_no_id_keyed_call_after_closed(self) -> None:  # SPEC 10.2
        # A timer or a late write of an ended connection must not reach the id: with resume the
        # id may already belong to the session's next connection (SPEC 17.3).
        server = await self.server(ping_interval=self.ping_interval, ping_timeout=self.ping_timeout)
        reported: set[str] = set()
        late: list[tuple[str, str]] = []
        closed, begin_close, slow_consumer = server._closed, server._begin_close, server._slow_consumer

        async def closed_spy(socket: Socket, reason: CloseReason) -> None:
            reported.add(socket.id)
            await closed(socket, reason)

        def begin_close_spy(socket_id: str, reason: CloseReason, close: Close | None = None) -> None:
            if socket_id in reported:
                late.append(("_begin_close", socket_id))
            begin_close(socket_id, reason, close)

        def slow_consumer_spy(socket_id: str) -> None:
            if socket_id in reported:
                late.append(("_slow_consumer", socket_id))
            slow_consumer(socket_id)

        server._closed = closed_spy  # type: ignore[method-assign]
        server._begin_close = begin_close_spy  # type: ignore[method-assign]
        server._slow_consumer = slow_consumer_spy  # type: ignore[method-assign]
        rec = Recorder().listen(server, "disconnect")
        leaving = await self.connected(server)
        kicked = await self.connected(server)
        silent = await self.connected(server, close_timeout=0.5)
        await leaving.close()
        await server.disconnect(self.socket_of(kicked).id)
        await self.stall_client(silent)
        await rec.wait("disconnect", 3, timeout=4 * (self.ping_interval + self.ping_timeout) + 5)
        assert len(reported) == 3
        # Long enough for every heartbeat timer of the ended connections to have fired.
        await asyncio.sleep(3 * (self.ping_interval + self.ping_timeout))
        assert late == [], f"id-keyed calls after the connection's _closed report: {late}"


async def _welcomed(client: Client, server: Server[Any]) -> None:
    """Wait for ``client``'s welcome from ``server`` (the client's socket_id names a socket there)."""
    await eventually(
        lambda: client.socket_id is not None and client.socket_id in server.sockets,
        5,
        "the server's welcome: the plugin's client must open Client.connect_url (SPEC.md 10.3), "
        "whose rtt_resume parameter asks for resume",
    )


class TransportTests(
    ServerTests, MessageTests, SecurityTests, LimitTests, ClientTests, ShutdownTests, TlsTests, ResumeTests
):
    """The whole conformance kit: subclass it as ``TestMyTransport``."""


async def raises(exc_type: type[E], awaitable: Awaitable[object]) -> E:
    """Assert that awaiting ``awaitable`` raises ``exc_type``; return the exception."""
    try:
        await awaitable
    except exc_type as exc:
        return exc
    raise AssertionError(f"expected {exc_type.__name__}")


def state(client: Client) -> ClientState:
    """The client's state, read afresh (keeps type checkers from narrowing it across awaits)."""
    return client.state


def raises_now(exc_type: type[BaseException], fn: Callable[[], object]) -> None:
    """Assert that calling ``fn()`` raises ``exc_type``."""
    try:
        fn()
    except exc_type:
        return
    raise AssertionError(f"expected {exc_type.__name__}")
