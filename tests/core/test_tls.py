"""TLS in the core (SPEC.md 8.4): the ``tls`` capability gate, URL schemes, and certificate failures.

The plugins' TLS is checked by the conformance kit (``TlsTests``). Here a
small transport of the test's own over ``asyncio`` streams (real TLS on
127.0.0.1, trustme's throwaway CA) drives what rtt-core does with a
certificate failure, whatever the plugin's library.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme

import rtt
from rtt import Capabilities, ClientOptions, ClientState, CloseReason, ConfigError, ConnectError, OptionError
from rtt.testing import Recorder
from rtt_mock import MockTransport

pytestmark = pytest.mark.timeout(60)

NAMES = ("127.0.0.1", "localhost")


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or NAMES)).configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class _Lines(rtt.ClientConnection):
    """Just enough of a connection: the core's certificate handling runs before one exists."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def recv(self) -> str | bytes:
        line = await self.reader.readline()
        if not line:
            raise rtt.ConnectionClosed(CloseReason.SHUTDOWN)
        return line.decode().rstrip("\n")

    async def send(self, data: str | bytes) -> None:
        self.writer.write((data if isinstance(data, str) else data.decode()).encode() + b"\n")

    async def close(self, reason: CloseReason) -> None:
        self.writer.close()


class _LinesClient(rtt.Client):
    """Connects with the standard library, which raises ``ssl.SSLCertVerificationError`` itself."""

    async def _connect(self) -> rtt.ClientConnection:
        parts = self.url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
        secure = self.url.startswith("liness:")
        context = (self.options.ssl or ssl.create_default_context()) if secure else None
        reader, writer = await asyncio.open_connection(parts[0], int(parts[1]), ssl=context)
        return _Lines(reader, writer)


class _LinesTransport(rtt.Transport):
    name = "lines"
    capabilities = Capabilities(binary=False, tls=True)

    def _create_server(self, options: rtt.ServerOptions, host: str, port: int) -> rtt.Server[Any]:
        raise NotImplementedError("the test serves with asyncio.start_server")

    def _create_client(self, url: str, options: ClientOptions) -> rtt.Client:
        self._secure_url(url, options, plain=("lines",), secure=("liness",))
        return _LinesClient(self, url, options)


@asynccontextmanager
async def tls_listener(context: ssl.SSLContext | None, port: int = 0) -> AsyncIterator[int]:
    """A TLS (or plain) listener on 127.0.0.1 that drops whatever connects; its port."""

    def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(drop, "127.0.0.1", port, ssl=context)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


def test_tls_is_a_capability_off_by_default() -> None:
    assert not Capabilities(binary=True).tls
    assert "tls" in Capabilities(binary=True, tls=True).names()
    assert "tls" not in MockTransport.capabilities.names()


def test_a_transport_without_tls_refuses_the_ssl_option() -> None:
    ca = trustme.CA()
    for build in (
        lambda: MockTransport(ssl=server_context(ca)),
        lambda: MockTransport().server(ssl=server_context(ca)),
        lambda: MockTransport().client("mock://127.0.0.1:1/", ssl=client_context(ca)),
    ):
        with pytest.raises(OptionError, match="option ssl: transport 'mock' does not do TLS"):
            build()
    # None is the default, and means no TLS: every transport takes it.
    MockTransport(ssl=None).server(ssl=None)


def test_secure_url_checks_the_scheme_against_the_ssl_option() -> None:
    ca = trustme.CA()
    transport = _LinesTransport()
    assert transport.client("lines://127.0.0.1:1/").url == "lines://127.0.0.1:1/"
    transport.client("liness://127.0.0.1:1/", ssl=client_context(ca))
    transport.client("liness://127.0.0.1:1/")  # the system's CAs
    with pytest.raises(
        ConfigError, match=r"option ssl is for liness:// URLs; 'lines://127\.0\.0\.1:1/' is plain"
    ):
        transport.client("lines://127.0.0.1:1/", ssl=client_context(ca))
    with pytest.raises(ConfigError, match=r"connects to lines:// or liness:// URLs, got 'http://x/'"):
        transport.client("http://x/")


@pytest.mark.parametrize(
    ("server_names", "trusted", "why"),
    [
        (NAMES, False, "unable to get local issuer certificate"),
        (("rtt.example",), True, "IP address mismatch"),
    ],
    ids=["unknown-ca", "wrong-host"],
)
async def test_a_certificate_failure_is_a_connect_error_saying_so(
    server_names: tuple[str, ...], trusted: bool, why: str
) -> None:
    ca = trustme.CA()
    context = client_context(ca if trusted else trustme.CA())
    async with tls_listener(server_context(ca, *server_names)) as port:
        client = _LinesTransport().client(f"liness://127.0.0.1:{port}/", ssl=context)
        with pytest.raises(ConnectError) as caught:
            await client.connect()
    message = str(caught.value)
    assert "the server's TLS certificate failed verification" in message and why in message
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert client.close_reason is CloseReason.TRANSPORT_ERROR


async def test_other_tls_failures_are_not_blamed_on_the_certificate() -> None:
    async with tls_listener(None) as port:  # plain TCP: the TLS handshake cannot happen
        client = _LinesTransport().client(f"liness://127.0.0.1:{port}/", ssl=client_context(trustme.CA()))
        with pytest.raises(ConnectError) as caught:
            await client.connect()
    assert "certificate" not in str(caught.value)


async def test_reconnection_stops_at_a_certificate_failure() -> None:
    """Retrying cannot make a certificate trusted: the first certificate failure ends reconnection."""
    ca = trustme.CA()
    # The server the client first reaches: a line server over TLS that says hello and hangs up.
    hung_up = asyncio.Event()

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()
        hung_up.set()

    first = await asyncio.start_server(hello, "127.0.0.1", 0, ssl=server_context(ca))
    port = first.sockets[0].getsockname()[1]
    policy = {"min_delay": 0.01, "max_delay": 0.02, "jitter": 0.0, "max_attempts": None}
    client = _LinesTransport().client(f"liness://127.0.0.1:{port}/", ssl=client_context(ca), reconnect=policy)
    rec = Recorder()
    rec.listen(client, "close", "reconnecting", "reconnect_failed", "error")
    try:
        async with first:
            await client.connect()
            assert await client.recv() == "hello"
            await hung_up.wait()
        # Reconnection runs into a certificate from a CA the client does not trust.
        async with tls_listener(server_context(trustme.CA()), port):
            await rec.wait("reconnect_failed", timeout=10)
        assert await client.wait_closed() is CloseReason.TRANSPORT_ERROR
        assert client.state is ClientState.CLOSED
        errors = [e for (e,) in rec.of("error")]
        assert isinstance(errors[-1], ConnectError) and "certificate" in str(errors[-1])
        assert rec.of("reconnect_failed") == [(len(rec.of("reconnecting")),)]
    finally:
        await client.close()
