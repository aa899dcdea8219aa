"""Wrapped-vs-raw server benchmarks: the machinery each transport issue plugs a pair into.

A :class:`Pair` is two servers that behave alike, each run in its own process:

- ``wrapped``: the transport's rtt server (usually just ``RttBenchServer("ws")``);
- ``raw``: the same server written directly against the transport's library;

plus ``connect``, the one client used against both, so the servers are the
only difference. Every server (:class:`BenchServer`) echoes each message to
its sender, broadcasts on command and counts its connections. The parent
drives the load (:func:`measure`) and reads the child's memory from ``/proc``.

Control protocol, one line each way over the child's stdin and stdout::

    child:  port <n>                   once, when listening on 127.0.0.1
    parent: count                  ->  count <n>
    parent: broadcast <k> <size>   ->  done
    parent closes stdin            ->  child closes its server and exits 0

A child whose parent dies also sees end of file, so it never outlives a run.
Pairs live in ``benchmarks/pairs/<name>.py`` and call :func:`register`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import math
import os
import pkgutil
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import rtt

HOST = "127.0.0.1"
#: glibc malloc thresholds for every server process, both sides alike. By default glibc
#: serves asyncio's 256 KiB socket reads with a fresh mmap (and page faults) until some
#: large free() raises its threshold, which happens to one side or the other by chance and
#: swung echo ratios by 30 % (benchmarks/README.md, pair sockjs). Set GLIBC_TUNABLES to override.
PINNED_MALLOC = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=4194304"
HERE = Path(__file__).resolve().parent
Side = Literal["wrapped", "raw"]
SIDES: tuple[Side, ...] = ("wrapped", "raw")
Figures = dict[str, float]


class BenchServer(Protocol):
    """One side of a pair, as its child process runs it."""

    async def start(self) -> int:
        """Listen on 127.0.0.1 port 0; return the port the OS picked."""

    def connections(self) -> int:
        """How many clients are connected now."""

    async def broadcast(self, data: str) -> None:
        """Send ``data`` to every connected client."""

    async def close(self) -> None:
        """Close every connection and the listener."""


class BenchClient(Protocol):
    """The load generator's client; an :class:`rtt.Client` already fits."""

    async def send(self, data: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Pair:
    """A transport's rtt server and its raw library's equivalent, plus one client for both."""

    name: str
    wrapped: Callable[[], BenchServer]
    raw: Callable[[], BenchServer]
    connect: Callable[[int], Awaitable[BenchClient]]
    """Open one client to the server listening on 127.0.0.1 at this port."""
    description: str = ""
    load: Load | None = None
    """The counts ``bench_compare.py`` uses for this pair by default; ``None``: :class:`Load`'s defaults."""


PAIRS: dict[str, Pair] = {}


def register(pair: Pair) -> Pair:
    """Add ``pair`` to the registry; a pair module calls this at import time."""
    if pair.name in PAIRS:
        raise ValueError(f"benchmark pair {pair.name!r} is registered twice")
    PAIRS[pair.name] = pair
    return pair


def load_pairs() -> dict[str, Pair]:
    """Import every module in ``benchmarks/pairs/`` and return the registry.

    A module whose library is not installed is skipped with a note, so one
    missing optional dependency never stops the other pairs.
    """
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    for module in pkgutil.iter_modules([str(HERE / "pairs")]):
        try:
            importlib.import_module(f"pairs.{module.name}")
        except ImportError as exc:
            print(f"skipping benchmark pair module {module.name!r}: {exc}", file=sys.stderr)
    return dict(PAIRS)


class RttBenchServer:
    """The wrapped side for any rtt transport: echo with ``send``, fan out with ``broadcast``.

    ``transport`` and ``options`` are what :func:`rtt.load` takes.
    """

    def __init__(self, transport: str | rtt.Transport, **options: Any) -> None:
        self._server = rtt.load(transport, **options).server(host=HOST, port=0)
        self._server.on("message", self._echo)

    async def _echo(self, socket: rtt.Socket, data: str | bytes) -> None:
        await self._server.send(socket.id, data)

    async def start(self) -> int:
        """Start the rtt server on 127.0.0.1, port 0."""
        await self._server.start()
        return self._server.address[1]

    def connections(self) -> int:
        """Connected sockets."""
        return len(self._server.sockets)

    async def broadcast(self, data: str) -> None:
        """One rtt broadcast."""
        await self._server.broadcast(data)

    async def close(self) -> None:
        """Close the rtt server."""
        await self._server.close()


# -- Child process ----------------------------------------------------------

_CHILD = f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness; harness.child_main(sys.argv[1:])"


def child_main(argv: Sequence[str]) -> None:
    """Entry point of a server process: ``<pair> <side>``."""
    pair_name, side = argv
    pair = load_pairs()[pair_name]
    raise_fd_limit()
    asyncio.run(_serve(pair.wrapped if side == "wrapped" else pair.raw))


def _reply(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _serve(factory: Callable[[], BenchServer]) -> None:
    await serve(factory)


async def serve(
    factory: Callable[[], BenchServer], extra: dict[str, Callable[[list[str]], str]] | None = None
) -> None:
    """Run a server child: build the server, report its port, answer control commands until stdin ends.

    ``extra`` adds commands of the caller's own: each gets the command's words and returns the reply line.
    """
    extra = extra or {}
    server = factory()  # inside the loop: some libraries want one when built
    port = await server.start()
    try:
        commands = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(commands), sys.stdin
        )
        _reply(f"port {port}")
        while words := (await commands.readline()).decode().split():
            if words[0] == "count":
                _reply(f"count {server.connections()}")
            elif words[0] == "broadcast":
                payload = "x" * int(words[2])
                for _ in range(int(words[1])):
                    await server.broadcast(payload)
                _reply("done")
            elif words[0] in extra:
                _reply(extra[words[0]](words))
            else:
                _reply(f"error unknown command {words[0]!r}")
    finally:
        await server.close()


# -- Parent side ----------------------------------------------------------------


def raise_fd_limit() -> None:
    """Lift the soft open-file limit to the hard one: a thousand sockets pass the common 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used: nanosecond ``schedstat`` of all its threads, else clock ticks."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (FileNotFoundError, PermissionError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB, from ``/proc/<pid>/status`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status (a kernel thread or a zombie?)")


class ServerProcess:
    """One side of a pair running in a child process; an async context manager.

    Every wait is bounded by ``timeout`` seconds; leaving the context always
    ends the child, killing it if it does not exit by itself in time.
    """

    def __init__(
        self, pair: str, side: Side, timeout: float = 10.0, argv: Sequence[str] | None = None
    ) -> None:
        self.pair = pair
        self.side = side
        self.timeout = timeout
        self.argv = list(argv) if argv is not None else [sys.executable, "-c", _CHILD, pair, side]
        """The child's command line: by default the pair's side through :func:`child_main`."""
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        if self._proc is None:
            raise RuntimeError("server process not started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has ended (negative: killed by that signal)."""
        return self._proc.returncode if self._proc is not None else None

    async def start(self) -> None:
        """Spawn the child and wait until it reports its port."""
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", PINNED_MALLOC)},
        )
        try:
            words = await self._read()
            if words[:1] != ["port"]:
                raise RuntimeError(f"{self}: expected 'port <n>', got {words!r}")
            self.port = int(words[1])
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace: float | None = None) -> None:
        """Close the child's stdin so it shuts down; kill it if still alive after ``grace`` s."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), self.timeout if grace is None else grace)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def command(self, *words: object) -> list[str]:
        """Send one control command and return the words of the reply (one at a time)."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("server process not started")
        self._proc.stdin.write((" ".join(map(str, words)) + "\n").encode())
        await self._proc.stdin.drain()
        return await self._read()

    async def connections(self) -> int:
        """The server's connection count."""
        return int((await self.command("count"))[1])

    async def wait_count(self, count: int) -> None:
        """Wait until exactly ``count`` clients are connected; the server sees them after the client does."""
        deadline = time.monotonic() + self.timeout
        while (now := await self.connections()) != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self}: {now} connections, expected {count}")
            await asyncio.sleep(0.02)

    def rss_kib(self) -> int:
        """The child's resident memory in KiB."""
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        """CPU time the child has used so far."""
        return cpu_seconds(self.pid)

    async def _read(self) -> list[str]:
        if self._proc is None or self._proc.stdout is None:
            raise RuntimeError("server process not started")
        line = await asyncio.wait_for(self._proc.stdout.readline(), self.timeout)
        if not line:
            raise RuntimeError(f"{self} closed its output (exit status {self._proc.returncode})")
        return line.decode().split()

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.pair}/{self.side} pid={self._proc.pid if self._proc else None}>"


