"""The conformance kit's mounting hook and mode switches (SPEC.md 11), driven over rtt-mock.

The host here is a stand-in for a web application: it holds the listening socket the kit bound,
keeps a long-lived task of its own (as uvicorn's main loop is) and starts the server itself.
The real hosts (aiohttp, uvicorn) are in tests/mount_support.py and run the whole kit in the
plugins' mounted-mode modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket as socketlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pytest

import rtt
from rtt.testing import MODE_FEATURES, ClientTests, Kit, LimitTests, ServerTests, ShutdownTests, case

#: Every listener a host served on, and whether the host was stopped, by test class.
LISTENERS: list[tuple[socketlib.socket, asyncio.Event]] = []


class _StandInHost(Kit):
    mounted = True
    #: A long-lived host task is declared to the kit (the shutdown case must leave it out).
    declare_tasks: ClassVar[bool] = True

    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("mock", **options)

    def mount(
        self, server: rtt.Server[Any], listener: socketlib.socket
    ) -> contextlib.AbstractAsyncContextManager[set[asyncio.Task[Any]] | None]:
        return self._host(server, listener)

    @contextlib.asynccontextmanager
    async def _host(
        self, server: rtt.Server[Any], listener: socketlib.socket
    ) -> AsyncIterator[set[asyncio.Task[Any]] | None]:
        assert listener.getsockname()[1] == server.port != 0, "the server is made with the bound port"
        stopped = asyncio.Event()
        LISTENERS.append((listener, stopped))
        loop_task = asyncio.create_task(stopped.wait(), name="host main loop")
        try:
            async with server:
                yield {loop_task} if self.declare_tasks else None
        finally:
            stopped.set()
            await loop_task


class TestMountedKitOverMock(_StandInHost, ServerTests, ClientTests, ShutdownTests):
    """The kit's server, client (restarts on one port) and shutdown cases, served by the stand-in host."""


class _Pingless(_StandInHost, LimitTests):
    lacks: ClassVar[Mapping[str, str]] = {"server_pings": "this stand-in host has no heartbeats"}


def test_hosts_are_stopped_and_their_listeners_closed() -> None:
    LISTENERS.clear()
    kit = TestMountedKitOverMock()
    kit.test_reconnect_with_backoff_after_restart()  # one port, two servers, two hosts
    assert len(LISTENERS) == 2
    (first, first_stopped), (second, second_stopped) = LISTENERS
    assert first_stopped.is_set() and second_stopped.is_set()
    assert first.fileno() == -1 and second.fileno() == -1, "the kit closes every listener it bound"


def test_a_lacking_mode_skips_the_case_saying_why() -> None:
    with pytest.raises(pytest.skip.Exception, match="serving mode lacks server_pings: this stand-in host"):
        _Pingless().test_ping_timeout_drops_a_silent_peer()


class _UndeclaredHostTask(_StandInHost, ShutdownTests):
    declare_tasks = False


def test_the_shutdown_case_still_sees_tasks_the_host_does_not_declare() -> None:
    with pytest.raises(AssertionError, match="every task to finish after shutdown"):
        _UndeclaredHostTask().test_graceful_shutdown()


class _NoMount(ClientTests):
    mounted = True

    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("mock", **options)


def test_mounted_without_a_mount_hook_says_so() -> None:
    with pytest.raises(NotImplementedError, match="overrides mount"):
        _NoMount().test_connect_failure_is_reported()


class _LeavesServerStopped(_NoMount):
    @contextlib.asynccontextmanager
    async def _nothing(self) -> AsyncIterator[None]:
        yield

    def mount(
        self, server: rtt.Server[Any], listener: socketlib.socket
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self._nothing()


def test_a_mount_hook_must_leave_the_server_running() -> None:
    with pytest.raises(AssertionError, match="mount\\(\\) left the server NEW, not RUNNING"):
        _LeavesServerStopped().test_connect_failure_is_reported()


class _Misspelt(_Pingless):
    lacks: ClassVar[Mapping[str, str]] = {"server_ping": "a typo"}


def test_unknown_mode_features_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode features \\['server_ping'\\]"):
        _Misspelt().test_no_heartbeats_drop_nobody()
    with pytest.raises(ValueError, match="unknown mode features \\['pings'\\]"):
        case(needs=("pings",))
    assert set(MODE_FEATURES) == {
        "server_pings",
        "server_tls",
        "refusal_status",
        "write_buffer",
        "drop_reason",
    }
