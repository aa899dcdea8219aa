"""TLS vs plain, per transport: what terminating TLS in rtt costs (issue 15).

For each transport (ws, picows, engineio over WebSocket and over long-polling,
sockjs over WebSocket and over xhr-streaming), the rtt server runs in its own
process (the harness's control protocol), once plain and once with a
server-side ``ssl.SSLContext`` (a throwaway trustme CA), both in the same run.
The load comes from this process, with rtt's own Python client for the
transport, the same client for plain and TLS (only the URL scheme and its
``ssl`` context differ). Measures:

- **echo**: 50 clients, 64-byte text messages, each awaiting its echo:
  round trips/s and server CPU per round trip;
- **idle**: server RSS growth per idle connection over 1,000 connections.

Each repeat starts fresh processes and alternates which of plain and TLS goes
first. Printed: medians over the repeats and the TLS/plain ratios (median of
the per-repeat ratios, with their spread). Linux only (``/proc``).

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_tls.py                 # every transport, 3 repeats
    /work/venv/bin/python benchmarks/bench_tls.py --quick         # smoke run
    /work/venv/bin/python benchmarks/bench_tls.py --transports ws,picows --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

HERE: Final = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a child with ``python benchmarks/bench_tls.py``
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import trustme  # noqa: E402
from harness import HOST, BenchClient, Pair, ServerProcess, fmt, positive_int, print_table  # noqa: E402

import rtt  # noqa: E402

Mode = Literal["plain", "tls"]
MODES: Final[tuple[Mode, ...]] = ("plain", "tls")
#: The certificate's names; clients connect to 127.0.0.1 and verify it as usual.
NAMES: Final = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class Variant:
    """A transport as measured: the plugin, and the options given to ``rtt.load`` (server and client)."""

    label: str
    transport: str
    options: tuple[tuple[str, Any], ...] = ()
    description: str = ""

    def load(self) -> rtt.Transport:
        """The transport with this variant's options."""
        return rtt.load(self.transport, **dict(self.options))


