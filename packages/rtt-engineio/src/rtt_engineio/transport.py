"""The engineio transport: Engine.IO v4 (long-polling, WebSocket, upgrade) on python-engineio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from rtt import Capabilities, ClientOptions, OptionError, ServerOptions, Transport
from rtt.assets import BrowserLibrary, core_assets

from .client import EngineioClient
from .server import EngineioServer

__all__ = ["TRANSPORTS", "EngineioClientOptions", "EngineioServerOptions", "EngineioTransport"]

#: Engine.IO transports, in the order a client tries them.
TRANSPORTS = ("polling", "websocket")


def _transports(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(t, str) and t in TRANSPORTS for t in value)
        or len(set(value)) != len(value)
    ):
        raise OptionError(
            f"option transports must be a non-empty sequence of 'polling' and/or 'websocket', got {value!r}"
        )
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class EngineioServerOptions(ServerOptions):
    """rtt's server options plus the Engine.IO transports and path."""

    transports: Sequence[str] = TRANSPORTS
    """Transports the server accepts: ``("polling", "websocket")`` (with the upgrade), or one of them."""
    engineio_path: str = "/engine.io/"
    """URL path of the Engine.IO endpoint (``/engine.io/``, as every Engine.IO client expects)."""
    assets_path: str | None = "/rtt/"
    """URL path prefix for ``browser_assets()`` (``/rtt/rtt-engineio.js``) in standalone and
    aiohttp modes; ``None`` serves nothing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "transports", _transports(self.transports))
        path = self.engineio_path
        if not (isinstance(path, str) and path.startswith("/") and path.endswith("/") and len(path) > 1):
            raise OptionError(f"option engineio_path must be a path like '/engine.io/', got {path!r}")
        assets = self.assets_path
        if assets is not None and not (
            isinstance(assets, str) and assets.startswith("/") and assets.endswith("/") and assets != path
        ):
            raise OptionError(f"option assets_path must be None or a path like '/rtt/', got {assets!r}")


@dataclass(frozen=True, kw_only=True)
class EngineioClientOptions(ClientOptions):
    """rtt's client options plus the Engine.IO transports the client uses."""

    transports: Sequence[str] = TRANSPORTS
    """``("polling", "websocket")``: long-polling, then the upgrade (default);
    ``("websocket",)``: WebSocket only; ``("polling",)``: long-polling only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "transports", _transports(self.transports))


class EngineioTransport(Transport):
    """``rtt.load("engineio")``: servers at ``http://host:port/engine.io/``, Engine.IO v4 on the wire."""

    name = "engineio"
    capabilities = Capabilities(
        binary=True,
        http_fallbacks=True,
        python_client=True,
        browser_client=True,
        aiohttp=True,
        asgi=True,
        tls=True,
    )
    routes_sessions = True
    server_options = EngineioServerOptions
    client_options = EngineioClientOptions
    browser_libraries = (
        BrowserLibrary(
            npm="engine.io-client",
            version="6",
            file="dist/engine.io.min.js",
            cdn="https://cdn.jsdelivr.net/npm/engine.io-client@6/dist/engine.io.min.js",
        ),
    )

    def browser_assets(self) -> Mapping[str, Traversable]:
        # engine.io-client itself is not among them: the page loads it from npm or a CDN.
        browser = files("rtt_engineio") / "browser"
        return {
            **core_assets(),
            "rtt-engineio.js": browser / "rtt-engineio.js",
            "rtt-engineio.mjs": browser / "rtt-engineio.mjs",
        }

    def _create_server(self, options: ServerOptions, host: str, port: int) -> EngineioServer:
        assert isinstance(options, EngineioServerOptions)
        return EngineioServer(self, options, host, port)

    def _create_client(self, url: str, options: ClientOptions) -> EngineioClient:
        assert isinstance(options, EngineioClientOptions)
        self._secure_url(url, options, plain=("http", "ws"), secure=("https", "wss"))
        return EngineioClient(self, url, options)
