"""A loopback TCP proxy that severs and black-holes connections on command (SPEC.md 11).

Tests put it between a client and a server to make the network fail the way
real networks do, on every rtt wire alike: it forwards bytes, so a plain
WebSocket, Engine.IO's many short polling requests, SockJS streaming and TLS
(passed through untouched) all travel through it the same way::

    async with Proxy(*server.address) as proxy:
        client = transport.client(proxy.url_for(server.url), reconnect=True)
        ...
        proxy.sever()         # both ends see a connection reset
        proxy.blackhole()     # both ends see silence

The failures it makes:

- :meth:`Proxy.sever` resets both sides of every open connection at once
  (``SO_LINGER`` 0, so each peer sees ``ECONNRESET``, never a clean close).
- :meth:`Proxy.blackhole` stops forwarding in both directions, keeping every
  socket open: "the network ate it". What the peers write is still read and
  dropped, so their send buffers never fill and their writes keep succeeding,
  as they do when a real network loses the packets; only a peer's own timeout
  (a ping) can notice. A black-holed connection never forwards again: the
  bytes it dropped are gone, and TCP never delivers a stream with a hole in
  it. New connections accepted during a blackhole are black-holed too (the
  peer's connect succeeds, then silence) until :meth:`Proxy.restore`.
  ``blackhole(client_side_cut_after=s)`` also resets the client side of those
  connections ``s`` seconds later while the server side stays silent: the
  client knows it is cut off and reconnects while the server has not noticed
  yet. Call :meth:`Proxy.restore` too (at once, or later) to let that
  reconnection through.
- :meth:`Proxy.refuse` makes new connections fail: each is accepted and reset
  at once. A target that refuses or is down does the same to the client.

Everything is bounded: :meth:`Proxy.close` resets what is still open and
returns promptly, leaving no task or timer behind. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Proxy", "ProxyStats"]

#: ``struct linger`` with ``l_onoff=1, l_linger=0``: close() then sends RST, not FIN.
_LINGER_ZERO = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of a :class:`Proxy`'s counters (:attr:`Proxy.stats`)."""

    accepted: int
    """Connections the proxy accepted from clients, including refused ones."""
    refused: int
    """Accepted connections reset at once because of :meth:`Proxy.refuse` (or a close under way)."""
    unreachable: int
    """Accepted connections reset at once because the target refused or was down."""
    live: int
    """Pairs open now (either side still open), black-holed ones included."""
    bytes_to_target: int
    """Bytes forwarded from clients to the target."""
    bytes_to_client: int
    """Bytes forwarded from the target to clients."""
    bytes_dropped: int
    """Bytes read from black-holed connections (either side) and dropped."""


def _reset(side: _Side) -> None:
    """Close with RST: the peer sees a connection reset, and unsent data is discarded."""
    transport = side.transport
    if transport is None or side.lost:
        return
    # A socket that already failed may refuse it; abort() closes it all the same.
    with contextlib.suppress(OSError):
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()


