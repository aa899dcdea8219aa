"""The fault and bad-input suite (issue 12): every case runs on every wire rtt serves.

A case takes the ``wire`` fixture and builds its server and clients from it, so
the same assertion is made of raw WebSocket (rtt-ws on websockets, rtt-picows on
picows), Engine.IO over WebSocket and long-polling, and SockJS over WebSocket and xhr. A case that only means
something on some wires (an Engine.IO packet, a SockJS payload) says so with
``wire.name``/``wire.http`` or takes its own plugin's fixture instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

import rtt

from .http_support import NATIVE_CLOSE_TEXT

#: The transports that are a plain RFC 6455 WebSocket on the wire (SPEC.md 12.2, 12.5).
PLAIN_WEBSOCKET = ("ws", "picows")


@dataclass(frozen=True)
class Wire:
    """One transport, restricted to one of its wire transports."""

    name: str
    """The rtt transport: ``ws``, ``picows``, ``engineio`` or ``sockjs``."""
    client_transports: tuple[str, ...] = ()
    """The plugin's wire transports its Python client may use (empty: the only one)."""
    http: bool = False
    """Whether messages travel in HTTP requests (long-polling, xhr)."""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """Whether it is a plain WebSocket: a message is one frame as it is, with no framing of its own."""
        return self.name in PLAIN_WEBSOCKET

    @property
    def native_close_text(self) -> bool:
        """Whether its library's parser words the closes it finds itself (picows, SPEC.md 12.5).

        The code is RFC 6455's on every wire; only the text differs, so a case
        asserts rtt's text only where this is false.
        """
        return self.name in NATIVE_CLOSE_TEXT

    @property
    def id(self) -> str:
        return "-".join((self.name, *self.client_transports))

    def transport(self, **options: Any) -> rtt.Transport:
        """The transport, with its client restricted to this wire; ``options`` as for :func:`rtt.load`."""
        if self.client_transports:
            options.setdefault("transports", self.client_transports)
        return rtt.load(self.name, **{**self.options, **options})


WIRES = (
    Wire("ws"),
    Wire("picows"),
    Wire("engineio", ("websocket",)),
    Wire("engineio", ("polling",), http=True),
    Wire("sockjs", ("websocket",)),
    Wire("sockjs", ("xhr-polling",), http=True),
)


@pytest.fixture(params=WIRES, ids=[wire.id for wire in WIRES])
def wire(request: pytest.FixtureRequest) -> Wire:
    """Each wire in turn."""
    wire: Wire = request.param
    return wire


HTTP_WIRES = tuple(wire for wire in WIRES if wire.http)


@pytest.fixture(params=HTTP_WIRES, ids=[wire.id for wire in HTTP_WIRES])
def http_wire(request: pytest.FixtureRequest) -> Wire:
    """Each wire whose messages travel in HTTP requests (long-polling, xhr), for the HTTP-only cases."""
    wire: Wire = request.param
    return wire


#: Every wire of the fault suite, Engine.IO's upgrade from polling and SockJS's streaming as well:
#: the wires of the loopback proxy's cases and of resume's drop cases (issue 17).
PROXY_WIRES = (
    *WIRES,
    Wire("engineio", ("polling", "websocket")),
    Wire("sockjs", ("xhr-streaming",), http=True),
)
