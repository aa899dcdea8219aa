"""Shared fixtures: every test gets its own in-memory network, so nothing leaks between tests."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rtt_mock import MockNetwork, MockTransport


@pytest.fixture
def mock() -> MockTransport:
    """A mock transport on a fresh network, with fast reconnects."""
    return MockTransport(network=MockNetwork(), reconnect={"min_delay": 0.02, "max_delay": 0.05, "jitter": 0})


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test so an unclosed socket or transport fails the test that leaked it."""
    yield
    gc.collect()
