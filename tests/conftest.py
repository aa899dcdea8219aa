"""Shared fixtures and factories: every test gets its own in-memory network, so nothing leaks between tests.

Test modules import :func:`echo_server` and :class:`FreshVenv` from here;
``browser_support`` is loaded as a plugin for the Chromium tests' fixtures.
"""

from __future__ import annotations

import gc
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

import pytest

import rtt
from rtt_mock import MockNetwork, MockTransport

pytest_plugins = ["browser_support"]


def pytest_configure(config: pytest.Config) -> None:
    if importlib.util.find_spec("sockjs") is not None:
        # sockjs 0.13 keeps its managers under a string key of the aiohttp application,
        # which aiohttp warns about. Only that category is ignored, and only where sockjs
        # is installed; every other warning is still an error (filterwarnings in pyproject.toml).
        config.addinivalue_line("filterwarnings", "ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@pytest.fixture
def mock() -> MockTransport:
    """A mock transport on a fresh network, with fast reconnects."""
    return MockTransport(network=MockNetwork(), reconnect={"min_delay": 0.02, "max_delay": 0.05, "jitter": 0})


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test so an unclosed socket or transport fails the test that leaked it."""
    yield
    gc.collect()


ServerT = TypeVar("ServerT", bound=rtt.Server[Any])


@overload
def echo_server(
    transport: rtt.Transport | str, *, kind: type[ServerT], **options: Any
) -> AbstractAsyncContextManager[tuple[ServerT, list[str | bytes]]]: ...
@overload
def echo_server(
    transport: rtt.Transport | str, **options: Any
) -> AbstractAsyncContextManager[tuple[rtt.Server[Any], list[str | bytes]]]: ...
def echo_server(
    transport: rtt.Transport | str, *, kind: type[rtt.Server[Any]] = rtt.Server, **options: Any
) -> AbstractAsyncContextManager[tuple[rtt.Server[Any], list[str | bytes]]]:
    """A started server of ``transport`` that sends every message back to its sender.

    ``transport`` is a transport, or a name for :func:`rtt.load`; ``options`` go
    to its ``server()`` (``port=`` too). ``kind`` is the server class the test
    expects (``EngineioServer``, say), checked and kept for the type checker.
    Yields the server and the list of the messages it received, in order;
    closes the server on exit.
    """
    return _echo_server(rtt.load(transport) if isinstance(transport, str) else transport, kind, options)


@asynccontextmanager
async def _echo_server(
    transport: rtt.Transport, kind: type[rtt.Server[Any]], options: dict[str, Any]
) -> AsyncIterator[tuple[rtt.Server[Any], list[str | bytes]]]:
    received: list[str | bytes] = []
    server = transport.server(**options)
    assert isinstance(server, kind), (
        f"{transport.name} makes a {type(server).__name__}, not a {kind.__name__}"
    )
    async with server:

        @server.on("message")
        async def echo(socket: rtt.Socket, data: str | bytes) -> None:
            received.append(data)
            await server.send(socket.id, data)

        yield server, received


ROOT = Path(__file__).resolve().parents[1]


class FreshVenv:
    """A new virtualenv with only the given repository packages pip-installed into it."""

    def __init__(self, path: Path, *packages: str) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
        self.python = path / "bin" / "python"
        paths = [str(ROOT / package) for package in packages]
        subprocess.run([str(self.python), "-m", "pip", "install", "--quiet", *paths], check=True, timeout=480)

    def distributions(self) -> set[str]:
        """Names of the distributions installed, pip and setuptools left out."""
        listing = self.run(
            "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))"
        )
        return {name.lower() for name in listing.split()} - {"pip", "setuptools"}

    def run(self, code: str) -> str:
        """Run Python ``code`` in the virtualenv; return its standard output."""
        result = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Callable[..., FreshVenv]:
    """``fresh_venv("packages/rtt-core", ...)`` installs those packages alone in a new virtualenv."""
    return lambda *packages: FreshVenv(tmp_path / "venv", *packages)
