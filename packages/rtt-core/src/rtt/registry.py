"""Finding plugins by name: transports in ``rtt.transports`` (SPEC.md 2), brokers in ``rtt.brokers`` (13).

rtt-core never imports a plugin by name: it asks :mod:`importlib.metadata`
which distributions registered under the groups, so ``pip install rtt-foo`` is
all it takes to make ``"foo"`` selectable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal
from urllib.parse import urlsplit

from .broker import Broker
from .errors import ConfigError, PluginError, UnknownBrokerError, UnknownTransportError
from .transport import Capabilities, Transport

__all__ = [
    "BROKER_ENTRY_POINT_GROUP",
    "BROKER_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "BrokerSpec",
    "PluginInfo",
    "available",
    "broker_class",
    "load",
    "load_broker",
    "transport_class",
]

ENTRY_POINT_GROUP = "rtt.transports"
ENV_VAR = "RTT_TRANSPORT"
BROKER_ENTRY_POINT_GROUP = "rtt.brokers"
BROKER_ENV_VAR = "RTT_BROKER"

#: What the ``broker`` option and ``rtt.load_broker`` take: a URL or name, a mapping, an instance.
BrokerSpec = Broker | str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin: loaded (``error is None``) or not, and why."""

    name: str
    distribution: str | None
    version: str | None
    capabilities: Capabilities | None
    error: str | None = None
    kind: Literal["transport", "broker"] = "transport"
    """``"transport"`` (``rtt.transports``) or ``"broker"`` (``rtt.brokers``)."""

    @property
    def ok(self) -> bool:
        """Whether the plugin imported and follows the contract."""
        return self.error is None


def _entry_points(group: str = ENTRY_POINT_GROUP) -> list[EntryPoint]:
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def _load(ep: EntryPoint, base: type[Any]) -> Any:
    """The class behind ``ep``, checked to be a ``base`` registered under its own name."""
    kind = base.__name__.lower()
    try:
        obj = ep.load()
    except Exception as exc:
        raise PluginError(
            f"{kind} {ep.name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginError(f"{kind} {ep.name!r} ({ep.value}) is not a subclass of rtt.{base.__name__}")
    if getattr(obj, "name", None) != ep.name:
        raise PluginError(
            f"{kind} {ep.name!r} ({ep.value}) declares name {getattr(obj, 'name', None)!r}; "
            f"the entry point name and {base.__name__}.name must match"
        )
    return obj


def _import(ep: EntryPoint) -> type[Transport]:
    cls: type[Transport] = _load(ep, Transport)
    if not isinstance(getattr(cls, "capabilities", None), Capabilities):
        raise PluginError(f"transport {ep.name!r} ({ep.value}) does not declare capabilities")
    return cls


def _import_broker(ep: EntryPoint) -> type[Broker]:
    cls: type[Broker] = _load(ep, Broker)
    return cls


def available() -> list[PluginInfo]:
    """Every plugin registered in ``rtt.transports`` then in ``rtt.brokers``, each sorted by name.

    Each is imported to check it; one that fails is listed with the reason and
    never hides the others. :attr:`PluginInfo.kind` tells the two apart.
    """
    infos = []
    for ep in _entry_points():
        try:
            capabilities: Capabilities | None = _import(ep).capabilities
        except PluginError as exc:
            infos.append(_info(ep, None, str(exc)))
        else:
            infos.append(_info(ep, capabilities, None))
    for ep in _entry_points(BROKER_ENTRY_POINT_GROUP):
        try:
            _import_broker(ep)
        except PluginError as exc:
            infos.append(_info(ep, None, str(exc), kind="broker"))
        else:
            infos.append(_info(ep, None, None, kind="broker"))
    return infos


def _info(
    ep: EntryPoint,
    capabilities: Capabilities | None,
    error: str | None,
    kind: Literal["transport", "broker"] = "transport",
) -> PluginInfo:
    dist = ep.dist
    distribution = dist.name if dist is not None else None
    version = dist.version if dist is not None else None
    return PluginInfo(ep.name, distribution, version, capabilities, error, kind)


def broker_class(name: str) -> type[Broker]:
    """The broker class registered as ``name``, or serving the URL scheme ``name``."""
    eps = _entry_points(BROKER_ENTRY_POINT_GROUP)
    matches = [ep for ep in eps if ep.name == name]
    if len({ep.value for ep in matches}) > 1:
        owners = ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in matches)
        raise PluginError(f"broker name {name!r} is registered more than once: {owners}")
    if matches:
        return _import_broker(matches[0])
    for ep in eps:
        try:
            cls = _import_broker(ep)
        except PluginError:
            continue  # a broken plugin is reported by available(), and cannot serve a scheme
        if name in cls.schemes:
            return cls
    raise UnknownBrokerError(name, sorted({ep.name for ep in eps}))


