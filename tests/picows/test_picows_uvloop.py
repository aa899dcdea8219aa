"""rtt-picows on uvloop (``rtt serve --loop uvloop``, issue 14): the kit's message, limit and TLS cases.

uvloop's transports are not subclasses of ``asyncio.Transport``, and its
``writelines`` pauses the protocol as its ``write`` does: on Python 3.11 the
server takes ``pause_writing`` as the slow-consumer signal (SPEC.md 10, 12.5),
which the limit cases check on this loop too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop
from conftest import echo_server
from websockets.asyncio.client import connect

import rtt
from rtt.testing import LimitTests, MessageTests, TlsTests, eventually
from rtt_picows.server import _Upgrade


@pytest.fixture(autouse=True)
def on_uvloop() -> Iterator[None]:
    """Each kit case runs its own loop with ``asyncio.run``: make that loop uvloop's."""
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(policy)


class TestPicowsOnUvloop(MessageTests, LimitTests, TlsTests):
    def make_transport(self, **options: Any) -> rtt.Transport:
        return rtt.load("picows", **options)

    def test_the_cases_run_on_uvloop(self) -> None:
        async def loop_name() -> str:
            return type(asyncio.get_running_loop()).__module__

        assert asyncio.run(loop_name()).startswith("uvloop")


@pytest.mark.timeout(60)
def test_an_open_connection_keeps_nothing_of_its_upgrade() -> None:
    """uvloop's transport holds on to the protocol it had before picows's (its ``data_received``):
    the object that read the request must not be it, or every idle connection keeps it and its
    finished task (about 1 KB, issue 14's memory per idle connection)."""

    async def check() -> None:
        async with echo_server("picows") as (server, _), contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(connect(server.url, compression=None, proxy=None))
                for _ in range(20)
            ]
            await eventually(lambda: len(server.sockets) == 20)
            await clients[-1].send("still talking")
            assert await clients[-1].recv() == "still talking"
            gc.collect()
            assert [kept for kept in gc.get_objects() if isinstance(kept, _Upgrade)] == []

    asyncio.run(check())
