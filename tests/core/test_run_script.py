"""``tests/run``, the one command that installs what the suite needs and runs it (README.md).

Each test runs the real script, in its ``--check`` mode (which installs and runs nothing), on
a copy of the repository's script and ``tox.ini``, with a PATH built for the case: a mirror of
the system's command directories without the tools the script looks for, and a directory of
the tools the case has. The tools are small shell scripts that log each call, so a test also
sees what the script ran; ``python3`` is a real interpreter. Not being root is real: as root,
the script runs as ``nobody`` (setpriv).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "run"
RUN_TIMEOUT = 60
"""Seconds for one run of the script; a check takes about one."""
AT_ONCE = 15
"""Seconds within which a stop must come: it checks, it installs nothing, it runs no test."""
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
#: What the script looks for: left out of the mirror, so each case decides whether it is there.
LOOKED_FOR = re.compile(
    r"(chromium.*|nginx|nodejs|node|npm|npx|redis-server|pyenv|apt-get|apt-cache|python.*|pip.*)"
)
STUB_LOG = "calls.log"


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    """A directory every user can read (pytest's own temporary directories are root's only)."""
    path = Path(tempfile.mkdtemp(prefix="rtt-run-script-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def system_bin(workspace: Path) -> Path:
    """The system's commands (bash, sed, awk, ...), without the ones the script looks for."""
    mirror = workspace / "system-bin"
    mirror.mkdir()
    for directory in SYSTEM_DIRS:
        if not Path(directory).is_dir():
            continue
        for entry in Path(directory).iterdir():
            if LOOKED_FOR.fullmatch(entry.name) or (mirror / entry.name).exists():
                continue
            (mirror / entry.name).symlink_to(entry)
    return mirror


def _runs_as(python: str, user: int | None) -> bool:
    """Whether ``python`` is Python 3.11+ and ``user`` (None: this one) may run it."""
    # Through a shell: setpriv may open its command before it changes user; a shell opens it as the user.
    check = 'exec "$0" -c "import sys; sys.exit(sys.version_info < (3, 11))"'
    command = ["/bin/sh", "-c", check, python]
    try:
        return subprocess.run(_as(user, command), capture_output=True, timeout=RUN_TIMEOUT).returncode == 0
    except OSError:
        return False


def _as(user: int | None, command: list[str]) -> list[str]:
    if user is None:
        return command
    entry = pwd.getpwuid(user)
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to run the script as nobody"
    return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", *command]


@pytest.fixture(scope="module")
def other_user() -> int | None:
    """Who runs the not-root cases: ``nobody`` when the tests run as root, else this user."""
    return pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else None


@pytest.fixture(scope="module")
def python_for_other(other_user: int | None) -> str:
    """A real Python 3.11+ the not-root user may run (root's pyenv lies under a private /root)."""
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in candidates:
        if Path(candidate).exists() and _runs_as(candidate, other_user):
            return candidate
    pytest.fail(f"no Python 3.11+ among {candidates} that the not-root user may run")


