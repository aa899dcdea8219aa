"""Plugins installed from the test tree are found through their entry points (SPEC.md 2, 12)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rtt

ROOT = Path(__file__).resolve().parents[2]


def test_installed_plugins_are_listed_with_distribution_and_version() -> None:
    infos = {info.name: info for info in rtt.available()}
    assert {"mock", "tcpline", "broken"} <= set(infos)
    tcpline = infos["tcpline"]
    assert tcpline.ok and tcpline.distribution == "rtt-tcpline" and tcpline.version
    assert tcpline.capabilities is not None and not tcpline.capabilities.binary
    assert infos["mock"].ok


def test_a_broken_plugin_is_reported_and_hides_nothing() -> None:
    broken = next(info for info in rtt.available() if info.name == "broken")
    assert not broken.ok and broken.distribution == "rtt-broken"
    assert "ModuleNotFoundError" in (broken.error or "")
    assert "rtt_broken_missing_dependency" in (broken.error or "")
    with pytest.raises(rtt.PluginError, match="failed to import"):
        rtt.load("broken")
    assert rtt.load("tcpline").name == "tcpline"
    assert rtt.load("mock").name == "mock"


def test_unknown_name_lists_every_installed_transport() -> None:
    with pytest.raises(rtt.UnknownTransportError) as info:
        rtt.load("nope")
    listed = str(info.value).split("installed transports: ")[1].split(".")[0].split(", ")
    assert {"broken", "mock", "tcpline"} <= set(listed) and listed == sorted(listed)
    assert "pip install rtt-nope" in str(info.value)


@pytest.mark.timeout(600)
def test_fresh_virtualenv_install(tmp_path: Path) -> None:
    """The issue's acceptance check: core and mock alone, in a new virtualenv."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            str(ROOT / "packages/rtt-core"),
            str(ROOT / "packages/rtt-mock"),
        ],
        check=True,
        timeout=480,
    )
    code = textwrap.dedent(
        """
        import importlib.metadata, rtt
        print(rtt.available())
        assert [i.name for i in rtt.available()] == ["mock"]
        try:
            rtt.load("nope")
        except rtt.UnknownTransportError as exc:
            assert "pip install rtt-nope" in str(exc), exc
        else:
            raise SystemExit("load('nope') did not fail")
        names = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
        extra = [n for n in names if n not in ("pip", "setuptools", "rtt-core", "rtt-mock")]
        assert not extra, f"rtt-core and rtt-mock must depend on nothing else, found {extra}"
        """
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "name='mock'" in result.stdout and "distribution='rtt-mock'" in result.stdout
