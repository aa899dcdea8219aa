"""rtt: one API for realtime servers and clients over WebSocket, Engine.IO and SockJS.

Start here (SPEC.md is the full contract)::

    import rtt

    transport = rtt.load("ws")                 # or a config mapping, or RTT_TRANSPORT
    async with transport.server(port=8000) as server:

        @server.on("message")
        async def echo(socket, data):
            await server.send(socket.id, data)

The modules, in the order a newcomer should read them:

- :mod:`rtt.events`     event names and the close reasons
- :mod:`rtt.errors`     the exception tree
- :mod:`rtt.options`    normalised options; :mod:`rtt.reconnect` the backoff policy
- :mod:`rtt.handshake`  origin allow-list and the ``authorize`` hook
- :mod:`rtt.server`     the server template a plugin fills in
- :mod:`rtt.client`     the reconnecting client a plugin fills in
- :mod:`rtt.transport`  capabilities and the factories
- :mod:`rtt.broker`     how several server processes act as one
- :mod:`rtt.registry`   finding plugins by name
- :mod:`rtt.codec`      sizes, and bytes over a text-only wire
- :mod:`rtt.testing`    the conformance kit every plugin runs
"""

from .broker import Broker, BrokerOptions, BrokerState
from .client import Client, ClientConnection, ClientState
from .errors import (
    BrokerError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    InvalidCloseError,
    InvalidMessageError,
    MessageTooBigError,
    OfflineQueueFullError,
    OptionError,
    PluginError,
    RejectedError,
    RttError,
    StateError,
    TransportError,
    UnknownBrokerError,
    UnknownSocketError,
    UnknownTransportError,
    UsageError,
)
from .events import Close, CloseReason
from .handshake import Accept, Handshake, Headers, Reject
from .options import ClientOptions, ServerOptions
from .reconnect import ReconnectPolicy
from .registry import PluginInfo, available, load, load_broker
from .server import Server, ServerState, ServerStats, Socket
from .transport import Capabilities, Transport

__version__ = "0.1.0"

__all__ = [
    "Accept",
    "Broker",
    "BrokerError",
    "BrokerOptions",
    "BrokerState",
    "Capabilities",
    "Client",
    "ClientConnection",
    "ClientOptions",
    "ClientState",
    "Close",
    "CloseReason",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "Handshake",
    "Headers",
    "InvalidCloseError",
    "InvalidMessageError",
    "MessageTooBigError",
    "OfflineQueueFullError",
    "OptionError",
    "PluginError",
    "PluginInfo",
    "ReconnectPolicy",
    "Reject",
    "RejectedError",
    "RttError",
    "Server",
    "ServerOptions",
    "ServerState",
    "ServerStats",
    "Socket",
    "StateError",
    "Transport",
    "TransportError",
    "UnknownBrokerError",
    "UnknownSocketError",
    "UnknownTransportError",
    "UsageError",
    "available",
    "load",
    "load_broker",
]
