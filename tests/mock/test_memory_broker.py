"""The memory broker of rtt-mock passes the broker part of the conformance kit (SPEC.md 13.7)."""

from __future__ import annotations

import itertools
from typing import Any

import rtt
from rtt.broker import Broker
from rtt.testing import BrokerTests
from rtt_mock import MemoryBroker, hub

_hub_names = (f"kit-{n}" for n in itertools.count())


class TestMemoryBroker(BrokerTests):
    def setup_method(self) -> None:
        self.hub_name = next(_hub_names)

    def make_broker(self, **options: Any) -> Broker:
        broker = rtt.load_broker(f"memory://{self.hub_name}", **options)
        assert isinstance(broker, MemoryBroker)
        return broker

    async def take_down(self) -> None:
        hub(self.hub_name).fail()

    async def bring_back(self) -> None:
        hub(self.hub_name).recover()

    async def crash(self, server: rtt.Server[Any]) -> None:
        assert isinstance(server.broker, MemoryBroker)
        hub(self.hub_name).crash(server.broker)
