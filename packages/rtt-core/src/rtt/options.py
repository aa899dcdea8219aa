"""Normalised options: one name, one meaning, one default on every transport (SPEC.md section 7).

Each plugin maps these onto its library. A plugin with options of its own
subclasses :class:`ServerOptions` or :class:`ClientOptions` and names the
subclass on its transport; validation and error messages come for free.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl as _ssl
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import OptionError
from .handshake import Authorize, TrustedProxies, normalise_origin
from .reconnect import ReconnectPolicy
from .resume import ENTRY_COST

__all__ = ["ClientOptions", "Options", "ServerOptions", "build_options", "option_names"]

MiB = 1024 * 1024


def _seconds(name: str, value: object, *, zero_ok: bool, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(f"option {name} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise OptionError(f"option {name} must be {'>=' if zero_ok else '>'} 0, got {value!r}")


def _integer(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"option {name} must be an int, got {value!r}")
    if value < minimum:
        raise OptionError(f"option {name} must be >= {minimum}, got {value!r}")


def _context(name: str, value: object, *, server: bool) -> None:
    if value is None:
        return
    if not isinstance(value, _ssl.SSLContext):
        raise OptionError(f"option {name} must be an ssl.SSLContext or None, got {value!r}")
    wrong = _ssl.PROTOCOL_TLS_CLIENT if server else _ssl.PROTOCOL_TLS_SERVER
    if value.protocol == wrong:
        # Caught here: the library would fail only at the first handshake, and not say why.
        example = "ssl.Purpose.CLIENT_AUTH" if server else "cafile=..."
        raise OptionError(
            f"option {name} got a {'client' if server else 'server'}-side context; "
            f"use ssl.create_default_context({example})"
        )


@dataclass(frozen=True, kw_only=True)
class Options:
    """Options both sides understand."""

    # Limits
    max_message_size: int = 1 * MiB
    """Largest message, in bytes (UTF-8 for ``str``), either side sends or accepts."""
    # Timeouts
    close_timeout: float = 5.0
    """Seconds a closing handshake may take before the connection is dropped;
    on a server, also the bound on how long shutdown waits for sockets to drain."""

    def __post_init__(self) -> None:
        _integer("max_message_size", self.max_message_size, minimum=1)
        _seconds("close_timeout", self.close_timeout, zero_ok=True)


@dataclass(frozen=True, kw_only=True)
class ServerOptions(Options):
    """Options of a server (SPEC.md section 7.1)."""

    # Limits
    outbound_limit: int = 1 * MiB
    """Unsent bytes a socket may hold before it is dropped as a slow consumer."""
    # Security
    allowed_origins: Sequence[str] | None = None
    """Browser ``Origin`` allow-list; ``None`` disables the check, ``"*"`` allows all."""
    authorize: Authorize | None = None
    """Handshake hook: see :mod:`rtt.handshake`."""
    session_binding: bool = False
    """Bind each HTTP session to the client that opened it with a random key in an ``HttpOnly``
    cookie, checked on every later request of the session (SPEC.md 8.3). Off by default, so every
    native client of the protocol works (cookie-less clients, pages on another site over plain
    HTTP). Transports without HTTP sessions (ws, mock) ignore it: their sessions are bound to
    the connection."""
    ssl: _ssl.SSLContext | None = None
    """TLS for a server that listens on its own (SPEC.md 8.4): a server-side context, such as
    ``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` with ``load_cert_chain(...)``;
    ``server.url`` then reads ``wss://`` or ``https://``. A server mounted in an application
    (aiohttp, ASGI) leaves TLS to the application's web server and refuses this option."""
    trusted_proxies: Collection[str] = ()
    """Reverse proxies whose forwarded headers are believed (SPEC.md 8.5): exact IP addresses and
    CIDR networks, IPv4 or IPv6 (``["127.0.0.1", "10.0.0.0/8"]``). Only for a connection from one
    of them, the client's address and scheme come from ``X-Forwarded-For``/``X-Forwarded-Proto``
    or ``Forwarded``. Empty (the default) trusts none. Kept as a
    :class:`~rtt.handshake.TrustedProxies`, parsed once."""
    # Timeouts
    ping_interval: float | None = 20.0
    """Seconds between heartbeats; ``None`` disables them."""
    ping_timeout: float = 20.0
    """Seconds a peer has to answer a heartbeat before it is dropped."""
    # Scale-out
    reuse_port: bool = False
    """Bind a standalone server's listener with ``SO_REUSEPORT``, so several processes share one
    port and the kernel spreads new connections among them (``rtt serve --workers``). Ignored
    where the application owns the listener (aiohttp, ASGI) and by the in-memory mock. ``True``
    on an OS without ``SO_REUSEPORT`` (Windows) raises :class:`~rtt.errors.OptionError`."""
    broker: Any = None
    """How this process joins others (SPEC.md 13): a URL such as ``redis://127.0.0.1:6379/0``,
    a broker name, a mapping ``{"broker": ..., "options": {...}}``, a :class:`rtt.Broker`, or ``None``."""
    # Resume (SPEC.md 17)
    resume_window: float | None = None
    """Seconds a socket whose connection dropped stays in ``sockets`` (away) for its client to
    resume it with nothing lost or repeated; ``None`` (the default) turns resume off and adds
    nothing to the wire."""
    resume_buffer: int = 2 * MiB
    """Bound on what a socket keeps for replay: the messages sent to it that its client has not
    acknowledged, each counted as its size plus 64 bytes. Past it the session cannot be
    resumed. Keep it at least twice ``outbound_limit`` so a slow consumer can still resume."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.broker is not None:
            # Imported here: the registry imports this module.
            from .broker import HEADER_LIMIT, Broker
            from .registry import load_broker

            # Built now, so a bad name, URL or broker option fails here, not at start.
            broker = self.broker if isinstance(self.broker, Broker) else load_broker(self.broker)
            cap = broker.max_payload if broker is not None else None
            if broker is not None and cap is not None and self.max_message_size + HEADER_LIMIT > cap:
                raise OptionError(
                    f"option max_message_size={self.max_message_size} does not fit broker {broker.name!r}, "
                    f"which carries at most {cap} bytes a message (header included): "
                    f"use at most {cap - HEADER_LIMIT}"
                )
            if (
                self.resume_window is not None
                and broker is not None
                and cap is not None
                and self.resume_buffer + HEADER_LIMIT > cap
            ):
                # A session moves between processes as one broker message (SPEC.md 17.5).
                raise OptionError(
                    f"option resume_buffer={self.resume_buffer} does not fit broker {broker.name!r}, "
                    f"which carries at most {cap} bytes a message (header included): "
                    f"use at most {cap - HEADER_LIMIT}"
                )
        _integer("outbound_limit", self.outbound_limit, minimum=1)
        _seconds("resume_window", self.resume_window, zero_ok=False, none_ok=True)
        _integer("resume_buffer", self.resume_buffer, minimum=1)
        # Checked only with resume on, so a large max_message_size alone never trips it.
        if self.resume_window is not None and self.resume_buffer < self.max_message_size + ENTRY_COST:
            raise OptionError(
                f"option resume_buffer={self.resume_buffer} cannot hold one message of max_message_size="
                f"{self.max_message_size} (each kept message counts {ENTRY_COST} bytes more): "
                f"use at least {self.max_message_size + ENTRY_COST}"
            )
        if not isinstance(self.reuse_port, bool):
            raise OptionError(f"option reuse_port must be True or False, got {self.reuse_port!r}")
        if not isinstance(self.session_binding, bool):
            raise OptionError(f"option session_binding must be True or False, got {self.session_binding!r}")
        if self.reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            # Checked here rather than left to the listener, whose error (a ValueError from
            # asyncio) would not say which option asked for it.
            raise OptionError("option reuse_port needs SO_REUSEPORT, which this operating system lacks")
        origins: object = self.allowed_origins
        if origins is not None:
            if not isinstance(origins, list | tuple | set | frozenset) or not all(
                isinstance(o, str) for o in origins
            ):
                raise OptionError(f"option allowed_origins must be a list of origin strings, got {origins!r}")
            object.__setattr__(self, "allowed_origins", tuple(normalise_origin(o) for o in origins))
        _context("ssl", self.ssl, server=True)
        object.__setattr__(self, "trusted_proxies", _proxies(self.trusted_proxies))
        if self.authorize is not None and not callable(self.authorize):
            raise OptionError(f"option authorize must be callable, got {self.authorize!r}")
        _seconds("ping_interval", self.ping_interval, zero_ok=False, none_ok=True)
        _seconds("ping_timeout", self.ping_timeout, zero_ok=False)


def _proxies(value: object) -> TrustedProxies:
    if isinstance(value, TrustedProxies):
        return value
    if not isinstance(value, list | tuple | set | frozenset):
        # A lone str would read as its characters: say so rather than trust "1", ".", ...
        raise OptionError(
            f"option trusted_proxies must be a list of IP addresses and networks (strings), got {value!r}"
        )
    try:
        return TrustedProxies(value)
    except ValueError as exc:
        raise OptionError(f"option trusted_proxies: {exc}") from None


def _policy(value: object) -> ReconnectPolicy | None:
    if value is None or value is False:
        return None
    if value is True:
        return ReconnectPolicy()
    if isinstance(value, ReconnectPolicy):
        return value
    if isinstance(value, Mapping):
        return build_options(ReconnectPolicy, value, context="reconnect")
    raise OptionError(
        f"option reconnect must be a ReconnectPolicy, a mapping of its fields, True or False; got {value!r}"
    )


@dataclass(frozen=True, kw_only=True)
class ClientOptions(Options):
    """Options of a Python client (SPEC.md section 7.2)."""

    # Reconnection
    reconnect: ReconnectPolicy | None = field(default_factory=ReconnectPolicy)
    """Backoff policy; ``None`` or ``False`` never reconnects (a mapping or ``True`` also work)."""
    offline_queue_size: int = 1000
    """Messages ``send()`` may queue while disconnected; 0 makes such sends raise."""
    # Limits
    max_queue: int = 64
    """Received messages buffered for ``recv()``/iteration before reading pauses."""
    # Timeouts
    connect_timeout: float = 10.0
    """Seconds one connection attempt (including the handshake) may take."""
    # Handshake
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra handshake headers (an ``Authorization`` token, an ``Origin``)."""
    ssl: _ssl.SSLContext | None = None
    """TLS for ``wss://`` and ``https://`` URLs (SPEC.md 8.4). ``None`` verifies the server
    against the system's CAs; a client-side context (``ssl.create_default_context(cafile=...)``,
    ``load_cert_chain`` for a client certificate) trusts what it is given. rtt never turns
    verification off; a context that does is the caller's explicit choice."""
    # Resume
    resume: bool = True
    """Resume a dropped connection's session when the server offers it (SPEC.md 17): nothing
    the server sent meanwhile is lost, nothing this client sent is handled twice. ``False``
    asks for nothing and leaves the handshake as it was."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.resume, bool):
            raise OptionError(f"option resume must be True or False, got {self.resume!r}")
        object.__setattr__(self, "reconnect", _policy(self.reconnect))
        _integer("offline_queue_size", self.offline_queue_size, minimum=0)
        _integer("max_queue", self.max_queue, minimum=1)
        _seconds("connect_timeout", self.connect_timeout, zero_ok=False)
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise OptionError(f"option headers must map str to str, got {self.headers!r}")
        object.__setattr__(self, "headers", dict(self.headers))
        _context("ssl", self.ssl, server=False)


T = TypeVar("T")


def option_names(cls: type[Any]) -> frozenset[str]:
    """The option names a dataclass of options accepts."""
    return frozenset(f.name for f in dataclasses.fields(cls))


def build_options(cls: type[T], options: Mapping[str, Any], *, context: str) -> T:
    """Build ``cls(**options)``, naming the valid options if any name is unknown."""
    valid = option_names(cls)
    unknown = sorted(set(options) - valid)
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise OptionError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {names} for {context}; "
            f"valid options: {', '.join(sorted(valid))}"
        )
    return cls(**options)
