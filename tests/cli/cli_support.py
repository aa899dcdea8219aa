"""Running the ``rtt`` command in a subprocess, as a user would, for the tests of SPEC.md 16.

When the tests themselves run under coverage (tox), the command is measured
too, so its lines count towards rtt-core's coverage: by coverage's subprocess
patch when it is on (tox's cli environment, on pytest-xdist workers), else
under ``coverage run``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "tests" / "node" / "node_modules"
SERVING = re.compile(
    r"^rtt: serving (?P<name>\S+) at (?P<url>\S+)(?: with (?P<workers>\d+) workers?)?"
    r"(?: and the chat page at (?P<page>\S+))?$"
)
#: Seconds the command may take to start serving, or to exit.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def _under_coverage() -> bool:
    """Whether the command must be started under ``coverage run`` to be measured.

    Not when coverage's ``patch = subprocess`` is on (tests/coverage-xdist.toml, which the pytest-xdist
    runs use): every Python subprocess is then measured by itself.
    """
    if "COVERAGE_PROCESS_CONFIG" in os.environ:
        return False
    coverage = sys.modules.get("coverage")
    return coverage is not None and coverage.Coverage.current() is not None


def rtt_command(*args: str) -> list[str]:
    """The argv that runs ``rtt ARGS`` with this interpreter."""
    if _under_coverage():
        return [
            sys.executable,
            "-m",
            "coverage",
            "run",
            "--parallel-mode",
            "--source=rtt",
            "-m",
            "rtt",
            *args,
        ]
    return [sys.executable, "-m", "rtt", *args]


def command_env(extra: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment without ``RTT_TRANSPORT``, ``RTT_BROKER`` (and ``drop``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("RTT_TRANSPORT", "RTT_BROKER", *drop)}
    return {**env, **(extra or {})}


@dataclass
class Result:
    """What a finished command did."""

    status: int
    out: str
    err: str

    def error_line(self) -> str:
        """Standard error, which must be exactly one ``rtt: error:`` line and no traceback."""
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.err}"
        assert lines[0].startswith("rtt: error: "), lines[0]
        assert "Traceback" not in self.err
        return lines[0]


def run(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> Result:
    """Run ``rtt ARGS`` to completion."""
    done = subprocess.run(
        rtt_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=command_env() if env is None else dict(env),
        cwd=cwd,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Serving:
    """A running ``rtt serve``: what it printed and where it serves."""

    process: asyncio.subprocess.Process
    name: str
    url: str
    page: str | None
    lines: list[str] = field(default_factory=list)
    """Every line it printed to standard output up to and including the serving line."""


@asynccontextmanager
async def serving(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, stop: int = signal.SIGTERM
) -> AsyncIterator[Serving]:
    """Start ``rtt serve ARGS``, wait for its serving line, and at the end stop it with ``stop``.

    The command must then exit with status 0, having said it shut down.
    """
    process = await asyncio.create_subprocess_exec(
        *rtt_command("serve", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=command_env() if env is None else dict(env),
        cwd=cwd,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(START_TIMEOUT):
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    said = (await process.stderr.read()).decode()
                    raise AssertionError(f"rtt serve exited before serving:\n{''.join(lines)}{said}")
                line = raw.decode().rstrip("\n")
                lines.append(line)
                if match := SERVING.match(line):
                    break
        yield Serving(process, match["name"], match["url"], match["page"], lines)
        process.send_signal(stop)
        async with asyncio.timeout(STOP_TIMEOUT):
            out, err = await process.communicate()
        assert process.returncode == 0, f"exit status {process.returncode}:\n{out.decode()}{err.decode()}"
        assert "rtt: shutting down" in err.decode() and "Traceback" not in err.decode(), err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