def load_broker(broker: BrokerSpec | None = None, /, **options: Any) -> Broker | None:
    """Return a new, unstarted broker (SPEC.md 13.2), or ``None`` for no broker.

    ``broker`` is a URL (``"redis://127.0.0.1:6379/0"``: the plugin serving
    its scheme, with ``url`` set), a registered name (``"redis"``), a mapping
    ``{"broker": URL or name, "options": {...}}``, an already built
    :class:`Broker` (returned as is), or ``None`` to use the ``RTT_BROKER``
    environment variable (unset or empty: no broker).
    """
    if broker is None:
        broker = os.environ.get(BROKER_ENV_VAR, "").strip()
        if not broker:
            return None
    if isinstance(broker, Broker):
        if options:
            raise ConfigError("options cannot be applied to an already built broker")
        return broker
    if isinstance(broker, str):
        if "://" in broker:
            scheme = urlsplit(broker).scheme
            return broker_class(scheme)(url=broker, **options)
        if not broker:
            raise ConfigError("a broker must be a URL, a registered name, a mapping or a Broker")
        return broker_class(broker)(**options)
    if isinstance(broker, Mapping):
        unknown = sorted(set(broker) - {"broker", "options"})
        if unknown:
            raise ConfigError(
                f"unknown broker config keys {', '.join(map(repr, unknown))}; valid keys: 'broker', 'options'"
            )
        name = broker.get("broker")
        if not isinstance(name, str) or not name:
            raise ConfigError("a broker config mapping needs a 'broker' key: a URL or a registered name")
        configured = broker.get("options", {})
        if not isinstance(configured, Mapping):
            raise ConfigError(f"broker config 'options' must be a mapping, got {type(configured).__name__}")
        return load_broker(name, **{**configured, **options})
    raise ConfigError(
        f"broker must be a URL, a name, a config mapping, a Broker or None; got {type(broker).__name__}"
    )


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
    given), a config mapping ``{"transport": name, "broker": ..., "options":
    {...}}``, or ``None`` to use the ``RTT_TRANSPORT`` environment variable.
    Without a ``broker`` (option or config key), servers use the broker named
    by ``RTT_BROKER`` if it is set (SPEC.md 13.2).
    """
    if (
        "broker" not in options
        and not isinstance(transport, Transport)
        and not (isinstance(transport, Mapping) and "broker" in transport)
    ):
        env_broker = os.environ.get(BROKER_ENV_VAR, "").strip()
        if env_broker:
            options["broker"] = env_broker
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
    unknown = sorted(set(config) - {"transport", "options", "broker"})
    if unknown:
        raise ConfigError(
            f"unknown config keys {', '.join(map(repr, unknown))}; "
            "valid keys: 'transport', 'broker', 'options'"
        )
    name = config.get("transport")
    if not isinstance(name, str) or not name:
        raise ConfigError("config needs a 'transport' key naming an installed transport")
    configured = config.get("options", {})
    if not isinstance(configured, Mapping):
        raise ConfigError(f"config 'options' must be a mapping, got {type(configured).__name__}")
    if "broker" in config:
        configured = {**configured, "broker": config["broker"]}
    return transport_class(name)(**{**configured, **overrides})
