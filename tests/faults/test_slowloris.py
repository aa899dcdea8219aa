"""Slowloris on every standalone server (issue 12 defect 1; SPEC.md 3.11).

A slowloris client opens connections and sends its request headers a byte a
second, never finishing them, to hold the server's file descriptors. Every
standalone server closes a connection that has not delivered a request's
headers within ``rtt.listener.HEADER_TIMEOUT`` (10 s) of its opening or of its
previous response, while real clients go on connecting and echoing. Out of
file descriptors, the server logs a few WARNING lines rather than a traceback
per failed ``accept()``, and serves again once the slow connections are cut.

These cases are HTTP-level, so they run once per transport (ws, picows,
engineio, sockjs) rather than per wire, and every transport at once: each
waits out the 10 s bound, so together they take the time of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from urllib.parse import urlsplit

import pytest

import rtt
from rtt.listener import HEADER_TIMEOUT

from .http_support import TRANSPORTS, each_at_once, echo, echo_once

MARGIN = 5.0
SLOW = 20
KEPT_ALIVE = 5


def request_head(name: str, url: str) -> bytes:
    """The start of a request the server would take (a WebSocket upgrade or a poll), unfinished."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if name == "engineio":
        path += "?EIO=4&transport=polling"
    elif name == "sockjs":
        path += "/info"
    return f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nX-Slow: ".encode()


class Slowloris:
    """One connection sending ``head``, then a byte a second; records when the server closed it."""

    def __init__(self) -> None:
        self.opened = 0.0
        self.closed_after: float | None = None

    async def run(self, host: str, port: int, head: bytes, before: bytes = b"") -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            if before:  # a complete request first: then the deadline counts from its response
                writer.write(before)
                assert (await reader.readline()).startswith(b"HTTP/1.1 ")
                with contextlib.suppress(ConnectionError):
                    while await asyncio.wait_for(reader.read(65536), 0.5):
                        pass
        except TimeoutError:
            pass
        try:
            self.opened = time.monotonic()
            writer.write(head)
            while not reader.at_eof():
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(65536), 1.0):
                        break
                if writer.is_closing():
                    break
                writer.write(b"a")
        except ConnectionError:
            pass
        finally:
            self.closed_after = time.monotonic() - self.opened
            writer.close()


@pytest.mark.timeout(90)
async def test_slow_headers_are_cut_within_the_bound_while_real_clients_echo() -> None:
    await each_at_once({name: slow_headers_are_cut(name) for name in TRANSPORTS})


async def slow_headers_are_cut(name: str) -> None:
    transport = rtt.load(name)
    async with transport.server("127.0.0.1", 0) as server:
        echo(server)
        host, port = server.address
        head = request_head(name, server.url)
        parts = urlsplit(server.url)
        # A complete request for a page the server does not have, answered at once (404, or ws's 426);
        # the aiohttp servers keep the connection alive, ws closes it.
        first = f"GET /nothing-here HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n\r\n".encode()
        fresh = [Slowloris() for _ in range(SLOW)]
        kept_alive = [Slowloris() for _ in range(KEPT_ALIVE)]
        async with asyncio.timeout(HEADER_TIMEOUT + MARGIN + 10):
            tasks = [asyncio.create_task(s.run(host, port, head)) for s in fresh]
            tasks += [asyncio.create_task(s.run(host, port, head, first)) for s in kept_alive]
            # Meanwhile real clients come and go as usual.
            for i in range(3):
                await echo_once(transport, server.url, f"hello {i}")
            await asyncio.gather(*tasks)
        for s in fresh:
            assert s.closed_after is not None
            assert HEADER_TIMEOUT - 0.5 <= s.closed_after <= HEADER_TIMEOUT + MARGIN, s.closed_after
        for s in kept_alive:  # a later request's headers: the bound counts from the previous answer
            assert s.closed_after is not None and s.closed_after <= HEADER_TIMEOUT + MARGIN, s.closed_after
        await echo_once(transport, server.url, "after")


# -- Out of file descriptors ------------------------------------------------------

FD_LIMIT = 128
HOLD = 400

SERVER = """
import asyncio, logging, resource, sys
import rtt

resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")

async def main() -> None:
    transport = rtt.load({name!r})
    async with transport.server("127.0.0.1", 0) as server:
        @server.on("message")
        async def echo(socket, data):
            await server.send(socket.id, data)
        print(server.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print("closed", flush=True)

asyncio.run(main())
"""


async def hold(host: str, port: int, head: bytes, until: float) -> bool:
    """One slowloris connection until ``until`` (monotonic); whether the server ever accepted it."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3.0)
    except (OSError, TimeoutError):
        return False  # the listen backlog is full
    try:
        writer.write(head)
        while time.monotonic() < until and not writer.is_closing():
            with contextlib.suppress(TimeoutError):
                if not await asyncio.wait_for(reader.read(65536), 1.0):
                    break
            writer.write(b"a")
    except ConnectionError:
        pass
    finally:
        writer.close()
    return True


@pytest.mark.timeout(150)
async def test_out_of_file_descriptors_the_log_stays_small_and_the_server_recovers() -> None:
    # One server process per transport, each with its own descriptor limit; this process holds
    # HOLD connections to each, far below its own limit.
    await each_at_once({name: out_of_file_descriptors(name) for name in TRANSPORTS})


async def out_of_file_descriptors(name: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER.format(limit=FD_LIMIT, name=name),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
        assert url, (await stderr).decode()
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        head = request_head(name, url)
        # More slow connections than the server has descriptors for, held past the header bound.
        until = time.monotonic() + HEADER_TIMEOUT + 4
        held = await asyncio.gather(*(hold(parts.hostname, parts.port, head, until) for _ in range(HOLD)))
        assert sum(held) > FD_LIMIT  # the server did run out
        # The slow connections are cut: real clients are served again.
        transport = rtt.load(name)
        async with asyncio.timeout(60):
            while True:
                try:
                    await echo_once(transport, url, "back")
                    break
                except (rtt.ConnectError, TimeoutError, OSError):
                    await asyncio.sleep(0.5)
        process.stdin.write(b"\n")
        assert (await asyncio.wait_for(process.stdout.readline(), 30)) == b"closed\n"
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = (await stderr).decode()
    lines = log.splitlines()
    # Before the fix: tens of MB of "socket.accept() out of system resource" tracebacks.
    assert len(log) < 4096 and len(lines) <= 8, log[:4096]
    assert "Traceback" not in log and "ERROR" not in log, log[:4096]
    assert any("cannot accept connections" in line for line in lines), log
