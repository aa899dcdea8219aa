"""A client the server cuts while it sends: ``send()`` raises, it never waits forever (SPEC.md 4.4, 4.6).

The client floods an echo server and never reads, so the server closes it
as a ``slow consumer`` (7.1) and drops its connection at once (6). Its
sends must then end with ``ConnectionClosed``: over Engine.IO long-polling,
python-engineio's write loop gave up on the refused POST without ending the
session, and ``send()`` used to wait for that loop to write its batch for
ever (issue 12). Once the client reads again, its messages already received
come first and then the end of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest

import rtt
from rtt.testing import Recorder, echo, eventually

if TYPE_CHECKING:
    from faults.conftest import Wire  # the ``wire`` fixture's type

CHUNK = 16 * 1024
OUTBOUND_LIMIT = 256 * 1024
WAIT = 30.0
#: How long a send may still take once the server has dropped the connection.
SEND_BOUND = 10.0


@pytest.mark.timeout(120)
async def test_sends_of_a_client_cut_as_slow_consumer_raise_connection_closed(wire: Wire) -> None:
    transport = wire.transport()
    server = transport.server(
        port=0, max_message_size=CHUNK, outbound_limit=OUTBOUND_LIMIT, ping_interval=5, ping_timeout=20
    )
    async with echo(server):
        rec = Recorder().listen(server, "disconnect")
        # max_queue=1 and no recv(): the client stops reading by itself, so the echoes pile up.
        client = transport.client(server.url, reconnect=False, max_message_size=CHUNK, max_queue=1)
        async with client:
            await eventually(lambda: len(server.sockets) == 1, WAIT, "the socket")
            sent = 0

            async def flood() -> BaseException:
                nonlocal sent
                chunk = "x" * CHUNK
                # Until the connection is gone: the case's time bound ends a send that hangs.
                try:
                    while True:
                        await client.send(chunk)
                        sent += 1
                except (rtt.errors.ConnectionClosed, rtt.errors.StateError) as exc:
                    return exc

            flooding = asyncio.create_task(flood())
            try:
                ((_, reason),) = await rec.wait("disconnect", timeout=WAIT)
                assert reason is rtt.CloseReason.SLOW_CONSUMER, (reason, sent)
                # The connection is gone on the server: the flooder's next send cannot hang.
                done, _ = await asyncio.wait([flooding], timeout=SEND_BOUND)
                assert done, f"send() still waits {SEND_BOUND} s after the cut ({sent} sent)"
            finally:
                flooding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flooding
            assert isinstance(flooding.result(), rtt.errors.ConnectionClosed), flooding.result()
            # Reading again: what arrived before the cut, then the end of the connection.
            received = 0
            while not isinstance(data := await _recv(client), rtt.errors.ConnectionClosed):
                assert data == "x" * CHUNK
                received += 1
            assert received < sent
            assert data.reason in (rtt.CloseReason.TRANSPORT_ERROR, rtt.CloseReason.SLOW_CONSUMER)
            assert client.state is rtt.ClientState.CLOSED
        assert server.stats.drops == 1


async def _recv(client: rtt.Client) -> str | bytes | rtt.errors.ConnectionClosed:
    """The next message, or the ``ConnectionClosed`` that ends them."""
    try:
        return await asyncio.wait_for(client.recv(), WAIT)
    except rtt.errors.ConnectionClosed as closed:
        return closed