@dataclass
class Case:
    """A copy of the script and tox.ini, and the tools one case has."""

    root: Path
    tools: Path
    system_bin: Path

    def tool(self, name: str, output: str = "", status: int = 0) -> None:
        """A command that logs its call, prints ``output`` and exits with ``status``."""
        path = self.tools / name
        path.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{self.root / STUB_LOG}"\n'
            f"printf '%s' '{output}'\nexit {status}\n",
            encoding="utf-8",
        )
        path.chmod(0o755)

    def python(self, python: str) -> None:
        """A real interpreter as python3 and as python3.X for its own version, instead of the one there."""
        for old in [self.tools / "python3", *self.tools.glob("python3.*")]:
            old.unlink(missing_ok=True)
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=RUN_TIMEOUT,
        ).stdout.strip()
        for name in ("python3", f"python{version}"):
            # A script, not a link: a virtual environment's python is one only when run by its own path.
            (self.tools / name).write_text(f'#!/bin/sh\nexec "{python}" "$@"\n', encoding="utf-8")
            (self.tools / name).chmod(0o755)

    def calls(self) -> list[str]:
        log = self.root / STUB_LOG
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []

    def run(self, *args: str, user: int | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
        env = {
            "PATH": f"{self.tools}{os.pathsep}{self.system_bin}",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
        }
        command = _as(user, [str(self.root / "tests" / "run"), *args])
        started = time.monotonic()
        # From / : the script finds the repository from its own path, whatever the working directory.
        result = subprocess.run(
            command, env=env, cwd="/", capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        return result, time.monotonic() - started


@pytest.fixture(scope="module")
def pip_venv(workspace: Path) -> Path:
    """A virtual environment with pip: where tox goes when it runs python3."""
    venv = workspace / "pip-venv"
    subprocess.run([_python_311(), "-m", "venv", venv], check=True, timeout=RUN_TIMEOUT)
    return venv


def _python_311() -> str:
    """A Python 3.11 to make the cases' python3 from: the one running the tests, or another.

    In the py312 and py313 envs the tests run on 3.12 or 3.13, and a python3 of that version would
    itself be the python3.12 or python3.13 the pyenv cases want the script to look for elsewhere.
    """
    here = os.path.realpath(sys.executable)
    if sys.version.startswith("3.11."):  # not version_info: mypy would take this branch as always
        return here
    candidates = ["/usr/bin/python3.11", "/usr/local/bin/python3.11", shutil.which("python3.11") or ""]
    candidates += sorted(str(p) for p in Path("/root/.pyenv/versions").glob("3.11.*/bin/python3.11"))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return here


@pytest.fixture
def case(workspace: Path, system_bin: Path, pip_venv: Path) -> Case:
    """Everything present (Node 20, the Node packages installed), python3 a virtual environment's."""
    root = Path(tempfile.mkdtemp(dir=workspace))
    root.chmod(0o755)
    (root / "tests" / "node" / "node_modules").mkdir(parents=True)
    shutil.copy2(SCRIPT, root / "tests" / "run")
    shutil.copy(ROOT / "tox.ini", root / "tox.ini")
    shutil.copy(ROOT / "tests" / "node" / "package-lock.json", root / "tests" / "node" / "package-lock.json")
    # npm writes node_modules/.package-lock.json last; newer than the lock file: installed.
    (root / "tests" / "node" / "node_modules" / ".package-lock.json").write_text("{}", encoding="utf-8")
    (root / STUB_LOG).touch(mode=0o666)
    (root / STUB_LOG).chmod(0o666)
    tools = root / "bin"
    tools.mkdir()
    made = Case(root=root, tools=tools, system_bin=system_bin)
    for name, output in [
        ("chromium", "Chromium 120.0.6099.224 built on Debian 12.4"),
        ("nginx", ""),
        ("node", "v20.11.1"),
        ("npm", "9.2.0"),
        ("redis-server", "Redis server v=7.0.15"),
        ("apt-get", ""),
    ]:
        made.tool(name, output)
    made.python(str(pip_venv / "bin" / "python3"))
    return made


def _env_list() -> list[str]:
    match = re.search(r"^env_list *= *(.+)$", (ROOT / "tox.ini").read_text(encoding="utf-8"), re.MULTILINE)
    assert match is not None
    return [name.strip() for name in match[1].split(",")]


def _stopped(result: subprocess.CompletedProcess[str], took: float) -> str:
    """The one stderr line of a stop (exit status 2, nothing on stdout, at once)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert took < AT_ONCE
    return lines[0]


def test_everything_present_it_would_run_tox_with_its_arguments(case: Case, pip_venv: Path) -> None:
    result, _ = case.run("--check", "-e", "core", "--", "-k", "relay")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # python3 is a virtual environment's, with pip: tox goes there, and runs from there.
    python = pip_venv / "bin" / "python3"
    assert result.stdout.splitlines() == [
        f'tests/run: would run: {python} -m pip install "tox>=4.11"',
        f"tests/run: would run: {python} -m tox -e core -- -k relay",
    ]
    # --check ran no installer: only version questions reached the tools.
    assert not any(call.startswith(("apt-get", "npm")) for call in case.calls()), case.calls()


@pytest.mark.parametrize("node", ["v18.19.0", "v22.1.0"])
def test_node_18_19_and_newer_are_accepted(case: Case, node: str) -> None:
    case.tool("node", node)
    result, _ = case.run("--check", "-e", "lint")
    assert result.returncode == 0, result.stderr


def test_not_root_with_packages_missing_stops_with_the_apt_get_line(
    case: Case, other_user: int | None, python_for_other: str
) -> None:
    case.python(python_for_other)
    (case.tools / "chromium").unlink()
    (case.tools / "redis-server").unlink()
    result, took = case.run("--check", "-e", "core", user=other_user)
    assert _stopped(result, took) == (
        "tests/run: missing chromium redis-server; as root run: apt-get install chromium redis-server"
        " (or run tests/run as root on Debian 12)"
    )
    assert not any(call.startswith(("apt-get", "npm")) for call in case.calls()), case.calls()


def test_not_root_stops_even_without_check_before_anything_runs(
    case: Case, other_user: int | None, python_for_other: str
) -> None:
    case.python(python_for_other)
    """The real mode stops the same way: nothing installed, no tox, no test."""
    (case.tools / "npm").unlink()
    result, took = case.run("-e", "core", user=other_user)
    assert _stopped(result, took) == (
        "tests/run: missing npm; as root run: apt-get install npm (or run tests/run as root on Debian 12)"
    )
    assert not any(call.startswith(("apt-get", "npm")) for call in case.calls())
    assert not (case.root / ".tox").exists() and not (case.root / ".tox-venv").exists()


def test_without_apt_get_it_names_the_debian_packages(
    case: Case, other_user: int | None, python_for_other: str
) -> None:
    case.python(python_for_other)
    for name in ("apt-get", "node"):
        (case.tools / name).unlink()
    result, took = case.run("--check", "-e", "core", user=other_user)
    assert _stopped(result, took) == (
        "tests/run: missing nodejs; install nodejs"
        " (Debian 12's package names; or run tests/run as root on Debian 12)"
    )


@pytest.mark.parametrize("node", ["v16.20.2", "v18.18.2"])
def test_node_older_than_18_19_stops(case: Case, node: str) -> None:
    case.tool("node", node)
    result, took = case.run("--check", "-e", "core")
    assert _stopped(result, took) == (
        f"tests/run: Node.js 18.19+ (CI runs 20; found {node}): install it (nodejs.org or NodeSource)"
        " and put it first on PATH"
    )


def test_missing_python_312_and_313_stop_with_the_envs_to_run_instead(case: Case) -> None:
    """The default run (tox's env_list) needs python3.12 and python3.13: never skipped silently."""
    result, took = case.run("--check")
    rest = ",".join(name for name in _env_list() if name not in ("py312", "py313"))
    assert _stopped(result, took) == (
        "tests/run: missing python3.12 python3.13; install python3.12 python3.13 for tox env py312 py313"
        f" (Debian 12 has no package: e.g. pyenv install 3.12 3.13), or leave them out: tests/run -e {rest}"
    )
    # The environments that name no other interpreter need neither.
    result, _ = case.run("--check", "-e", rest)
    assert result.returncode == 0, result.stderr


def test_missing_packages_and_python_share_one_line(
    case: Case, other_user: int | None, python_for_other: str
) -> None:
    case.python(python_for_other)
    (case.tools / "chromium").unlink()
    result, took = case.run("--check", "--env=core,py313", user=other_user)
    assert _stopped(result, took) == (
        "tests/run: missing chromium python3.13; as root run: apt-get install chromium"
        " (or run tests/run as root on Debian 12); install python3.13 for tox env py313"
        " (Debian 12 has no package: e.g. pyenv install 3.13), or leave them out: tests/run -e core"
    )


def test_pyenv_versions_are_found_newest_patch_first(case: Case, python_for_other: str) -> None:
    pyenv_root = case.root / "pyenv"
    for version in ("3.12.0", "3.12.10", "3.12.9", "3.13.0"):
        bin_dir = pyenv_root / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / f"python{version.rsplit('.', 1)[0]}").symlink_to(python_for_other)
    # pyenv's answers: its versions, one a line, and its root.
    script = case.tools / "pyenv"
    script.write_text(
        '#!/bin/sh\ncase "$1" in\n'
        "  versions) printf '3.12.0\\n3.12.10\\n3.12.9\\n3.13.0\\nsystem\\n' ;;\n"
        f"  root) echo {pyenv_root} ;;\n"
        "esac\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    result, _ = case.run("--check", "-e", "py312,py313")
    assert result.returncode == 0, result.stderr
    assert (
        f"tests/run: python3.12: {pyenv_root}/versions/3.12.10/bin/python3.12" in result.stdout.splitlines()
    )
    assert f"tests/run: python3.13: {pyenv_root}/versions/3.13.0/bin/python3.13" in result.stdout.splitlines()


def test_root_check_names_what_it_would_install_and_installs_nothing(case: Case) -> None:
    (case.tools / "chromium").unlink()
    (case.tools / "redis-server").unlink()
    stamp = case.root / "tests" / "node" / "node_modules" / ".package-lock.json"
    os.utime(stamp, (time.time() - 3600, time.time() - 3600))
    result, took = case.run("--check", "-e", "core")
    if os.geteuid() != 0:
        assert _stopped(result, took).startswith("tests/run: missing chromium redis-server; as root run:")
        return
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "tests/run: would run: apt-get update && apt-get install chromium redis-server" in lines
    # node_modules older than package-lock.json: npm ci again.
    assert "tests/run: would run: npm ci --prefix tests/node" in lines
    assert not any(call.startswith(("apt-get", "npm")) for call in case.calls()), case.calls()


def test_tox_gets_a_venv_of_its_own_where_python3_cannot_pip_install(case: Case, workspace: Path) -> None:
    venv = Path(tempfile.mkdtemp(dir=workspace)) / "venv"
    subprocess.run(
        [os.path.realpath(sys.executable), "-m", "venv", "--without-pip", venv],
        check=True,
        timeout=RUN_TIMEOUT,
    )
    case.python(str(venv / "bin" / "python3"))
    result, _ = case.run("--check", "-e", "core")
    assert result.returncode == 0, result.stderr
    own = case.root / ".tox-venv" / "bin" / "python"
    assert result.stdout.splitlines() == [
        f"tests/run: would run: python3 -m venv {case.root / '.tox-venv'}",
        f'tests/run: would run: {own} -m pip install "tox>=4.11"',
        f"tests/run: would run: {own} -m tox -e core",
    ]
