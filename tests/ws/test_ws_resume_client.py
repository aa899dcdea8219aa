"""The Python client's resume over real WebSockets with rtt-ws (SPEC.md 17.4)."""

from __future__ import annotations

import pytest
from resume_client_support import (
    test_resume_over_a_raw_websocket_server,
    test_severed_mid_traffic_nothing_lost_or_doubled,
    test_the_token_is_in_no_error_text_or_log,
)

__all__ = [
    "test_resume_over_a_raw_websocket_server",
    "test_severed_mid_traffic_nothing_lost_or_doubled",
    "test_the_token_is_in_no_error_text_or_log",
]


@pytest.fixture
def name() -> str:
    """The transport the cases run on."""
    return "ws"
