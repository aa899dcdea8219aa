"""``rtt.assets.adapter_assets``: the browser files a plugin serves, from its installed package (SPEC 2.7)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rtt.assets import CORE_MODULE, CORE_SCRIPT, adapter_assets, core_assets, read_asset


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package ``rtt_demo_plugin`` with a browser folder holding the demo adapter files."""
    package = tmp_path / "rtt_demo_plugin"
    (package / "browser").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "browser" / "rtt-demo.js").write_text(
        'rtt.registerWebSocketTransport("demo");\n', encoding="utf-8"
    )
    (package / "browser" / "rtt-demo.mjs").write_text('import "./rtt-demo.js";\n', encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Each test's package is a new one: none imported by an earlier test may stand in for it.
    monkeypatch.delitem(sys.modules, "rtt_demo_plugin", raising=False)
    return package


def test_the_core_files_and_the_plugins_two(plugin: Path) -> None:
    assets = adapter_assets("rtt_demo_plugin", "demo")
    assert sorted(assets) == sorted([CORE_SCRIPT, CORE_MODULE, "rtt-demo.js", "rtt-demo.mjs"])
    for name, asset in core_assets().items():
        assert assets[name].read_bytes() == asset.read_bytes()
    assert read_asset(assets, "rtt-demo.js") == (
        "text/javascript; charset=utf-8",
        b'rtt.registerWebSocketTransport("demo");\n',
    )
    assert read_asset(assets, "rtt-demo.mjs") == (
        "text/javascript; charset=utf-8",
        b'import "./rtt-demo.js";\n',
    )
    # The core script carries the shared plain WebSocket adapter the demo file calls.
    assert b"function registerWebSocketTransport(name)" in assets[CORE_SCRIPT].read_bytes()


@pytest.mark.parametrize("missing", ["rtt-demo.js", "rtt-demo.mjs"])
def test_a_missing_plugin_file_is_named(plugin: Path, missing: str) -> None:
    (plugin / "browser" / missing).unlink()
    with pytest.raises(FileNotFoundError) as caught:
        adapter_assets("rtt_demo_plugin", "demo")
    assert str(caught.value) == (
        f"the browser client of transport 'demo' needs the file rtt_demo_plugin/browser/{missing}"
    )


def test_a_package_that_is_not_installed() -> None:
    with pytest.raises(ModuleNotFoundError, match="rtt_no_such_plugin"):
        adapter_assets("rtt_no_such_plugin", "demo")
