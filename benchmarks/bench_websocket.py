"""WebSocket engines side by side: a library-free floor, websockets, rtt-ws, rtt-picows, picows, Node ws.

One run, one load generator (picows's Cython client on uvloop, in this
process), every server in its own process speaking the harness's control
protocol (``harness.py``). Measures, each repeated with the servers taking
turns and fresh processes every repeat:

- **echo**: 50 clients, 64-byte text messages, each client awaiting its echo
  before sending again: round trips/s and server CPU per round trip;
- **broadcast**: 500 clients, the server broadcasts 200 messages of 64 bytes:
  server CPU per delivery;
- **idle**: RSS growth per idle connection over 2,000 connections.

Server CPU is ``utime + stime`` from ``/proc/<pid>/stat`` (every thread of the
process), the delta over the measured window. Printed: medians, the ratio of
each figure to ``floor`` (median of the per-repeat ratios), and issue 14's
targets for rtt-picows, met or missed. ``--profile FILE`` instead runs the
rtt-picows server under cProfile and prints where its time goes. Linux only.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_websocket.py                  # every server, about 5 min
    /work/venv/bin/python benchmarks/bench_websocket.py --quick          # smoke run
    /work/venv/bin/python benchmarks/bench_websocket.py --servers floor,rtt-picows
    /work/venv/bin/python benchmarks/bench_websocket.py --loop uvloop,asyncio   # what uvloop gives each
    /work/venv/bin/python benchmarks/bench_websocket.py --profile /tmp/rtt-picows
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

HERE: Final = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a child with ``python benchmarks/bench_websocket.py``
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from harness import HOST, BenchServer, ServerProcess, fmt, positive_int, print_table  # noqa: E402
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect  # noqa: E402

import rtt  # noqa: E402

NODE_SERVER: Final = HERE / "node" / "ws_server.mjs"
NODE_WS_PACKAGE: Final = HERE.parent / "tests" / "node" / "node_modules" / "ws" / "package.json"
LOOPS: Final = ("uvloop", "asyncio")
SERVERS: Final = {
    "floor": "library-free asyncio.Protocol server written for this benchmark (the floor)",
    "websockets": "websockets 17 asyncio server, as benchmarks/pairs/ws.py's raw side",
    "rtt-ws": 'rtt.load("ws"): rtt over websockets',
    "rtt-picows": 'rtt.load("picows"): rtt over picows',
    "picows": "picows's own echo/broadcast server, configured as rtt-picows configures picows",
    "node-ws": "Node's ws 8 (benchmarks/node/ws_server.mjs), one Node process",
}
#: rtt's defaults; every Python server takes the same message size limit.
_DEFAULTS: Final = rtt.ServerOptions()


# -- The floor: a WebSocket server with no library ---------------------------------------

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD: Final = 16384


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked, FIN set), RFC 6455 5.2."""
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 65536:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big") + payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # XOR of two big integers: one C-level operation for the whole payload, not a loop per byte.
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


