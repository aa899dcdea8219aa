"""``rtt serve --workers N``: N processes serving one port, joined through a broker (SPEC.md 16.2).

The parent runs no transport server itself. It starts N workers, each one
``python -m rtt serve ... --worker-fd FD``: the same single-process ``rtt
serve --broker`` a user can run by hand, listening with ``SO_REUSEPORT`` so
the kernel spreads new connections among them, and joined through the broker
so that a broadcast (the chat) reaches every worker's sockets. The parent
serves the chat page, prints the one serving line once every worker listens,
restarts a worker that dies, and on SIGINT/SIGTERM stops them all.

Why subprocesses of the command rather than :mod:`multiprocessing` (spawn):
a worker is then exactly the command a user could run, so there is one way of
serving and nothing to pickle (a transport holds plugin classes and
callables); asyncio's subprocess support gives the parent each worker's exit
as an awaitable on its own loop and delivers signals to it; and restarting a
worker is running the same command line again. Spawned ``multiprocessing``
children would re-import the console script as ``__main__``, and need a
thread or a sentinel per worker to notice an exit.

Between parent and worker:

- a pipe passed as file descriptor ``--worker-fd`` carries one JSON line from
  the worker: ``{"ready": URL, "loop": LOOP}`` once it listens (``LOOP``: the
  class of the event loop it runs on, as ``--loop`` chose it), or ``{"error": MESSAGE,
  "status": N}`` if it could not start (the parent prints that line once,
  however many workers fail alike);
- the worker's standard input is a pipe from the parent that is never written:
  its end (the parent exited, even by SIGKILL) stops the worker, so no worker
  outlives its parent;
- standard output and error are the parent's own, so what a worker logs passes
  through as it is.

Workers run in process groups of their own: Ctrl-C in a terminal reaches the
parent only, which forwards SIGTERM, so every worker gets exactly one signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._serve import PageServer, ServeSettings, start_page
from .cli import EXIT_FAILURE, EXIT_USAGE, CliError, describe_loop
from .options import ServerOptions
from .transport import Transport

__all__ = ["WorkerLink", "serve_workers"]

#: Seconds a worker may take from its start to listening (a broker's own connect_timeout is 5 s).
START_TIMEOUT = 60.0
#: Seconds between two starts of one worker: at first, and at most after repeated crashes.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
#: A worker that ran this many seconds before dying is restarted after RESTART_DELAY again.
STABLE_AFTER = 60.0
#: Seconds a worker may take past ``close_timeout`` to exit after SIGTERM before it is killed.
EXIT_GRACE = 10.0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def describe_status(status: int) -> str:
    """An exit status as :mod:`asyncio` reports it, with the signal's name for a negative one."""
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"{status} ({signal.Signals(-status).name})"
    return str(status)


# -- The worker's side ---------------------------------------------------------------


class WorkerLink:
    """A worker's end of the pipes to its parent (see the module's docstring)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def ready(self, url: str) -> None:
        """Tell the parent this worker listens, where, and on which event loop (called on that loop)."""
        self._report({"ready": url, "loop": describe_loop()})

    def failed(self, message: str, status: int) -> None:
        """Tell the parent why this worker could not start, with the exit status it ends with."""
        self._report({"error": message, "status": status})

    def _report(self, report: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: standard input's end stops us
            os.write(self.fd, json.dumps(report).encode() + b"\n")

    @contextlib.asynccontextmanager
    async def watching_parent(self, stop: asyncio.Event) -> AsyncIterator[None]:
        """Set ``stop`` when standard input ends, that is when the parent has exited."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        stdin = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
        pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)

        async def watch() -> None:
            while await reader.read(4096):
                pass
            stop.set()

        task = loop.create_task(watch())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            pipe.close()


# -- The parent's side -----------------------------------------------------------------


