"""rtt.testing.Proxy, the kit's loopback TCP proxy (SPEC.md 11), against plain asyncio TCP servers.

Every case talks through real sockets on 127.0.0.1: the client is an asyncio
stream, the target a ``asyncio.start_server`` whose accepted streams the case
holds, so both ends of each pair are observed. A case ends with no task left
but its own (:func:`no_tasks_left`), and the proxy's counters are checked
against what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rtt.testing import Proxy, ProxyStats, eventually
from rtt.testing._tls import authority, client_context, server_context

WAIT = 10.0
#: How long a case listens to make sure nothing arrives (a black hole is silence, not an event).
QUIET = 0.3


class Target:
    """A TCP server on loopback that hands each accepted connection to the case."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.echo = False

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, not a coroutine: start_server then makes no task of its own.
        self.writers.append(writer)
        self.accepted.put_nowait((reader, writer))

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def next(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(self.accepted.get(), WAIT)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    t.server = await asyncio.start_server(t._handle, "127.0.0.1", 0)
    yield t
    t.server.close()
    for writer in t.writers:
        writer.transport.abort()
    await t.server.wait_closed()


@pytest.fixture
async def proxy(target: Target) -> AsyncIterator[Proxy]:
    async with Proxy("127.0.0.1", target.port) as p:
        yield p
    await no_tasks_left()


async def no_tasks_left() -> None:
    """Only the running test's task is left: the proxy leaked none."""
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


class Clients:
    """Client connections a case opens; all closed at its end."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def open(self, proxy: Proxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*proxy.address), WAIT)
        self.writers.append(writer)
        return reader, writer


@pytest.fixture
def clients() -> Iterator[Clients]:
    c = Clients()
    yield c
    for writer in c.writers:
        writer.transport.abort()


async def pair(
    proxy: Proxy, target: Target, clients: Clients
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connected through the proxy and the target's side of it, checked to forward."""
    creader, cwriter = await clients.open(proxy)
    sreader, swriter = await target.next()
    cwriter.write(b"ping")
    assert await asyncio.wait_for(sreader.readexactly(4), WAIT) == b"ping"
    swriter.write(b"pong")
    assert await asyncio.wait_for(creader.readexactly(4), WAIT) == b"pong"
    return creader, cwriter, sreader, swriter


async def assert_reset(reader: asyncio.StreamReader) -> None:
    """The connection was reset: a read fails with ECONNRESET, it never ends cleanly."""
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1 << 16), WAIT)


async def assert_silent(reader: asyncio.StreamReader) -> None:
    """Nothing arrives, and the connection is not closed either."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), QUIET)


def reset(writer: asyncio.StreamWriter) -> None:
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class StuckTarget:
    """A listening port whose accept queue is full, so a connect to it hangs in SYN_SENT.

    Linux drops SYNs to a full accept queue (backlog 1 holds 2). Accepting the
    two fillers (:meth:`release`) lets up to two pending connects in, each on
    its SYN's next retransmission, about a second after it was first sent.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port: int = self.listener.getsockname()[1]
        self.sockets = [socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) for _ in range(2)]

    async def release(self, count: int) -> list[socket.socket]:
        """Make room, then accept the ``count`` connections that were hanging."""
        self.listener.setblocking(False)
        loop = asyncio.get_running_loop()
        self.sockets += [(await loop.sock_accept(self.listener))[0] for _ in range(2)]  # the fillers
        got = [(await asyncio.wait_for(loop.sock_accept(self.listener), WAIT))[0] for _ in range(count)]
        self.sockets += got
        return got

    def close(self) -> None:
        for s in (*self.sockets, self.listener):
            s.close()


@pytest.fixture
def stuck() -> Iterator[StuckTarget]:
    t = StuckTarget()
    yield t
    t.close()


# Forwarding


