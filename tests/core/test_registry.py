"""The plugin registry: discovery, load, config, environment (SPEC.md 2)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest

import rtt
from rtt import ConfigError, PluginError, UnknownBrokerError, UnknownTransportError, registry
from rtt_mock import MockTransport


def fake_entry_points(*extra: EntryPoint) -> Any:
    real = list(entry_points(group=registry.ENTRY_POINT_GROUP))

    def fake(group: str) -> list[EntryPoint]:
        if group != registry.ENTRY_POINT_GROUP:
            return list(entry_points(group=group))
        return [*real, *extra]

    return fake


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, registry.ENTRY_POINT_GROUP)


class NotATransport:
    pass


class Misnamed(MockTransport):
    name = "other"


class NoCapabilities(MockTransport):
    name = "nocaps"
    capabilities = None  # type: ignore[assignment]


def test_available_lists_mock_with_its_distribution() -> None:
    infos = {info.name: info for info in rtt.available()}
    mock = infos["mock"]
    assert mock.ok and mock.distribution == "rtt-mock" and mock.version == "0.1.0"
    assert mock.capabilities is not None and "binary" in mock.capabilities.names()


def test_load_by_name() -> None:
    transport = rtt.load("mock", max_message_size=10)
    assert isinstance(transport, MockTransport) and transport.options["max_message_size"] == 10


def test_unknown_name_lists_installed_and_suggests_pip() -> None:
    with pytest.raises(UnknownTransportError) as info:
        rtt.load("nope")
    assert "installed transports: " in str(info.value) and "mock" in str(info.value)
    assert "pip install rtt-nope" in str(info.value)
    assert info.value.name == "nope" and "mock" in info.value.installed


def test_a_name_in_capitals_points_at_the_lowercase_name_not_at_pip() -> None:
    with pytest.raises(UnknownTransportError) as info:
        rtt.load("MOCK")
    assert "Plugin names are lowercase: did you mean 'mock'?" in str(info.value)
    assert "pip install" not in str(info.value)


def test_a_near_miss_is_named() -> None:
    with pytest.raises(UnknownTransportError, match="Did you mean 'mock'\\?"):
        rtt.load("mokc")


def test_a_plugin_of_this_checkout_is_installed_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From a clone of the repository the plugins are not on a package index yet.
    (tmp_path / "packages" / "rtt-faraway").mkdir(parents=True)
    (tmp_path / "packages" / "rtt-faraway" / "pyproject.toml").write_text("[project]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownTransportError) as info:
        rtt.load("Faraway")
    assert "This checkout has it: pip install ./packages/rtt-faraway" in str(info.value)
    with pytest.raises(UnknownBrokerError, match=r"pip install \./packages/rtt-faraway"):
        rtt.load_broker("faraway")


def test_an_instance_is_accepted_where_a_name_is() -> None:
    transport = rtt.load("mock")
    assert rtt.load(transport) is transport
    changed = rtt.load(transport, max_message_size=5)
    assert changed is not transport and changed.options["max_message_size"] == 5


def test_config_mapping() -> None:
    transport = rtt.load({"transport": "mock", "options": {"max_message_size": 9}}, outbound_limit=3)
    assert dict(transport.options) == {"max_message_size": 9, "outbound_limit": 3}
    assert isinstance(rtt.load({"transport": "mock"}), MockTransport)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"options": {}}, "needs a 'transport' key"),
        ({"transport": ""}, "needs a 'transport' key"),
        ({"transport": "mock", "opts": {}}, "unknown config keys 'opts'"),
        ({"transport": "mock", "options": [1]}, "'options' must be a mapping"),
        ({"transport": "nope"}, "pip install rtt-nope"),
    ],
)
def test_bad_config(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rtt.load(config)


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTT_TRANSPORT", "mock")
    assert isinstance(rtt.load(max_message_size=4), MockTransport)
    monkeypatch.setenv("RTT_TRANSPORT", "  ")
    with pytest.raises(ConfigError, match="RTT_TRANSPORT environment variable is not set"):
        rtt.load()
    monkeypatch.delenv("RTT_TRANSPORT")
    with pytest.raises(ConfigError, match="no transport given"):
        rtt.load()


def test_bad_argument_type() -> None:
    with pytest.raises(ConfigError, match="got int"):
        rtt.load(42)  # type: ignore[arg-type]


def test_broken_plugins_never_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    here = __name__
    monkeypatch.setattr(
        registry,
        "entry_points",
        fake_entry_points(
            ep("missing", "rtt_no_such_module:Transport"),
            ep("notatransport", f"{here}:NotATransport"),
            ep("misnamed", f"{here}:Misnamed"),
            ep("nocaps", f"{here}:NoCapabilities"),
        ),
    )
    infos = {info.name: info for info in rtt.available()}
    assert infos["mock"].ok
    assert not infos["missing"].ok and "ModuleNotFoundError" in (infos["missing"].error or "")
    assert "not a subclass of rtt.Transport" in (infos["notatransport"].error or "")
    assert "entry point name and Transport.name must match" in (infos["misnamed"].error or "")
    assert "does not declare capabilities" in (infos["nocaps"].error or "")
    assert infos["missing"].distribution is None and infos["missing"].capabilities is None
    with pytest.raises(PluginError, match="failed to import"):
        rtt.load("missing")
    assert isinstance(rtt.load("mock"), MockTransport)


def test_duplicate_registrations_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "entry_points", fake_entry_points(ep("mock", f"{__name__}:Misnamed")))
    with pytest.raises(PluginError, match="registered more than once"):
        rtt.load("mock")
