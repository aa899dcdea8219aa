"""Debian's nginx in front of rtt, configured with the README's snippet (SPEC.md 8.5; README "Production").

nginx ends TLS (a throwaway CA) on a free loopback port and passes each
connection on to rtt from 127.0.0.2 (``proxy_bind``), the one address rtt
trusts; the client connects from 127.0.0.1. Over WebSocket (ws, engineio,
sockjs), Engine.IO long-polling and SockJS xhr-streaming, the socket's
``remote_address`` is the client's, the scheme is ``https``, and an
``X-Forwarded-For`` the client wrote itself changes nothing. nginx runs as a
child process of the test with every path under the test's temporary
directory, and is stopped at the end.

Without nginx the tests skip, unless ``CI`` is set: there nginx is
installed, so its absence is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from proxy_support import PROXY_HOST
from tls_support import certificate_authority, client_context

import rtt

pytestmark = pytest.mark.timeout(90)

#: What the README shows inside ``server { ... }`` (with ``rtt`` an upstream of rtt's processes).
SNIPPET = """
    location / {
        proxy_pass http://rtt;
        proxy_http_version 1.1;                           # WebSocket needs HTTP/1.1 and these two:
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_buffering off;                              # long-polling and streaming answers at once
        proxy_request_buffering off;
        proxy_read_timeout 75s;                           # above ping_interval + ping_timeout
        proxy_send_timeout 75s;
    }
"""

#: Goes in the ``http { ... }`` block, next to the server: ``Connection: upgrade`` only for upgrades.
UPGRADE_MAP = """
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
"""


def nginx_binary() -> str:
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        message = "nginx is not installed (apt-get install nginx)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs it, so this is an error")
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config(directory: Path, port: int, upstream: tuple[str, int], cert: Path, key: Path) -> str:
    """A whole nginx.conf around :data:`SNIPPET`, every path under ``directory``."""
    temp = {name: directory / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    return f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{UPGRADE_MAP}
    upstream rtt {{
        server {upstream[0]}:{upstream[1]};
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # The test's stand-in for a second machine: rtt trusts this address only.
        proxy_bind {PROXY_HOST};
{SNIPPET}
    }}
}}
"""


@asynccontextmanager
async def nginx_in_front(upstream: tuple[str, int], directory: Path) -> AsyncIterator[tuple[int, Any]]:
    """nginx with TLS on a free port of 127.0.0.1 in front of ``upstream``; yields the port and the CA."""
    binary = nginx_binary()
    ca = certificate_authority()
    cert, key = directory / "cert.pem", directory / "key.pem"
    issued = ca.issue_cert("127.0.0.1", "localhost")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    conf = directory / "nginx.conf"
    for _ in range(5):
        # free_port() only finds a port free now: another test (pytest-xdist runs three) may
        # take it before nginx binds it; nginx then exits, and it gets another port.
        port = free_port()
        conf.write_text(config(directory, port, upstream, cert, key))
        # The log read on exit is this attempt's alone (a port lost earlier says nothing of this one).
        (directory / "error.log").unlink(missing_ok=True)
        process = await asyncio.create_subprocess_exec(
            binary,
            "-p",
            str(directory),
            "-e",
            str(directory / "error.log"),
            "-c",
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        if await _listening(process, port, directory, ca):
            break
    else:
        raise AssertionError("nginx lost its port to another process five times")
    try:
        yield port, ca
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown: open connections are closed
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _listening(process: asyncio.subprocess.Process, port: int, directory: Path, ca: Any) -> bool:
    """Wait (bounded) until nginx completes a TLS handshake on ``port`` with the test CA's
    certificate (so the listener is this nginx, not another test's server on the same port).

    False if nginx exited because the port was taken; fails with its own words if it exited
    for anything else.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        if process.returncode is not None:
            log = (directory / "error.log").read_text() if (directory / "error.log").exists() else ""
            stderr = (await process.stderr.read()).decode() if process.stderr else ""
            if "Address already in use" in stderr + log:
                return False
            raise AssertionError(f"nginx exited with {process.returncode}: {stderr}{log}")
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(ca), server_hostname="127.0.0.1"
            )
        except OSError:  # ssl.SSLError too: not nginx (yet)
            if loop.time() > deadline:
                raise AssertionError("nginx did not listen within 15 s") from None
            await asyncio.sleep(0.05)  # an external process: there is no event to wait on
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "ws": ("ws", {}, {}),
    "engineio-websocket": ("engineio", {"transports": ("websocket",)}, {"transports": ("websocket",)}),
    # ping_interval 1 s: several heartbeats pass through nginx while the test runs.
    "engineio-polling": ("engineio", {"transports": ("polling",), "ping_interval": 1.0}, {}),
    "sockjs-websocket": ("sockjs", {}, {"transports": ["websocket"]}),
    # A stream, which nginx passes on as it comes (proxy_buffering off).
    "sockjs-xhr-streaming": ("sockjs", {}, {"transports": ["xhr-streaming"]}),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_nginx_in_front_gives_rtt_the_real_client(name: str, tmp_path: Path) -> None:
    transport_name, server_options, client_options = CASES[name]
    transport = rtt.load(transport_name)
    seen: list[rtt.Handshake] = []
    server = transport.server(trusted_proxies=[PROXY_HOST], authorize=seen.append, **server_options)
    async with server:
        opened: asyncio.Future[rtt.Socket] = asyncio.get_running_loop().create_future()
        server.on("connect", opened.set_result)

        @server.on("message")
        async def echo(socket: rtt.Socket, data: str | bytes) -> None:
            await server.send(socket.id, data)

        async with nginx_in_front(server.address, tmp_path) as (port, ca):
            parts = urlsplit(server.url)
            url = urlunsplit(parts._replace(scheme=parts.scheme + "s", netloc=f"127.0.0.1:{port}"))
            client = transport.client(
                url,
                ssl=client_context(ca),
                headers={"X-Forwarded-For": "6.6.6.6"},  # the client's own: nginx appends the real one
                reconnect=False,
                **client_options,
            )
            async with asyncio.timeout(30), client:
                for n in range(3):
                    await client.send(f"hello {n}")
                    assert await client.recv() == f"hello {n}"
                await client.send(b"\x00\xffbinary")
                assert await client.recv() == b"\x00\xffbinary"
                socket = await opened
                if name == "engineio-polling":
                    # Idle past two heartbeats (time itself is what is tested): the polls nginx
                    # holds open are answered, and the session lives on.
                    await asyncio.sleep(2.5)
                    await client.send("after the pings")
                    assert await client.recv() == "after the pings"
                    assert socket.id in server.sockets
    assert socket.remote_address is not None and socket.remote_address[0] == "127.0.0.1"
    assert socket.remote_address[1] == 0, "X-Forwarded-For names no port"
    (handshake,) = seen
    assert handshake.peer_address is not None and handshake.peer_address[0] == PROXY_HOST
    assert handshake.scheme == "https", "nginx's X-Forwarded-Proto: TLS ended there"
    assert handshake.headers.get("X-Forwarded-For") == "6.6.6.6, 127.0.0.1"
