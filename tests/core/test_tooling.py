"""tox.ini is the source of the test environments; hatch.toml must say the same (CONTRIBUTING.md).

Each environment tox.ini defines (but ``coverage``, which combines the others' data
and has no hatch counterpart) must exist in hatch.toml with the same
dependencies, the same commands and the same Python, so the two never drift.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: tox-only: it combines the coverage data of the others (tox's ``depends``), which hatch cannot express.
TOX_ONLY = frozenset({"coverage"})
#: hatch has no env_tmp_dir: its scripts use this directory instead, emptied first (tox empties its own).
HATCH_TMP = "build/hatch/{env_name}"
HATCH_CLEAR_TMP = f"python -c \"import shutil; shutil.rmtree('{HATCH_TMP}', ignore_errors=True)\""


def _lines(value: str) -> list[str]:
    """Non-empty, non-comment lines, with backslash continuations joined into one."""
    lines: list[str] = []
    pending = ""
    for raw in value.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def _tox() -> tuple[list[str], dict[str, dict[str, Any]]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini", encoding="utf-8")
    # Every environment tox.ini defines, whether or not env_list runs it by default.
    names = [
        section.removeprefix("testenv:") for section in parser.sections() if section.startswith("testenv:")
    ]

    def values(section: str, key: str) -> list[str]:
        """The lines of ``key``, with tox's ``{[section]key}`` references and constraints files resolved."""
        own = parser[section]
        raw = own[key] if key in own else parser["testenv"].get(key, "")
        resolved: list[str] = []
        for line in _lines(raw):
            if reference := re.fullmatch(r"\{\[([\w:]+)\](\w+)\}", line):
                resolved += values(reference[1], reference[2])
            elif line.startswith("-c "):  # hatch has no constraints file: it pins the same versions
                constraints = ROOT / line.removeprefix("-c ").replace("{toxinidir}/", "")
                resolved += _lines(constraints.read_text(encoding="utf-8"))
            else:
                resolved.append(line)
        return resolved

    envs = {}
    for name in names:
        section = f"testenv:{name}"
        # hatch has no commands_pre: its scripts run them first, after emptying their temporary directory.
        pre = values(section, "commands_pre")
        commands = [HATCH_CLEAR_TMP, *pre] if pre else []
        commands += values(section, "commands")
        envs[name] = {
            "deps": sorted(_dependency(dep.replace("{toxinidir}/", "")) for dep in values(section, "deps")),
            "commands": [
                _command(line.replace("{posargs}", "{args}").replace("{envtmpdir}", HATCH_TMP))
                for line in commands
            ],
            "python": parser[section].get("basepython", "").removeprefix("python") or None,
        }
    return names, envs


def _hatch() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "hatch.toml").read_text(encoding="utf-8"))["envs"]
    default = config["default"]
    envs = {}
    for name, own in config.items():
        if name == "default":
            continue
        env = {**config.get(own.get("template", ""), {}), **own}
        deps = env.get("dependencies", [*default.get("dependencies", []), *env.get("extra-dependencies", [])])
        commands: list[str] = []
        for script in env.get("scripts", {}).values():
            commands += [script] if isinstance(script, str) else script
        commands = [_command(command) for command in commands]
        envs[name] = {
            "deps": sorted(_dependency(dep) for dep in deps),
            "commands": commands,
            "python": env.get("python"),
        }
    return envs


def _command(command: str) -> str:
    """One spelling of a command line: single spaces, double quotes."""
    return " ".join(command.replace("'", '"').split())


def _dependency(requirement: str) -> str:
    """One spelling for both files: a local path with its extras, or the requirement as written."""
    local = re.fullmatch(r"[\w.-]+(\[[\w,]+\])? @ \{root:uri\}/(.+)", requirement.strip())
    if local is not None:
        return f"{local[2]}{local[1] or ''}"
    return requirement.strip().replace(" ", "")


NAMES, TOX = _tox()


@pytest.mark.parametrize("name", [name for name in NAMES if name not in TOX_ONLY])
def test_hatch_environment_follows_tox(name: str) -> None:
    hatch = _hatch()
    assert name in hatch, f"tox environment {name!r} has no [envs.{name}] in hatch.toml"
    assert hatch[name]["deps"] == TOX[name]["deps"], f"{name}: dependencies differ"
    assert hatch[name]["commands"] == TOX[name]["commands"], f"{name}: commands differ"
    assert hatch[name]["python"] == TOX[name]["python"], f"{name}: Python versions differ"


def test_hatch_has_no_environment_tox_lacks() -> None:
    assert set(_hatch()) <= set(NAMES), "hatch.toml defines environments tox.ini does not run"


def test_hatch_comment_lists_every_environment() -> None:
    header = (ROOT / "hatch.toml").read_text(encoding="utf-8").split("\n\n", 1)[0]
    for name in _hatch():
        assert f"hatch run {name}:" in header, f"hatch.toml's opening comment does not mention {name}"


def _readme_test_command() -> str:
    """The command of README.md's "Run the tests": the one line of the section's first bash block."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Run the tests\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```bash\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block is not None, 'README.md\'s "Run the tests" has no ```bash block'
    lines = _lines(block[1])
    assert len(lines) == 1, f"README.md's test command is one line, not {lines}"
    return lines[0]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """CI runs what a newcomer runs: .ci/run's last command is README.md's test command, as written."""
    commands = _lines((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert commands[-1] == _readme_test_command()
