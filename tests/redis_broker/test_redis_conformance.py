"""rtt-redis passes the broker part of the conformance kit (SPEC.md 13.7) against a real redis-server."""

from __future__ import annotations

from typing import Any

import pytest

import rtt
from rtt.broker import Broker
from rtt.testing import BrokerTests
from rtt_redis import RedisBroker

from .conftest import RedisServer


class TestRedisBroker(BrokerTests):
    @pytest.fixture(autouse=True)
    def _redis(self, redis_server: RedisServer) -> None:
        self.redis = redis_server

    def make_broker(self, **options: Any) -> Broker:
        broker = rtt.load_broker(self.redis.url, **options)
        assert broker is not None
        return broker

    async def take_down(self) -> None:
        self.redis.kill()

    async def bring_back(self) -> None:
        self.redis.restart()

    async def crash(self, server: rtt.Server[Any]) -> None:
        # A hung process: its connections stay open, and it neither reads, writes, announces
        # nor reconnects. The other nodes must forget it (and cut its connections) on their own.
        broker = server.broker
        assert isinstance(broker, RedisBroker)

        async def announce_nothing(count: int) -> None:
            pass

        vars(broker)["_announce"] = announce_nothing
        for task in list(broker._tasks):
            task.cancel()
