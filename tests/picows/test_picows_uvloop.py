"""rtt-picows on uvloop (``rtt serve --loop uvloop``, issue 14): the kit's message, limit and TLS cases.

uvloop's transports are not subclasses of ``asyncio.Transport``, and its
``writelines`` pauses the protocol as its ``write`` does: on Python 3.11 the
server takes ``pause_writing`` as the slow-consumer signal (SPEC.md 10, 12.5),
which the limit cases check on this loop too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop

import rtt
from rtt.testing import LimitTests, MessageTests, TlsTests


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
