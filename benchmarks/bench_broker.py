"""Scale-out: rtt-ws servers in several processes joined by the Redis broker, against one process.

Starts its own ``redis-server`` on a free loopback port (``--save '' --appendonly no``),
then measures, with the load generator in this process and every server in its own:

1. **Broadcast across processes.** The same clients (default 200 ws clients, spread
   evenly) and the same 64-byte messages against (a) one server process without a
   broker, (b) two server processes with the Redis broker, (c) four. Process 0 issues
   every broadcast; each message starts with the ``time.monotonic_ns()`` of the
   ``server.broadcast()`` call (CLOCK_MONOTONIC is one clock for every process), so
   each client's receipt gives one delivery latency.

   - *burst*: process 0 awaits ``server.broadcast()`` K times back to back, as fast as
     the calls return (with a broker each call returns once Redis has acknowledged the
     publish). The clock runs from the command until every client has all K:
     deliveries/s. The latencies of a burst include the queue the burst builds.
   - *paced*: broadcasts at a fixed rate well below every configuration's burst rate;
     the latencies are then the path itself, not a queue.

   Each configuration starts fresh processes; the three run interleaved, ``--repeat``
   times, and the table shows medians. The ratio is each configuration's deliveries/s
   over (a)'s in the same round, then the median of those.

2. **send() to a socket held elsewhere.** Two server processes with the broker. Each
   load-generator client opens one connection to process A (``a``) and one to process B
   (``b``) and learns ``a``'s socket id. A round trip is: the client sends
   ``"<id of a> <padding>"`` and waits for it to arrive on ``a``. The server app answers
   every message with ``server.send(<first word>, message)``.

   - *local*: sent on ``a`` itself: A's app sends to its own socket, no broker.
   - *remote*: sent on ``b``: B's app calls ``send(id of a)``, which B publishes to Redis
     channel ``s.<id>``; A receives the envelope and delivers it to ``a``.

   The client does the same work in both (one send, one receive), so the difference is
   the broker path: B's publish and its Redis acknowledgement, Redis, A's subscriber
   read, the envelope, ``_act``.

The load generator is websockets' own asyncio client (lighter than rtt's client: no
inbox, events or reconnect machinery). Neither side uses uvloop, like ``harness.py``.
Every connection is to 127.0.0.1, every count is fixed and every wait has a timeout.
Run from the repository root::

    /work/venv/bin/python benchmarks/bench_broker.py            # 2.5-4 minutes on a busy 2-core VM
    /work/venv/bin/python benchmarks/bench_broker.py --quick    # smoke run, about 15 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import HOST, PINNED_MALLOC, cpu_seconds, fmt, positive_int, print_table, raise_fd_limit
from websockets.asyncio.client import ClientConnection, connect

import rtt

SCRIPT = str(Path(__file__).resolve())
TARGET = 0.5
"""A broadcast through Redis should reach all sockets at >= 50 % of one process's deliveries/s."""


# -- Server process ------------------------------------------------------------------------
#
# Control protocol, one line each way over the child's stdin and stdout:
#   child:  url <ws url>                        once, when listening on 127.0.0.1
#   parent: count                          ->   count <local sockets>
#   parent: broadcast <k> <size> <interval> ->  done     (interval 0: back to back)
#   parent closes stdin                    ->   the child closes its server and exits 0


def _reply(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stamped(size: int) -> str:
    """A message of ``size`` characters starting with the monotonic clock in ns and a space."""
    head = f"{time.monotonic_ns()} "
    return head + "x" * max(0, size - len(head))


async def _serve(broker: str | None, prefix: str) -> None:
    spec: dict[str, Any] | None = None
    if broker:
        spec = {"broker": broker, "options": {"prefix": prefix}}
    server = rtt.load("ws", broker=spec).server(host=HOST, port=0)

    async def on_message(sock: rtt.Socket, data: str | bytes) -> None:
        if data == "?":
            await server.send(sock.id, sock.id)
            return
        text = data if isinstance(data, str) else data.decode()
        with contextlib.suppress(rtt.UnknownSocketError):
            await server.send(text.partition(" ")[0], data)

    server.on("message", on_message)
    await server.start()
    try:
        commands = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(commands), sys.stdin
        )
        _reply(f"url {server.url}")
        loop = asyncio.get_running_loop()
        while words := (await commands.readline()).decode().split():
            if words[0] == "count":
                _reply(f"count {len(server.sockets)}")
            elif words[0] == "broadcast":
                count, size, interval = int(words[1]), int(words[2]), float(words[3])
                start = loop.time()
                for i in range(count):
                    if interval:
                        await asyncio.sleep(start + i * interval - loop.time())
                    await server.broadcast(_stamped(size))
                _reply("done")
            else:
                _reply(f"error unknown command {words[0]!r}")
    finally:
        await server.close()


