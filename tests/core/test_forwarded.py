"""Trusted reverse proxies and their forwarded headers (SPEC.md 8.5): the option, the parsing, the server."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtt import Handshake, Headers, OptionError, ServerOptions, Socket
from rtt.handshake import Forwarded, TrustedProxies, forwarded_client
from rtt_mock import MockTransport

PROXY = ("10.0.0.7", 40000)
TRUSTED = TrustedProxies(["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"])


def client(
    *headers: tuple[str, str], peer: tuple[str, int] | None = PROXY, scheme: str = "http"
) -> Forwarded:
    return forwarded_client(Headers(headers), peer, scheme, TRUSTED)


# -- The option -----------------------------------------------------------------------


def test_trusted_proxies_default_trusts_none() -> None:
    options = ServerOptions()
    assert isinstance(options.trusted_proxies, TrustedProxies) and not options.trusted_proxies
    assert not options.trusted_proxies.trusts("127.0.0.1")


def test_trusted_proxies_are_parsed_once_into_canonical_form() -> None:
    options = ServerOptions(
        trusted_proxies=["127.0.0.2", " 10.0.0.0/8", "2001:DB8::/32", "::1/128", "::ffff:192.0.2.9"]
    )
    proxies = options.trusted_proxies
    assert isinstance(proxies, TrustedProxies)
    assert list(proxies) == ["127.0.0.2", "10.0.0.0/8", "2001:db8::/32", "::1", "192.0.2.9"]
    assert "10.0.0.0/8" in proxies and len(proxies) == 5
    assert proxies.trusts("10.200.0.1") and proxies.trusts("::ffff:10.1.1.1"), "IPv4-mapped peers match"
    assert proxies.trusts("2001:db8::17") and proxies.trusts("::1") and proxies.trusts("192.0.2.9")
    assert not proxies.trusts("11.0.0.1") and not proxies.trusts("127.0.0.1") and not proxies.trusts("")
    assert ServerOptions(trusted_proxies=proxies).trusted_proxies is proxies
    assert ServerOptions(trusted_proxies=("10.0.0.0/8",)) == ServerOptions(trusted_proxies=["10.0.0.0/8"])
    assert "TrustedProxies(['10.0.0.0/8'])" in repr(ServerOptions(trusted_proxies=["10.0.0.0/8"]))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("10.0.0.1", "must be a list of IP addresses"),
        (None, "must be a list of IP addresses"),
        (["example.com"], "'example.com'"),
        (["10.0.0.1/8"], "has host bits set"),
        (["10.0.0.0/33"], "'10.0.0.0/33'"),
        ([10], "as a str"),
        (["*"], "'\\*'"),
    ],
)
def test_bad_trusted_proxies_raise_option_error(value: object, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        ServerOptions(trusted_proxies=value)  # type: ignore[arg-type]


# -- The handshake's fields -----------------------------------------------------------------


def test_handshake_peer_defaults_to_remote_and_scheme_to_http() -> None:
    handshake = Handshake(Headers(), remote_address=("127.0.0.1", 5))
    assert handshake.peer_address == ("127.0.0.1", 5) and handshake.scheme == "http"
    assert not handshake.secure and Handshake(Headers(), scheme="https").secure
    with pytest.raises(ValueError, match="scheme"):
        Handshake(Headers(), scheme="wss")


# -- X-Forwarded-For and X-Forwarded-Proto --------------------------------------------------


def test_untrusted_or_unknown_peer_is_never_believed() -> None:
    spoof = ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"), ("Forwarded", "for=1.2.3.4")
    assert client(*spoof, peer=("127.0.0.1", 9)) == Forwarded(("127.0.0.1", 9), "http", None)
    assert client(*spoof, peer=None) == Forwarded(None, "http", None)
    assert client(*spoof, peer=("/tmp/sock", 0)) == Forwarded(("/tmp/sock", 0), "http", None)


def test_x_forwarded_for_takes_the_right_most_untrusted_hop() -> None:
    assert client(("X-Forwarded-For", "203.0.113.5")).remote_address == ("203.0.113.5", 0)
    # The client wrote 6.6.6.6 itself; the proxy appended the address it saw.
    assert client(("X-Forwarded-For", "6.6.6.6, 203.0.113.5")).remote_address == ("203.0.113.5", 0)
    assert client(("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 10.1.1.1")).remote_address == ("203.0.113.5", 0)
    # Repeated header lines are one list, in order.
    two = client(("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.5, 10.1.1.1"))
    assert two.remote_address == ("203.0.113.5", 0)
    # Every hop a trusted proxy: the left-most is as far as anyone knows.
    assert client(("X-Forwarded-For", "10.9.9.9, 10.1.1.1")).remote_address == ("10.9.9.9", 0)


def test_x_forwarded_for_ports_and_ipv6() -> None:
    assert client(("X-Forwarded-For", "203.0.113.5:4711")).remote_address == ("203.0.113.5", 4711)
    assert client(("X-Forwarded-For", "2001:DB9::1")).remote_address == ("2001:db9::1", 0)
    assert client(("X-Forwarded-For", "[2001:db9::1]:443")).remote_address == ("2001:db9::1", 443)
    assert client(("X-Forwarded-For", "[2001:db9::1]")).remote_address == ("2001:db9::1", 0)


@pytest.mark.parametrize(
    "value",
    [
        "unknown",
        "example.com",
        "203.0.113.5:99999",
        "203.0.113.5:",
        "[203.0.113.5]",
        "[2001:db9::1",
        "1.2.3.4, ",
        "1.2.3.4, 203.0.113.5 junk",
        "1.2.3.4,,",
    ],
)
def test_malformed_x_forwarded_for_falls_back_to_the_peer(value: str) -> None:
    result = client(("X-Forwarded-For", value), ("X-Forwarded-Proto", "https"))
    assert result.remote_address == PROXY
    assert result.problem is not None and "X-Forwarded-For" in result.problem
    assert result.scheme == "https", "the proto the proxy wrote still counts"


def test_a_malformed_hop_hides_every_hop_left_of_it() -> None:
    result = client(("X-Forwarded-For", "203.0.113.5, garbage, 10.1.1.1"))
    assert result.remote_address == PROXY and result.problem is not None


def test_x_forwarded_proto() -> None:
    assert client(("X-Forwarded-Proto", "https")) == Forwarded(PROXY, "https", None)
    assert client(("X-Forwarded-Proto", "HTTPS")).scheme == "https"
    assert client(("X-Forwarded-Proto", "wss")).scheme == "https"
    assert client(("X-Forwarded-Proto", "ws"), scheme="https").scheme == "http"
    bad = client(("X-Forwarded-Proto", "gopher"), scheme="https")
    assert bad.scheme == "https" and bad.problem is not None and "gopher" in bad.problem
    # One value per hop (each proxy appended): the client's hop's; otherwise the right-most.
    hops = ("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 10.1.1.1")
    assert client(hops, ("X-Forwarded-Proto", "http, https, http")).scheme == "https"
    assert client(hops, ("X-Forwarded-Proto", "https, http")).scheme == "http"
    assert client(("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Proto", "https")).scheme == "https"


def test_x_forwarded_headers_win_over_forwarded() -> None:
    # nginx passes a client's own Forwarded header through untouched: it must not count.
    result = client(("Forwarded", "for=6.6.6.6;proto=https"), ("X-Forwarded-For", "203.0.113.5"))
    assert result == Forwarded(("203.0.113.5", 0), "http", None)
    result = client(("Forwarded", "for=6.6.6.6"), ("X-Forwarded-Proto", "https"))
    assert result == Forwarded(PROXY, "https", None)


# -- Forwarded (RFC 7239) ---------------------------------------------------------------------


def test_forwarded_rfc_7239_examples() -> None:
    # RFC 7239 section 4 and 7.1 examples, trusted proxies at the right.
    assert client(("Forwarded", 'for="_gazonk"')).remote_address == PROXY
    assert client(("Forwarded", 'For="[2001:db9:cafe::17]:4711"')).remote_address == (
        "2001:db9:cafe::17",
        4711,
    )
    result = client(("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"))
    assert result == Forwarded(("192.0.2.60", 0), "http", None)
    result = client(("Forwarded", "for=192.0.2.43, for=198.51.100.17;proto=https"))
    assert result == Forwarded(("198.51.100.17", 0), "https", None)
    result = client(("Forwarded", "for=198.51.100.17;proto=https, for=10.1.1.1;proto=http"))
    assert result == Forwarded(("198.51.100.17", 0), "https", None), "the chosen hop's proto"
    result = client(("Forwarded", "for=192.0.2.43"), ("Forwarded", 'for="198.51.100.17:80";proto=wss'))
    assert result == Forwarded(("198.51.100.17", 80), "https", None)
    assert client(("Forwarded", 'for="198.51.100.17:_port"')).remote_address == ("198.51.100.17", 0)
    assert client(("Forwarded", 'for="198.51.100.17";host="a\\"b"')).remote_address == ("198.51.100.17", 0)
    # An element without for= says nothing about the client.
    assert client(("Forwarded", "for=198.51.100.17, by=10.1.1.1")).remote_address == ("198.51.100.17", 0)


@pytest.mark.parametrize(
    "value",
    [
        "for=unknown",
        'for="_hidden:80"',
        'for="unknown:_port"',
        "for=_hidden, for=10.1.1.1",
        "proto=https",
        "for=1.2.3.4 junk",
        "for=1.2.3.4;for=5.6.7.8",
        'for="1.2.3.4',
        "for=[2001:db8::1]",
        'for="2001:db9::1"',
        "for=example.com",
        "=x",
        "for",
    ],
)
def test_unusable_forwarded_falls_back_to_the_peer(value: str) -> None:
    result = client(("Forwarded", value))
    assert result.remote_address == PROXY and result.scheme == "http"
    assert result.problem is not None and "Forwarded" in result.problem


def test_an_unknown_forwarded_proto_keeps_the_connections_scheme() -> None:
    result = client(("Forwarded", "for=198.51.100.17;proto=gopher"), scheme="https")
    assert result.remote_address == ("198.51.100.17", 0) and result.scheme == "https"
    assert result.problem is not None and "gopher" in result.problem


def test_trusted_proxies_compare_and_hash_by_their_entries() -> None:
    a, b = TrustedProxies(["10.0.0.0/8", "::1"]), TrustedProxies(["10.0.0.0/8", "::1"])
    assert a == b and hash(a) == hash(b) and a != TrustedProxies(["::1"])
    assert a != ["10.0.0.0/8", "::1"], "a list is not a TrustedProxies"


# -- Properties ---------------------------------------------------------------------------------

_octets = st.integers(0, 255)
_public = st.tuples(st.integers(11, 126), _octets, _octets, _octets).map(lambda t: ".".join(map(str, t)))
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@given(
    real=_public,
    spoofed=st.lists(st.one_of(_public, _header_text), max_size=3),
    proxies=st.lists(st.integers(1, 254).map(lambda n: f"10.0.0.{n}"), max_size=3),
)
def test_a_spoofed_prefix_never_changes_the_answer(real: str, spoofed: list[str], proxies: list[str]) -> None:
    """Whatever the client writes left of what the proxies appended, the client is its real address."""
    appended = ", ".join([real, *proxies])
    written = ", ".join(s for s in spoofed if "," not in s)
    value = f"{written}, {appended}" if written else appended
    result = client(("X-Forwarded-For", value))
    assert result.remote_address == (real, 0)


@given(st.text(max_size=200), st.text(max_size=60), st.text(max_size=60))
def test_any_header_values_give_an_answer_never_an_error(forwarded: str, fors: str, proto: str) -> None:
    for headers in (
        (("Forwarded", forwarded),),
        (("X-Forwarded-For", fors), ("X-Forwarded-Proto", proto)),
        (("Forwarded", forwarded), ("X-Forwarded-Proto", proto)),
    ):
        result = client(*headers)
        assert result.scheme in ("http", "https")
        assert result.remote_address is not None
        if result.remote_address != PROXY:
            ipaddress.ip_address(result.remote_address[0])
            assert 0 <= result.remote_address[1] <= 65535


# -- The server: authorize, the socket, a log line ----------------------------------------------


async def connected_socket(
    mock: MockTransport,
    headers: dict[str, str],
    authorize: Callable[[Handshake], object] | None = None,
    **options: Any,
) -> Socket:
    """The server-side socket of one client that connected with ``headers``."""
    opened: asyncio.Future[Socket] = asyncio.get_running_loop().create_future()
    async with mock.server(authorize=authorize, **options) as server:
        server.on("connect", opened.set_result)
        async with mock.client(server.url, headers=headers):
            async with asyncio.timeout(10):
                return await opened


async def test_a_trusted_peer_gives_the_client_address_to_authorize_and_the_socket(
    mock: MockTransport,
) -> None:
    seen: list[Handshake] = []
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.5", "X-Forwarded-Proto": "https"}
    socket = await connected_socket(mock, headers, seen.append, trusted_proxies=["127.0.0.1"])
    assert socket.remote_address == ("203.0.113.5", 0)
    (handshake,) = seen
    assert handshake.remote_address == ("203.0.113.5", 0) and handshake.scheme == "https" and handshake.secure
    assert handshake.peer_address is not None and handshake.peer_address[0] == "127.0.0.1"


async def test_an_untrusted_peer_keeps_its_own_address(mock: MockTransport) -> None:
    seen: list[Handshake] = []
    headers = {"X-Forwarded-For": "203.0.113.5", "Forwarded": "for=203.0.113.6;proto=https"}
    for trusted in ([], ["127.0.0.2", "10.0.0.0/8"]):
        socket = await connected_socket(mock, headers, seen.append, trusted_proxies=trusted)
        assert socket.remote_address is not None and socket.remote_address[0] == "127.0.0.1"
        assert seen[-1].scheme == "http" and seen[-1].peer_address == socket.remote_address


async def test_malformed_headers_from_a_trusted_peer_log_one_debug_line(
    mock: MockTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rtt.server")
    socket = await connected_socket(
        mock, {"X-Forwarded-For": "not an address"}, trusted_proxies=["127.0.0.1"]
    )
    assert socket.remote_address is not None and socket.remote_address[0] == "127.0.0.1"
    lines = [r for r in caplog.records if "forwarded headers" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
    assert "X-Forwarded-For" in lines[0].getMessage()
