"""Third-party plugins are found through their entry points (SPEC.md 2, 12).

rtt-broken comes from the test tree, rtt-tcpline is what ``rtt new tcpline`` writes (tox installs both).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

import rtt

if TYPE_CHECKING:
    from conftest import FreshVenv


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
def test_fresh_virtualenv_install(fresh_venv: Callable[..., FreshVenv]) -> None:
    """The issue's acceptance check: core and mock alone, in a new virtualenv."""
    venv = fresh_venv("packages/rtt-core", "packages/rtt-mock")
    assert venv.distributions() == {"rtt-core", "rtt-mock"}, "they must depend on nothing else"
    out = venv.run(
        textwrap.dedent(
            """
            import rtt
            print(rtt.available())
            try:
                rtt.load("nope")
            except rtt.UnknownTransportError as exc:
                print(exc)
            """
        )
    )
    assert "name='mock'" in out and "distribution='rtt-mock'" in out and "error=None" in out
    assert "unknown transport 'nope'; installed transports: mock" in out and "pip install rtt-nope" in out
