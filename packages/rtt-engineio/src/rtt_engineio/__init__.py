"""rtt-engineio: Engine.IO transport for rtt on ``python-engineio``.

``rtt.load("engineio")`` gives servers at ``http://host:port/engine.io/``
(long-polling, WebSocket and the upgrade; standalone, mounted in an aiohttp
application, or as an ASGI application) and a reconnecting Python client.
Any Engine.IO v4 client can talk to the server.
"""

from .client import EngineioClient, EngineioConnection
from .server import EngineioConn, EngineioServer
from .transport import EngineioClientOptions, EngineioServerOptions, EngineioTransport

__version__ = "0.1.0"

__all__ = [
    "EngineioClient",
    "EngineioClientOptions",
    "EngineioConn",
    "EngineioConnection",
    "EngineioServer",
    "EngineioServerOptions",
    "EngineioTransport",
]