# -- Load generators (run in the parent) ------------------------------------


async def connect_many(pair: Pair, port: int, count: int, batch: int = 50) -> list[BenchClient]:
    """Open ``count`` clients, ``batch`` at a time so the listen backlog never overflows."""
    clients: list[BenchClient] = []
    try:
        for done in range(0, count, batch):
            results = await asyncio.gather(
                *(pair.connect(port) for _ in range(min(batch, count - done))), return_exceptions=True
            )
            clients.extend(r for r in results if not isinstance(r, BaseException))
            for result in results:
                if isinstance(result, BaseException):
                    raise result
    except BaseException:
        await close_all(clients)
        raise
    return clients


async def close_all(clients: Sequence[BenchClient]) -> None:
    """Close every client, ignoring errors (the server may already be gone)."""
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def echo_rate(
    pair: Pair, server: ServerProcess, clients: int, round_trips: int, size: int
) -> tuple[float, float]:
    """Round trips/s, and server CPU µs per round trip.

    ``clients`` clients each send a message and await its echo, ``round_trips`` times.
    """
    conns = await connect_many(pair, server.port, clients)
    try:
        await server.wait_count(clients)
        payload = "x" * size

        async def run(client: BenchClient) -> None:
            for _ in range(round_trips):
                await client.send(payload)
                await client.recv()

        start, cpu = time.perf_counter(), server.cpu_seconds()
        await asyncio.gather(*(run(c) for c in conns))
        return _figures(clients * round_trips, start, cpu, server)
    finally:
        await close_all(conns)


