"""``rtt serve --broker`` and ``rtt serve --workers N`` on a real Redis (SPEC.md 16.2, 16.4).

Each test starts its own ``redis-server`` on a free loopback port, runs the
command as a user would, and talks to it with real Python clients. What the
cluster looks like is read from Redis itself: every process subscribes the
channel ``rtt:all`` and, for each socket it holds, ``rtt:s.<id>`` (SPEC.md
13), and rtt-redis keeps each live process's socket count in the key
``rtt:node:<node>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from cli_support import SERVING, START_TIMEOUT, STOP_TIMEOUT, Serving, command_env, rtt_command, run, serving
from redis_support import RedisServer, free_port
from tls_support import NAMES, certificate_authority, client_context

import rtt
from rtt.testing import Proxy, eventually


class Redis:
    """A ``redis-server`` of this test's own, and a client to look into it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def processes(self) -> int:
        """How many rtt processes are joined (subscribed to the broadcast channel)."""
        ((_, count),) = self.client.pubsub_numsub("rtt:all")
        return int(count)

    def sockets(self) -> int:
        """Sockets reachable through the broker: one subscribed channel each."""
        return len(self.client.pubsub_channels("rtt:s.*"))

    def sockets_per_process(self) -> list[int]:
        """The socket count each live process announced, smallest first."""
        keys = self.client.keys("rtt:node:*")
        return sorted(int(count) for count in self.client.mget(keys) if count is not None) if keys else []


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    server = RedisServer(tmp_path)
    server.start()
    looking = Redis(server.port)
    try:
        yield looking
    finally:
        looking.client.close()
        server.stop()


