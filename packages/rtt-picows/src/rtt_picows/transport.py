"""The picows transport: raw WebSocket on ``picows``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from rtt import Capabilities, ClientOptions, ConfigError, ServerOptions, Transport

from .client import PicowsClient
from .server import PicowsServer

__all__ = ["PicowsServerOptions", "PicowsTransport"]


@dataclass(frozen=True, kw_only=True)
class PicowsServerOptions(ServerOptions):
    """rtt's server options for the picows server (none of its own yet)."""


class PicowsTransport(Transport):
    """``rtt.load("picows")``: servers at ``ws://host:port/``, plain WebSocket on the wire."""

    name = "picows"
    capabilities = Capabilities(binary=True, python_client=True)
    server_options = PicowsServerOptions

    def _create_server(self, options: ServerOptions, host: str, port: int) -> PicowsServer:
        assert isinstance(options, PicowsServerOptions)
        return PicowsServer(self, options, host, port)

    def _create_client(self, url: str, options: ClientOptions) -> PicowsClient:
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise ConfigError(f"the picows transport connects to ws:// or wss:// URLs, got {url!r}")
        return PicowsClient(self, url, options)
