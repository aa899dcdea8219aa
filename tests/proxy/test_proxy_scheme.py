"""``Handshake.scheme`` without a proxy: what the connection itself is (SPEC.md 8.2, 8.4, 8.5)."""

from __future__ import annotations

from typing import Any

import pytest
from tls_support import certificate_authority, client_context, server_context

import rtt

pytestmark = pytest.mark.timeout(60)

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "ws": ("ws", {}),
    "picows": ("picows", {}),
    "engineio-websocket": ("engineio", {"transports": ["websocket"]}),
    "engineio-polling": ("engineio", {"transports": ["polling"]}),
    "sockjs-websocket": ("sockjs", {"transports": ["websocket"]}),
    "sockjs-xhr-polling": ("sockjs", {"transports": ["xhr-polling"]}),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_the_scheme_is_the_connections_own(name: str, tls: bool) -> None:
    transport_name, client_options = CASES[name]
    transport = rtt.load(transport_name)
    ca = certificate_authority()
    seen: list[rtt.Handshake] = []
    server_tls: dict[str, Any] = {"ssl": server_context(ca)} if tls else {}
    client_tls: dict[str, Any] = {"ssl": client_context(ca)} if tls else {}
    # Forwarded headers from an untrusted peer do not change it either way.
    headers = {"X-Forwarded-Proto": "http" if tls else "https"}
    server = transport.server(authorize=seen.append, close_timeout=0.5, **server_tls)
    async with server:
        client = transport.client(
            server.url, headers=headers, reconnect=False, **client_options, **client_tls
        )
        async with client:
            pass
    assert seen[0].scheme == ("https" if tls else "http") and seen[0].secure is tls