def serve_main(broker: str | None, prefix: str, profile: str | None) -> None:
    """Entry point of a server process (``--serve``)."""
    raise_fd_limit()
    # CPU time, not wall clock: on a busy machine preemption would land on whatever call was running.
    profiler = cProfile.Profile(time.process_time) if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        asyncio.run(_serve(broker, prefix))
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{os.getpid()}")


class ServerProcess:
    """One rtt-ws server in a child process; every wait bounded by ``timeout``."""

    def __init__(self, broker: str | None, prefix: str, timeout: float, profile: str | None) -> None:
        self.args = ["--serve", "--prefix", prefix]
        if broker:
            self.args += ["--broker", broker]
        if profile:
            self.args += ["--profile", profile]
        self.timeout = timeout
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._proc is not None
        return self._proc.pid

    async def start(self) -> None:
        """Spawn the child and wait until it reports its URL."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", PINNED_MALLOC)},
        )
        words = await self._read()
        if words[:1] != ["url"]:
            raise RuntimeError(f"server {self.pid}: expected 'url <url>', got {words!r}")
        self.url = words[1]

    async def stop(self) -> None:
        """Close the child's stdin so it shuts down; kill it if it is still alive after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), self.timeout)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def command(self, *words: object) -> list[str]:
        """Send one control command and return the words of its reply."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((" ".join(map(str, words)) + "\n").encode())
        await self._proc.stdin.drain()
        return await self._read()

    async def wait_count(self, count: int) -> None:
        """Wait until this process holds exactly ``count`` sockets."""
        deadline = time.monotonic() + self.timeout
        while (now := int((await self.command("count"))[1])) != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"server {self.pid}: {now} sockets, expected {count}")
            await asyncio.sleep(0.02)

    async def _read(self) -> list[str]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), self.timeout)
        if not line:
            raise RuntimeError(f"server {self.pid} closed its output (exit status {self._proc.returncode})")
        return line.decode().split()


class Cluster:
    """``size`` server processes, with the broker at ``broker`` (or one process and none)."""

    def __init__(self, size: int, broker: str | None, prefix: str, timeout: float, profile: str | None):
        self.servers = [ServerProcess(broker, prefix, timeout, profile) for _ in range(size)]

    async def __aenter__(self) -> Cluster:
        try:
            await asyncio.gather(*(s.start() for s in self.servers))
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """End every server process."""
        await asyncio.gather(*(s.stop() for s in self.servers), return_exceptions=True)

    def cpu_seconds(self) -> float:
        """CPU time used so far by every server process together."""
        return sum(cpu_seconds(s.pid) for s in self.servers)


# -- Redis -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port, no persistence; an async context manager."""

    def __init__(self, executable: str, timeout: float = 10.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  # closed in __aexit__

    @property
    def url(self) -> str:
        """The broker URL of its database 0."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self._proc is not None
        return self._proc.pid

    async def __aenter__(self) -> RedisServer:
        for _ in range(3):  # the free port may be taken between the probe and the bind
            self.port = free_port()
            self._proc = await asyncio.create_subprocess_exec(
                self.executable,
                *("--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"),
                *("--daemonize", "no", "--loglevel", "warning", "--protected-mode", "yes"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
            )
            if await self._ready():
                return self
            await self.stop()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start on 127.0.0.1; its output:\n{tail}")

    async def _ready(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.returncode is not None:
                return False
            try:
                async with asyncio.timeout(1.0):
                    reader, writer = await asyncio.open_connection(HOST, self.port)
                    writer.write(b"PING\r\n")
                    reply = await reader.readline()
                    writer.close()
                if reply.startswith(b"+PONG"):
                    return True
            except (OSError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
        return False

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self._log.close()

    async def stop(self) -> None:
        """Terminate it (it saves nothing), killing it if it lingers."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# -- Load generator ----------------------------------------------------------------------------


async def connect_spread(urls: Sequence[str], count: int, batch: int = 50) -> list[ClientConnection]:
    """Open ``count`` websockets clients, client ``i`` to ``urls[i % len(urls)]``, ``batch`` at a time."""
    clients: list[ClientConnection] = []
    try:
        for done in range(0, count, batch):
            clients += await asyncio.gather(
                *(_connect(urls[i % len(urls)]) for i in range(done, min(done + batch, count)))
            )
    except BaseException:
        await close_all(clients)
        raise
    return clients


async def _connect(url: str) -> ClientConnection:
    # As the ws pair's client: no compression, no proxy; no pings during a measurement.
    return await connect(url, compression=None, proxy=None, ping_interval=None, max_size=2**20)


async def close_all(clients: Sequence[ClientConnection]) -> None:
    """Close every client, ignoring errors."""
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True)
class Load:
    """Counts for one run; every wait is bounded by ``timeout`` seconds."""

    clients: int = 200
    size: int = 64
    burst: int = 300
    """Broadcasts per burst."""
    paced: int = 100
    """Broadcasts at ``rate`` per second, for latency."""
    rate: float = 40.0
    pairs: int = 20
    """Load-generator clients in the send test, each with one connection to each of two processes."""
    round_trips: int = 300
    """Round trips per send-test client in each phase."""
    repeat: int = 5
    timeout: float = 60.0