def children(pid: int) -> set[int]:
    """Pids of the live processes whose parent is ``pid`` (from /proc: Linux, as SO_REUSEPORT is)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # The command name in parentheses may hold spaces: the fields after it are plain.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@contextlib.asynccontextmanager
async def cluster(*args: str, stop: int = signal.SIGTERM) -> AsyncIterator[Serving]:
    """``rtt serve ARGS``, which must exit 0 when stopped; a worker left over is killed, even on failure."""
    seen: set[int] = set()
    try:
        async with serving(*args, stop=stop) as served:
            served_pid = served.process.pid
            seen |= children(served_pid)
            yield served
            seen |= children(served_pid)
        # serving() checked the exit status 0 and "rtt: shutting down"; no worker may outlive the parent.
        await eventually(lambda: not any(alive(pid) for pid in seen), timeout=10)
    finally:
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def recv_all(client: rtt.Client, count: int) -> list[str | bytes]:
    return [await asyncio.wait_for(client.recv(), 10) for _ in range(count)]


# -- --workers: one port, several processes, one chat ----------------------------------------


async def test_chat_on_four_workers_reaches_every_client_once(redis_server: Redis) -> None:
    args = (
        "--workers",
        "4",
        "--broker",
        redis_server.url,
        "--app",
        "chat",
        "--transport",
        "ws",
        "--port",
        "0",
    )
    async with cluster(*args) as served:
        assert served.lines[-1].startswith(
            f"rtt: serving ws at {served.url} with 4 workers and the chat page"
        )
        assert redis_server.processes() == 4
        assert len(children(served.process.pid)) == 4
        ws = rtt.load("ws")
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(ws.client(served.url, reconnect=False)) for _ in range(8)
            ]
            # Every socket is reachable once its process subscribed its channel.
            await eventually(lambda: redis_server.sockets() == 8, timeout=10)
            await eventually(lambda: sum(redis_server.sockets_per_process()) == 8, timeout=10)
            counts = redis_server.sockets_per_process()
            assert len(counts) == 4 and counts[-2] > 0, f"8 connections all went to one worker: {counts}"
            got: list[list[str | bytes]] = [[] for _ in clients]
            for k, client in enumerate(clients):
                client.on("message", got[k].append)
            for k, client in enumerate(clients):
                await client.send(f"message {k}")
            await eventually(lambda: all(len(messages) >= 8 for messages in got), timeout=10)
            await asyncio.sleep(0.5)  # room for a duplicate to show up
            expected = sorted(f"message {k}" for k in range(8))
            assert all(sorted(map(str, messages)) == expected for messages in got), got


async def test_a_killed_worker_is_restarted_and_the_cluster_keeps_serving(redis_server: Redis) -> None:
    process = await asyncio.create_subprocess_exec(
        *rtt_command(
            "serve",
            "--workers",
            "2",
            "--broker",
            redis_server.url,
            "--app",
            "chat",
            "-t",
            "ws",
            "--port",
            "0",
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=command_env(),
    )
    workers: set[int] = set()
    try:
        assert process.stdout is not None and process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
        match = SERVING.match(line.strip())
        assert match is not None and match["workers"] == "2", line
        workers = children(process.pid)
        assert len(workers) == 2 and redis_server.processes() == 2
        victim = min(workers)
        index = sorted(workers).index(victim) + 1
        os.kill(victim, signal.SIGKILL)
        said = (await asyncio.wait_for(process.stderr.readline(), 15)).decode().strip()
        assert said == f"rtt: worker {index} (pid {victim}) exited with status -9 (SIGKILL); restarting"
        # Restarted after about a second (at most one restart per second per worker).
        again = (await asyncio.wait_for(process.stderr.readline(), 15)).decode().strip()
        assert again.startswith(f"rtt: worker {index} (pid ") and again.endswith(") is serving again"), again
        now = children(process.pid)
        workers |= now
        assert len(now) == 2 and victim not in now and redis_server.processes() == 2
        ws = rtt.load("ws")
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(ws.client(match["url"], reconnect=False)) for _ in range(4)
            ]
            await eventually(lambda: redis_server.sockets() == 4, timeout=10)
            await clients[0].send("still here")
            for client in clients:
                assert await asyncio.wait_for(client.recv(), 10) == "still here"
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), STOP_TIMEOUT)
        assert process.returncode == 0, err.decode()
        assert err.decode().splitlines() == ["rtt: shutting down"]
        await eventually(lambda: not any(alive(pid) for pid in workers), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_a_signal_while_the_workers_start_stops_them_all() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        process = await asyncio.create_subprocess_exec(
            *rtt_command("serve", "--workers", "2", "--broker", url, "-t", "ws", "--port", "0"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=command_env(),
        )
        workers: set[int] = set()
        try:
            # Both workers are waiting for the broker (for its connect_timeout, 5 s) once they exist.
            await eventually(lambda: len(children(process.pid)) == 2, timeout=START_TIMEOUT)
            workers = children(process.pid)
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), STOP_TIMEOUT)
            assert process.returncode == 0, err.decode()
            assert out.decode() == "" and err.decode().splitlines() == ["rtt: shutting down"]
            await eventually(lambda: not any(alive(pid) for pid in workers), timeout=10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


# -- A rolling restart with resume on: nothing lost, nothing repeated (SPEC.md 17.5) -------------

#: Clients of the chat, and the messages each sends a second.
ROLLING_CLIENTS = 6
ROLLING_RATE = 10
ROLLING_POLICY = {"min_delay": 0.05, "max_delay": 0.5, "jitter": 0.5}


async def restart(process: asyncio.subprocess.Process, redis_server: Redis, victim: int) -> None:
    """SIGTERM one worker and wait until its replacement serves and has joined the broker."""
    os.kill(victim, signal.SIGTERM)
    await eventually(lambda: not alive(victim), timeout=STOP_TIMEOUT)
    await eventually(
        lambda: len(children(process.pid)) == 2 and redis_server.processes() == 2, timeout=START_TIMEOUT
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("severs", [0, 5], ids=["restarts", "restarts-and-severs"])
async def test_a_rolling_restart_of_two_workers_loses_and_repeats_nothing(
    redis_server: Redis, tmp_path: Path, severs: int
) -> None:
    """Both workers of ``rtt serve --workers 2`` restarted one after the other under chat traffic.

    Each worker pushes its sessions to the other as it shuts down (SPEC.md 17.5) and its clients
    resume wherever the kernel sends them: every client keeps its socket id and receives every
    client's numbered messages once and in order, each handled (broadcast) once.
    """
    config = tmp_path / "resume.toml"
    config.write_text("[options]\nresume_window = 30\n")
    args = ("--workers", "2", "--broker", redis_server.url, "--app", "chat", "-t", "ws", "--port", "0")
    async with cluster(*args, "--config", str(config)) as served, contextlib.AsyncExitStack() as stack:
        first = children(served.process.pid)
        assert len(first) == 2
        host, port = served.url.split("://")[1].split("/")[0].rsplit(":", 1)
        proxy = await stack.enter_async_context(Proxy(host, int(port)))
        ws = rtt.load("ws")
        clients = [
            await stack.enter_async_context(ws.client(proxy.url_for(served.url), reconnect=ROLLING_POLICY))
            for _ in range(ROLLING_CLIENTS)
        ]
        got: list[list[str | bytes]] = [[] for _ in clients]
        lost: list[object] = []
        reconnects = [0] * len(clients)
        for k, client in enumerate(clients):
            client.on("message", got[k].append)
            client.on("session_lost", lost.append)
            client.on("reconnected", lambda _attempt, k=k: reconnects.__setitem__(k, reconnects[k] + 1))
        await eventually(lambda: all(client.socket_id is not None for client in clients), timeout=10)
        ids = [client.socket_id for client in clients]
        await eventually(lambda: redis_server.sockets() == ROLLING_CLIENTS, timeout=10)
        sent = [0] * len(clients)

        talking = True

        async def talk(k: int) -> None:
            # Stopped by the flag, not cancelled: a send cancelled half-way may or may not be queued.
            while talking:
                await clients[k].send(f"{k}-{sent[k] + 1}")
                sent[k] += 1
                await asyncio.sleep(1 / ROLLING_RATE)

        async def sever_now_and_then() -> None:
            for _ in range(severs):
                await asyncio.sleep(1.0)
                proxy.sever()

        talkers = [asyncio.create_task(talk(k)) for k in range(len(clients))]
        try:
            await asyncio.sleep(1.0)
            for victim in sorted(first):
                severing = asyncio.create_task(sever_now_and_then())
                await restart(served.process, redis_server, victim)
                await severing
                await asyncio.sleep(1.0)
        finally:
            talking = False
            async with asyncio.timeout(30):
                await asyncio.gather(*talkers)
        assert not (first & children(served.process.pid)), "a worker was not restarted"

        def expected(k: int) -> list[str]:
            return [f"{k}-{n}" for n in range(1, sent[k] + 1)]

        def from_each(messages: list[str | bytes], k: int) -> list[str | bytes]:
            return [m for m in messages if isinstance(m, str) and m.startswith(f"{k}-")]

        def complete() -> bool:
            return all(len(messages) >= sum(sent) for messages in got)

        def missing() -> list[tuple[int, int, list[str]]]:
            # Per receiver: how many it lacks and the first few, to tell a gap from a slow end.
            gaps = []
            for r, messages in enumerate(got):
                have = set(messages)
                lacking = [m for k in range(len(clients)) for m in expected(k) if m not in have]
                if lacking:
                    gaps.append((r, len(lacking), lacking[:5]))
            return gaps

        try:
            await eventually(complete, timeout=30)
        except AssertionError:
            detail = f"lacking: {missing()}; session_lost: {lost}; reconnects: {reconnects}; ids {ids}"
            raise AssertionError(detail) from None
        await asyncio.sleep(0.5)  # a duplicate would arrive now
        for messages in got:
            for k in range(len(clients)):
                assert from_each(messages, k) == expected(k)
            assert len(messages) == sum(sent)
        assert lost == []
        assert [client.socket_id for client in clients] == ids
        # Every client was on one of the two workers, so each was moved at least once.
        assert all(count >= 1 for count in reconnects), reconnects


# -- Errors: one line each ----------------------------------------------------------------------


def test_workers_without_a_broker_is_a_usage_error() -> None:
    result = run("serve", "-t", "ws", "--workers", "2", "--port", "0")
    assert result.status == 2
    line = result.error_line()
    assert "--workers needs a broker" in line and "--broker URL" in line and "RTT_BROKER" in line


def test_unreachable_broker_is_a_failure(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    for args in (["-t", "ws"], ["-t", "ws", "--workers", "3"], ["-t", "engineio"]):
        result = run("serve", *args, "--broker", url, "--port", "0")
        assert result.status == 1, (args, result.err)
        line = result.error_line()
        assert f"broker 'redis' at {url}" in line and "failed to start" in line


def test_a_port_in_use_stops_every_worker(redis_server: Redis) -> None:
    with socket.socket() as taken:  # without SO_REUSEPORT: no worker can share it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "-t", "ws", "--workers", "3", "--broker", redis_server.url, "--port", str(port))
    assert result.status == 1
    line = result.error_line()
    assert f"cannot serve ws on 127.0.0.1:{port}" in line and "in use" in line
    assert redis_server.processes() == 0  # every worker left the broker


FALLBACK_PLUGIN = """\
from rtt import Capabilities
from rtt_mock import MockTransport


