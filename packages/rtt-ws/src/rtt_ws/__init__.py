"""rtt-ws: raw WebSocket transport for rtt on the ``websockets`` library.

``rtt.load("ws")`` gives servers at ``ws://host:port/`` that any plain
WebSocket client can talk to (text and binary frames, no rtt framing), a
reconnecting Python client, and a browser client (``transport.browser_assets()``).
The same WebSocket can be served by an existing web application instead:
``server.attach(app)`` in aiohttp, ``server.asgi_app()`` under ASGI (FastAPI,
Starlette, Django, uvicorn).
"""

from .client import WsClient, WsConnection
from .server import WsServer
from .transport import WsTransport

__version__ = "0.1.0"

__all__ = ["WsClient", "WsConnection", "WsServer", "WsTransport"]
