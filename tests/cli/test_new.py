"""``rtt new NAME``: a plugin skeleton that passes ``rtt check`` as written (SPEC.md 14, 16.5).

The plugin is written by the command in a subprocess, installed with rtt-core
alone in a new virtualenv and checked there with the conformance kit, as a
third party with nothing but ``pip install rtt-core`` would do it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cli_support import command_env, run

if TYPE_CHECKING:
    from conftest import FreshVenv

#: Every file of the distribution, for a plugin named foo-bar.
FILES = {
    "pyproject.toml",
    "README.md",
    "src/rtt_foo_bar/__init__.py",
    "src/rtt_foo_bar/transport.py",
    "src/rtt_foo_bar/server.py",
    "src/rtt_foo_bar/client.py",
    "src/rtt_foo_bar/wire.py",
    "src/rtt_foo_bar/py.typed",
    "tests/test_conformance.py",
}


def written(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


def test_new_writes_a_complete_distribution(tmp_path: Path) -> None:
    result = run("new", "foo-bar", "--dir", str(tmp_path / "plugins"))
    target = tmp_path / "plugins" / "rtt-foo-bar"
    assert result.status == 0, result.err
    assert result.out.splitlines() == [
        f"rtt: wrote {target}, the transport 'foo-bar' (distribution rtt-foo-bar)",
        f"rtt: next: pip install -e '{target}[testing]' && rtt check foo-bar",
    ]
    assert result.err == ""
    assert written(target) == FILES
    assert list((tmp_path / "plugins").iterdir()) == [target], "no staging directory is left behind"
    pyproject = (target / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points."rtt.transports"]\nfoo-bar = "rtt_foo_bar.transport:FooBarTransport"' in (
        pyproject
    )
    assert 'name = "rtt-foo-bar"' in pyproject and '"rtt-core>=0.1,<0.2"' in pyproject
    transport = (target / "src/rtt_foo_bar/transport.py").read_text(encoding="utf-8")
    assert 'name = "foo-bar"' in transport and "class FooBarTransport(Transport)" in transport
    texts = [path.read_text(encoding="utf-8") for path in target.rglob("*") if path.is_file()]
    assert not any("{{" in text for text in texts), "every placeholder is filled in"


def test_the_current_directory_is_the_default(tmp_path: Path) -> None:
    result = run("new", "line", cwd=tmp_path)
    assert result.status == 0, result.err
    assert result.out.startswith("rtt: wrote rtt-line, the transport 'line'")
    assert (tmp_path / "rtt-line" / "src" / "rtt_line" / "server.py").is_file()


def test_an_underscore_is_a_hyphen_in_the_url_scheme(tmp_path: Path) -> None:
    assert run("new", "tcp_line", "--dir", str(tmp_path)).status == 0
    package = tmp_path / "rtt-tcp_line" / "src" / "rtt_tcp_line"
    transport = (package / "transport.py").read_text(encoding="utf-8")
    assert 'SCHEMES = ("tcp-line",), ("tcp-lines",)' in transport
    assert "class TcpLineClient(Client)" in (package / "client.py").read_text(encoding="utf-8")


def test_help() -> None:
    result = run("new", "--help")
    assert result.status == 0
    assert all(word in result.out for word in ("NAME", "--dir", "rtt-NAME", "tests/test_conformance.py"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Foo", "invalid plugin name 'Foo': use lowercase letters and digits"),
        ("1foo", "invalid plugin name '1foo'"),
        ("foo--bar", "invalid plugin name 'foo--bar'"),
        ("foo_", "invalid plugin name 'foo_'"),
        ("foo.bar", "invalid plugin name 'foo.bar'"),
        ("föo", "invalid plugin name 'föo'"),
        ("", "invalid plugin name ''"),
        ("a" * 21, "at most 20 characters"),
        ("ws", "rtt-ws is one of rtt's own distributions; choose another"),
        ("core", "rtt-core is one of rtt's own distributions"),
    ],
)
def test_bad_names_are_one_line_errors(tmp_path: Path, name: str, expected: str) -> None:
    result = run("new", name, "--dir", str(tmp_path))
    assert result.status == 2
    assert expected in result.error_line()
    assert list(tmp_path.iterdir()) == [], "nothing is written"


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    mine = tmp_path / "rtt-foo"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine", encoding="utf-8")
    result = run("new", "foo", "--dir", str(tmp_path))
    assert result.status == 2
    assert result.error_line() == (
        f"rtt: error: {mine} already exists; rtt new never overwrites: remove it or choose --dir"
    )
    assert written(mine) == {"notes.txt"} and (mine / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert list(tmp_path.iterdir()) == [mine]


def test_a_dir_that_is_not_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("", encoding="utf-8")
    result = run("new", "foo", "--dir", str(file))
    assert result.status == 2
    assert result.error_line() == f"rtt: error: --dir {file} is not a directory"
    # Below a file: the directory cannot be made, a failure at run time.
    result = run("new", "foo", "--dir", str(file / "sub"))
    assert result.status == 1
    assert result.error_line() == f"rtt: error: cannot write into {file / 'sub'}: Not a directory"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["a", "foo-bar", "abcde-ghijklm_opq-st"])
def test_the_plugin_is_strictly_typed_and_lint_clean(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, name: str
) -> None:
    """mypy --strict and ruff, with the rules the plugin's own pyproject.toml sets, find nothing.

    The shortest name and the longest (20 characters) with both separators: lines neither
    grow past the limit nor become short enough for the formatter to join them.
    """
    assert run("new", name, "--dir", str(tmp_path)).status == 0
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"  # shared: rtt is checked once
    for command in (
        ["mypy", "--strict", "--cache-dir", str(cache), "src", "tests"],
        ["ruff", "check", "--no-cache", "."],
        ["ruff", "format", "--no-cache", "--check", "."],
    ):
        done = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=tmp_path / f"rtt-{name}",
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"


@pytest.mark.timeout(600)
async def test_the_plugin_passes_rtt_check_in_a_fresh_virtualenv(
    fresh_venv: Callable[..., FreshVenv], tmp_path: Path
) -> None:
    """Written, then installed with rtt-core alone: `rtt check foo` passes, and so does its own test file."""
    assert run("new", "foo", "--dir", str(tmp_path)).status == 0
    plugin = tmp_path / "rtt-foo"
    venv = await asyncio.to_thread(fresh_venv, "packages/rtt-core[testing]", str(plugin))
    assert {"rtt-core", "rtt-foo"} <= venv.distributions()
    script = venv.python.parent / "rtt"
    check = await asyncio.to_thread(
        subprocess.run, [str(script), "check", "foo"], capture_output=True, text=True, timeout=300,
        env=command_env(), cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    last = check.stdout.splitlines()[-1]
    assert last.startswith("rtt: foo (rtt-foo 0.1.0) passes the conformance kit: ") and " 0 failed" in last
    own = await asyncio.to_thread(
        subprocess.run, [str(venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "text_only"],
        capture_output=True, text=True, timeout=120, env=command_env(), cwd=plugin,
    )  # fmt: skip
    assert own.returncode == 0 and "1 passed" in own.stdout, own.stdout + own.stderr
