"""The ws transport: raw WebSocket on ``websockets``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from rtt import Capabilities, ClientOptions, OptionError, ServerOptions, Transport
from rtt.assets import adapter_assets

from .client import WsClient
from .server import WsServer

__all__ = ["WsServerOptions", "WsTransport"]


@dataclass(frozen=True, kw_only=True)
class WsServerOptions(ServerOptions):
    """rtt's server options plus where the ws server hands out the browser client."""

    assets_path: str | None = "/rtt/"
    """URL path prefix for ``browser_assets()`` (``/rtt/rtt-ws.js``); ``None`` serves nothing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        path = self.assets_path
        if path is not None and not (isinstance(path, str) and path.startswith("/") and path.endswith("/")):
            raise OptionError(f"option assets_path must be None or a path like '/rtt/', got {path!r}")


class WsTransport(Transport):
    """``rtt.load("ws")``: servers at ``ws://host:port/`` (``wss://`` with ``ssl``), plain WebSocket.

    Or mounted: ``server.attach(app)`` in an aiohttp application, ``server.asgi_app()`` under ASGI.
    """

    name = "ws"
    capabilities = Capabilities(
        binary=True, python_client=True, browser_client=True, tls=True, aiohttp=True, asgi=True
    )
    server_options = WsServerOptions

    def browser_assets(self) -> Mapping[str, Traversable]:
        # rtt-ws.js only registers rtt-client.js's plain WebSocket adapter under "ws".
        return adapter_assets("rtt_ws", "ws")

    def _create_server(self, options: ServerOptions, host: str, port: int) -> WsServer:
        assert isinstance(options, WsServerOptions)
        return WsServer(self, options, host, port)

    def _create_client(self, url: str, options: ClientOptions) -> WsClient:
        self._secure_url(url, options, plain=("ws",), secure=("wss",))
        return WsClient(self, url, options)
