"""rtt-sockjs: SockJS transport for rtt on aiohttp's ``sockjs``.

``rtt.load("sockjs")`` gives servers at ``http://host:port/sockjs``
(WebSocket, xhr-streaming, xhr-polling, eventsource and the other SockJS
fallbacks; standalone or mounted into an aiohttp application) and a
reconnecting Python client over WebSocket, xhr-streaming or xhr-polling.
The official ``sockjs-client`` talks to the server. SockJS carries text
only: rtt peers exchange ``bytes`` through :mod:`rtt.codec`.
"""

from .client import SockjsClient, SockjsConnection
from .server import SockjsConn, SockjsServer
from .transport import SockjsClientOptions, SockjsServerOptions, SockjsTransport

__version__ = "0.1.0"

__all__ = [
    "SockjsClient",
    "SockjsClientOptions",
    "SockjsConn",
    "SockjsConnection",
    "SockjsServer",
    "SockjsServerOptions",
    "SockjsTransport",
]
