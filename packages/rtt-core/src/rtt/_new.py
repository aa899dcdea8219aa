"""``rtt new NAME``: write a transport plugin that passes the conformance kit as written (SPEC.md 14, 16.5).

The plugin is a complete distribution, ``rtt-NAME``: newline-delimited JSON
over TCP on the standard library alone, a starting point to put a library
into. Its files are rendered from the templates in ``rtt/skeleton/`` (package
data, not modules: nothing of them is imported by rtt-core), where ``{{name}}``,
``{{Name}}``, ``{{package}}``, ``{{dist}}``, ``{{scheme}}``, ``{{core}}`` and
``{{core_testing}}`` stand for the values of :func:`placeholders`.
"""

from __future__ import annotations

import os
import re
import shutil
from importlib.resources import files
from pathlib import Path

from . import __version__

__all__ = ["RESERVED", "SkeletonError", "check_name", "placeholders", "render", "write_skeleton"]

#: What a name may be: an entry point name, a URL scheme (with ``_`` as ``-``) and,
#: after ``rtt_``, a Python package (with ``-`` as ``_``).
NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
#: Longer names would push the written code past the 110 columns its own ruff settings allow.
MAX_NAME_LENGTH = 20

#: The names of rtt's own distributions (``rtt-core``, ``rtt-ws``, ...): a plugin of that
#: name would be a second distribution of the same name.
RESERVED = frozenset({"core", "mock", "ws", "engineio", "sockjs", "redis"})

#: (template in rtt/skeleton/, path in the distribution); ``{{package}}`` is replaced in paths too.
FILES = (
    ("pyproject.toml.tmpl", "pyproject.toml"),
    ("README.md.tmpl", "README.md"),
    ("__init__.py.tmpl", "src/{{package}}/__init__.py"),
    ("transport.py.tmpl", "src/{{package}}/transport.py"),
    ("server.py.tmpl", "src/{{package}}/server.py"),
    ("client.py.tmpl", "src/{{package}}/client.py"),
    ("wire.py.tmpl", "src/{{package}}/wire.py"),
    (None, "src/{{package}}/py.typed"),
    ("test_conformance.py.tmpl", "tests/test_conformance.py"),
)

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class SkeletonError(Exception):
    """Why ``rtt new`` cannot write the plugin: one line for the user."""

    def __init__(self, message: str, *, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage
        """True for a mistake to fix before the command can run (exit status 2), False for a failure (1)."""


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a plugin, or ``None`` if it can."""
    if not NAME.fullmatch(name):
        return (
            f"invalid plugin name {name!r}: use lowercase letters and digits, starting with a letter, "
            "with single '-' or '_' between them (e.g. tcpline, my-transport)"
        )
    if len(name) > MAX_NAME_LENGTH:
        return f"invalid plugin name {name!r}: at most {MAX_NAME_LENGTH} characters"
    if name in RESERVED:
        return f"invalid plugin name {name!r}: rtt-{name} is one of rtt's own distributions; choose another"
    return None


def placeholders(name: str) -> dict[str, str]:
    """The values the templates' ``{{...}}`` placeholders take for the plugin ``name``."""
    major, minor = (int(part) for part in __version__.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    bounds = f">={major}.{minor},<{upper}"
    return {
        "name": name,
        "Name": "".join(part.capitalize() for part in re.split(r"[-_]", name)),
        "package": "rtt_" + name.replace("-", "_"),
        "dist": f"rtt-{name}",
        "scheme": name.replace("_", "-"),  # a URL scheme has no '_'
        "core": f"rtt-core{bounds}",
        "core_testing": f"rtt-core[testing]{bounds}",
    }


def render(text: str, values: dict[str, str]) -> str:
    """``text`` with every ``{{key}}`` replaced; an unknown key is a bug in the templates."""

    def value(match: re.Match[str]) -> str:
        return values[match[1]]

    return _PLACEHOLDER.sub(value, text)


def write_skeleton(name: str, directory: Path) -> Path:
    """Write the plugin ``rtt-NAME`` into ``directory`` (made if missing); return its path.

    Raises :class:`SkeletonError` for a bad name or an existing ``rtt-NAME``
    (never overwritten). The files are written into a temporary directory
    beside it first (``.rtt-NAME.partial-PID``), then renamed into place, so a failure leaves nothing
    half-written.
    """
    if (problem := check_name(name)) is not None:
        raise SkeletonError(problem)
    values = placeholders(name)
    target = directory / values["dist"]
    if target.exists() or target.is_symlink():
        raise SkeletonError(f"{target} already exists; rtt new never overwrites: remove it or choose --dir")
    if directory.exists() and not directory.is_dir():
        raise SkeletonError(f"--dir {directory} is not a directory")
    templates = files("rtt") / "skeleton"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = directory / f".{values['dist']}.partial-{os.getpid()}"
        staging.mkdir()
    except OSError as exc:
        raise SkeletonError(f"cannot write into {directory}: {exc.strerror or exc}", usage=False) from None
    try:
        for template, path in FILES:
            text = render((templates / template).read_text(encoding="utf-8"), values) if template else ""
            destination = staging / render(path, values)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(text, encoding="utf-8")
        os.rename(staging, target)
    except OSError as exc:  # pragma: no cover - a disk that fills or fails while writing
        shutil.rmtree(staging, ignore_errors=True)
        raise SkeletonError(f"cannot write {target}: {exc.strerror or exc}", usage=False) from None
    return target
