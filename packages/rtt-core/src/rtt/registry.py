"""Finding transports by name through the ``rtt.transports`` entry point group (SPEC.md 2).

rtt-core never imports a plugin by name: it asks :mod:`importlib.metadata`
which distributions registered under the group, so ``pip install rtt-foo`` is
all it takes to make ``"foo"`` selectable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import ConfigError, PluginError, UnknownTransportError
from .transport import Capabilities, Transport

__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "PluginInfo", "available", "load", "transport_class"]

ENTRY_POINT_GROUP = "rtt.transports"
ENV_VAR = "RTT_TRANSPORT"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin: loaded (``error is None``) or not, and why."""

    name: str
    distribution: str | None
    version: str | None
    capabilities: Capabilities | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the plugin imported and follows the contract."""
        return self.error is None


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _import(ep: EntryPoint) -> type[Transport]:
    try:
        obj = ep.load()
    except Exception as exc:
        raise PluginError(
            f"transport {ep.name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, Transport)):
        raise PluginError(f"transport {ep.name!r} ({ep.value}) is not a subclass of rtt.Transport")
    if getattr(obj, "name", None) != ep.name:
        raise PluginError(
            f"transport {ep.name!r} ({ep.value}) declares name {getattr(obj, 'name', None)!r}; "
            "the entry point name and Transport.name must match"
        )
    if not isinstance(getattr(obj, "capabilities", None), Capabilities):
        raise PluginError(f"transport {ep.name!r} ({ep.value}) does not declare capabilities")
    return obj


def available() -> list[PluginInfo]:
    """Every plugin registered in ``rtt.transports``, sorted by name.

    Each is imported to check it; one that fails is listed with the reason and
    never hides the others.
    """
    infos = []
    for ep in _entry_points():
        dist = ep.dist
        distribution = dist.name if dist is not None else None
        version = dist.version if dist is not None else None
        try:
            cls = _import(ep)
        except PluginError as exc:
            infos.append(PluginInfo(ep.name, distribution, version, None, str(exc)))
        else:
            infos.append(PluginInfo(ep.name, distribution, version, cls.capabilities))
    return infos


def transport_class(name: str) -> type[Transport]:
    """The transport class registered as ``name``."""
    matches = [ep for ep in _entry_points() if ep.name == name]
    if not matches:
        installed = sorted({ep.name for ep in _entry_points()})
        raise UnknownTransportError(name, installed)
    if len({ep.value for ep in matches}) > 1:
        owners = ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in matches)
        raise PluginError(f"transport name {name!r} is registered more than once: {owners}")
    return _import(matches[0])


def load(transport: str | Transport | Mapping[str, Any] | None = None, /, **options: Any) -> Transport:
    """Return a transport, ready to make servers and clients.

    ``transport`` is a registered name (``"ws"``), an already built
    :class:`Transport` (returned as is, or reconfigured if options are
    given), a config mapping ``{"transport": name, "options": {...}}``, or
    ``None`` to use the ``RTT_TRANSPORT`` environment variable.
    """
    if transport is None:
        name = os.environ.get(ENV_VAR, "").strip()
        if not name:
            raise ConfigError(f"no transport given and the {ENV_VAR} environment variable is not set")
        return transport_class(name)(**options)
    if isinstance(transport, Transport):
        return transport.configure(**options) if options else transport
    if isinstance(transport, str):
        return transport_class(transport)(**options)
    if isinstance(transport, Mapping):
        return _from_config(transport, options)
    raise ConfigError(
        f"transport must be a name, a Transport, a config mapping or None; got {type(transport).__name__}"
    )


def _from_config(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> Transport:
    unknown = sorted(set(config) - {"transport", "options"})
    if unknown:
        raise ConfigError(
            f"unknown config keys {', '.join(map(repr, unknown))}; valid keys: 'transport', 'options'"
        )
    name = config.get("transport")
    if not isinstance(name, str) or not name:
        raise ConfigError("config needs a 'transport' key naming an installed transport")
    configured = config.get("options", {})
    if not isinstance(configured, Mapping):
        raise ConfigError(f"config 'options' must be a mapping, got {type(configured).__name__}")
    return transport_class(name)(**{**configured, **overrides})