VARIANTS: Final = {
    v.label: v
    for v in (
        Variant("ws", "ws", description="rtt-ws (websockets)"),
        Variant("picows", "picows", description="rtt-picows"),
        Variant("engineio-ws", "engineio", (("transports", ("websocket",)),), "rtt-engineio, WebSocket only"),
        Variant(
            "engineio-polling",
            "engineio",
            (("transports", ("polling",)),),
            "rtt-engineio, long-polling only",
        ),
        Variant("sockjs-ws", "sockjs", (("transports", ("websocket",)),), "rtt-sockjs, WebSocket only"),
        Variant(
            "sockjs-xhr-streaming",
            "sockjs",
            (("transports", ("xhr-streaming",)),),
            "rtt-sockjs, xhr-streaming only",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Load:
    """The counts; every wait is bounded by ``timeout`` seconds per measurement."""

    echo_clients: int = 50
    round_trips: int = 100
    idle_clients: int = 1000
    size: int = 64
    repeat: int = 3
    timeout: float = 120.0


QUICK: Final = Load(echo_clients=5, round_trips=20, idle_clients=50, repeat=1, timeout=30.0)


# -- Server process ------------------------------------------------------------------------------


class TlsBenchServer:
    """The harness's rtt echo server, with ``ssl`` given to the server only.

    ``rtt.load`` would hand ``ssl`` to the client options too, which refuse a server-side context.
    """

    def __init__(self, variant: Variant, context: ssl.SSLContext | None) -> None:
        self.server = variant.load().server(host=HOST, port=0, ssl=context)
        self.server.on("message", self._echo)

    async def _echo(self, socket: rtt.Socket, data: str | bytes) -> None:
        await self.server.send(socket.id, data)

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0."""
        await self.server.start()
        return self.server.address[1]

    def connections(self) -> int:
        """Connected sockets."""
        return len(self.server.sockets)

    async def broadcast(self, data: str) -> None:
        """One rtt broadcast (the control protocol has it; this benchmark does not use it)."""
        await self.server.broadcast(data)

    async def close(self) -> None:
        """Close the server."""
        await self.server.close()


def child_main(label: str, certfile: str | None, loop: str) -> None:
    """A server process: ``label``'s rtt server on ``loop``, with TLS from ``certfile`` (key, chain) if given.

    Besides the harness's commands it answers ``url`` with ``url <server.url>``.
    """
    harness.raise_fd_limit()
    context = None
    if certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile)
    holder: list[TlsBenchServer] = []

    def factory() -> TlsBenchServer:
        holder.append(TlsBenchServer(VARIANTS[label], context))
        return holder[0]

    serving = harness.serve(factory, {"url": lambda words: f"url {holder[0].server.url}"})
    if loop == "uvloop":
        import uvloop

        uvloop.run(serving)
    else:
        asyncio.run(serving)


def child_argv(label: str, certfile: Path | None, loop: str) -> list[str]:
    """The command line of a server process for ``label`` on ``loop``, TLS when ``certfile`` is given."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", label, "--loop", loop]
    return argv + (["--certfile", str(certfile)] if certfile else [])


# -- Measures ------------------------------------------------------------------------------------


def client_pair(variant: Variant, url: str, context: ssl.SSLContext | None) -> Pair:
    """A harness pair whose ``connect`` opens rtt's own client for ``variant`` at ``url``.

    Only ``connect`` is used: the servers are this script's child processes.
    """
    transport = variant.load()

    async def connect(port: int) -> BenchClient:
        # No reconnecting: a dropped connection must fail the measure, not be quietly redone.
        client = transport.client(url, ssl=context, reconnect=None)
        await client.connect()
        return client

    def unused() -> harness.BenchServer:
        raise RuntimeError("bench_tls.py runs its servers with --child")

    return Pair(variant.label, unused, unused, connect)


Figures = dict[str, float]


async def measure(
    variant: Variant,
    servers: dict[Mode, ServerProcess],
    contexts: dict[Mode, ssl.SSLContext | None],
    load: Load,
) -> dict[Mode, Figures]:
    """Idle memory on each server, then echo on each, one right after the other."""
    pairs: dict[Mode, Pair] = {}
    for mode, server in servers.items():
        url = (await server.command("url"))[1]
        if not url.startswith(("wss://", "https://") if mode == "tls" else ("ws://", "http://")):
            raise RuntimeError(f"{variant.label}/{mode}: the server reports {url}")
        pairs[mode] = client_pair(variant, url, contexts[mode])
    figures: dict[Mode, Figures] = {mode: {} for mode in servers}
    # Memory first, while the processes are fresh: the echo load leaves buffers behind.
    for mode, server in servers.items():
        async with asyncio.timeout(load.timeout):
            figures[mode]["idle"] = await harness.idle_memory(pairs[mode], server, load.idle_clients)
            await server.wait_count(0)
    for mode, server in servers.items():
        async with asyncio.timeout(load.timeout):
            rate, cpu = await harness.echo_rate(
                pairs[mode], server, load.echo_clients, load.round_trips, load.size
            )
            await server.wait_count(0)
        figures[mode] |= {"echo": rate, "echo_cpu": cpu}
    return figures


async def run(
    variants: Sequence[Variant], load: Load, certfile: Path, client_context: ssl.SSLContext, loop: str
) -> dict[str, list[dict[Mode, Figures]]]:
    """Every variant ``load.repeat`` times: plain and TLS in fresh processes, taking turns to go first."""
    contexts: dict[Mode, ssl.SSLContext | None] = {"plain": None, "tls": client_context}
    results: dict[str, list[dict[Mode, Figures]]] = {v.label: [] for v in variants}
    for i in range(load.repeat):
        started = time.monotonic()
        for variant in variants:
            order = MODES if i % 2 == 0 else MODES[::-1]
            processes = {
                mode: ServerProcess(
                    variant.label,
                    "wrapped",
                    load.timeout,
                    child_argv(variant.label, certfile if mode == "tls" else None, loop),
                )
                for mode in order
            }
            async with processes[order[0]], processes[order[1]]:
                results[variant.label].append(await measure(variant, processes, contexts, load))
        print(f"  repeat {i + 1}/{load.repeat} done in {time.monotonic() - started:.0f} s", flush=True)
    return results


# -- Report --------------------------------------------------------------------------------------

METRICS: Final = {
    "echo": "echo round trips/s",
    "echo_cpu": "server CPU µs per round trip",
    "idle": "KiB per idle connection",
}


def summarize(runs: list[dict[Mode, Figures]], key: str) -> tuple[float, float, float, float, float]:
    """Median plain, median TLS, median and spread of the per-run TLS/plain ratios."""
    plain = statistics.median(r["plain"][key] for r in runs)
    tls = statistics.median(r["tls"][key] for r in runs)
    ratios = [r["tls"][key] / r["plain"][key] for r in runs if r["plain"][key]]
    if not ratios:
        return plain, tls, math.nan, math.nan, math.nan
    return plain, tls, statistics.median(ratios), min(ratios), max(ratios)


def report(results: dict[str, list[dict[Mode, Figures]]], load: Load) -> None:
    """One table per measure: a row per transport, plain, TLS, TLS/plain."""
    print(
        f"\nmedian of {load.repeat} run(s); ratio = TLS / plain, median of the per-run ratios "
        "(range: their spread); CPU = the server process's, all threads"
    )
    heading = {
        "echo": f"\necho: {load.echo_clients} clients, {load.size} B text, each awaiting its echo, "
        f"{load.round_trips:,} round trips each",
        "idle": f"\nidle: {load.idle_clients:,} idle connections, server RSS growth",
    }
    for key, label in METRICS.items():
        if key in heading:
            print(heading[key])
        rows = []
        for name, runs in results.items():
            plain, tls, ratio, low, high = summarize(runs, key)
            extra = [fmt(tls - plain)] if key != "echo" else []
            rows.append([name, fmt(plain), fmt(tls), fmt(ratio), f"{fmt(low)}-{fmt(high)}", *extra])
        extra_head = ["TLS - plain"] if key != "echo" else []
        print_table([label, "plain", "TLS", "ratio", "range", *extra_head], rows)


def environment() -> list[str]:
    """The versions that matter to the figures."""
    from importlib.metadata import version

    try:
        commit = subprocess.run(
            ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    libraries = ", ".join(
        f"{name} {version(name)}" for name in ("websockets", "picows", "python-engineio", "aiohttp", "sockjs")
    )
    return [
        f"CPython {platform.python_version()}, {os.cpu_count()} CPUs, Linux {platform.release()}; "
        f"rtt at {commit}",
        f"{ssl.OPENSSL_VERSION}; {libraries}",
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


# -- Command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run (or, with ``--child``, be one server process)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--transports", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, one repeat")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the servers' event loop (default asyncio; the clients always run on asyncio's)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--certfile", help=argparse.SUPPRESS)
    for field in dataclasses.fields(Load):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=float if field.name == "timeout" else positive_int,
            default=None,
            help=f"default {field.default} ({getattr(QUICK, field.name)} with --quick)",
        )
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.certfile, args.loop)
        return 0
    names = args.transports.split(",")
    if unknown := [n for n in names if n not in VARIANTS]:
        parser.error(f"unknown transport(s) {', '.join(unknown)}; there are {', '.join(VARIANTS)}")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Load) if getattr(args, f.name)}
    load = dataclasses.replace(QUICK if args.quick else Load(), **overrides)
    harness.raise_fd_limit()
    print(" ".join(["$ python benchmarks/bench_tls.py", *(sys.argv[1:] if argv is None else argv)]))
    print("\n".join(environment()))
    print(f"servers: rtt's, on {args.loop}'s loop, one process each; clients: rtt's own, in this process")
    for name in names:
        print(f"  {name}: {VARIANTS[name].description}")
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with tempfile.TemporaryDirectory(prefix="rtt-bench-tls-") as directory:
        certfile = Path(directory) / "server.pem"
        ca.issue_cert(*NAMES).private_key_and_cert_chain_pem.write_to_path(str(certfile))
        try:
            variants = [VARIANTS[n] for n in names]
            results = asyncio.run(run(variants, load, certfile, client_context, args.loop))
        except TimeoutError:
            parser.exit(1, f"a measurement took longer than --timeout {load.timeout} s\n")
    report(results, load)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
