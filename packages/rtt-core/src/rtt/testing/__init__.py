"""The rtt conformance kit (SPEC.md section 11).

A plugin's whole test file::

    import rtt
    from rtt.testing import TransportTests

    class TestFoo(TransportTests):
        def make_transport(self, **options):
            return rtt.load("foo", **options)

The ping-timeout case freezes a client with ``Client.pause_reading()``
(override ``stall_client(client)`` to do it another way); the resume cases
cut connections with a :class:`Proxy` in front of the server (override
``drops(server)`` to do it another way). A server mounted
in an application runs the same kit mounted: the test class sets
``mounted = True``, overrides ``mount(server, listener)`` to serve it in its
host application, and names in ``lacks`` the :data:`MODE_FEATURES` that mode
cannot give (those cases are skipped, saying why). ``rtt check foo``
runs the same kit without a test file. A broker plugin subclasses
:class:`BrokerTests` and overrides ``make_broker(**options)`` (SPEC.md 13.7).

Needs pytest (``pip install rtt-core[testing]``); nothing else does.
"""

from ._support import MODE_FEATURES, LogCapture, Recorder, case, echo, eventually
from .brokers import BrokerTests
from .kit import (
    ROUND_TRIP,
    ClientTests,
    Drops,
    Kit,
    LimitTests,
    MessageTests,
    ResumeTests,
    SecurityTests,
    ServerTests,
    ShutdownTests,
    TlsTests,
    TransportTests,
)
from .proxy import Proxy, ProxyStats

__all__ = [
    "MODE_FEATURES",
    "ROUND_TRIP",
    "BrokerTests",
    "ClientTests",
    "Drops",
    "Kit",
    "LimitTests",
    "LogCapture",
    "MessageTests",
    "Proxy",
    "ProxyStats",
    "Recorder",
    "ResumeTests",
    "SecurityTests",
    "ServerTests",
    "ShutdownTests",
    "TlsTests",
    "TransportTests",
    "case",
    "echo",
    "eventually",
]
