"""Resume through 20 drops on every wire: nothing lost, nothing repeated, order kept (SPEC.md 17).

The issue's case (issue 17). A server with ``resume_window`` echoes each
message and pushes a numbered tick to each of its sockets at a steady rate; a
Python client reaches it through the loopback proxy (``rtt.testing.Proxy``)
and sends numbered messages at the same rate. The proxy drops the connection
20 times, alternating a reset of both sides (``sever``) and a black hole whose
client side is cut a moment later while the server side stays silent (the
client comes back before the server has noticed its old connection died).
Afterwards the server has handled every message once and in order, the client
has received every echo and every tick once and in order, the socket kept its
id, and neither side saw the session end.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import rtt
from rtt.testing import Proxy, Recorder

from .conftest import PROXY_WIRES, Wire
from .resume_support import CUT_AFTER, DROPS, HTTP_RATE, PING, RATE, WAIT, Traffic, drop, running, until

#: The pause between drops.
BETWEEN = 0.5
POLICY = {"min_delay": 0.02, "max_delay": 0.1, "jitter": 0}


@pytest.fixture(params=PROXY_WIRES, ids=[wire.id for wire in PROXY_WIRES])
def drop_wire(request: pytest.FixtureRequest) -> Wire:
    wire: Wire = request.param
    return wire


# Long-polling takes the longest: up to 3 attempts a drop, a TCP connection per poll (SPEC.md 12.3).
@pytest.mark.timeout(240)
async def test_twenty_drops_lose_and_repeat_nothing_in_either_direction(drop_wire: Wire) -> None:
    transport = drop_wire.transport()
    server = transport.server(port=0, resume_window=30, ping_interval=PING, ping_timeout=PING)
    traffic = Traffic(server, HTTP_RATE if drop_wire.http else RATE)
    server_events = Recorder().listen(server, "connect", "away", "back", "disconnect")
    async with server, Proxy(*server.address) as proxy:
        client = transport.client(proxy.url_for(server.url), reconnect=POLICY, close_timeout=1)
        client_events = Recorder().listen(client, "close", "reconnected", "session_lost")
        client.on("message", traffic.received.append)
        async with client:
            ((socket,),) = await server_events.wait("connect", timeout=WAIT)
            await until(lambda: client.socket_id == socket.id, "the client's welcome")
            async with running(traffic.push_ticks(), traffic.send_numbers(client)):
                attempts = 0
                while len(client_events.of("close")) < DROPS:
                    drops = len(client_events.of("close"))
                    attempts += 1
                    assert attempts <= 3 * DROPS, f"{attempts} attempts made only {drops} drops"
                    await asyncio.sleep(BETWEEN)
                    await drop(proxy, attempts)
                    # Between two polls no connection may be open, and an idle keep-alive connection
                    # cut is only opened again: such an attempt drops nothing, and the next one tries.
                    with contextlib.suppress(AssertionError):
                        await client_events.wait("close", count=drops + 1, timeout=CUT_AFTER + 1.0)
                    closes = len(client_events.of("close"))
                    await client_events.wait("reconnected", count=closes, timeout=WAIT)
                await asyncio.sleep(BETWEEN)
            # The traffic stopped: everything sent arrives, once.
            sent, ticks = traffic.sent, traffic.ticks_sent.get(socket.id, 0)
            await until(lambda: len(traffic.handled) >= sent, f"the server to handle {sent} messages")
            expected = {f"e:c-{k}" for k in range(1, sent + 1)} | {f"t:{k}" for k in range(1, ticks + 1)}

            def missing() -> list[str | bytes]:
                return sorted(expected - set(traffic.received), key=str)

            await until(lambda: not missing(), "every echo and tick at the client", detail=missing)
            await asyncio.sleep(0.2)  # a duplicate would arrive now
            assert client.socket_id == socket.id
        await server_events.wait("disconnect", timeout=WAIT)
    assert traffic.errors == []
    assert traffic.handled == [f"c-{k}" for k in range(1, sent + 1)]
    echoes = [m for m in traffic.received if isinstance(m, str) and m.startswith("e:")]
    tick_list = [m for m in traffic.received if isinstance(m, str) and m.startswith("t:")]
    assert echoes == [f"e:c-{k}" for k in range(1, sent + 1)]
    assert tick_list == [f"t:{k}" for k in range(1, ticks + 1)]
    assert len(traffic.received) == len(echoes) + len(tick_list)
    # One session throughout: every drop was an away and a back, and nothing ended it.
    drops = len(client_events.of("close")) - 1  # the last is the client's own close
    assert drops >= DROPS
    assert len(client_events.of("reconnected")) == drops
    assert len(server_events.of("connect")) == 1
    # A resume attempt that dropped after the server took it is resumed again: more backs than drops.
    assert len(server_events.of("back")) >= drops
    assert len(server_events.of("away")) >= drops
    assert [reason for (_socket, reason) in server_events.of("disconnect")] == [rtt.CloseReason.CLIENT_CLOSED]
    assert client_events.of("session_lost") == []
