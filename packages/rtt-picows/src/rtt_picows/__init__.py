"""rtt-picows: raw WebSocket transport for rtt on ``picows``.

``rtt.load("picows")`` gives servers at ``ws://host:port/`` that any plain
WebSocket client can talk to (text and binary frames, no rtt framing), the
same wire as rtt-ws on a Cython WebSocket library, and a reconnecting
Python client.
"""

from .client import PicowsClient, PicowsConnection
from .server import PicowsServer
from .transport import PicowsServerOptions, PicowsTransport

__version__ = "0.1.0"

__all__ = ["PicowsClient", "PicowsConnection", "PicowsServer", "PicowsServerOptions", "PicowsTransport"]
