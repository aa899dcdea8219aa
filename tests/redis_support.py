"""A real redis-server per test, on a free loopback port, that a test can kill, freeze and restart.

Shared by tests/redis_broker (its conftest re-exports the fixture) and tests/cli.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REDIS_SERVER = "/usr/bin/redis-server"

#: Broker options for tests: failures noticed and recovered in well under a second.
FAST: dict[str, Any] = {
    "heartbeat": 0.2,
    "node_timeout": 1.0,
    "timeout": 1.0,
    "connect_timeout": 1.0,
    "reconnect": {"min_delay": 0.05, "max_delay": 0.2, "factor": 2.0, "jitter": 0.0},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; ``kill``, ``freeze``/``thaw`` and ``restart`` it from a test."""

    def __init__(self, directory: Path) -> None:
        if not os.access(REDIS_SERVER, os.X_OK):
            pytest.fail(
                f"{REDIS_SERVER} is missing: install Debian's redis-server (apt-get install redis-server)"
            )
        self.port = free_port()
        # Not under tmp_path: a Unix socket path must stay under about 100 bytes.
        self.socket_directory = Path(tempfile.mkdtemp(prefix="rtt-redis-"))
        self.socket_path = self.socket_directory / "redis.sock"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        """Start it and wait (at most 10 s) until it answers PING."""
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                *("--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--unixsocket", str(self.socket_path), "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server on port {self.port} exited with status {self.process.returncode}")
            try:
                if self.command(b"PING") == b"+PONG":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server on port {self.port} did not answer PING within 10 s")
            time.sleep(0.02)

    def command(self, *args: bytes) -> bytes:
        """Send one command in RESP and return the first line of the reply (without CRLF)."""
        request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(request)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def kill(self) -> None:
        """SIGKILL it: every connection drops at once, as when Redis crashes."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def freeze(self) -> None:
        """SIGSTOP it: connections stay open but nothing is answered, as when Redis hangs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Start it again on the same port (empty: nothing is saved)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()
        self.start()

    def stop(self) -> None:
        shutil.rmtree(self.socket_directory, ignore_errors=True)
        if self.process is None or self.process.poll() is not None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server on a free loopback port, stopped after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