class _Side(asyncio.Protocol):
    """One socket of a pair: the client's connection to the proxy or the proxy's to the target."""

    def __init__(self, pair: _Pair) -> None:
        self.pair = pair
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.lost = False

    @property
    def peer(self) -> _Side | None:
        return self.pair.target if self is self.pair.client else self.pair.client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A socket transport (uvloop's are not asyncio.Transport subclasses, but have its methods).
        self.transport = cast(asyncio.Transport, transport)
        if self is self.pair.client:
            self.pair.proxy._accepted(self.pair)

    def data_received(self, data: bytes) -> None:
        self.pair.forward(self, data)

    def eof_received(self) -> bool:
        self.eof = True
        self.pair.half_close(self)
        return True  # the pair decides when this socket closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pair.side_lost(self, exc)

    def pause_writing(self) -> None:
        # Backpressure: stop reading what would pile up here (only a forwarding pair writes).
        peer = self.peer
        assert peer is not None and peer.transport is not None
        peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        assert peer is not None and peer.transport is not None
        peer.transport.resume_reading()


class _Pair:
    """A client connection and, once connected, its connection to the target."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = _Side(self)
        self.target: _Side | None = None
        self.blackholed = False
        self.connecting: asyncio.Task[None] | None = None
        self.early: list[bytes] = []

    def sides(self) -> list[_Side]:
        return [self.client] if self.target is None else [self.client, self.target]

    def forward(self, side: _Side, data: bytes) -> None:
        stats = self.proxy._counts
        peer = side.peer
        if peer is None and not self.blackholed:
            # The client wrote before the target was connected: hold it, and read no more until then.
            assert side.transport is not None
            self.early.append(data)
            side.transport.pause_reading()
        elif self.blackholed or peer is None or peer.transport is None or peer.transport.is_closing():
            stats["bytes_dropped"] += len(data)
        else:
            peer.transport.write(data)
            stats["bytes_to_target" if side is self.client else "bytes_to_client"] += len(data)

    def connected(self) -> None:
        """The target is connected: pass on what the client sent meanwhile, then read again."""
        assert self.target is not None and self.target.transport is not None
        assert self.client.transport is not None
        # Resumed first, so backpressure from writing what was held still pauses it.
        self.client.transport.resume_reading()
        for data in self.early:
            self.forward(self.client, data)
        self.early.clear()
        if self.client.eof:
            self.target.transport.write_eof()

    def half_close(self, side: _Side) -> None:
        """Pass a FIN on; close the pair once both sides sent one. Black-holed: swallow it."""
        peer = side.peer
        if self.blackholed or peer is None or peer.transport is None:
            return  # the socket stays open and silent
        if peer.eof:
            for each in (side, peer):
                assert each.transport is not None
                each.transport.close()
        else:
            peer.transport.write_eof()

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        peer = side.peer
        # An error (a reset, a failed write) is passed on as a reset; a close of our own is
        # already being made on the other side by whoever closed this one.
        if exc is not None and not self.blackholed and peer is not None:
            _reset(peer)
        self.forget_if_done()

    def connect_ended(self, task: asyncio.Task[None]) -> None:
        self.connecting = None
        self.forget_if_done()

    def forget_if_done(self) -> None:
        if self.connecting is None and all(each.lost for each in self.sides()):
            self.proxy._forget(self)

    def reset(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
        for side in self.sides():
            _reset(side)

    def cut_client(self) -> None:
        _reset(self.client)

    def go_silent(self) -> None:
        self.blackholed = True
        self.proxy._counts["bytes_dropped"] += sum(map(len, self.early))
        self.early.clear()
        # Read and drop from now on, even a side paused by backpressure.
        for side in self.sides():
            if side.transport is not None and not side.transport.is_closing():
                side.transport.resume_reading()


class Proxy:
    """A loopback TCP proxy to ``target_host:target_port``; an async context manager.

    It listens on ``host:port`` (port 0: a free one, see :attr:`port`) and
    forwards each connection it accepts to the target, in both directions,
    with half-closes and resets passed on, until told to fail (the module's
    docstring says how each failure looks to the peers).
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._counts = dict.fromkeys(
            ("accepted", "refused", "unreachable", "bytes_to_target", "bytes_to_client", "bytes_dropped"), 0
        )
        self._blackholed = False
        self._refusing = False
        self._all_gone: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start listening; :attr:`port` is then the port it listens on."""
        if self._server is not None:
            raise RuntimeError("the proxy is already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Pair(self).client, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and reset every connection still open; promptly, and more than once is fine."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.sever()
        await server.wait_closed()
        if self._pairs:
            # The resets' connection_lost callbacks and the cancelled connects are still to run.
            self._all_gone = asyncio.get_running_loop().create_future()
            await self._all_gone

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the proxy listens on."""
        return self.host, self.port

    def url_for(self, server_url: str) -> str:
        """``server_url`` (``ws://``, ``wss://``, ``http://``, ``https://``...) with the proxy's address.

        The scheme, path, query and fragment are kept; a URL naming a port
        other than the target's is refused (ValueError), as a likely mistake.
        """
        parts = urlsplit(server_url)
        if not parts.netloc:
            raise ValueError(f"not a URL with a host: {server_url!r}")
        if parts.port is not None and parts.port != self.target_port:
            raise ValueError(f"{server_url!r} is not the proxy's target (port {self.target_port})")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return urlunsplit(parts._replace(netloc=f"{host}:{self.port}"))

    @property
    def stats(self) -> ProxyStats:
        """The counters now."""
        return ProxyStats(live=len(self._pairs), **self._counts)

    def sever(self) -> int:
        """Reset both sides of every open connection at once; returns how many pairs it reset.

        Each peer sees a connection reset (``ECONNRESET``), not a clean close.
        Connections accepted afterwards pass as before.
        """
        pairs = list(self._pairs)
        for pair in pairs:
            pair.reset()
        return len(pairs)

    def blackhole(self, *, client_side_cut_after: float | None = None) -> None:
        """Stop forwarding on every open connection, and on new ones until :meth:`restore`.

        Sockets stay open; what the peers write is read and dropped. With
        ``client_side_cut_after``, the client side of each connection open now
        is reset that many seconds later, its server side left silent.
        """
        self._blackholed = True
        pairs = list(self._pairs)
        for pair in pairs:
            pair.go_silent()
        if client_side_cut_after is not None:
            timer: asyncio.TimerHandle

            def cut() -> None:
                self._timers.discard(timer)
                for pair in pairs:
                    pair.cut_client()

            timer = asyncio.get_running_loop().call_later(client_side_cut_after, cut)
            self._timers.add(timer)

    def restore(self) -> None:
        """End the blackhole for new connections; black-holed ones stay silent until closed."""
        self._blackholed = False

    def refuse(self, on: bool = True) -> None:
        """Reset new connections as soon as they are accepted (``on``), or pass them again."""
        self._refusing = on

    def _forget(self, pair: _Pair) -> None:
        self._pairs.discard(pair)
        if not self._pairs and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    def _accepted(self, pair: _Pair) -> None:
        self._counts["accepted"] += 1
        transport = pair.client.transport
        assert transport is not None
        # A connection the listener took just as close() ran is refused too: nothing may outlive close().
        if self._refusing or self._server is None:
            self._counts["refused"] += 1
            _reset(pair.client)
            return
        self._pairs.add(pair)
        if self._blackholed:
            pair.blackholed = True
            return
        pair.connecting = asyncio.get_running_loop().create_task(self._connect(pair))
        # Not in _connect's own finally: a task cancelled (by sever) before its first step never runs it.
        pair.connecting.add_done_callback(pair.connect_ended)

    async def _connect(self, pair: _Pair) -> None:
        client = pair.client
        assert client.transport is not None
        target = _Side(pair)
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: target, self.target_host, self.target_port)
        except OSError:
            self._counts["unreachable"] += 1
            _reset(client)
            return
        pair.target = target
        assert target.transport is not None
        if client.lost:
            _reset(target)
        elif pair.blackholed:
            pair.go_silent()
        else:
            pair.connected()
