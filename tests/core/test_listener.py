"""rtt.listener: the header deadline, folded accept() failures, quiet bad-request records (SPEC.md 3.11).

The deadline is exercised over real loopback connections with a small
protocol that answers one line per request line; the plugins' own servers are
held to it in tests/faults/test_slowloris.py. The accept() guard is driven
through the loop's real exception handler with the context asyncio gives it
(the real out-of-descriptors case runs in a subprocess in
tests/faults/test_slowloris.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from rtt.listener import HEADER_TIMEOUT, Listener, RequestErrorLog, quiet_accept_errors

BOUND = 0.3
WAIT = 5.0


class LineServer(asyncio.Protocol):
    """Answers each line with ``ok`` inside :meth:`Listener.request`; ``slow`` waits for ``release`` first."""

    def __init__(self, listener: Listener, release: asyncio.Event, sizes: dict[str, int]) -> None:
        self.listener = listener
        self.release = release
        self.sizes = sizes
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            asyncio.get_running_loop().create_task(self.handle(line.decode()))

    async def handle(self, line: str) -> None:
        assert self.transport is not None
        with self.listener.request(self.transport):
            if line == "slow":
                await self.release.wait()
            self.transport.write(b"x" * self.sizes.get(line, 0) + b"ok\n")
            if line == "close":
                self.transport.close()
        if line == "bye":  # closed outside any request, the answer still on its way
            asyncio.get_running_loop().call_soon(self.transport.close)


@asynccontextmanager
async def line_server(sizes: dict[str, int] | None = None) -> AsyncIterator[tuple[Listener, asyncio.Event]]:
    release = asyncio.Event()
    holder: list[Listener] = []
    listener = await Listener.open(
        lambda: LineServer(holder[0], release, sizes or {}), "127.0.0.1", 0, header_timeout=BOUND
    )
    holder.append(listener)
    try:
        yield listener, release
    finally:
        listener.close()


async def closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (reading and dropping what it sends)."""
    start = time.monotonic()
    async with asyncio.timeout(WAIT):
        while await reader.read(65536):
            pass
    return time.monotonic() - start


def test_the_bound_is_websockets_open_timeout() -> None:
    assert HEADER_TIMEOUT == 10.0


async def test_a_connection_without_a_request_is_closed_after_the_bound() -> None:
    async with line_server() as (listener, _):
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"partial request, never ended")
        elapsed = await closed_after(reader)
        assert BOUND * 0.9 <= elapsed < BOUND + 2
        writer.close()


async def test_the_deadline_is_set_again_after_each_answer_and_lifted_while_handling() -> None:
    async with line_server() as (listener, release):
        reader, writer = await asyncio.open_connection(*listener.address)
        for _ in range(3):  # three requests in all take longer than one bound: each answer re-arms
            await asyncio.sleep(BOUND / 2)  # a client thinking between requests, well within the bound
            writer.write(b"quick\n")
            assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok\n"
        writer.write(b"slow\n")
        await asyncio.sleep(BOUND * 3)  # handled for longer than the bound: not cut
        assert not reader.at_eof()
        release.set()
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok\n"
        assert await closed_after(reader) < BOUND + 2  # then idle again: cut
        writer.close()


async def test_an_answer_still_being_written_to_a_slow_reader_is_not_cut() -> None:
    big = 32 * 1024 * 1024
    async with line_server({"big": big}) as (listener, _):
        reader, writer = await asyncio.open_connection(*listener.address)
        try:
            writer.write(b"big\n")
            await asyncio.sleep(BOUND * 3)  # what the socket buffers cannot hold waits in the server
            received = 0
            async with asyncio.timeout(WAIT * 4):
                while chunk := await reader.read(1 << 20):
                    received += len(chunk)
            assert received == big + 3  # all of it, then the idle connection was cut
        finally:
            writer.close()


async def test_a_connection_closed_with_its_answer_pending_is_not_cut_early() -> None:
    big = 32 * 1024 * 1024
    async with line_server({"bye": big}) as (listener, _):
        reader, writer = await asyncio.open_connection(*listener.address)
        try:
            writer.write(b"bye\n")
            await asyncio.sleep(BOUND * 3)
            received = 0
            async with asyncio.timeout(WAIT * 4):
                while chunk := await reader.read(1 << 20):
                    received += len(chunk)
            assert received == big + 3
        finally:
            writer.close()


