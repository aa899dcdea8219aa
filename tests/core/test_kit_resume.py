"""The conformance kit's resume cases catch the plugin mistakes they are for (SPEC.md 11, 17).

Driven over rtt-mock: plugins that break one rule each, and the kit's drops through its default
``Proxy`` hook and a test class's own override.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import rtt
from rtt import CloseReason, Socket
from rtt.testing import Drops, Proxy, ResumeTests, TransportTests
from rtt_mock import MockTransport
from rtt_mock.client import MockClient
from rtt_mock.server import LinkDrops, MockServer


class _Mock(ResumeTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("mock", **options)


class _IgnoresConnectUrl(MockClient):
    @property
    def connect_url(self) -> str:
        # What a plugin written before resume does: it opens the URL it was given.
        return self.url


class _LateTimer(MockServer):
    """A heartbeat timer that outlives its connection and then times it out by id."""

    async def _closed(self, socket: Socket, reason: CloseReason) -> None:
        await super()._closed(socket, reason)
        asyncio.get_running_loop().call_later(0.1, self._begin_close, socket.id, CloseReason.PING_TIMEOUT)


class _Broken(MockTransport):
    client_class: type[MockClient] = MockClient
    server_class: type[MockServer] = MockServer

    def _create_client(self, url: str, options: rtt.ClientOptions) -> MockClient:
        return self.client_class(self, url, options, self.network)

    def _create_server(self, options: rtt.ServerOptions, host: str, port: int) -> MockServer:
        return self.server_class(self, options, host, port, self.network)


class _NoConnectUrl(_Broken):
    client_class = _IgnoresConnectUrl


class _StaleTimers(_Broken):
    server_class = _LateTimer


def test_resume_cases_are_part_of_the_whole_kit() -> None:
    assert issubclass(TransportTests, ResumeTests)
    cases = [name for name in vars(ResumeTests) if name.startswith("test_")]
    assert len(cases) == 7


def test_a_client_that_ignores_connect_url_fails() -> None:
    class Kit(_Mock):
        def make_transport(self, **options: Any) -> rtt.Transport:
            return _NoConnectUrl(**options)

    with pytest.raises(AssertionError, match=r"must open Client\.connect_url"):
        Kit().test_the_client_opens_connect_url()


def test_a_call_by_id_after_closed_fails() -> None:
    class Kit(_Mock):
        def make_transport(self, **options: Any) -> rtt.Transport:
            return _StaleTimers(**options)

    with pytest.raises(
        AssertionError, match=r"id-keyed calls after the connection's _closed report: .*_begin_close"
    ):
        Kit().test_no_id_keyed_call_after_closed()


def test_the_mock_cuts_its_own_links() -> None:
    made: list[Drops] = []

    class Kit(_Mock):
        async def drops(self, server: rtt.Server[Any]) -> Drops:
            drops = await super().drops(server)
            made.append(drops)
            return drops

    Kit().test_a_black_hole_loses_and_repeats_nothing()
    (drops,) = made
    assert isinstance(drops, LinkDrops)
    assert drops.url_for("mock://127.0.0.1:1/") == "mock://127.0.0.1:1/"


def test_a_server_without_its_own_drops_gets_a_proxy() -> None:
    """The default for a network transport, checked on a mock server that hides its own."""
    made: list[Drops] = []

    class Kit(_Mock):
        async def drops(self, server: rtt.Server[Any]) -> Drops:
            class Bare:
                address = server.address

            drops = await super().drops(Bare())  # type: ignore[arg-type]
            made.append(drops)
            return drops

        async def case(self) -> None:
            server = await self.server()
            drops = await self.drops(server)
            assert isinstance(drops, Proxy) and drops.address[1] > 0
            assert drops.url_for(f"ws://127.0.0.1:{server.address[1]}/") == f"ws://127.0.0.1:{drops.port}/"

    kit = Kit()

    async def run() -> None:
        try:
            await kit.case()
        finally:
            await kit._close_all()

    asyncio.run(run())
    (proxy,) = made
    assert isinstance(proxy, Proxy) and proxy.stats.live == 0

    with pytest.raises(RuntimeError, match="not started"):
        proxy.port  # noqa: B018  the kit closed it after the case


def test_a_sever_on_the_mock_loses_and_repeats_nothing() -> None:
    """The kit's sever path (the reset case, SPEC.md 11), over the mock's LinkDrops."""

    class Kit(_Mock):
        async def case(self) -> None:
            await self._through_a_drop("sever")

    kit = Kit()

    async def run() -> None:
        try:
            await kit.case()
        finally:
            await kit._close_all()

    asyncio.run(run())


class _MissesOnce(LinkDrops):
    """A first sever that cuts nothing, as one that meets only an idle keep-alive connection."""

    missed = False

    def sever(self) -> int:
        if not self.missed:
            self.missed = True
            return 1
        return super().sever()


def test_a_sever_that_cut_nothing_is_repeated() -> None:
    made: list[_MissesOnce] = []

    class Kit(_Mock):
        async def drops(self, server: rtt.Server[Any]) -> Drops:
            assert isinstance(server, MockServer)
            drops = _MissesOnce(server)
            made.append(drops)
            self._drops = [*getattr(self, "_drops", []), drops]
            return drops

        async def case(self) -> None:
            await self._through_a_drop("sever")

    kit = Kit()

    async def run() -> None:
        try:
            await kit.case()
        finally:
            await kit._close_all()

    asyncio.run(run())
    assert made[0].missed
