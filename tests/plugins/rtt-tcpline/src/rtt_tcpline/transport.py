"""The tcpline transport: newline-delimited JSON over TCP, text only."""

from __future__ import annotations

from rtt import Capabilities, ClientOptions, ServerOptions, Transport

from .client import TcplineClient
from .server import TcplineServer

__all__ = ["TcplineTransport"]


class TcplineTransport(Transport):
    """``rtt.load("tcpline")``: servers at ``tcpline://host:port/``."""

    name = "tcpline"
    capabilities = Capabilities(binary=False, python_client=True)

    def _create_server(self, options: ServerOptions, host: str, port: int) -> TcplineServer:
        return TcplineServer(self, options, host, port)

    def _create_client(self, url: str, options: ClientOptions) -> TcplineClient:
        return TcplineClient(self, url, options)