async def fanout_rate(
    pair: Pair, server: ServerProcess, clients: int, broadcasts: int, size: int
) -> tuple[float, float]:
    """Deliveries/s, and server CPU µs per delivery.

    The server broadcasts ``broadcasts`` messages; timed until every client has them all.
    """
    conns = await connect_many(pair, server.port, clients)
    readers: list[asyncio.Task[None]] = []
    try:
        await server.wait_count(clients)

        async def drain(client: BenchClient) -> None:
            for _ in range(broadcasts):
                await client.recv()

        readers = [asyncio.create_task(drain(c)) for c in conns]
        start, cpu = time.perf_counter(), server.cpu_seconds()
        await server.command("broadcast", broadcasts, size)
        await asyncio.gather(*readers)
        return _figures(clients * broadcasts, start, cpu, server)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await close_all(conns)


def _figures(messages: int, start: float, cpu: float, server: ServerProcess) -> tuple[float, float]:
    # Wall-clock rates on a shared machine mostly measure the client side and
    # the neighbours; the server's own CPU per message is the steadier figure.
    elapsed = time.perf_counter() - start
    return messages / elapsed, (server.cpu_seconds() - cpu) * 1e6 / messages


async def idle_memory(pair: Pair, server: ServerProcess, clients: int) -> float:
    """KiB of server RSS per idle connection: the growth from ``clients`` idle clients, divided."""
    # One live connection first, so one-time costs (lazy imports, first buffers,
    # handler set-up) are paid before the baseline and not charged to the idle ones.
    warm = await connect_many(pair, server.port, 1)
    conns: list[BenchClient] = []
    try:
        await warm[0].send("warm-up")
        await warm[0].recv()
        await server.wait_count(1)
        before = server.rss_kib()
        conns = await connect_many(pair, server.port, clients)
        await server.wait_count(clients + 1)
        return (server.rss_kib() - before) / clients
    finally:
        await close_all(conns + warm)


