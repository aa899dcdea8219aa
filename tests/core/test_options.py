"""Normalised options: names, defaults, validation (SPEC.md 7)."""

from __future__ import annotations

from typing import Any

import pytest

import rtt
from rtt import ClientOptions, OptionError, ReconnectPolicy, ServerOptions
from rtt.broker import HEADER_LIMIT
from rtt.options import build_options
from rtt_mock.broker import MemoryBroker


def test_server_defaults() -> None:
    options = ServerOptions()
    assert options.max_message_size == 1024 * 1024
    assert options.outbound_limit == 1024 * 1024
    assert options.allowed_origins is None and options.authorize is None
    assert (options.ping_interval, options.ping_timeout, options.close_timeout) == (20.0, 20.0, 5.0)


def test_client_defaults() -> None:
    options = ClientOptions()
    assert options.reconnect == ReconnectPolicy()
    assert (options.offline_queue_size, options.max_queue) == (1000, 64)
    assert (options.connect_timeout, options.close_timeout) == (10.0, 5.0)
    assert options.headers == {}


def test_unknown_names_raise_at_once_naming_the_valid_ones() -> None:
    with pytest.raises(OptionError) as info:
        rtt.load("mock", max_msg_size=10)
    message = str(info.value)
    assert "'max_msg_size'" in message and "max_message_size" in message and "reconnect" in message
    with pytest.raises(OptionError, match="unknown options 'a', 'b'"):
        rtt.load("mock", a=1, b=2)


def test_side_specific_names_are_checked_per_side() -> None:
    transport = rtt.load("mock")
    with pytest.raises(OptionError, match="'reconnect' for mock server"):
        transport.server(reconnect=False)
    with pytest.raises(OptionError, match="'outbound_limit' for mock client"):
        transport.client("mock://127.0.0.1:1/", outbound_limit=5)


def test_values_are_checked_at_load_time() -> None:
    with pytest.raises(OptionError, match="max_message_size must be >= 1"):
        rtt.load("mock", max_message_size=0)
    with pytest.raises(OptionError, match="ping_interval must be > 0"):
        rtt.load("mock", ping_interval=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_message_size": True}, "must be an int"),
        ({"outbound_limit": 1.5}, "must be an int"),
        ({"allowed_origins": "https://a.example"}, "list of origin strings"),
        ({"allowed_origins": [1]}, "list of origin strings"),
        ({"authorize": "yes"}, "authorize must be callable"),
        ({"ping_timeout": -1}, "ping_timeout must be > 0"),
        ({"ping_interval": "5"}, "number of seconds"),
        ({"close_timeout": -0.1}, "close_timeout must be >= 0"),
        ({"resume_window": 0}, "resume_window must be > 0"),
        ({"resume_window": True}, "resume_window must be a number of seconds"),
        ({"resume_buffer": 0}, "resume_buffer must be >= 1"),
        ({"resume_window": 30, "resume_buffer": 1024}, "cannot hold one message of max_message_size"),
    ],
)
def test_bad_server_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        ServerOptions(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reconnect": "often"}, "option reconnect must be"),
        ({"reconnect": {"min_delay": -1}}, "min_delay must be >= 0"),
        ({"reconnect": {"tries": 3}}, "unknown option 'tries' for reconnect"),
        ({"offline_queue_size": -1}, "offline_queue_size must be >= 0"),
        ({"max_queue": 0}, "max_queue must be >= 1"),
        ({"connect_timeout": 0}, "connect_timeout must be > 0"),
        ({"headers": {"a": 1}}, "headers must map str to str"),
        ({"headers": [("a", "b")]}, "headers must map str to str"),
        ({"resume": "yes"}, "resume must be True or False"),
    ],
)
def test_bad_client_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        ClientOptions(**options)


def test_coercions() -> None:
    # The annotations name what is stored; the constructor also takes these shorthands.
    assert ClientOptions(reconnect=False).reconnect is None  # type: ignore[arg-type]
    assert ClientOptions(reconnect=None).reconnect is None
    assert ClientOptions(reconnect=True).reconnect == ReconnectPolicy()  # type: ignore[arg-type]
    assert ClientOptions(reconnect={"max_attempts": 3}).reconnect == ReconnectPolicy(max_attempts=3)  # type: ignore[arg-type]
    policy = ReconnectPolicy(min_delay=2)
    assert ClientOptions(reconnect=policy).reconnect is policy
    assert ServerOptions(allowed_origins=["https://A.example/"]).allowed_origins == ("https://a.example",)
    assert ServerOptions(ping_interval=None).ping_interval is None


def test_resume_is_off_on_servers_and_asked_for_by_clients() -> None:
    server = ServerOptions()
    assert (server.resume_window, server.resume_buffer) == (None, 2 * 1024 * 1024)
    assert ClientOptions().resume is True
    # The byte bound must hold one largest message only when resume is on.
    assert ServerOptions(max_message_size=8 * 1024 * 1024).resume_window is None
    exact = ServerOptions(resume_window=0.5, max_message_size=1000, resume_buffer=1064)
    assert exact.resume_buffer == 1064


class _SmallBroker(MemoryBroker):
    max_payload = 4 * 1024 * 1024


def test_resume_buffer_must_fit_the_broker() -> None:
    broker = _SmallBroker(url="memory://resume-fit")
    cap = 4 * 1024 * 1024
    with pytest.raises(OptionError, match="resume_buffer=4194304 does not fit broker"):
        ServerOptions(resume_window=30, resume_buffer=cap, broker=broker)
    fits = ServerOptions(resume_window=30, resume_buffer=cap - HEADER_LIMIT, broker=broker)
    assert fits.resume_buffer == cap - HEADER_LIMIT
    # Resume off: the bound does not apply.
    assert ServerOptions(resume_buffer=cap, broker=broker).resume_window is None


def test_transport_defaults_and_overrides() -> None:
    transport = rtt.load("mock", max_message_size=100, reconnect=False, outbound_limit=500)
    assert dict(transport.options) == {"max_message_size": 100, "reconnect": False, "outbound_limit": 500}
    server = transport.server(max_message_size=50)
    assert server.options.max_message_size == 50 and server.options.outbound_limit == 500
    client = transport.client("mock://127.0.0.1:1/")
    assert client.options.max_message_size == 100 and client.options.reconnect is None
    again = transport.configure(max_message_size=7)
    assert again.options["max_message_size"] == 7 and again.options["outbound_limit"] == 500
    assert repr(transport) == "<MockTransport 'mock'>"


def test_build_options_is_reusable_by_plugins() -> None:
    assert build_options(ReconnectPolicy, {"factor": 3}, context="x").factor == 3