async def test_forwards_both_ways_and_passes_half_closes_on(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    creader, cwriter, sreader, swriter = await pair(proxy, target, clients)
    cwriter.write_eof()
    assert await asyncio.wait_for(sreader.read(), WAIT) == b""  # the client's FIN reached the target
    swriter.write(b"after your FIN")  # a half-closed connection still carries the other way
    swriter.write_eof()
    assert await asyncio.wait_for(creader.read(), WAIT) == b"after your FIN"
    await eventually(lambda: proxy.stats.live == 0, WAIT, "the pair closed after both FINs")
    assert proxy.stats == ProxyStats(
        accepted=1,
        refused=0,
        unreachable=0,
        live=0,
        bytes_to_target=4,
        bytes_to_client=4 + len(b"after your FIN"),
        bytes_dropped=0,
    )


async def test_the_server_closing_first_is_passed_on_too(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    creader, cwriter, sreader, swriter = await pair(proxy, target, clients)
    swriter.write_eof()
    assert await asyncio.wait_for(creader.read(), WAIT) == b""
    cwriter.write(b"bye")
    cwriter.write_eof()
    assert await asyncio.wait_for(sreader.read(), WAIT) == b"bye"
    await eventually(lambda: proxy.stats.live == 0, WAIT, "the pair closed")


async def test_a_large_transfer_arrives_whole_and_in_order_both_ways(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    # Far more than the sockets' buffers hold, so the proxy's backpressure is exercised.
    up, down = os.urandom(12 << 20), os.urandom(12 << 20)
    creader, cwriter = await clients.open(proxy)
    sreader, swriter = await target.next()

    async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
        for start in range(0, len(data), 1 << 20):
            writer.write(data[start : start + (1 << 20)])
            await writer.drain()
        writer.write_eof()

    async def receive_slowly(reader: asyncio.StreamReader) -> bytes:
        received = bytearray()
        while chunk := await reader.read(1 << 14):
            received += chunk
            await asyncio.sleep(0)
        return bytes(received)

    transfers = (send(cwriter, up), send(swriter, down), receive_slowly(sreader), receive_slowly(creader))
    _, _, at_target, at_client = await asyncio.wait_for(asyncio.gather(*transfers), 60)
    assert at_target == up
    assert at_client == down
    assert (proxy.stats.bytes_to_target, proxy.stats.bytes_to_client) == (len(up), len(down))


async def test_each_connection_gets_its_own_pair(proxy: Proxy, target: Target, clients: Clients) -> None:
    pairs = [await pair(proxy, target, clients) for _ in range(3)]
    for n, (_, cwriter, _, _) in enumerate(pairs):
        cwriter.write(b"%d" % n)
    for n, (_, _, sreader, _) in enumerate(pairs):
        assert await asyncio.wait_for(sreader.readexactly(1), WAIT) == b"%d" % n
    assert (proxy.stats.accepted, proxy.stats.live) == (3, 3)


async def test_a_reset_from_either_side_is_passed_on_as_a_reset(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    creader, _, _, swriter = await pair(proxy, target, clients)
    reset(swriter)
    await assert_reset(creader)
    _, cwriter, sreader, _ = await pair(proxy, target, clients)
    reset(cwriter)
    await assert_reset(sreader)
    await eventually(lambda: proxy.stats.live == 0, WAIT, "both pairs gone")


async def test_tls_passes_through_untouched(clients: Clients) -> None:
    ca = authority()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(5)
        received.put_nowait(data)
        writer.write(data[::-1])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo_once, "127.0.0.1", 0, ssl=server_context(ca))
    try:
        async with Proxy("127.0.0.1", server.sockets[0].getsockname()[1]) as proxy:
            # The certificate names 127.0.0.1, the proxy's address too: the handshake is the server's.
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*proxy.address, ssl=client_context(ca)), WAIT
            )
            clients.writers.append(writer)
            writer.write(b"hello")
            assert await asyncio.wait_for(reader.readexactly(5), WAIT) == b"olleh"
            assert await asyncio.wait_for(received.get(), WAIT) == b"hello"
            assert proxy.stats.bytes_to_target > 5  # the records, not the plain text
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), WAIT)
    finally:
        server.close()
        await server.wait_closed()


# Sever


