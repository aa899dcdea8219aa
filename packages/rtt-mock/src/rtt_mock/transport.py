"""The mock transport: in memory, no sockets, with fault injection."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rtt import Capabilities, ClientOptions, ConfigError, ServerOptions, Transport

from .client import MockClient
from .network import MockNetwork
from .network import network as default_network
from .server import MockServer

__all__ = ["MockTransport"]


class MockTransport(Transport):
    """``rtt.load("mock")``: servers at ``mock://host:port/`` on an in-memory network."""

    name = "mock"
    capabilities = Capabilities(binary=True, python_client=True)

    def __init__(self, *, network: MockNetwork | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.network = network if network is not None else default_network

    def configure(self, **options: Any) -> MockTransport:
        return MockTransport(network=self.network, **{**self.options, **options})

    def _create_server(self, options: ServerOptions, host: str, port: int) -> MockServer:
        return MockServer(self, options, host, port, self.network)

    def _create_client(self, url: str, options: ClientOptions) -> MockClient:
        if urlsplit(url).scheme != "mock":
            raise ConfigError(f"the mock transport connects to mock:// URLs, got {url!r}")
        return MockClient(self, url, options, self.network)