QUICK = Load(clients=40, burst=50, paced=20, rate=40.0, pairs=5, round_trips=50, repeat=1, timeout=30.0)

Figures = dict[str, float]
CONFIGS = (("a", 1, False), ("b", 2, True), ("c", 4, True))
"""Label, server processes, through the broker."""


class Meter:
    """CPU time of the servers, Redis and this process over one measured window."""

    def __init__(self, cluster: Cluster, redis: RedisServer) -> None:
        self.cluster, self.redis = cluster, redis
        self.start = time.perf_counter()
        self.servers = [cpu_seconds(s.pid) for s in cluster.servers]
        self.cpu = (cpu_seconds(redis.pid), cpu_seconds(os.getpid()))

    def figures(self, messages: int) -> Figures:
        """Rate, and CPU µs per message of the servers (each and together), Redis and the load generator."""
        elapsed = time.perf_counter() - self.start
        redis, me = self.cpu
        each = {
            f"server{i}_cpu": (cpu_seconds(s.pid) - before) * 1e6 / messages
            for i, (s, before) in enumerate(zip(self.cluster.servers, self.servers, strict=True))
        }
        return each | {
            "rate": messages / elapsed,
            "server_cpu": sum(each.values()),
            "redis_cpu": (cpu_seconds(self.redis.pid) - redis) * 1e6 / messages,
            "client_busy": (cpu_seconds(os.getpid()) - me) / elapsed,
        }


async def broadcasts(
    cluster: Cluster,
    redis: RedisServer,
    clients: Sequence[ClientConnection],
    count: int,
    size: int,
    rate: float,
) -> Figures:
    """Process 0 broadcasts ``count`` messages (``rate``/s, 0: back to back); every client reads them all."""
    latencies: list[int] = []

    async def drain(client: ClientConnection) -> None:
        for _ in range(count):
            message = await client.recv()
            now = time.monotonic_ns()
            text = message if isinstance(message, str) else message.decode()
            latencies.append(now - int(text[: text.index(" ")]))

    readers = [asyncio.create_task(drain(c)) for c in clients]
    try:
        meter = Meter(cluster, redis)
        await cluster.servers[0].command("broadcast", count, size, 1 / rate if rate else 0)
        await asyncio.gather(*readers)
        figures = meter.figures(len(clients) * count)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return figures | {"p50": percentile(latencies, 0.5) / 1e6, "p99": percentile(latencies, 0.99) / 1e6}


async def broadcast_round(
    label: str, size: int, broker: bool, redis: RedisServer, load: Load, tag: str, profile: str | None
) -> Figures:
    """Fresh processes for one configuration: a burst, then a paced run."""
    async with Cluster(
        size, redis.url if broker else None, f"bench{tag}{label}", load.timeout, profile
    ) as cl:
        clients = await connect_spread([s.url for s in cl.servers], load.clients)
        try:
            share = [len(range(i, load.clients, size)) for i in range(size)]
            await asyncio.gather(*(s.wait_count(n) for s, n in zip(cl.servers, share, strict=True)))
            async with asyncio.timeout(load.timeout):
                await broadcasts(cl, redis, clients, 5, load.size, 0)  # warm-up, discarded
                burst = await broadcasts(cl, redis, clients, load.burst, load.size, 0)
                paced = await broadcasts(cl, redis, clients, load.paced, load.size, load.rate)
        finally:
            await close_all(clients)
    return burst | {f"paced_{key}": value for key, value in paced.items()}


