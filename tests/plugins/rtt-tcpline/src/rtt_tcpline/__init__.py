"""rtt-tcpline: a tiny third-party rtt transport, newline-delimited JSON over TCP.

``rtt.load("tcpline")`` gives servers at ``tcpline://host:port/``. The wire is
text only, so ``bytes`` travel in rtt's text-wire encoding (:mod:`rtt.codec`).
"""

from .client import TcplineClient, TcplineConnection
from .server import TcplineServer
from .transport import TcplineTransport

__version__ = "0.1.0"

__all__ = ["TcplineClient", "TcplineConnection", "TcplineServer", "TcplineTransport"]