class PollingTransport(MockTransport):
    name = "polling"
    capabilities = Capabilities(binary=True, http_fallbacks=True)


class RoutingTransport(PollingTransport):
    name = "routing"
    routes_sessions = True
"""


def fallback_plugins(directory: Path) -> dict[str, str]:
    """Install (on a PYTHONPATH) ``polling``, with HTTP fallbacks, and ``routing``, which also routes them."""
    (directory / "rtt_fallbacks.py").write_text(FALLBACK_PLUGIN)
    info = directory / "rtt_fallbacks-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rtt-fallbacks\nVersion: 0.1.0\n")
    entry_points = "polling = rtt_fallbacks:PollingTransport\nrouting = rtt_fallbacks:RoutingTransport\n"
    (info / "entry_points.txt").write_text(f"[rtt.transports]\n{entry_points}")
    return command_env({"PYTHONPATH": str(directory)})


def test_http_fallbacks_without_session_routing_refuse_several_workers(tmp_path: Path) -> None:
    env = fallback_plugins(tmp_path)
    result = run("serve", "-t", "polling", "--workers", "2", "--broker", "redis://127.0.0.1:1/0", env=env)
    assert result.status == 2
    line = result.error_line()
    assert "polling cannot be served by several workers" in line
    assert "one worker" in line and "sticky sessions" in line
    # One worker, or a transport that routes its sessions, gets as far as the (unreachable) broker.
    for args in (["-t", "polling", "--workers", "1"], ["-t", "routing", "--workers", "2"]):
        result = run("serve", *args, "--broker", "redis://127.0.0.1:1/0", "--port", "0", env=env)
        assert result.status == 1 and "failed to start" in result.error_line(), args


def test_the_refusal_follows_capabilities_and_routes_sessions() -> None:
    from rtt.cli import _workers_refusal

    for name in ("ws", "mock", "tcpline"):
        assert _workers_refusal(rtt.load(name)) is None
    for name in ("engineio", "sockjs"):
        transport = rtt.load(name)
        routes = getattr(type(transport), "routes_sessions", False)
        assert (_workers_refusal(transport) is None) == routes, name


def test_bad_broker_names_and_urls_are_usage_errors(tmp_path: Path) -> None:
    for broker, expected in [("nope", "unknown broker 'nope'"), ("nope://host/0", "unknown broker 'nope'")]:
        result = run("serve", "-t", "ws", "--broker", broker)
        assert result.status == 2
        assert f"--broker: {expected}" in result.error_line()
    env = command_env({"RTT_BROKER": "nope://host/0"})
    result = run("serve", "-t", "ws", env=env)
    assert result.status == 2 and "unknown broker 'nope'" in result.error_line()


# -- --broker: one process joined to a broker -----------------------------------------------------


@pytest.mark.parametrize(("name", "source"), [("ws", "flag"), ("engineio", "config"), ("ws", "environment")])
async def test_one_process_with_a_broker(redis_server: Redis, tmp_path: Path, name: str, source: str) -> None:
    """The broker from --broker (over the file's), the config file's broker table, or RTT_BROKER."""
    config = tmp_path / "rtt.toml"
    args = ["-t", name, "--app", "chat", "--port", "0"]
    env = command_env()
    if source == "flag":
        config.write_text('broker = "redis://127.0.0.1:1/0"\n')  # overridden by --broker
        args += ["--config", str(config), "--broker", redis_server.url]
    elif source == "config":
        config.write_text(f'[broker]\nbroker = "{redis_server.url}"\noptions = {{ prefix = "rtt" }}\n')
        args += ["--config", str(config)]
    else:
        env["RTT_BROKER"] = redis_server.url
    async with serving(*args, env=env) as served:
        assert served.lines[-1].startswith(f"rtt: serving {name} at {served.url} and the chat page")
        assert redis_server.processes() == 1
        transport = rtt.load(name)
        async with transport.client(served.url) as one, transport.client(served.url) as two:
            await eventually(lambda: redis_server.sockets() == 2, timeout=10)
            await eventually(lambda: redis_server.sockets_per_process() == [2], timeout=10)
            await one.send("through the broker's process")
            assert await recv_all(two, 1) == ["through the broker's process"]
            assert await recv_all(one, 1) == ["through the broker's process"]


async def test_workers_run_on_the_loop_of_the_config_file(redis_server: Redis, tmp_path: Path) -> None:
    """``loop = "uvloop"`` reaches every worker: each reports the class of the loop it runs on."""
    config = tmp_path / "rtt.toml"
    config.write_text(f'transport = "ws"\nloop = "uvloop"\nbroker = "{redis_server.url}"\n')
    async with cluster("--config", str(config), "--workers", "2", "--app", "chat", "--port", "0") as served:
        assert served.lines[-2] == f"rtt: event loop of the workers: uvloop.Loop (uvloop {version('uvloop')})"
        assert redis_server.processes() == 2
        ws = rtt.load("ws")
        async with ws.client(served.url) as one, ws.client(served.url) as two:
            await eventually(lambda: redis_server.sockets() == 2, timeout=10)
            await one.send("on uvloop")
            assert await recv_all(two, 1) == ["on uvloop"]


async def test_workers_serve_tls(redis_server: Redis, tmp_path: Path) -> None:
    """--certfile/--keyfile reach every worker (wss://) and the parent's chat page (https://)."""
    ca = certificate_authority()
    issued = ca.issue_cert(*NAMES)
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(certfile))
    issued.private_key_pem.write_to_path(str(keyfile))
    args = ("-t", "ws", "--workers", "2", "--broker", redis_server.url, "--app", "chat", "--port", "0")
    async with cluster(*args, "--certfile", str(certfile), "--keyfile", str(keyfile)) as served:
        assert served.url.startswith("wss://127.0.0.1:") and served.page is not None
        assert served.page.startswith("https://127.0.0.1:")
        ws, trusting = rtt.load("ws"), client_context(ca)
        async with contextlib.AsyncExitStack() as stack:
            # Both workers listen with the certificate (neither would have reported ready without it);
            # the kernel spreads these clients among them.
            assert redis_server.processes() == 2
            clients = [await stack.enter_async_context(ws.client(served.url, ssl=trusting)) for _ in range(6)]
            await eventually(lambda: sum(redis_server.sockets_per_process()) == 6, timeout=10)
            await clients[0].send("to every worker over TLS")
            for client in clients:
                assert await recv_all(client, 1) == ["to every worker over TLS"]
        async with aiohttp.ClientSession() as http, http.get(served.page, ssl=client_context(ca)) as response:
            assert response.status == 200 and "rtt chat" in await response.text()


# -- HTTP long-polling sessions spread over the workers (SPEC.md 13.8) ---------------------------


def fresh_connections() -> aiohttp.ClientSession:
    """Every request on a new TCP connection, which the kernel may hand to any worker."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def call(
    http: aiohttp.ClientSession, method: str, url: str, data: str | None = None
) -> tuple[int, str]:
    async with http.request(method, url, data=data) as response:
        return response.status, await response.text()


async def engineio_round_trips(http: aiohttp.ClientSession, url: str, redis_server: Redis) -> None:
    base = f"{url.rstrip('/')}/?EIO=4&transport=polling"
    status, text = await call(http, "GET", base)
    assert status == 200 and text.startswith("0{"), (base, status, text)
    sid = json.loads(text[1:])["sid"]
    assert redis_server.client.pubsub_numsub(f"rtt:h.{sid}") == [(f"rtt:h.{sid}".encode(), 1)]
    for k in range(12):
        assert await call(http, "POST", f"{base}&sid={sid}", f"4message {k}") == (200, "ok")
        received = ""
        async with asyncio.timeout(10):
            while f"4message {k}" not in received:
                status, text = await call(http, "GET", f"{base}&sid={sid}")
                assert status == 200, text
                received += text


async def sockjs_round_trips(http: aiohttp.ClientSession, url: str, redis_server: Redis) -> None:
    session = f"{url}/000/workers{os.getpid()}"
    assert await call(http, "POST", f"{session}/xhr") == (200, "o\n")
    assert redis_server.client.pubsub_numsub(f"rtt:h.workers{os.getpid()}")[0][1] == 1
    for k in range(12):
        assert await call(http, "POST", f"{session}/xhr_send", json.dumps([f"message {k}"])) == (204, "")
        received = ""
        async with asyncio.timeout(10):
            while f'"message {k}"' not in received:
                status, text = await call(http, "POST", f"{session}/xhr")
                assert status == 200, text
                received += text


@pytest.mark.parametrize("transport", ["engineio", "sockjs"])
async def test_long_polling_sessions_span_four_workers(redis_server: Redis, transport: str) -> None:
    args = ("--workers", "4", "--broker", redis_server.url, "--transport", transport, "--port", "0")
    async with cluster(*args) as served:
        assert redis_server.processes() == 4
        # Raw requests, each on a fresh connection: they land on any worker, and most
        # (three in four) not on the one holding the session, which gets them relayed.
        async with fresh_connections() as http:
            if transport == "engineio":
                await engineio_round_trips(http, served.url, redis_server)
            else:
                await sockjs_round_trips(http, served.url, redis_server)
        # rtt's own client on HTTP only: its poll and its posts travel on separate connections.
        options: dict[str, Any] = {"transports": ["polling" if transport == "engineio" else "xhr-polling"]}
        async with rtt.load(transport).client(served.url, reconnect=False, **options) as client:
            sent = [f"rtt {k}" for k in range(20)]
            for message in sent:
                await client.send(message)
            assert await recv_all(client, len(sent)) == sent


def test_a_broker_of_one_process_cannot_join_workers() -> None:
    result = run("serve", "-t", "mock", "--workers", "2", "--broker", "memory://x", "--port", "0")
    assert result.status == 2
    assert "joins servers of one process only" in result.error_line()


def test_check_the_redis_broker_on_ws_nodes(redis_server: Redis) -> None:
    result = run("check", "ws", "--broker", redis_server.url)
    assert result.status == 0, result.out + result.err
    assert "rtt: broker redis (rtt-redis 0.1.0) on ws nodes passes the broker conformance kit" in result.out