async def send_test(redis: RedisServer, load: Load, tag: str, profile: str | None) -> dict[str, Figures]:
    """Round trips through send(), local and across two processes, alternating, ``load.repeat`` times."""
    async with Cluster(2, redis.url, f"bench{tag}send", load.timeout, profile) as cl:
        a_url, b_url = (s.url for s in cl.servers)
        on_a = await connect_spread([a_url], load.pairs)
        on_b: list[ClientConnection] = []
        try:
            on_b = await connect_spread([b_url], load.pairs)
            await asyncio.gather(*(s.wait_count(load.pairs) for s in cl.servers))
            ids = []
            for client in on_a:
                await client.send("?")
                ids.append(str(await asyncio.wait_for(client.recv(), load.timeout)))
            runs: dict[str, list[Figures]] = {"local": [], "remote": []}
            for i in range(load.repeat + 1):  # round 0 is a discarded warm-up
                for kind in ("local", "remote") if i % 2 == 0 else ("remote", "local"):
                    senders = on_a if kind == "local" else on_b
                    async with asyncio.timeout(load.timeout):
                        figures = await round_trips(cl, redis, on_a, senders, ids, load)
                        alone = await round_trips(cl, redis, on_a[:1], senders[:1], ids[:1], load)
                    figures |= {"alone_p50": alone["p50"], "alone_p99": alone["p99"]}
                    if i:
                        runs[kind].append(figures)
        finally:
            await close_all(on_a + on_b)
    return {kind: median_figures(r) for kind, r in runs.items()}


async def round_trips(
    cluster: Cluster,
    redis: RedisServer,
    receivers: Sequence[ClientConnection],
    senders: Sequence[ClientConnection],
    ids: Sequence[str],
    load: Load,
) -> Figures:
    """Each sender sends ``load.round_trips`` messages, one at a time, addressed to its receiver's socket."""
    latencies: list[int] = []

    async def run(sender: ClientConnection, receiver: ClientConnection, socket_id: str) -> None:
        message = socket_id + " " + "x" * max(0, load.size - len(socket_id) - 1)
        for _ in range(load.round_trips):
            start = time.perf_counter_ns()
            await sender.send(message)
            await receiver.recv()
            latencies.append(time.perf_counter_ns() - start)

    meter = Meter(cluster, redis)
    await asyncio.gather(*(run(s, r, i) for s, r, i in zip(senders, receivers, ids, strict=True)))
    figures = meter.figures(len(senders) * load.round_trips)
    return figures | {"p50": percentile(latencies, 0.5) / 1e3, "p99": percentile(latencies, 0.99) / 1e3}


def median_figures(runs: Sequence[Figures]) -> Figures:
    """The median of each figure over ``runs``."""
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


# -- The run and its report ---------------------------------------------------------------------


async def run(load: Load, redis_server: str, profile: str | None, part: str) -> None:
    """Start Redis, take every figure, print the tables."""
    async with RedisServer(redis_server) as redis:
        print(f"redis-server at {redis.url} (pid {redis.pid}, no persistence)", flush=True)
        rounds: dict[str, list[Figures]] = {label: [] for label, _, _ in CONFIGS}
        for i in range(load.repeat if part != "send" else 0):
            for label, size, broker in CONFIGS:
                figures = await broadcast_round(label, size, broker, redis, load, str(i), profile)
                rounds[label].append(figures)
                print(f"  round {i + 1} ({label}): {figures['rate']:,.0f} deliveries/s", flush=True)
        sends = await send_test(redis, load, "s", profile) if part != "broadcast" else None
    if part != "send":
        print_broadcast(load, rounds)
    if sends is not None:
        print_send(load, sends)


