"""HTTPS for tests: a throwaway certificate authority (trustme) and an aiohttp application served over TLS.

The CA lives in memory for one test; its certificate names ``127.0.0.1`` and
``localhost``. Python clients trust it through :func:`client_context`, Node
through :func:`node_env` (``NODE_EXTRA_CA_CERTS``); Chromium is given
``ignore_https_errors`` for the test's context instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trustme

import rtt
from rtt.testing import Recorder, echo

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


NODE_DIR = Path(__file__).resolve().parent / "node"


async def run_node(script: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    """Run ``tests/node/<script>`` (which prints one JSON line) with ``args``: its status and that line.

    The script's imports resolve in tests/node/node_modules (``npm ci --prefix tests/node``).
    """
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the interop tests"
    assert (NODE_DIR / "node_modules").is_dir(), "run `npm ci --prefix tests/node` first"
    process = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / script), *args, stdout=asyncio.subprocess.PIPE, env=env
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, json.loads(stdout)


async def check_node_ws_over_wss(transport: str, directory: Path) -> None:
    """Node's ``ws`` client, trusting the test CA, echoes text and bytes over ``wss://`` and closes."""
    ca = certificate_authority()
    async with rtt.load(transport).server(ssl=server_context(ca)) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        rec = Recorder().listen(echo(server), "disconnect")
        status, result = await run_node("ws-interop.mjs", server.url, env=node_env(ca, directory))
        assert status == 0, result
        assert result["seen"] == [{"text": "hello from node"}, {"binary": [0, 1, 2, 255]}]
        assert result["code"] == 1000
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.CLIENT_CLOSED


async def check_node_ws_refuses_an_untrusted_certificate(transport: str, directory: Path) -> None:
    """Node verifies the server too: trusting another CA only, it fails on the certificate."""
    async with rtt.load(transport).server(ssl=server_context(certificate_authority())) as server:
        rec = Recorder().listen(server, "connect")
        status, result = await run_node(
            "ws-interop.mjs", server.url, env=node_env(certificate_authority(), directory)
        )
        assert status == 1, result
        assert "certificate" in str(result["error"]).lower(), result
        assert rec.of("connect") == []


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