async def test_sever_resets_both_sides_of_every_pair_and_new_connections_pass(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    pairs = [await pair(proxy, target, clients) for _ in range(2)]
    assert proxy.sever() == 2
    for creader, _, sreader, _ in pairs:
        await assert_reset(creader)
        await assert_reset(sreader)
    await eventually(lambda: proxy.stats.live == 0, WAIT, "the severed pairs gone")
    assert proxy.sever() == 0
    await pair(proxy, target, clients)
    assert proxy.stats.accepted == 3


async def test_sever_resets_a_client_whose_target_is_still_connecting(
    stuck: StuckTarget, clients: Clients
) -> None:
    async with Proxy("127.0.0.1", stuck.port) as proxy:
        creader, _ = await clients.open(proxy)
        await eventually(lambda: proxy.stats.live == 1, WAIT, "the pair, connecting")
        assert proxy.sever() == 1
        await assert_reset(creader)
        await eventually(lambda: proxy.stats.live == 0, WAIT, "the pair gone")
    await no_tasks_left()


class SeverOnAccept(Proxy):
    """Severs in the very callback that accepts a connection, before its connect task takes a step."""

    def _accepted(self, pair: Any) -> None:
        super()._accepted(pair)
        self.sever()


async def test_a_pair_severed_before_its_connect_task_ran_is_forgotten(
    target: Target, clients: Clients
) -> None:
    # A busy loop meets this race (a sever as a connection is accepted): close() then waited forever.
    async with SeverOnAccept("127.0.0.1", target.port) as proxy:
        creader, _ = await clients.open(proxy)
        await assert_reset(creader)
        await eventually(lambda: proxy.stats.live == 0, WAIT, "the pair gone")
        await asyncio.wait_for(proxy.close(), WAIT)
    assert target.accepted.empty()
    await no_tasks_left()


async def test_what_a_client_sends_while_the_target_is_connecting_arrives_once_it_is(
    stuck: StuckTarget, clients: Clients
) -> None:
    async with Proxy("127.0.0.1", stuck.port) as proxy:
        _, talker = await clients.open(proxy)
        talker.write(b"early")
        talker.write_eof()
        _, closer = await clients.open(proxy)
        closer.write_eof()  # a FIN with no data, before the target is there
        await eventually(lambda: proxy.stats.live == 2, WAIT, "two pairs, connecting")
        loop = asyncio.get_running_loop()
        got = []
        for server_side in await stuck.release(2):
            server_side.setblocking(False)
            received = b""
            while chunk := await asyncio.wait_for(loop.sock_recv(server_side, 100), WAIT):
                received += chunk
            got.append(received)  # ended by the client's FIN, passed on
        assert sorted(got) == [b"", b"early"]
        assert proxy.stats.bytes_to_target == 5
    await no_tasks_left()


# Blackhole


async def test_blackhole_is_silence_both_ways_until_restore_lets_new_connections_through(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    creader, cwriter, sreader, swriter = await pair(proxy, target, clients)
    proxy.blackhole()
    cwriter.write(b"x" * 1000)
    swriter.write(b"y" * 500)
    await assert_silent(sreader)
    await assert_silent(creader)
    await eventually(lambda: proxy.stats.bytes_dropped == 1500, WAIT, "both writes read and dropped")
    # A connection made during the blackhole connects, then hears nothing; the target never sees it.
    late_reader, late_writer = await clients.open(proxy)
    late_writer.write(b"anyone?")
    await assert_silent(late_reader)
    assert target.accepted.empty()
    await eventually(lambda: proxy.stats.bytes_dropped == 1507, WAIT, "the late write dropped")
    # A peer closing its side is not passed on either: the network ate the FIN.
    late_writer.write_eof()
    cwriter.write_eof()
    await assert_silent(sreader)
    proxy.restore()
    await pair(proxy, target, clients)
    # The black-holed connections stay silent: what they lost is gone for good.
    swriter.write(b"still there?")
    await assert_silent(creader)
    assert proxy.stats.live == 3
    assert (proxy.stats.bytes_to_target, proxy.stats.bytes_to_client) == (8, 8)


async def test_a_blackholed_peer_can_keep_writing_far_past_its_buffers(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    _, cwriter, sreader, _ = await pair(proxy, target, clients)
    proxy.blackhole()
    big = b"z" * (16 << 20)
    cwriter.write(big)
    await asyncio.wait_for(cwriter.drain(), 30)  # the proxy reads and drops: the sender never blocks
    await eventually(lambda: proxy.stats.bytes_dropped == len(big), 30, "everything dropped")
    await assert_silent(sreader)


async def test_client_side_cut_after_resets_only_the_client_later(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    creader, _, sreader, swriter = await pair(proxy, target, clients)
    proxy.blackhole(client_side_cut_after=0.05)
    await assert_reset(creader)
    # The server has not noticed: its side is open and silent, its writes still succeed.
    swriter.write(b"are you there?")
    await swriter.drain()
    await assert_silent(sreader)
    proxy.restore()
    # The client reconnects while the old server side lingers.
    await pair(proxy, target, clients)
    assert proxy.stats.live == 2
    await proxy.close()
    await assert_reset(sreader)  # close() resets what was left


async def test_pairs_still_connecting_when_blackholed_stay_silent_or_are_cut(
    stuck: StuckTarget, clients: Clients
) -> None:
    async with Proxy("127.0.0.1", stuck.port) as proxy:
        # One pair is cut on the client side while its target is still connecting...
        cut_reader, _ = await clients.open(proxy)
        await eventually(lambda: proxy.stats.live == 1, WAIT, "the first pair, connecting")
        proxy.blackhole(client_side_cut_after=0.01)
        await assert_reset(cut_reader)
        proxy.restore()
        # ...the other is only black-holed.
        quiet_reader, quiet_writer = await clients.open(proxy)
        await eventually(lambda: proxy.stats.accepted == 2, WAIT, "the second pair, connecting")
        proxy.blackhole()
        quiet_writer.write(b"lost")
        # Both connects now complete: the cut pair's target side is reset, the other kept silent.
        server_sides = await stuck.release(2)
        loop = asyncio.get_running_loop()
        outcomes: list[str] = []
        for server_side in server_sides:
            server_side.setblocking(False)
            try:
                outcomes.append(repr(await asyncio.wait_for(loop.sock_recv(server_side, 100), QUIET)))
            except ConnectionResetError:
                outcomes.append("reset")
            except TimeoutError:
                outcomes.append("silent")
        assert sorted(outcomes) == ["reset", "silent"]
        await assert_silent(quiet_reader)
        await eventually(lambda: proxy.stats.bytes_dropped == 4, WAIT, "the write read and dropped")
        assert proxy.stats.live == 1
    await no_tasks_left()


# Refuse, target down


async def test_refuse_resets_new_connections_at_once_until_turned_off(
    proxy: Proxy, target: Target, clients: Clients
) -> None:
    _, cwriter, sreader, _ = await pair(proxy, target, clients)
    proxy.refuse(True)
    refused, _ = await clients.open(proxy)
    await assert_reset(refused)
    assert target.accepted.empty()
    cwriter.write(b"old")  # connections already open are not touched
    assert await asyncio.wait_for(sreader.readexactly(3), WAIT) == b"old"
    proxy.refuse(False)
    await pair(proxy, target, clients)
    assert (proxy.stats.accepted, proxy.stats.refused, proxy.stats.live) == (3, 1, 2)


async def test_a_target_that_is_down_resets_the_client_at_once(clients: Clients) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = probe.getsockname()[1]  # nothing listens there once the probe is closed
    async with Proxy("127.0.0.1", down) as proxy:
        creader, _ = await clients.open(proxy)
        await assert_reset(creader)
        await eventually(lambda: proxy.stats.live == 0, WAIT, "the pair gone")
        assert (proxy.stats.accepted, proxy.stats.unreachable) == (1, 1)
    await no_tasks_left()


# Lifecycle, addresses


async def test_close_resets_live_pairs_promptly_and_twice_is_fine(target: Target, clients: Clients) -> None:
    proxy = Proxy("127.0.0.1", target.port)
    with pytest.raises(RuntimeError, match="not started"):
        _ = proxy.port
    await proxy.start()
    with pytest.raises(RuntimeError, match="already started"):
        await proxy.start()
    creader, _, sreader, _ = await pair(proxy, target, clients)
    proxy.blackhole(client_side_cut_after=60)  # a timer close() must cancel
    port = proxy.port
    await asyncio.wait_for(proxy.close(), WAIT)
    await assert_reset(creader)
    await assert_reset(sreader)
    await proxy.close()
    assert proxy.stats.live == 0
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await no_tasks_left()


async def test_close_with_nothing_open(target: Target) -> None:
    async with Proxy("127.0.0.1", target.port) as proxy:
        assert proxy.address == ("127.0.0.1", proxy.port)
    await no_tasks_left()


async def test_url_for_swaps_in_the_proxys_address_and_keeps_the_rest(proxy: Proxy, target: Target) -> None:
    here = f"127.0.0.1:{proxy.port}"
    t = target.port
    assert proxy.url_for(f"ws://127.0.0.1:{t}/rtt?a=1&b=2") == f"ws://{here}/rtt?a=1&b=2"
    assert proxy.url_for(f"wss://localhost:{t}/") == f"wss://{here}/"
    assert proxy.url_for(f"http://127.0.0.1:{t}/engine.io/?EIO=4#x") == f"http://{here}/engine.io/?EIO=4#x"
    assert proxy.url_for("https://example.test/sockjs") == f"https://{here}/sockjs"
    with pytest.raises(ValueError, match="not the proxy's target"):
        proxy.url_for(f"ws://127.0.0.1:{t + 1 if t < 65535 else t - 1}/")
    with pytest.raises(ValueError, match="not a URL"):
        proxy.url_for("/relative/path")


async def test_url_for_brackets_an_ipv6_listening_address(target: Target) -> None:
    try:
        proxy = Proxy("127.0.0.1", target.port, host="::1")
        await proxy.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert proxy.url_for(f"ws://127.0.0.1:{target.port}/x") == f"ws://[::1]:{proxy.port}/x"
    finally:
        await proxy.close()