# -- Runs and reports ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """How much load each measurement applies; every count is bounded, every wait timed."""

    echo_clients: int = 10
    round_trips: int = 1000
    fanout_clients: int = 200
    broadcasts: int = 200
    idle_clients: int = 1000
    size: int = 16
    timeout: float = 60.0
    """Seconds any one measurement may take."""

    def labels(self) -> dict[str, str]:
        """Metric key -> row label."""
        return {
            "echo": f"echo round trips/s ({self.echo_clients} clients)",
            "echo_cpu": "  server CPU µs per round trip",
            "fanout": f"broadcast deliveries/s ({self.fanout_clients} clients)",
            "fanout_cpu": "  server CPU µs per delivery",
            "idle": f"KiB per idle connection ({self.idle_clients})",
        }


async def measure(pair: Pair, servers: dict[Side, ServerProcess], load: Load) -> dict[Side, Figures]:
    """Take every figure on each side, one side right after the other for each metric."""
    figures: dict[Side, Figures] = {side: {} for side in servers}
    # Memory first, while both processes are fresh: later loads leave buffers behind.
    for side, server in servers.items():
        async with asyncio.timeout(load.timeout):
            figures[side]["idle"] = await idle_memory(pair, server, load.idle_clients)
    for side, server in servers.items():
        async with asyncio.timeout(load.timeout):
            rate, cpu = await echo_rate(pair, server, load.echo_clients, load.round_trips, load.size)
        figures[side] |= {"echo": rate, "echo_cpu": cpu}
    for side, server in servers.items():
        async with asyncio.timeout(load.timeout):
            rate, cpu = await fanout_rate(pair, server, load.fanout_clients, load.broadcasts, load.size)
        figures[side] |= {"fanout": rate, "fanout_cpu": cpu}
    return figures


async def compare(pair: Pair, load: Load, repeat: int) -> dict[str, Figures]:
    """Each side's median figures over ``repeat`` runs, and ``ratio``: the median of the runs' ratios.

    Each run starts both sides in fresh processes and measures them back to
    back, alternating which goes first, so a busy neighbour slows both alike
    and the ratio of one run holds even when the absolute figures drift.
    """
    runs: list[dict[Side, Figures]] = []
    for i in range(repeat):
        order = SIDES if i % 2 == 0 else SIDES[::-1]
        async with (
            ServerProcess(pair.name, order[0], load.timeout) as first,
            ServerProcess(pair.name, order[1], load.timeout) as second,
        ):
            runs.append(await measure(pair, {order[0]: first, order[1]: second}, load))
    keys = runs[0]["raw"].keys()
    result: dict[str, Figures] = {
        s: {k: statistics.median(r[s][k] for r in runs) for k in keys} for s in SIDES
    }
    # A raw figure of 0 (RSS that did not grow by a page) has no ratio: nan, printed "-".
    ratios = {k: [r["wrapped"][k] / r["raw"][k] for r in runs if r["raw"][k]] for k in keys}
    result["ratio"] = {k: statistics.median(v) if v else math.nan for k, v in ratios.items()}
    return result


def print_comparison(pair: Pair, load: Load, repeat: int, figures: dict[str, Figures]) -> None:
    """Print one pair's figures and the wrapped/raw ratios."""
    print(f"\npair {pair.name!r}: {pair.description}")
    print(
        f"median of {repeat} run(s), {load.size} B messages; ratio = wrapped / raw, median of per-run ratios"
    )
    rows = [
        [label, fmt(figures["wrapped"][key]), fmt(figures["raw"][key]), fmt(figures["ratio"][key])]
        for key, label in load.labels().items()
    ]
    print_table(["metric", "wrapped", "raw", "ratio"], rows)


def positive_int(text: str) -> int:
    """An argparse type: an int of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def fmt(value: float) -> str:
    """A figure with a sensible precision: thousands separators for big ones, "-" for none."""
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows with the first column left-aligned and the rest right-aligned."""
    table = [list(header), *map(list, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        print("  ".join(cells).rstrip())