async def test_a_connection_the_server_closes_while_answering_is_forgotten() -> None:
    async with line_server() as (listener, _):
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"close\n")
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok\n"
        await closed_after(reader)
        assert listener._deadlines == {}
        writer.close()


async def test_request_leaves_foreign_transports_and_none_alone() -> None:
    async with line_server() as (listener, _):
        with listener.request(None):
            pass
        _, writer = await asyncio.open_connection(*listener.address)
        foreign = writer.transport  # the client's end: not one of the listener's connections
        with listener.request(foreign):
            pass
        assert foreign not in listener._deadlines
        writer.close()


async def test_a_connection_closed_while_handled_is_forgotten() -> None:
    async with line_server() as (listener, release):
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"slow\n")
        await asyncio.sleep(0.05)
        (server_end,) = listener._deadlines
        server_end.close()
        release.set()
        await closed_after(reader)
        await asyncio.sleep(0.05)
        assert listener._deadlines == {}
        writer.close()


async def test_close_stops_listening_and_lifts_every_deadline() -> None:
    Listener().close()  # never opened: nothing to do
    async with line_server() as (listener, release):
        address = listener.address
        reader, writer = await asyncio.open_connection(*address)
        busy_reader, busy_writer = await asyncio.open_connection(*address)
        busy_writer.write(b"slow\n")  # one connection in a request (no deadline), one idle
        await asyncio.sleep(0.05)
        listener.close()
        listener.close()  # idempotent
        assert listener._deadlines == {}
        await asyncio.sleep(BOUND * 2)
        assert not reader.at_eof()  # no deadline any more: the server closes its connections itself
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)
        release.set()
        assert await asyncio.wait_for(busy_reader.readline(), WAIT) == b"ok\n"
        writer.close()
        busy_writer.close()


def test_address_before_open_raises() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        _ = Listener().address


# -- accept() failures ----------------------------------------------------------


def accept_failure(sock: socket.socket) -> dict[str, object]:
    """The context asyncio's selector loop gives its exception handler when accept() fails."""
    return {
        "message": "socket.accept() out of system resource",
        "exception": OSError(errno.EMFILE, "Too many open files"),
        "socket": sock,
    }


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def rtt_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rtt.server"]


