"""What a transport is: a name, declared capabilities, and factories (SPEC.md section 2)."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from .assets import BrowserLibrary
from .client import Client
from .errors import ConfigError, OptionError
from .options import ClientOptions, ServerOptions, build_options, option_names
from .server import Server

__all__ = ["Capabilities", "Transport"]

OptionsT = TypeVar("OptionsT", bound=ServerOptions | ClientOptions)


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    """What a transport can do; the conformance kit runs tests by these, never by name."""

    binary: bool
    """Bytes travel as native binary frames (otherwise as text, see :mod:`rtt.codec`)."""
    http_fallbacks: bool = False
    """Works over plain HTTP (long-polling, streaming) where WebSocket cannot."""
    python_client: bool = True
    """Ships a Python client (``Transport.client``)."""
    browser_client: bool = False
    """Ships a browser client (``Transport.browser_assets``)."""
    aiohttp: bool = False
    """Its server can be mounted into an existing aiohttp application."""
    asgi: bool = False
    """Its server can be served as, or mounted into, an ASGI application."""
    tls: bool = False
    """Its standalone server listens with the ``ssl`` option and its Python client takes ``ssl``
    (SPEC.md 8.4); without it, rtt refuses the option."""

    def names(self) -> frozenset[str]:
        """The names of the capabilities this transport has."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name))


class Transport(abc.ABC):
    """A realtime transport: creates servers and clients with normalised options.

    ``Transport(**options)`` (or ``rtt.load(name, **options)``) takes defaults
    for both sides; ``server()`` and ``client()`` take overrides. Every name is
    checked at once against :class:`~rtt.options.ServerOptions` and
    :class:`~rtt.options.ClientOptions` (or the plugin's subclasses).
    """

    name: ClassVar[str]
    """The name the plugin is registered under in ``rtt.transports``."""
    capabilities: ClassVar[Capabilities]
    server_options: ClassVar[type[ServerOptions]] = ServerOptions
    client_options: ClassVar[type[ClientOptions]] = ClientOptions
    browser_libraries: ClassVar[tuple[BrowserLibrary, ...]] = ()
    """Third-party scripts a page loads before the browser client, in order (SPEC.md 2.8)."""
    routes_sessions: ClassVar[bool] = False
    """With ``http_fallbacks``: its standalone servers sharing a broker relay each HTTP
    request to the process holding its session, so no sticky sessions are needed (SPEC.md 13.8)."""

    def __init__(self, **options: Any) -> None:
        server_names = option_names(self.server_options)
        client_names = option_names(self.client_options)
        unknown = sorted(set(options) - server_names - client_names)
        if unknown:
            raise OptionError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                f"for transport {self.name!r}; valid options: "
                f"{', '.join(sorted(server_names | client_names))}"
            )
        self._server_defaults = {k: v for k, v in options.items() if k in server_names}
        self._client_defaults = {k: v for k, v in options.items() if k in client_names}
        # Build both now so a bad value fails at load time, not at first use.
        self._check_tls(
            build_options(self.server_options, self._server_defaults, context=f"{self.name} server")
        )
        self._check_tls(
            build_options(self.client_options, self._client_defaults, context=f"{self.name} client")
        )
        self.options: Mapping[str, Any] = MappingProxyType(dict(options))

    def server(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Server[Any]:
        """A new, unstarted server; use it as ``async with transport.server(...) as server``."""
        built = build_options(
            self.server_options, {**self._server_defaults, **options}, context=f"{self.name} server"
        )
        return self._create_server(self._check_tls(built), host, port)

    def client(self, url: str, **options: Any) -> Client:
        """A new, unconnected client; use it as ``async with transport.client(url) as client``."""
        built = build_options(
            self.client_options, {**self._client_defaults, **options}, context=f"{self.name} client"
        )
        return self._create_client(url, self._check_tls(built))

    def configure(self, **options: Any) -> Transport:
        """A copy of this transport with some default options replaced."""
        return type(self)(**{**self.options, **options})

    def browser_assets(self) -> Mapping[str, Traversable]:
        """Browser client files by file name, for a server to hand out (SPEC.md 2.7).

        Transports with the ``browser_client`` capability return the shared
        ``rtt-client.js`` and their adapter; others return an empty mapping.
        """
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def _check_tls(self, options: OptionsT) -> OptionsT:
        # Refused here rather than ignored: a plugin that never reads the option would
        # otherwise listen or connect in plain text while the caller believes it is encrypted.
        if options.ssl is not None and not self.capabilities.tls:
            raise OptionError(
                f"option ssl: transport {self.name!r} does not do TLS (it lacks the 'tls' capability)"
            )
        return options

    def _secure_url(
        self, url: str, options: ClientOptions, *, plain: Collection[str], secure: Collection[str]
    ) -> bool:
        """Whether ``url`` asks for TLS; a plugin's ``_create_client`` calls it (SPEC.md 8.4).

        Raises :class:`~rtt.errors.ConfigError` for a scheme in neither collection, and for
        the ``ssl`` option with a plain URL (it would otherwise be ignored).
        """
        scheme = urlsplit(url).scheme
        if scheme not in plain and scheme not in secure:
            schemes = " or ".join(f"{s}://" for s in (*plain, *secure))
            raise ConfigError(f"the {self.name} transport connects to {schemes} URLs, got {url!r}")
        if options.ssl is not None and scheme not in secure:
            schemes = " or ".join(f"{s}://" for s in secure)
            raise ConfigError(
                f"option ssl is for {schemes} URLs; {url!r} is plain text (use {schemes} for TLS)"
            )
        return scheme in secure

    @abc.abstractmethod
    def _create_server(self, options: ServerOptions, host: str, port: int) -> Server[Any]:
        """Build this transport's server."""

    @abc.abstractmethod
    def _create_client(self, url: str, options: ClientOptions) -> Client:
        """Build this transport's client."""
