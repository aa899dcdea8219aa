"""What rtt-engineio overrides or reads inside python-engineio and asyncio (SPEC.md 12.3, library coupling).

The list is ``rtt_engineio._library.COUPLING``; these tests check each entry
against the installed release (the ``lowest`` tox environment runs them on
python-engineio 4.13.0), and check that the list is complete: every method a
class of ``_library`` defines over a python-engineio or asyncio class is in
it, so a new override cannot be forgotten.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import engineio  # type: ignore[import-untyped, unused-ignore]
import engineio.async_drivers.aiohttp  # type: ignore[import-untyped, unused-ignore]
import engineio.async_drivers.asgi  # type: ignore[import-untyped, unused-ignore]
import pytest
from aiohttp import web
from canary_support import Touch
from engineio.async_socket import AsyncSocket  # type: ignore[import-untyped, unused-ignore]
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import rtt_engineio
from rtt_engineio import _library
from rtt_engineio._library import COUPLING, ENGINEIO_RANGE, Coupling

LIBRARY = "rtt_engineio/_library.py"
ENGINEIO = version("python-engineio")
PACKAGE = Path(rtt_engineio.__file__).parent  # the installed package (a wheel under tox)
ROOT = Path(__file__).resolve().parents[2]


def _instance(owner: type) -> Any:
    """A live object of ``owner``, made as the library makes it, to look for instance attributes."""
    if owner is engineio.AsyncServer:
        return engineio.AsyncServer(async_mode="aiohttp")
    if owner is AsyncSocket:
        return AsyncSocket(engineio.AsyncServer(async_mode="aiohttp"), "canary")
    if owner is engineio.async_drivers.aiohttp.WebSocket:
        return owner(None, engineio.AsyncServer(async_mode="aiohttp"))
    if owner is engineio.async_drivers.asgi.WebSocket:
        return owner(None, engineio.AsyncServer(async_mode="asgi"))
    if owner is engineio.AsyncClient:
        return engineio.AsyncClient(handle_sigint=False)
    if owner is web.WebSocketResponse:
        return owner()
    raise AssertionError(f"no way to make a {owner.__qualname__} for its canary")


def _where(coupling: Coupling) -> str:
    return f"{LIBRARY} ({coupling.how}: {coupling.why})"


def _label(coupling: Coupling) -> str:
    owner = coupling.owner
    return f"{getattr(owner, '__name__', type(owner).__name__)}.{'+'.join(coupling.names)}"


@pytest.mark.parametrize("coupling", COUPLING, ids=_label)
def test_what_rtt_engineio_touches_is_still_there(coupling: Coupling) -> None:
    if coupling.how == "environ key":
        # A key the driver's translate_request puts in the environ: look for it in its source.
        source = inspect.getsource(coupling.owner)
        for key in coupling.names:
            assert f"'{key}'" in source or f'"{key}"' in source, (
                f"python-engineio {ENGINEIO}: {coupling.owner.__module__}.{coupling.owner.__qualname__} "
                f"no longer puts {key!r} in the environ, which rtt reads in {_where(coupling)}: "
                "review that code against the new release"
            )
        return
    assert coupling.parameters is None or len(coupling.names) == 1, "parameters belong to one method"
    owner = _instance(coupling.owner) if coupling.instance else coupling.owner
    for name in coupling.names:
        touch = Touch(owner, name, coupling.parameters, _where(coupling))
        if coupling.instance:
            # Set in __init__, often to None (which Touch.check would take for missing).
            assert name in vars(owner) or hasattr(type(owner), name), (
                f"python-engineio {ENGINEIO} has no {touch.symbol}, which rtt touches in "
                f"{touch.where}: review that code against the new release"
            )
        else:
            touch.check("python-engineio", ENGINEIO)


def test_the_socket_class_rtt_adopts_is_the_one_the_server_makes() -> None:
    """adopt() switches the class of the socket _handle_connect made: it must be an AsyncSocket."""
    made = engineio.async_server.async_socket.AsyncSocket
    assert made is AsyncSocket and issubclass(_library.RttSocket, made), (
        f"python-engineio {ENGINEIO}: engineio.async_server makes {made!r} in _handle_connect, "
        f"which {LIBRARY} (LibraryServer.adopt) turns into an RttSocket: review that code"
    )


def _defined_over_upstream(cls: type) -> list[tuple[type, str]]:
    """(upstream class, name) of each attribute rtt's classes in ``cls``'s MRO define over an upstream one."""
    found = []
    for rtt_class in cls.__mro__:
        if not rtt_class.__module__.startswith("rtt_engineio"):
            continue
        for name in vars(rtt_class):
            if name.startswith("__") or name == "_abc_impl":  # ABCMeta's own, in every subclass
                continue
            for base in cls.__mro__:
                module = base.__module__
                if (module.startswith(("engineio", "asyncio", "aiohttp"))) and name in vars(base):
                    found.append((base, name))
                    break
    return found


def test_every_override_in_library_is_listed() -> None:
    listed = {(c.owner, name) for c in COUPLING for name in c.names}
    classes = [
        _library.LibraryServer,
        _library.RttSocket,
        _library.LibraryClient,
        _library.SendQueue,
        _library.DriverWebSocket,
        _library.CheckedWebSocketResponse,
    ]
    overrides = {pair for cls in classes for pair in _defined_over_upstream(cls)}
    assert overrides, "the scan found no override at all"
    missing = sorted(f"{base.__module__}.{base.__qualname__}.{name}" for base, name in overrides - listed)
    assert not missing, f"{LIBRARY} overrides these without a COUPLING entry: {missing}"


def test_only_library_reaches_into_python_engineio() -> None:
    """The other modules use python-engineio's public names only (and rtt's ``_library``)."""
    private_modules = ("engineio.async_socket", "engineio.base_client", "engineio.async_drivers")
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "_library.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                assert not node.module.startswith(private_modules), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(private_modules), f"{path.name} imports {alias.name}"
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                owner = ast.unparse(node.value)
                assert not owner.startswith(("eio", "engineio", "ws", "queue")), (
                    f"{path.name} reads {owner}.{node.attr}: private parts belong in {LIBRARY}"
                )


def test_the_declared_range_is_the_one_installed_and_required() -> None:
    pyproject = tomllib.loads((ROOT / "packages/rtt-engineio/pyproject.toml").read_text(encoding="utf-8"))
    (required,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("python-engineio")]
    assert SpecifierSet(required.split("]", 1)[-1]) == SpecifierSet(ENGINEIO_RANGE), (
        f"pyproject requires {required}, {LIBRARY} was written for {ENGINEIO_RANGE}"
    )
    assert Version(ENGINEIO) in SpecifierSet(ENGINEIO_RANGE)


async def test_send_queue_counts_what_is_not_written() -> None:
    """SendQueue counts with public methods what CPython keeps in Queue._unfinished_tasks."""
    queue = _library.SendQueue()
    await queue.put("a")
    queue.put_nowait("b")
    assert queue.unwritten == 2
    queue.get_nowait()
    assert queue.unwritten == 2  # taken, not yet written
    queue.task_done()
    assert queue.unwritten == 1
    queue.get_nowait()
    queue.task_done()
    assert queue.unwritten == 0
    await asyncio.wait_for(queue.join(), 1)


def test_a_canary_names_the_symbol_that_moved() -> None:
    moved = Touch(AsyncSocket, "poll", ("self", "timeout"), "somewhere")
    with pytest.raises(AssertionError, match=r"changed engineio\.async_socket\.AsyncSocket\.poll\('self',\)"):
        moved.check("python-engineio", "9.9")
    gone = Touch(AsyncSocket, "no_such_method", None, "somewhere")
    with pytest.raises(AssertionError, match=r"has no engineio\.async_socket\.AsyncSocket\.no_such_method"):
        gone.check("python-engineio", "9.9")


def test_spec_lists_every_entry() -> None:
    """SPEC.md 12.3's library coupling paragraph names every symbol of COUPLING."""
    spec = (ROOT / "SPEC.md").read_text(encoding="utf-8")
    section = spec[spec.index("\n12.3. ") : spec.index("\n12.4. ")]
    coupling = section[section.index("- Library coupling:") :]
    missing = [
        name
        for c in COUPLING
        for name in c.names
        if f"`{name}`" not in coupling and f".{name}`" not in coupling
    ]
    assert not missing, f"SPEC.md 12.3 (library coupling) does not list {missing}"
    assert ENGINEIO_RANGE in coupling
