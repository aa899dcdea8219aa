"""The picows transport: raw WebSocket on ``picows``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from rtt import Capabilities, ClientOptions, OptionError, ServerOptions, Transport
from rtt.assets import adapter_assets

from .client import PicowsClient
from .server import PicowsServer

__all__ = ["PicowsServerOptions", "PicowsTransport"]


@dataclass(frozen=True, kw_only=True)
class PicowsServerOptions(ServerOptions):
    """rtt's server options plus where the picows server hands out the browser client."""

    assets_path: str | None = "/rtt/"
    """URL path prefix for ``browser_assets()`` (``/rtt/rtt-picows.js``); ``None`` serves nothing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        path = self.assets_path
        if path is not None and not (isinstance(path, str) and path.startswith("/") and path.endswith("/")):
            raise OptionError(f"option assets_path must be None or a path like '/rtt/', got {path!r}")


class PicowsTransport(Transport):
    """``rtt.load("picows")``: servers at ``ws://host:port/`` (``wss://`` with ``ssl``), plain WebSocket."""

    name = "picows"
    capabilities = Capabilities(binary=True, python_client=True, browser_client=True, tls=True)
    server_options = PicowsServerOptions

    def browser_assets(self) -> Mapping[str, Traversable]:
        # The plain WebSocket adapter is rtt-client.js's own; rtt-picows.js registers it as "picows".
        return adapter_assets("rtt_picows", "picows")

    def _create_server(self, options: ServerOptions, host: str, port: int) -> PicowsServer:
        assert isinstance(options, PicowsServerOptions)
        return PicowsServer(self, options, host, port)

    def _create_client(self, url: str, options: ClientOptions) -> PicowsClient:
        self._secure_url(url, options, plain=("ws",), secure=("wss",))
        return PicowsClient(self, url, options)
