"""Wrapped vs raw: each registered pair's rtt server against its raw library's server.

Each server runs in its own process; the load comes from this one. Prints, per
pair, echo round trips/s, broadcast deliveries/s and KiB per idle connection
for both sides and the wrapped/raw ratio. See harness.py for the machinery.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_compare.py               # every pair
    /work/venv/bin/python benchmarks/bench_compare.py tcp --quick   # one pair, smoke run
    /work/venv/bin/python benchmarks/bench_compare.py --self-test   # check the machinery
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from pathlib import Path

from harness import (
    SIDES,
    Load,
    Pair,
    ServerProcess,
    compare,
    load_pairs,
    positive_int,
    print_comparison,
    raise_fd_limit,
)

QUICK = Load(echo_clients=2, round_trips=50, fanout_clients=10, broadcasts=5, idle_clients=50, timeout=20)


class SelfTestError(Exception):
    """A check of the machinery failed."""


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SelfTestError(what)
    print(f"  ok  {what}")


async def self_test(pairs: dict[str, Pair]) -> None:
    """Start, probe and stop each side of every pair; kill one child; then a tiny comparison."""
    for pair in pairs.values():
        for side in SIDES:
            print(f"{pair.name}/{side}")
            async with ServerProcess(pair.name, side) as server:
                pid = server.pid
                _check(0 < server.port < 65536, f"child {pid} reported port {server.port}")
                _check(server.rss_kib() > 0, f"read VmRSS {server.rss_kib()} KiB from /proc/{pid}/status")
                client = await pair.connect(server.port)
                try:
                    await server.wait_count(1)
                    await client.send("ping")
                    echoed = await asyncio.wait_for(client.recv(), server.timeout)
                    _check(echoed in ("ping", b"ping"), "echo came back")
                    await server.command("broadcast", 2, 8)
                    got = [await asyncio.wait_for(client.recv(), server.timeout) for _ in range(2)]
                    _check(
                        all(m in ("x" * 8, b"x" * 8) for m in got), "broadcast on command reached the client"
                    )
                finally:
                    await client.close()
                await server.wait_count(0)  # raises TimeoutError if the server never notices
                _check(await server.connections() == 0, "server saw the client leave")
            _check(server.returncode == 0, f"clean shutdown on end of stdin (status {server.returncode})")
            _check(not _alive(pid), f"process {pid} is gone")
        server = ServerProcess(pair.name, "raw")
        await server.start()
        await server.stop(grace=0)
        _check(
            server.returncode == -signal.SIGKILL,
            f"a child that does not exit in time is killed ({server.returncode})",
        )
    for pair in pairs.values():
        print_comparison(pair, QUICK, 1, await compare(pair, QUICK, 1))
    print("\nself-test passed")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the comparisons (or the self-test) and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pairs", nargs="*", help="pairs to run (default: every registered pair)")
    parser.add_argument("--list", action="store_true", help="list the registered pairs and exit")
    parser.add_argument("--self-test", action="store_true", help="check the cross-process machinery")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument(
        "--repeat",
        type=positive_int,
        help="fresh processes per side; median taken (default 5, 1 with --quick)",
    )
    for field in dataclasses.fields(Load):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(
            flag,
            type=float if field.name == "timeout" else positive_int,
            default=None,
            help=f"default {field.default} ({getattr(QUICK, field.name)} with --quick)",
        )
    args = parser.parse_args(argv)

    raise_fd_limit()
    pairs = load_pairs()
    if args.list:
        for pair in pairs.values():
            print(f"{pair.name}: {pair.description}")
        return 0
    unknown = sorted(set(args.pairs) - set(pairs))
    if unknown:
        parser.error(f"unknown pair(s) {', '.join(unknown)}; registered: {', '.join(sorted(pairs))}")
    chosen = {name: pairs[name] for name in args.pairs or pairs}
    if args.self_test:
        asyncio.run(self_test(chosen))
        return 0
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Load)}
    overrides = {name: value for name, value in given.items() if value is not None}
    repeat = args.repeat or (1 if args.quick else 5)
    # Each pair's own counts (its issue's) unless --quick; flags override either.
    loads = {
        name: dataclasses.replace(QUICK if args.quick else pair.load or Load(), **overrides)
        for name, pair in chosen.items()
    }

    async def run() -> None:
        for name, pair in chosen.items():
            try:
                figures = await compare(pair, loads[name], repeat)
            except TimeoutError:
                parser.exit(1, f"a measurement took longer than --timeout {loads[name].timeout} s\n")
            print_comparison(pair, loads[name], repeat, figures)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