def _python() -> list[str]:
    """How a worker runs ``python -m rtt``: with this interpreter.

    Under ``coverage run`` (the test suite's) the workers run under coverage
    too, so the lines they execute count like the parent's.
    """
    coverage = sys.modules.get("coverage")
    if coverage is not None and coverage.Coverage.current() is not None:
        return [sys.executable, "-m", "coverage", "run", "--parallel-mode", "--source=rtt", "-m", "rtt"]
    return [sys.executable, "-m", "rtt"]


@dataclass(eq=False)
class _Worker:
    index: int
    """1 to N, as the log lines name it."""
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    """``time.monotonic()`` at its last start."""
    delay: float = RESTART_DELAY
    """Least seconds from its last start to its next one."""


Report = dict[str, Any]


class _Supervisor:
    """Starts the workers, restarts those that die, stops them all."""

    def __init__(self, command: Callable[[int], list[str]], count: int, exit_timeout: float) -> None:
        self.command = command
        """The ``rtt`` arguments of a worker reporting on the given file descriptor."""
        self.workers = [_Worker(index) for index in range(1, count + 1)]
        self.exit_timeout = exit_timeout
        self.stopping = False
        self.loops: set[str] = set()
        """The event loops the workers reported running on."""
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self) -> str:
        """Start every worker and return the URL they serve at, once all listen.

        The first worker that fails to start stops the others and raises
        :class:`CliError` with its message.
        """
        tasks = [asyncio.create_task(self._launch(worker)) for worker in self.workers]
        try:
            url = ""
            for next_report in asyncio.as_completed(tasks):
                report = await next_report
                if "error" in report:
                    status = report.get("status")
                    raise CliError(report["error"], status if status in (EXIT_USAGE, EXIT_FAILURE) else 1)
                url = report["ready"]
                self.loops.add(str(report.get("loop", "?")))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.stop()
            raise
        self._watchers = [asyncio.create_task(self._watch(worker)) for worker in self.workers]
        return url

    async def stop(self) -> None:
        """SIGTERM to every worker; wait for each (bounded), then kill what is left."""
        self.stopping = True
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        running = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(self._reap(process) for process in running))

    async def _reap(self, process: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(process.wait(), self.exit_timeout)
        except TimeoutError:
            _log(f"rtt: worker pid {process.pid} did not exit within {self.exit_timeout:g} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if process.stdin is not None:
            process.stdin.close()

    async def _launch(self, worker: _Worker) -> Report:
        """Start ``worker``'s process and return its report, ``{"ready": URL}`` or an error."""
        read_fd, write_fd = os.pipe()
        try:
            worker.started = time.monotonic()
            worker.process = process = await asyncio.create_subprocess_exec(
                *_python(),
                *self.command(write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                process_group=0,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the worker's copy stays open: our end then sees EOF when it exits
        report = await self._read_report(read_fd)
        if report is None:
            # No report (it died first) or a broken one: what the exit status says is all we know.
            status = await self._exit_status(process)
            error = f"worker {worker.index} (pid {process.pid}) exited with status {status} before serving"
            return {"error": error, "status": EXIT_FAILURE}
        if "error" in report:
            await self._exit_status(process)  # it is on its way out; let it finish before any restart
        return report

    async def _read_report(self, read_fd: int) -> Report | None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        file = os.fdopen(read_fd, "rb", buffering=0)
        pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), file)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                line = await reader.readline()
        except TimeoutError:
            return {
                "error": f"a worker did not start serving within {START_TIMEOUT:g} s",
                "status": EXIT_FAILURE,
            }
        finally:
            pipe.close()
        try:
            report = json.loads(line)
        except ValueError:
            return None
        if isinstance(report, dict) and (
            isinstance(report.get("ready"), str) or isinstance(report.get("error"), str)
        ):
            return report
        return None

    async def _exit_status(self, process: asyncio.subprocess.Process) -> str:
        try:
            return describe_status(await asyncio.wait_for(process.wait(), self.exit_timeout))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return describe_status(await process.wait())

    async def _watch(self, worker: _Worker) -> None:
        """Restart ``worker`` whenever it exits, with backoff, until :meth:`stop`."""
        while True:
            assert worker.process is not None
            status = describe_status(await worker.process.wait())
            if self.stopping:
                return
            pid = worker.process.pid
            _log(f"rtt: worker {worker.index} (pid {pid}) exited with status {status}; restarting")
            while True:
                now = time.monotonic()
                if now - worker.started >= STABLE_AFTER:
                    worker.delay = RESTART_DELAY
                # At most one start per worker.delay (at least a second) however fast it dies.
                await asyncio.sleep(max(0.0, worker.started + worker.delay - now))
                worker.delay = min(worker.delay * 2, RESTART_DELAY_MAX)
                report = await self._launch(worker)
                if "ready" in report:
                    _log(f"rtt: worker {worker.index} (pid {worker.process.pid}) is serving again")
                    break
                # Unlike at start, keep trying: what stopped it (the broker, say) may come back.
                _log(f"rtt: worker {worker.index} could not restart: {report['error']}; retrying")


def _reserve_port(host: str) -> socket.socket:
    """A socket bound to a free port on ``host`` with ``SO_REUSEPORT``, not listening.

    Held while the workers start, so that no other program takes the port
    meanwhile; the workers can bind it too, and a socket that does not listen
    is never handed a connection.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        reservation = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"cannot serve on {host}: {exc.strerror or exc}", EXIT_FAILURE) from None
    try:
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind(address)
    except OSError as exc:
        reservation.close()
        raise CliError(f"cannot find a free port on {host}: {exc.strerror or exc}", EXIT_FAILURE) from None
    return reservation


async def serve_workers(
    transport: Transport,
    *,
    host: str,
    port: int,
    count: int,
    command: Callable[[int, int], list[str]],
    app: Literal["echo", "chat"],
    page_port: int,
    node_modules: Path | None,
    stop: asyncio.Event,
    loop: str = "asyncio",
    tls: ssl.SSLContext | None = None,
) -> None:
    """Run ``count`` workers of ``transport`` on one port until ``stop`` is set (SPEC.md 16.2).

    ``command(port, fd)`` is the ``rtt`` arguments of one worker, which runs
    on the event loop ``loop`` (named in a line of its own unless asyncio's);
    with ``tls`` the workers serve TLS (their command says so) and so does the page.
    Prints one serving line once every worker listens; a worker that fails to start
    raises :class:`CliError` with its message, after every worker stopped.
    """
    reservation = _reserve_port(host) if port == 0 else None
    if reservation is not None:
        port = int(reservation.getsockname()[1])
    close_timeout = float(transport.options.get("close_timeout", ServerOptions.close_timeout))
    supervisor = _Supervisor(lambda fd: command(port, fd), count, close_timeout + EXIT_GRACE)
    starting = asyncio.create_task(supervisor.start())
    signalled = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signalled.cancel()
        if reservation is not None:
            reservation.close()
    if not starting.done():  # SIGINT or SIGTERM while the workers start: stop them all
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        _log("rtt: shutting down")
        return
    url = starting.result()  # a worker's failure to start raises here
    page: PageServer | None = None
    try:
        if loop != "asyncio":
            print(f"rtt: event loop of the workers: {', '.join(sorted(supervisor.loops))}", flush=True)
        line = f"rtt: serving {transport.name} at {url} with {count} worker{'s' if count > 1 else ''}"
        if app == "chat":
            settings = ServeSettings(
                host=host, port=port, app=app, page_port=page_port, node_modules=node_modules, tls=tls
            )
            page, suffix = await start_page(transport, settings, url)
            line += suffix
        print(line, flush=True)
        await stop.wait()
        _log("rtt: shutting down")
    finally:
        if page is not None:
            await page.close()
        await supervisor.stop()
