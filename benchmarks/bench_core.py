"""Messages per second through rtt's core, with the in-memory rtt-mock transport.

A script that prints figures, not a timed test. rtt-mock has no wire, so each
figure is the cost of rtt itself (the server and client templates: checks,
counters, event dispatch, the client's inbox) plus the mock's queues: a
ceiling that real transports approach but never pass.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_core.py           # well under a minute
    /work/venv/bin/python benchmarks/bench_core.py --quick   # smoke run, about a second
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable

from harness import fmt, print_table

import rtt

Round = Callable[[], Awaitable[float]]


class Countdown:
    """An event handler that resolves a future after a set number of calls."""

    def __init__(self) -> None:
        self.left = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def arm(self, calls: int) -> asyncio.Future[None]:
        """Expect ``calls`` more calls; return the future they resolve."""
        self.left = calls
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def __call__(self, *_: object) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set_result(None)


async def rounds(args: argparse.Namespace, round_: Round) -> list[float]:
    """One discarded warm-up round, then ``--repeat`` measured ones, each bounded by ``--timeout``."""
    results = []
    for _ in range(args.repeat + 1):
        async with asyncio.timeout(args.timeout):
            results.append(await round_())
    return results[1:]


async def server_to_client(t: rtt.Transport, args: argparse.Namespace, *, handler: bool) -> list[float]:
    """Messages/s from ``server.send`` to one client reading with ``recv()`` or a ``message`` handler."""
    n: int = args.messages
    payload = "x" * args.size
    # mock sends never yield, so the whole burst is queued before the client
    # reads; lift the slow-consumer limit above it so the socket is not dropped.
    async with t.server(outbound_limit=2 * n * (args.size + 64)) as server:
        opened = Countdown()
        connected = opened.arm(1)
        server.on("connect", opened)
        async with t.client(server.url, reconnect=False) as client:
            await asyncio.wait_for(connected, args.timeout)
            socket_id = next(iter(server.sockets))
            countdown = Countdown()
            if handler:
                client.on("message", countdown)

            async def round_() -> float:
                done = countdown.arm(n)
                start = time.perf_counter()
                for _ in range(n):
                    await server.send(socket_id, payload)
                if handler:
                    await done
                else:
                    for _ in range(n):
                        await client.recv()
                return n / (time.perf_counter() - start)

            return await rounds(args, round_)


async def client_to_server(t: rtt.Transport, args: argparse.Namespace) -> list[float]:
    """Messages/s from ``client.send`` to a server ``message`` handler that counts them."""
    n: int = args.messages
    payload = "x" * args.size
    async with t.server() as server:
        countdown = Countdown()
        server.on("message", countdown)
        async with t.client(server.url, reconnect=False) as client:

            async def round_() -> float:
                done = countdown.arm(n)
                start = time.perf_counter()
                for _ in range(n):
                    await client.send(payload)
                await done
                return n / (time.perf_counter() - start)

            return await rounds(args, round_)


async def broadcast(t: rtt.Transport, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Deliveries/s end to end, and deliveries/s of the ``broadcast()`` calls alone, to ``--sockets``."""
    sockets: int = args.sockets
    count: int = args.broadcasts
    payload = "x" * args.size
    calls: list[float] = []
    async with t.server() as server:
        # reconnect=False so a failed run cannot leave clients retrying in the background.
        clients = [t.client(server.url, reconnect=False) for _ in range(sockets)]
        countdown, opened = Countdown(), Countdown()
        for client in clients:
            client.on("message", countdown)
        # A client's connect() returns before the server has registered its socket.
        connected = opened.arm(sockets)
        server.on("connect", opened)
        try:
            async with asyncio.timeout(args.timeout):
                await asyncio.gather(*(c.connect() for c in clients))
                await connected

            async def round_() -> float:
                done = countdown.arm(sockets * count)
                start = time.perf_counter()
                for _ in range(count):
                    await server.broadcast(payload)
                calls.append(sockets * count / (time.perf_counter() - start))
                await done
                return sockets * count / (time.perf_counter() - start)

            return await rounds(args, round_), calls[1:]
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def run(args: argparse.Namespace) -> list[list[str]]:
    """Every scenario; one table row each."""
    t = rtt.load("mock")
    recv = await server_to_client(t, args, handler=False)
    handled = await server_to_client(t, args, handler=True)
    inbound = await client_to_server(t, args)
    delivered, called = await broadcast(t, args)
    scenarios = [
        ("server -> client, recv()", recv, "msg/s"),
        ("server -> client, message handler", handled, "msg/s"),
        ("client -> server, message handler", inbound, "msg/s"),
        (f"broadcast to {args.sockets:,} sockets", delivered, "deliveries/s"),
        (f"broadcast to {args.sockets:,} sockets", [d / args.sockets for d in delivered], "broadcasts/s"),
        ("  of which broadcast() calls alone", called, "deliveries/s"),
    ]
    return [
        [name, fmt(statistics.median(values)), fmt(min(values)), fmt(max(values)), unit]
        for name, values, unit in scenarios
    ]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the scenarios and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000, help="messages per round (default 20000)")
    parser.add_argument("--sockets", type=int, default=1_000, help="broadcast audience (default 1000)")
    parser.add_argument("--broadcasts", type=int, default=20, help="broadcasts per round (default 20)")
    parser.add_argument("--size", type=int, default=16, help="payload bytes (default 16)")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds, median shown (default 5)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds any one round may take")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts, one round")
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; counts given explicitly still win
        parser.set_defaults(messages=1_000, sockets=100, broadcasts=5, repeat=1)
        args = parser.parse_args(argv)
    if min(args.messages, args.sockets, args.broadcasts, args.size, args.repeat) < 1:
        parser.error("counts must be >= 1")
    rows = asyncio.run(run(args))
    print(
        f"rtt core over rtt-mock: {args.messages:,} messages of {args.size} B per round; "
        f"{args.sockets:,} sockets x {args.broadcasts} broadcasts; median of {args.repeat} (+1 warm-up)"
    )
    system = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    print(f"Python {platform.python_version()} on {system}\n")
    print_table(["scenario", "median", "min", "max", "unit"], rows)


if __name__ == "__main__":
    main()