def print_broadcast(load: Load, rounds: dict[str, list[Figures]]) -> None:
    """The broadcast table, with each configuration's ratio to (a) and the target."""
    base = rounds["a"]
    print(
        f"\nbroadcast: {load.clients} ws clients spread evenly, {load.size} B messages, issued by process 0; "
        f"median of {load.repeat} round(s)"
    )
    print(
        f"burst: {load.burst} broadcasts back to back; paced: {load.paced} at {load.rate:g}/s. "
        "Latency: broadcast() call -> client receipt.\nCPU: µs per delivery (burst), "
        "'paced CPU' = servers + redis in the paced run; client busy: load generator's share of a core.\n"
        "CPU ratio: (a)'s server CPU per delivery / (servers + redis) CPU per delivery, the steadier figure."
    )
    header = ["configuration", "deliveries/s", "ratio to (a)", "CPU ratio", "servers CPU", "redis CPU"]
    header += ["client busy", "burst p50 ms", "burst p99 ms", "paced p50 ms", "paced p99 ms", "paced CPU"]
    names = {"a": "(a) 1 process, no broker", "b": "(b) 2 processes + redis", "c": "(c) 4 processes + redis"}
    rows = []
    ratios: dict[str, float] = {}
    for label, runs in rounds.items():
        med = median_figures(runs)
        pairs = list(zip(runs, base, strict=True))
        ratios[label] = statistics.median(r["rate"] / b["rate"] for r, b in pairs)
        redis = label != "a"  # (a) has no broker: the idle Redis is not its cost
        cpu_ratio = statistics.median(
            b["server_cpu"] / (r["server_cpu"] + redis * r["redis_cpu"]) for r, b in pairs
        )
        rows.append(
            [
                names[label],
                fmt(med["rate"]),
                f"{ratios[label]:.2f}",
                f"{cpu_ratio:.2f}",
                fmt(med["server_cpu"]),
                fmt(med["redis_cpu"]) if label != "a" else "-",
                f"{med['client_busy']:.0%}",
                *(f"{med[k]:.2f}" for k in ("p50", "p99", "paced_p50", "paced_p99")),
                fmt(med["paced_server_cpu"] + med["paced_redis_cpu"]),
            ]
        )
    print_table(header, rows)
    for label in ("b", "c"):
        verdict = "met" if ratios[label] >= TARGET else "MISSED"
        print(f"target ({label}) >= {TARGET:.0%} of (a)'s deliveries/s: {verdict} ({ratios[label]:.2f})")


def print_send(load: Load, sends: dict[str, Figures]) -> None:
    """The send() table: local vs through the broker."""
    print(
        f"\nsend(): {load.pairs} clients x {load.round_trips} round trips of {load.size} B each, "
        f"one at a time; 2 server processes + redis (A holds the target sockets, B relays the remote ones); "
        f"median of {load.repeat}. CPU: µs per round trip."
    )
    header = ["target socket", "round trips/s", "ratio", "p50 µs", "p99 µs", "servers CPU", "A CPU", "B CPU"]
    header += ["redis CPU", "client busy", "1 client p50 µs", "1 client p99 µs"]
    local = sends["local"]["rate"]
    rows = [
        [
            "same process (local)" if kind == "local" else "other process (broker)",
            fmt(f["rate"]),
            f"{f['rate'] / local:.2f}",
            fmt(f["p50"]),
            fmt(f["p99"]),
            fmt(f["server_cpu"]),
            fmt(f["server0_cpu"]),
            fmt(f["server1_cpu"]),
            fmt(f["redis_cpu"]),
            f"{f['client_busy']:.0%}",
            fmt(f["alone_p50"]),
            fmt(f["alone_p99"]),
        ]
        for kind, f in sends.items()
    ]
    print_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; serve (in a child) or run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one round: a smoke run")
    parser.add_argument(
        "--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server", help="executable"
    )
    parser.add_argument(
        "--profile", metavar="PREFIX", help="cProfile every server process into PREFIX.<pid> (slows them)"
    )
    parser.add_argument(
        "--part", choices=("all", "broadcast", "send"), default="all", help="which measurements to take"
    )
    for field in dataclasses.fields(Load):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=float if field.name in ("rate", "timeout") else positive_int,
            default=None,
            help=f"default {field.default} ({getattr(QUICK, field.name)} with --quick)",
        )
    # The server process's own flags (the parent passes them).
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="rtt", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_main(args.broker, args.prefix, args.profile)
        return 0
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Load)}
    load = dataclasses.replace(
        QUICK if args.quick else Load(), **{k: v for k, v in overrides.items() if v is not None}
    )
    raise_fd_limit()
    print(
        f"Python {sys.version.split()[0]} on {sys.platform}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    try:
        asyncio.run(run(load, args.redis_server, args.profile, args.part))
    except TimeoutError:
        parser.exit(1, f"a measurement took longer than --timeout {load.timeout} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