class _FloorConn(asyncio.Protocol):
    """One connection of :class:`FloorServer`: the upgrade, then frames."""

    __slots__ = ("buffer", "closing", "open", "server", "transport")

    def __init__(self, server: FloorServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if self.open:
            self._frames(data)
        else:
            self._upgrade(data)

    def _upgrade(self, data: bytes) -> None:
        assert self.transport is not None
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > _MAX_HEAD:
                self._refuse(b"431 Request Header Fields Too Large")
            else:
                self.buffer = data
            return
        lines = data[:end].split(b"\r\n")
        key = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if not lines[0].startswith(b"GET ") or not key:
            self._refuse(b"400 Bad Request")
            return
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.open = True
        self.server.conns.add(self)
        if len(data) > end + 4:
            self._frames(data[end + 4 :])

    def _refuse(self, status: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.transport.close()

    def _frames(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        size, at = len(data), 0
        while size - at >= 2 and not self.closing:
            first, second = data[at], data[at + 1]
            length, head = second & 0x7F, at + 2
            if length == 126:
                if size - at < 4:
                    break
                length, head = int.from_bytes(data[at + 2 : at + 4], "big"), at + 4
            elif length == 127:
                if size - at < 10:
                    break
                length, head = int.from_bytes(data[at + 2 : at + 10], "big"), at + 10
            if not second & 0x80 or first & 0x70:
                self._fail(1002)  # a client frame must be masked (5.1); no extension sets RSV bits
                return
            if length > _DEFAULTS.max_message_size:
                self._fail(1009)
                return
            end = head + 4 + length
            if end > size:
                break
            payload = _unmask(data[head + 4 : end], data[head : head + 4])
            at = end
            opcode = first & 0x0F
            if not first & 0x80 or opcode == 0:
                self._fail(1003)  # no fragmented messages: the load generator sends none
                return
            if opcode == 1:
                try:
                    payload.decode()  # RFC 6455 8.1: a text message must be UTF-8
                except UnicodeDecodeError:
                    self._fail(1007)
                    return
                transport.write(_frame(1, payload))
            elif opcode == 2:
                transport.write(_frame(2, payload))
            elif opcode == 8:
                self.closing = True
                transport.write(_frame(8, payload[:2]))  # echo the peer's code (5.5.1)
                transport.close()
            elif opcode == 9:
                transport.write(_frame(10, payload))
            elif opcode != 10:
                self._fail(1002)
                return
        if at < size:
            self.buffer = data[at:]

    def _fail(self, code: int) -> None:
        assert self.transport is not None
        self.closing = True
        self.transport.write(_frame(8, code.to_bytes(2, "big")))
        self.transport.close()


class FloorServer:
    """The floor: a WebSocket server with no library, written for this benchmark.

    It exists because issue 14 measures every engine against it: the least a
    Python asyncio server can spend per message on this machine, with the
    RFC 6455 handshake and framing done by hand on an ``asyncio.Protocol``
    (masked client frames, text and binary, ping, close; text checked as
    UTF-8; no fragments, no extensions, no limits beyond the message size).
    It is just correct enough for the load generator, not a server to use.
    Broadcast encodes the frame once and writes it to every connection.
    """

    def __init__(self) -> None:
        self.conns: set[_FloorConn] = set()
        self._listener: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0."""
        self._listener = await asyncio.get_running_loop().create_server(lambda: _FloorConn(self), HOST, 0)
        return int(self._listener.sockets[0].getsockname()[1])

    def connections(self) -> int:
        """Upgraded connections."""
        return len(self.conns)

    async def broadcast(self, data: str) -> None:
        """One frame, written to every open connection."""
        frame = _frame(1, data.encode())
        for conn in self.conns:
            if not conn.closing and conn.transport is not None:
                conn.transport.write(frame)

    async def close(self) -> None:
        """Close the listener and drop every connection."""
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.abort()
        if self._listener is not None:
            await self._listener.wait_closed()


# -- picows's own server --------------------------------------------------------------------

_PICOWS_READ_BUFFER: Final = 1024
"""picows's first read buffer, as rtt-picows sets it (rtt_picows/server.py, ``_READ_BUFFER``)."""
_HEADROOM: Final = 14


class _PicowsEcho(WSListener):
    def __init__(self, server: PicowsServer) -> None:
        self.server = server

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.server.conns.add(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            transport.send(kind, frame.get_payload_as_memoryview())
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.server.conns.discard(transport)


class PicowsServer:
    """picows's own server, what a user would write without rtt, configured as rtt-picows configures picows.

    Echo: send the frame's payload back from picows's callback. Broadcast:
    one frame built once and written to every connection with
    ``send_reuse_external_bytearray``, as rtt-picows does. No auto-ping, no
    aiofastnet (rtt-picows listens with the loop's own ``create_server``),
    rtt's message size limit and rtt-picows's first read buffer.
    """

    def __init__(self) -> None:
        self.conns: set[WSTransport] = set()
        self._listener: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1, port 0."""
        from picows import ws_create_server

        self._listener = await ws_create_server(
            lambda request: _PicowsEcho(self),
            HOST,
            0,
            max_frame_size=_DEFAULTS.max_message_size,
            read_buffer_init_size=_PICOWS_READ_BUFFER,
            use_aiofastnet=False,
        )
        return int(self._listener.sockets[0].getsockname()[1])

    def connections(self) -> int:
        """Open connections."""
        return len(self.conns)

    async def broadcast(self, data: str) -> None:
        """One frame for every connection: picows writes the header into the headroom, the same each time."""
        frame = bytearray(_HEADROOM)
        frame += data.encode()
        for ws in self.conns:
            if not (ws.is_close_frame_sent or ws.is_disconnected):
                ws.send_reuse_external_bytearray(WSMsgType.TEXT, frame, _HEADROOM)

    async def close(self) -> None:
        """Close the listener and drop every connection."""
        if self._listener is not None:
            self._listener.close()
        for ws in list(self.conns):
            ws.disconnect(graceful=False)
        if self._listener is not None:
            await self._listener.wait_closed()


# -- Server processes --------------------------------------------------------------------------


def _factory(name: str) -> Callable[[], BenchServer]:
    if name == "floor":
        return FloorServer
    if name == "picows":
        return PicowsServer
    if name == "websockets":
        from pairs.ws import RawWsServer

        return RawWsServer
    if name in ("rtt-ws", "rtt-picows"):
        transport = name.removeprefix("rtt-")
        return lambda: harness.RttBenchServer(transport)
    raise ValueError(f"no Python server named {name!r}")


def child_main(name: str, loop: str) -> None:
    """A server process: ``name`` on ``loop``, answering the harness's commands, plus ``profile on|off``."""
    harness.raise_fd_limit()
    # CPU time, not the default wall clock: on a shared machine a preempted call would be charged the wait.
    profiler = cProfile.Profile(time.thread_time_ns, 1e-9)

    def profile(words: list[str]) -> str:
        if words[1:2] == ["on"]:
            profiler.enable()
        else:
            profiler.disable()
            profiler.dump_stats(words[2])
            profiler.clear()
        return "done"

    serving = harness.serve(_factory(name), {"profile": profile})
    if loop == "uvloop":
        import uvloop

        uvloop.run(serving)
    else:
        asyncio.run(serving)


@dataclass(frozen=True, slots=True)
class Spec:
    """A server to measure: which one, on which event loop (``node-ws`` has its own)."""

    name: str
    loop: str

    @property
    def label(self) -> str:
        """The row label: the name, with the loop when it is not uvloop."""
        return self.name if self.loop == "uvloop" or self.name == "node-ws" else f"{self.name} ({self.loop})"

    def argv(self) -> list[str]:
        """The child's command line."""
        if self.name == "node-ws":
            return [shutil.which("node") or "node", str(NODE_SERVER)]
        return [sys.executable, str(Path(__file__).resolve()), "--child", self.name, "--loop", self.loop]


def stat_cpu(pid: int) -> float:
    """``utime + stime`` of process ``pid`` in seconds (every thread), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(server: ServerProcess, count: int = 0, quiet: float = 0.1, limit: float = 10.0) -> None:
    """Wait until ``count`` clients are connected and the server has stopped spending CPU.

    A server may still be tearing down the last measure's connections after
    its count drops; that work must not land in the next window.
    """
    await server.wait_count(count)
    deadline = time.monotonic() + limit
    before = stat_cpu(server.pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = stat_cpu(server.pid)
        if now == before:
            return
        before = now


# -- The load generator: picows's client --------------------------------------------------------


class _Client(WSListener):
    """One load-generator connection; what it does with a message is up to the current measure."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.left = 0
        self.on_message: Callable[[_Client], None] = _ignore
        self.on_lost: Callable[[], None] = _nothing

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            self.on_message(self)
        elif kind is WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.on_lost()


def _ignore(client: _Client) -> None:
    pass


def _nothing() -> None:
    pass


async def connect_many(port: int, count: int, batch: int = 100) -> list[_Client]:
    """Open ``count`` clients, ``batch`` at a time so the listen backlog never overflows."""
    clients: list[_Client] = []
    try:
        for done in range(0, count, batch):
            pairs = await asyncio.gather(
                *(ws_connect(_Client, f"ws://{HOST}:{port}/") for _ in range(min(batch, count - done)))
            )
            for _, listener in pairs:
                if not isinstance(listener, _Client):
                    raise RuntimeError(f"ws_connect gave {listener!r}, not the benchmark's listener")
                clients.append(listener)
    except BaseException:
        await close_all(clients)
        raise
    return clients


async def close_all(clients: Sequence[_Client], timeout: float = 10.0) -> None:
    """Close every client with a closing handshake; drop any still open after ``timeout``."""
    transports = [c.transport for c in clients if c.transport is not None]
    for client in clients:
        client.on_message, client.on_lost = _ignore, _nothing
    for ws in transports:
        if not (ws.is_close_frame_sent or ws.is_disconnected):
            ws.send_close(WSCloseCode.OK)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(ws.wait_disconnected() for ws in transports))
    except TimeoutError:
        for ws in transports:
            ws.disconnect(graceful=False)


class _Window:
    """One measured window: wall clock, server CPU, this process's CPU."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.wall = time.perf_counter()
        self.cpu = stat_cpu(server.pid)
        self.own = time.process_time()

    def close(self, messages: int) -> dict[str, float]:
        """Rate per second, server CPU µs per message, and how busy the load generator was (0-1)."""
        wall = time.perf_counter() - self.wall
        return {
            "rate": messages / wall,
            "cpu": (stat_cpu(self.server.pid) - self.cpu) * 1e6 / messages,
            "client": (time.process_time() - self.own) / wall,
        }


def _failed(done: asyncio.Future[None]) -> Callable[[], None]:
    def lost() -> None:
        if not done.done():
            done.set_exception(ConnectionError("the server dropped a connection during the measure"))

    return lost


async def _echo_round(clients: Sequence[_Client], round_trips: int, payload: bytes) -> None:
    # Each echo sends the next message from picows's callback: no task, no future per message,
    # so the load generator spends as little as it can per round trip.
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pending = len(clients)

    def got(client: _Client) -> None:
        nonlocal pending
        client.left -= 1
        if client.left:
            assert client.transport is not None
            client.transport.send(WSMsgType.TEXT, payload)
        else:
            pending -= 1
            if not pending and not done.done():
                done.set_result(None)

    for client in clients:
        client.left, client.on_message, client.on_lost = round_trips, got, _failed(done)
    for client in clients:
        assert client.transport is not None
        client.transport.send(WSMsgType.TEXT, payload)
    await done


async def _received(clients: Sequence[_Client], each: int, start: Callable[[], Awaitable[object]]) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pending = len(clients) * each

    def got(client: _Client) -> None:
        nonlocal pending
        pending -= 1
        if not pending and not done.done():
            done.set_result(None)

    for client in clients:
        client.on_message, client.on_lost = got, _failed(done)
    await asyncio.gather(start(), done)


@dataclass(frozen=True, slots=True)
class Load:
    """The counts of a run; every wait is bounded by ``timeout``."""

    echo_clients: int = 50
    round_trips: int = 1000
    fanout_clients: int = 500
    broadcasts: int = 200
    idle_clients: int = 2000
    size: int = 64
    repeat: int = 5
    timeout: float = 60.0


QUICK: Final = Load(
    echo_clients=10, round_trips=100, fanout_clients=50, broadcasts=20, idle_clients=100, repeat=1, timeout=20
)


async def measure_echo(server: ServerProcess, load: Load) -> dict[str, float]:
    """Round trips/s and server CPU µs per round trip: each client awaits its echo before the next."""
    clients = await connect_many(server.port, load.echo_clients)
    try:
        await server.wait_count(load.echo_clients)
        payload = b"x" * load.size
        await _echo_round(clients, max(1, load.round_trips // 10), payload)  # warm-up, not measured
        window = _Window(server)
        await _echo_round(clients, load.round_trips, payload)
        return window.close(load.echo_clients * load.round_trips)
    finally:
        await close_all(clients)
        await settle(server)


async def measure_fanout(server: ServerProcess, load: Load) -> dict[str, float]:
    """Deliveries/s and server CPU µs per delivery: the clock runs until every client has every message."""
    clients = await connect_many(server.port, load.fanout_clients)
    try:
        await server.wait_count(load.fanout_clients)
        warm = max(1, load.broadcasts // 20)
        await _received(clients, warm, lambda: server.command("broadcast", warm, load.size))
        window = _Window(server)
        await _received(
            clients, load.broadcasts, lambda: server.command("broadcast", load.broadcasts, load.size)
        )
        return window.close(load.fanout_clients * load.broadcasts)
    finally:
        await close_all(clients)
        await settle(server)


async def measure_idle(server: ServerProcess, load: Load) -> dict[str, float]:
    """KiB of server RSS per idle connection: the growth from ``idle_clients`` connections, divided."""
    # One live connection first, so one-time costs (lazy imports, first buffers) are not charged
    # to the idle ones.
    warm = await connect_many(server.port, 1)
    clients: list[_Client] = []
    try:
        await _echo_round(warm, 1, b"warm-up")
        await settle(server, 1)
        before = server.rss_kib()
        clients = await connect_many(server.port, load.idle_clients)
        await server.wait_count(load.idle_clients + 1)
        return {"kib": (server.rss_kib() - before) / load.idle_clients}
    finally:
        await close_all(clients + warm)
        await settle(server)


MEASURES: Final = {"idle": measure_idle, "echo": measure_echo, "fanout": measure_fanout}
Results = dict[str, dict[str, list[dict[str, float]]]]
"""measure -> server label -> one figures dict per repeat."""


async def run(specs: Sequence[Spec], load: Load) -> Results:
    """Every measure on every server, ``load.repeat`` times, the servers taking turns.

    Each repeat starts every server in a fresh process and rotates the order,
    so a busy neighbour or a warm cache favours no server in particular.
    Memory goes first, while the processes are fresh.
    """
    results: Results = {m: {s.label: [] for s in specs} for m in MEASURES}
    for i in range(load.repeat):
        order = [*specs[i % len(specs) :], *specs[: i % len(specs)]]
        async with contextlib.AsyncExitStack() as stack:
            servers: dict[str, ServerProcess] = {}
            for spec in order:
                process = ServerProcess(spec.label, "raw", load.timeout, spec.argv())
                servers[spec.label] = await stack.enter_async_context(process)
            took = []
            for measure, function in MEASURES.items():
                start = time.monotonic()
                for spec in order:
                    async with asyncio.timeout(load.timeout):
                        results[measure][spec.label].append(await function(servers[spec.label], load))
                took.append(f"{measure} {time.monotonic() - start:.0f} s")
        print(f"  repeat {i + 1}/{load.repeat} done: {', '.join(took)}", file=sys.stderr, flush=True)
    return results


# -- Report ---------------------------------------------------------------------------------------


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _ratios(results: Results, measure: str, key: str, label: str, base: str) -> list[float]:
    """Per-repeat ratios of ``label``'s figure to ``base``'s (the same repeat)."""
    pairs = zip(results[measure][label], results[measure][base], strict=True)
    return [a[key] / b[key] for a, b in pairs if b[key]]


def _ratio_cells(results: Results, measure: str, key: str, label: str, base: str | None) -> list[str]:
    if base is None or base not in results[measure]:
        return ["-", "-"]
    ratios = _ratios(results, measure, key, label, base)
    if not ratios:
        return ["-", "-"]
    return [f"{statistics.median(ratios):.2f}", f"{min(ratios):.2f}-{max(ratios):.2f}"]


def _base(name: str, spec: Spec, labels: set[str]) -> str | None:
    """The server ``name`` to compare ``spec`` with: on the same loop, else on uvloop, else none."""
    same = Spec(name, spec.loop).label
    return same if same in labels else (name if name in labels else None)


def environment() -> list[str]:
    """Lines saying what ran where, for a paste-able report."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    node_ws = json.loads(NODE_WS_PACKAGE.read_text())["version"] if NODE_WS_PACKAGE.exists() else "missing"
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}; rtt at {commit or 'unknown'}",
        f"uvloop {version('uvloop')}, picows {version('picows')}, websockets {version('websockets')}, "
        f"Node {node or 'missing'} with ws {node_ws}",
    ]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(specs: Sequence[Spec], load: Load, results: Results) -> None:
    """Print the three tables and issue 14's targets."""
    labels = {s.label for s in specs}
    print(
        f"\nmedian of {load.repeat} run(s); 'x floor', 'x rtt-ws': median of the per-run ratios to that "
        "server on the same loop ('range': their spread); CPU = utime+stime of the server process"
    )
    print(
        f"\necho: {load.echo_clients} clients, {load.size} B text, each awaiting its echo, "
        f"{load.round_trips:,} round trips each"
    )
    rows = []
    for spec in specs:
        runs, floor = results["echo"][spec.label], _base("floor", spec, labels)
        rows.append(
            [
                spec.label,
                fmt(_median(runs, "rate")),
                *_ratio_cells(results, "echo", "rate", spec.label, _base("rtt-ws", spec, labels))[:1],
                fmt(_median(runs, "cpu")),
                *_ratio_cells(results, "echo", "cpu", spec.label, floor),
                f"{_median(runs, 'client'):.0%}",
            ]
        )
    header = ["server", "round trips/s", "x rtt-ws", "CPU µs/round trip", "x floor", "range", "client busy"]
    print_table(header, rows)

    print(f"\nbroadcast: {load.fanout_clients} clients, {load.broadcasts} broadcasts of {load.size} B")
    rows = []
    for spec in specs:
        runs, floor = results["fanout"][spec.label], _base("floor", spec, labels)
        rows.append(
            [
                spec.label,
                fmt(_median(runs, "rate")),
                fmt(_median(runs, "cpu")),
                *_ratio_cells(results, "fanout", "cpu", spec.label, floor),
                f"{_median(runs, 'client'):.0%}",
            ]
        )
    print_table(["server", "deliveries/s", "CPU µs/delivery", "x floor", "range", "client busy"], rows)

    print(f"\nidle: {load.idle_clients:,} idle connections, server RSS growth")
    rows = []
    for spec in specs:
        kib = _median(results["idle"][spec.label], "kib")
        floor = _base("floor", spec, labels)
        rows.append(
            [spec.label, fmt(kib), fmt(kib * 1.024), *_ratio_cells(results, "idle", "kib", spec.label, floor)]
        )
    print_table(["server", "KiB/connection", "KB/connection", "x floor", "range"], rows)
    targets(results, labels)


def targets(results: Results, labels: set[str]) -> None:
    """Issue 14's targets for rtt-picows, on uvloop, where the servers they name were measured."""
    if "rtt-picows" not in labels:
        return
    lines: list[tuple[str, float, float, bool]] = []  # (what, figure, bound, met)

    def median_ratio(measure: str, key: str, base: str) -> float | None:
        if base not in labels:
            return None
        ratios = _ratios(results, measure, key, "rtt-picows", base)
        return statistics.median(ratios) if ratios else None

    if (r := median_ratio("echo", "cpu", "floor")) is not None:
        lines.append(("server CPU per echo round trip <= 1.5x floor", r, 1.5, r <= 1.5))
    if (r := median_ratio("echo", "cpu", "node-ws")) is not None:
        lines.append(("server CPU per echo round trip < node-ws (x node-ws)", r, 1.0, r < 1.0))
    if (r := median_ratio("fanout", "cpu", "floor")) is not None:
        lines.append(("server CPU per broadcast delivery <= 1.2x floor", r, 1.2, r <= 1.2))
    kb = _median(results["idle"]["rtt-picows"], "kib") * 1.024
    lines.append(("memory per idle connection <= 6 KB (KB)", kb, 6.0, kb <= 6.0))
    if (r := median_ratio("echo", "rate", "rtt-ws")) is not None:
        lines.append(("echo round trips/s >= 2x rtt-ws (x rtt-ws)", r, 2.0, r >= 2.0))
    print("\nissue 14's targets for rtt-picows (uvloop):")
    for what, figure, bound, met in lines:
        verdict = "met" if met else f"MISSED by {abs(figure / bound - 1):.0%}"
        print(f"  {what}: {figure:.2f} -> {verdict}")
    if "picows" in labels:
        for measure, unit in (("echo", "round trip"), ("fanout", "delivery")):
            own = [
                a["cpu"] - b["cpu"]
                for a, b in zip(results[measure]["rtt-picows"], results[measure]["picows"], strict=True)
            ]
            print(f"  rtt's own CPU (rtt-picows - picows) per {unit}: {statistics.median(own):.2f} µs")


# -- Profile ------------------------------------------------------------------------------------

GROUPS: Final = (
    "rtt core",
    "rtt_picows",
    "rtt_ws",
    "picows",
    "websockets",
    "uvloop",
    "asyncio",
    "benchmark handler",
    "other",
)


def group_of(key: tuple[str, int, str]) -> str:
    """Which part of the stack a pstats entry belongs to."""
    file, _, function = key
    text = f"{file} {function}"
    for name in ("rtt_picows", "rtt_ws"):
        if f"/{name}/" in file or f"'{name}." in function:
            return name
    if "/rtt/" in file:
        return "rtt core"
    for name in ("picows", "websockets", "uvloop"):
        if name in text:
            return name
    if "asyncio" in text or file.endswith(("selectors.py", "selector_events.py", "_weakrefset.py")):
        return "asyncio"  # a WeakSet is asyncio's registry of tasks on 3.11
    if file.endswith(("harness.py", "bench_websocket.py")):
        return "benchmark handler"
    return "other"


def print_profile(path: str, process_cpu: float, messages: int, unit: str, top: int = 20) -> None:
    """The pstats file's own time grouped by part of the stack, and its top entries."""
    stats = pstats.Stats(path)
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    by_group = dict.fromkeys(GROUPS, 0.0)
    for key, (_, _, tottime, _, _) in entries.items():
        by_group[group_of(key)] += tottime
    profiled = sum(by_group.values())
    print(
        f"process CPU {process_cpu * 1e6 / messages:.2f} µs per {unit} under the profiler; "
        f"profiled {profiled * 1e6 / messages:.2f} µs. A function's own time includes the Cython and C "
        "code it calls that cProfile does not see (picows's send and the socket write are inside the "
        "plugin's _send and _broadcast); the profiler's own cost inflates every figure, so read the shares."
    )
    print_table(
        ["part (own time)", f"µs/{unit}", "share"],
        [[g, f"{t * 1e6 / messages:.2f}", f"{t / profiled:.0%}"] for g, t in by_group.items() if t],
    )
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
    rows = []
    for key, (_, calls, tottime, cumtime, _) in ranked:
        file, line, function = key
        where = f"{Path(file).name}:{line}({function})" if file != "~" else function
        rows.append(
            [where[:90], group_of(key), f"{calls:,}", f"{tottime * 1e6 / messages:.2f}", f"{cumtime:.3f}"]
        )
    print_table(["function", "part", "calls", f"own µs/{unit}", "cum s"], rows)


async def profile(spec: Spec, load: Load, prefix: str) -> None:
    """Echo and broadcast against ``spec`` under cProfile; one pstats file per measure."""
    async with ServerProcess(spec.label, "raw", load.timeout, spec.argv()) as server:
        for measure, unit in (("echo", "round trip"), ("fanout", "delivery")):
            path = f"{prefix}-{measure}.pstats"
            count = load.echo_clients if measure == "echo" else load.fanout_clients
            clients = await connect_many(server.port, count)
            try:
                await server.wait_count(count)
                payload = b"x" * load.size
                async with asyncio.timeout(load.timeout * 4):
                    await server.command("profile", "on")
                    window = _Window(server)
                    if measure == "echo":
                        await _echo_round(clients, load.round_trips, payload)
                        messages = count * load.round_trips
                    else:
                        await _received(
                            clients,
                            load.broadcasts,
                            lambda: server.command("broadcast", load.broadcasts, load.size),
                        )
                        messages = count * load.broadcasts
                    cpu = stat_cpu(server.pid) - window.cpu
                    await server.command("profile", "off", path)
            finally:
                await close_all(clients)
                await settle(server)
            print(f"\n{spec.label} under cProfile, {measure} ({messages:,} messages), pstats in {path}")
            print_profile(path, cpu, messages, unit)


# -- Command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run (or, with ``--child``, be one server process)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help=f"comma-separated, of {', '.join(SERVERS)}"
    )
    parser.add_argument(
        "--loop",
        default="uvloop",
        help="the Python servers' event loop: uvloop, asyncio, or both as 'uvloop,asyncio' (the "
        "load generator always runs on uvloop)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, one repeat")
    parser.add_argument("--profile", metavar="PREFIX", help="profile rtt-picows (or the first of --servers)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for field in dataclasses.fields(Load):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=float if field.name == "timeout" else positive_int,
            default=None,
            help=f"default {field.default} ({getattr(QUICK, field.name)} with --quick)",
        )
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        print("bench_websocket.py needs uvloop (pip install uvloop): it runs on uvloop on both sides")
        return 2
    loops = args.loop.split(",")
    if any(loop not in LOOPS for loop in loops):
        parser.error(f"--loop takes uvloop, asyncio or both, not {args.loop!r}")
    if args.child:
        child_main(args.child, loops[0])
        return 0
    names = args.servers.split(",")
    if unknown := [n for n in names if n not in SERVERS]:
        parser.error(f"unknown server(s) {', '.join(unknown)}; there are {', '.join(SERVERS)}")
    if "node-ws" in names and (shutil.which("node") is None or not NODE_WS_PACKAGE.exists()):
        parser.error("node-ws needs node and tests/node/node_modules (npm ci --prefix tests/node)")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Load) if getattr(args, f.name)}
    load = dataclasses.replace(QUICK if args.quick else Load(), **overrides)
    specs = [Spec(n, loop) for loop in loops for n in names if loop == loops[0] or n != "node-ws"]
    harness.raise_fd_limit()
    print("$ python benchmarks/bench_websocket.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print("\n".join(environment()))
    print(f"load average at start: {load_average()}")
    print("load generator: picows client on uvloop, in the parent process; one server process each:")
    for spec in specs:
        print(f"  {spec.label}: {SERVERS[spec.name]}")
    if args.profile:
        name = "rtt-picows" if args.servers == parser.get_default("servers") else names[0]
        uvloop.run(profile(Spec(name, loops[0]), load, args.profile))
        return 0
    try:
        results = uvloop.run(run(specs, load))
    except TimeoutError:
        parser.exit(1, f"a measurement took longer than --timeout {load.timeout} s\n")
    report(specs, load, results)
    print(f"\nload average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
