"""rtt-mock: an in-memory rtt transport for tests and for benchmarking rtt's own overhead.

``rtt.load("mock")`` gives servers at ``mock://host:port/`` that mock clients
reach without sockets; the broker ``memory://NAME`` joins servers of one
process as if they were several (:mod:`rtt_mock.broker`). Faults are injected on a connection's
:class:`~rtt_mock.network.Link` (``server.link(socket_id)`` or ``client.link``):
``drop``, ``set_delay``, ``stall``, ``sever``.
"""

from .broker import MemoryBroker, MemoryHub, hub
from .client import MockClient, MockConnection
from .network import Link, MockNetwork, network
from .server import MockServer
from .transport import MockTransport

__version__ = "0.1.0"

__all__ = [
    "Link",
    "MemoryBroker",
    "MemoryHub",
    "MockClient",
    "MockConnection",
    "MockNetwork",
    "MockServer",
    "MockTransport",
    "hub",
    "network",
]
