"""A real server process for the fault suite: ``python -m rtt serve`` (SPEC.md 16.2) on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

START_TIMEOUT = 60.0


class ServeProcess:
    """``rtt serve`` with the echo app, started by :meth:`start` and ended by a signal or :meth:`kill`."""

    def __init__(self, wire: Wire, directory: Path, **options: float) -> None:
        self.wire = wire
        self.config = directory / f"rtt-{wire.name}.toml"
        lines = [f'transport = "{wire.name}"', "[options]"]
        lines += [f"{name} = {value!r}" for name, value in options.items()]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.port = 0
        self.stdout: list[str] = []
        self.stderr = bytearray()
        self._readers: asyncio.Future[Any] | None = None

    async def start(self, port: int = 0) -> str:
        """Start serving on ``port`` (0: a free one) and return the server's URL once it listens."""
        env = {k: v for k, v in os.environ.items() if k not in ("RTT_TRANSPORT", "RTT_BROKER")}
        self.process = process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtt", "serve", "--config", str(self.config), "--app", "echo",
            "--port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert process.stdout is not None and process.stderr is not None
        serving = asyncio.get_running_loop().create_future()
        # Both pipes are read all along: a full one would stop the server mid-case.
        self._readers = asyncio.gather(
            self._read_stdout(process.stdout, serving), self._read_stderr(process.stderr)
        )
        try:
            line = await asyncio.wait_for(serving, START_TIMEOUT)
        except EOFError:
            await self.wait(START_TIMEOUT)
            raise AssertionError(f"rtt serve ended before serving: {self.stderr.decode()}") from None
        self.url = line.split()[4]
        parts = urlsplit(self.url)
        assert parts.hostname == "127.0.0.1" and parts.port is not None, self.url
        self.port = parts.port
        return self.url

    async def _read_stdout(self, stream: asyncio.StreamReader, serving: asyncio.Future[str]) -> None:
        while line := (await stream.readline()).decode():
            self.stdout.append(line)
            if line.startswith(f"rtt: serving {self.wire.name} at ") and not serving.done():
                serving.set_result(line)
        if not serving.done():
            serving.set_exception(EOFError())

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.stderr += chunk

    def signal(self, signal: int) -> None:
        assert self.process is not None
        self.process.send_signal(signal)

    async def wait(self, timeout: float) -> int:
        """Wait for the process to exit and its output to end; its exit status."""
        process, readers = self.process, self._readers
        assert process is not None and readers is not None
        async with asyncio.timeout(timeout):
            status = await process.wait()
            await readers
        return status

    async def kill(self) -> None:
        """SIGKILL, if still running, and reap it."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if process is not None:
            await self.wait(START_TIMEOUT)
