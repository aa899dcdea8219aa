"""Plumbing for the conformance kit: running async cases, recording events, waiting."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from ..client import Client
    from ..server import Server, Socket
    from .kit import Kit

K = TypeVar("K", bound="Kit")
Case = Callable[[K], Awaitable[None]]


#: What a serving mode may lack, by name: a case that needs one (``@case(needs=...)``) is skipped
#: in a test class whose ``Kit.lacks`` names it. Standalone, a server has them all (SPEC.md 11).
MODE_FEATURES: Mapping[str, str] = MappingProxyType(
    {
        "server_pings": "the server sends its own heartbeats (ping_interval, ping_timeout) and drops a peer "
        "that does not answer them (7.1)",
        "server_tls": "the server itself listens with TLS when given the ssl option (8.4)",
        "refusal_status": "a refused handshake reaches the client with rtt's HTTP status and reason "
        "(8.1, 8.2)",
        "write_buffer": "the server sees the bytes a peer has not taken yet, so a slow consumer is "
        "disconnected at outbound_limit (7.1)",
        "drop_reason": "the server tells a dropped connection (a reset, no closing handshake) from a "
        "client's deliberate close, so a resumable session goes away instead of ending (6, 17.3)",
    }
)


def case(
    *, requires: Iterable[str] = ("python_client",), needs: Iterable[str] = ()
) -> Callable[[Case[K]], Callable[[K], None]]:
    """Turn an async kit method into a pytest test, gated by capabilities and by the serving mode.

    ``requires`` names capabilities the transport must declare (SPEC.md 2);
    ``needs`` names :data:`MODE_FEATURES` the serving mode must have: a test
    class whose :attr:`Kit.lacks` names one skips the case, saying why. Each
    case runs in a fresh event loop under ``Kit.timeout`` so a broken plugin
    fails the test instead of hanging the run.
    """
    needed = frozenset(requires)
    features = frozenset(needs)
    unknown = features - MODE_FEATURES.keys()
    if unknown:
        raise ValueError(f"unknown mode features {sorted(unknown)}; known: {sorted(MODE_FEATURES)}")

    def decorate(fn: Case[K]) -> Callable[[K], None]:
        @functools.wraps(fn)
        def test(self: K) -> None:
            missing = needed - self.transport_capabilities().names()
            if missing:
                pytest.skip(f"transport lacks capability {', '.join(sorted(missing))}")
            lacks = self.lacks
            wrong = set(lacks) - MODE_FEATURES.keys()
            if wrong:
                raise ValueError(
                    f"{type(self).__name__}.lacks names unknown mode features {sorted(wrong)}; "
                    f"known: {sorted(MODE_FEATURES)}"
                )
            lacking = sorted(features & lacks.keys())
            if lacking:
                pytest.skip("; ".join(f"serving mode lacks {name}: {lacks[name]}" for name in lacking))
            asyncio.run(_run_case(self, fn))

        test.__rtt_case__ = needed  # type: ignore[attr-defined]
        return test

    return decorate


async def _run_case(kit: K, fn: Case[K]) -> None:
    try:
        try:
            async with asyncio.timeout(kit.timeout):
                await fn(kit)
        except TimeoutError:
            raise AssertionError(f"{fn.__name__} did not finish within {kit.timeout} s") from None
    finally:
        # Whatever happened, release every server and client the case made.
        await kit._close_all()


def echo(server: Server[Any]) -> Server[Any]:
    """Make ``server`` send every message back to its sender; returns the server."""

    async def send_back(socket: Socket, data: str | bytes) -> None:
        await server.send(socket.id, data)

    server.on("message", send_back)
    return server


async def eventually(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Wait until ``predicate()`` is true; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


class Recorder:
    """Records events as tuples ``(name, *args)`` in arrival order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def handler(self, name: str) -> Callable[..., None]:
        """A handler that appends ``(name, *args)``."""

        def record(*args: Any) -> None:
            self.events.append((name, *args))

        return record

    def listen(self, target: Server[Any] | Client, *names: str) -> Recorder:
        """Record the events ``names`` of a server or client."""
        for name in names:
            target.on(name, self.handler(name))  # type: ignore[call-overload]
        return self

    def names(self) -> list[str]:
        """Event names in order."""
        return [e[0] for e in self.events]

    def of(self, name: str) -> list[tuple[Any, ...]]:
        """The argument tuples of every event called ``name``."""
        return [e[1:] for e in self.events if e[0] == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 5.0) -> list[tuple[Any, ...]]:
        """Wait until ``name`` happened ``count`` times; return their arguments."""
        await eventually(lambda: len(self.of(name)) >= count, timeout, f"{count} {name!r} event(s)")
        return self.of(name)


class LogCapture(logging.Handler):
    """Collects records of the ``rtt`` loggers during a case."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._logger = logging.getLogger("rtt")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> LogCapture:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def text(self, min_level: int) -> str:
        """Everything logged at ``min_level`` or above, tracebacks included."""
        formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
        return "\n".join(formatter.format(r) for r in self.records if r.levelno >= min_level)
