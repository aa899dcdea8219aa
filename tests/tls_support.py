"""HTTPS for tests: a throwaway certificate authority (trustme) and an aiohttp application served over TLS.

The CA lives in memory for one test; its certificate names ``127.0.0.1`` and
``localhost``. Python clients trust it through :func:`client_context`, Node
through :func:`node_env` (``NODE_EXTRA_CA_CERTS``); Chromium is given
``ignore_https_errors`` for the test's context instead.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trustme

if TYPE_CHECKING:  # aiohttp only where https_app is used: the ws environment has none
    from aiohttp import web

NAMES = ("127.0.0.1", "localhost")


def certificate_authority() -> trustme.CA:
    """A new CA for one test."""
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for :data:`NAMES`, issued by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*NAMES).configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca`` (and verifies host names, as by default)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def node_env(ca: trustme.CA, directory: Path) -> dict[str, str]:
    """The environment for a Node process that trusts ``ca`` besides its own CAs.

    ``NODE_EXTRA_CA_CERTS`` is read once, at Node's start, and applies to every
    TLS connection of the process (``https``, ``tls``, the ``ws`` package alike).
    """
    path = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return {**os.environ, "NODE_EXTRA_CA_CERTS": str(path)}


def bound_socket() -> tuple[socket.socket, int]:
    """A TCP socket bound to a free port of 127.0.0.1 (not listening yet), and the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@asynccontextmanager
async def https_app(
    app: web.Application, context: ssl.SSLContext, sock: socket.socket
) -> AsyncIterator[None]:
    """Serve ``app`` over TLS on ``sock`` (from :func:`bound_socket`) until the block ends."""
    from aiohttp import web

    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, ssl_context=context).start()
        yield
    finally:
        await runner.cleanup()