async def test_accept_failures_are_folded_into_a_few_lines(
    listening: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    loop = asyncio.get_running_loop()
    release = quiet_accept_errors([listening], interval=0.2)
    try:
        for _ in range(500):
            loop.call_exception_handler(accept_failure(listening))
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert all(r.exc_info is None for r in caplog.records)
        lines = rtt_lines(caplog)
        assert len(lines) == 1 and "cannot accept connections on 127.0.0.1:" in lines[0]
        assert "Too many open files" in lines[0]
        await asyncio.sleep(0.3)
        assert "499 failed accept() calls" in rtt_lines(caplog)[-1]
        await asyncio.sleep(0.3)  # an interval without failures: cleared
        assert "accepting connections on 127.0.0.1:" in rtt_lines(caplog)[-1]
        assert "500 failed accept() calls in all" in rtt_lines(caplog)[-1]
        count = len(rtt_lines(caplog))
        loop.call_exception_handler(accept_failure(listening))  # trouble again: a first line again
        assert len(rtt_lines(caplog)) == count + 1 and "cannot accept" in rtt_lines(caplog)[-1]
    finally:
        release()
        release()  # idempotent
    assert "stopped listening with 1 failed accept() calls" in rtt_lines(caplog)[-1]


async def test_without_a_previous_handler_other_contexts_get_the_default_one(
    listening: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as second:
        release_first = quiet_accept_errors([listening])
        release_second = quiet_accept_errors([second])
        release_first()
        assert loop.get_exception_handler() is not None  # the second listener still needs it
        loop.call_exception_handler({"message": "an unrelated failure"})
        release_second()
    assert loop.get_exception_handler() is None
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("asyncio", logging.ERROR, "an unrelated failure")
    ]


async def test_other_contexts_reach_the_previous_handler_which_comes_back(listening: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, object]] = []

    def previous(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        seen.append(context)

    loop.set_exception_handler(previous)
    try:
        other = socket.socket()
        try:
            release = quiet_accept_errors([listening])
            assert loop.get_exception_handler() is not previous
            loop.call_exception_handler({"message": "something else"})
            loop.call_exception_handler(accept_failure(other))  # a socket of someone else's
            loop.call_exception_handler({"message": "x", "exception": ValueError("not a retry")})
            assert [c["message"] for c in seen] == [
                "something else",
                "socket.accept() out of system resource",
                "x",
            ]
            release()
            assert loop.get_exception_handler() is previous
        finally:
            other.close()
    finally:
        loop.set_exception_handler(None)


async def test_retries_pending_at_close_are_swallowed_then_the_handler_goes(
    listening: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    release = quiet_accept_errors([listening])
    loop.call_exception_handler(accept_failure(listening))
    guard = loop.get_exception_handler()
    release()
    # asyncio's retry of the failed accept() fires on the closed listener within a second.
    tail = {
        "message": "Exception in callback BaseSelectorEventLoop._start_serving(...)",
        "exception": ValueError("Invalid file descriptor: -1"),
    }
    assert loop.get_exception_handler() is guard
    caplog.clear()
    loop.call_exception_handler(tail)
    assert not caplog.records
    again = quiet_accept_errors([listening])  # a listener registered meanwhile keeps the guard
    await asyncio.sleep(2.2)
    assert loop.get_exception_handler() is guard
    again()  # no failure of its own, the first one's tail is over: the guard goes at once
    assert loop.get_exception_handler() is None


async def test_a_handler_set_meanwhile_is_not_replaced(listening: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    release = quiet_accept_errors([listening])

    def mine(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        pass

    loop.set_exception_handler(mine)
    try:
        second = quiet_accept_errors([listening])  # not in front any more: a new guard in front of mine
        assert loop.get_exception_handler() not in (mine, None)
        second()
        assert loop.get_exception_handler() is mine
        release()
        assert loop.get_exception_handler() is mine
    finally:
        loop.set_exception_handler(None)


# -- a library's records about bad requests ------------------------------------


class BadRequest(Exception):
    pass


def test_records_about_bad_requests_become_one_short_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.http")
    log = RequestErrorLog(logging.getLogger("test.http"), (BadRequest,))
    secret = "Cookie: session=s3cr3t"
    log.exception("Error handling request", exc_info=BadRequest(secret))
    log.error("Error handling request", exc_info=(BadRequest, BadRequest(secret), None))
    try:
        raise BadRequest(secret)
    except BadRequest:
        log.exception("Error handling request")
        log.debug("Error handling request", exc_info=True)
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (logging.DEBUG, "refused a bad HTTP request (BadRequest)", None)
    ] * 4


def test_the_line_may_say_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.http")
    log = RequestErrorLog(logging.getLogger("test.http"), (BadRequest,), "opening handshake failed")
    log.error("opening handshake failed", exc_info=BadRequest("GET /secret"))
    assert [r.getMessage() for r in caplog.records] == ["opening handshake failed (BadRequest)"]


def test_other_records_pass_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.http")
    log = RequestErrorLog(logging.getLogger("test.http"), (BadRequest,))
    log.info("started %s", "x")
    try:
        raise RuntimeError("handler bug")
    except RuntimeError:
        log.exception("Error handling request")
    log.error("no exception at all", exc_info=False)
    records = caplog.records
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "started x"),
        (logging.ERROR, "Error handling request"),
        (logging.ERROR, "no exception at all"),
    ]
    assert records[1].exc_info is not None and records[1].exc_info[0] is RuntimeError


def test_lone_surrogates_in_a_record_are_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """A request's undecodable bytes (decoded with surrogateescape) never reach a handler raw.

    A UTF-8 handler would fail on the record otherwise: websockets 15 logs the
    request target at DEBUG as it decoded it.
    """
    caplog.set_level(logging.DEBUG, logger="test.http")
    log = RequestErrorLog(logging.getLogger("test.http"), (BadRequest,))
    target = b"/\xe9t\xc3\xa9".decode("utf-8", "surrogateescape")
    log.debug("< GET %s HTTP/1.1 %d", target, 7)
    log.debug(f"raw {target}")
    log.info("café %s", "ünï")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["< GET /\\udce9té HTTP/1.1 7", "raw /\\udce9té", "café ünï"]
    for message in messages:
        message.encode("utf-8")
