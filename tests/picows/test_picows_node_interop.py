"""Node's `ws` client talks to an rtt-picows server with plain frames (SPEC.md 12)."""

from __future__ import annotations

from node_support import check_node_ws_echo, check_node_ws_sees_the_application_close

import rtt
from rtt.testing import echo


async def test_node_ws_client_echo() -> None:
    async with rtt.load("picows").server() as server:
        await check_node_ws_echo(echo(server))


async def test_node_ws_client_sees_the_application_close() -> None:  # SPEC 6.3
    async with rtt.load("picows").server() as server:
        await check_node_ws_sees_the_application_close(server)
