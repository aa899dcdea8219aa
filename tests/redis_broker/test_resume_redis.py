"""Sessions that move between processes over a real redis-server (SPEC.md 17.5).

This part covers what a handoff asks of rtt-redis: the total-order promise,
the live nodes (``_nodes``, the liveness keys ``_counts`` reads), and the
stamps on socket operations crossing Redis.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

import rtt
from rtt.broker import decode_envelope
from rtt.testing import Proxy, Recorder, eventually
from rtt_redis import RedisBroker

from .conftest import FAST, RedisServer

pytestmark = pytest.mark.timeout(60)


def node(url: str, **options: Any) -> rtt.Server[Any]:
    options.setdefault("close_timeout", 0.5)
    return rtt.load("mock").server(broker={"broker": url, "options": FAST}, **options)


def test_redis_promises_total_order() -> None:
    assert RedisBroker.total_order is True


async def test_nodes_are_the_live_announced_ones(redis_server: RedisServer) -> None:
    a, b = node(redis_server.url), node(redis_server.url)
    async with a, b:
        assert a.broker is not None and b.broker is not None
        assert sorted(await a.broker.nodes()) == sorted([a.node, b.node])
        # A node whose liveness key expired is not live, even while it is still in the set.
        names = Redis(port=redis_server.port)
        try:
            await names.sadd("rtt:nodes", "ghost")
            assert sorted(await b.broker.nodes()) == sorted([a.node, b.node])
        finally:
            await names.aclose()
        await b.close()
        assert await a.broker.nodes() == [a.node]


async def test_stamps_cross_redis_and_are_heard(redis_server: RedisServer) -> None:
    a, b = node(redis_server.url, resume_window=30), node(redis_server.url, resume_window=30)
    async with a, b:
        assert a._resume is not None and b._resume is not None and b.broker is not None
        seen: list[int] = []

        async def spy(channel: str, payload: bytes) -> None:
            seen.append(decode_envelope(payload).seq)
            await b._from_broker(channel, payload)

        b.broker._deliver = spy
        for k in range(5):
            await a.broadcast(f"b{k}")
        await eventually(lambda: len(seen) == 5, 5, "five broadcasts at b")
        assert seen == [1, 2, 3, 4, 5] and b._resume.heard == {a.node: 5}


HOLDER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import rtt

    async def main():
        transport = rtt.load("ws", broker={"broker": sys.argv[1], "options": %r})
        server = transport.server(resume_window=30)

        @server.on("message")
        async def echo(socket, data):
            await server.send(socket.id, "echo:" + data)

        async with server:
            print(server.address[1], flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


async def test_a_session_moves_to_another_process(tmp_path: Path, redis_server: RedisServer) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER_SCRIPT % (FAST,))
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        redis_server.url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert holder.stdout is not None
        port = int(await asyncio.wait_for(holder.stdout.readline(), 20))
        transport = rtt.load("ws", broker={"broker": redis_server.url, "options": FAST})
        here = transport.server(resume_window=30)
        handled: list[str | bytes] = []
        here.on("message", lambda socket, data: handled.append(data))
        events = Recorder().listen(here, "connect", "back")
        async with here, Proxy("127.0.0.1", port) as proxy:
            policy = {"min_delay": 0.05, "max_delay": 0.2, "jitter": 0.0}
            client = transport.client(proxy.url_for(f"ws://127.0.0.1:{port}/"), reconnect=policy)
            lost = Recorder().listen(client, "session_lost", "reconnected")
            async with client:
                for k in range(3):
                    await client.send(f"c{k}")
                assert [await client.recv() for _ in range(3)] == ["echo:c0", "echo:c1", "echo:c2"]
                socket_id = client.socket_id
                assert socket_id is not None and await here.is_connected(socket_id)
                # The client's next connection lands on this process, which takes the session over.
                proxy.target_port = here.address[1]
                proxy.sever()
                await here.send(socket_id, "while moving")  # to the holder, or to this process once moved
                await lost.wait("reconnected", timeout=10)
                await client.send("c3")
                assert await client.recv() == "while moving"
                await eventually(lambda: handled == ["c3"], 5, "c3 handled here")
                await here.send(socket_id, "here")
                assert await client.recv() == "here"
                assert client.socket_id == socket_id and not lost.of("session_lost")
                assert [e[0].id for e in events.of("back")] == [socket_id] and not events.of("connect")
                assert here.stats.moved_in == 1
    finally:
        if holder.returncode is None:
            assert holder.stdin is not None
            holder.stdin.close()
            try:
                await asyncio.wait_for(holder.wait(), 10)
            except TimeoutError:
                holder.kill()
                await holder.wait()


async def test_a_closing_process_pushes_its_sessions_over_redis(redis_server: RedisServer) -> None:
    transport = rtt.load("ws", broker={"broker": redis_server.url, "options": FAST})
    old, new = transport.server(resume_window=30), transport.server(resume_window=30)
    old.on("message", lambda socket, data: old.send(socket.id, f"old:{data}"))
    new.on("message", lambda socket, data: new.send(socket.id, f"new:{data}"))
    moved = Recorder().listen(old, "moved", "disconnect")
    async with new:
        await old.start()
        try:
            async with Proxy("127.0.0.1", old.address[1]) as proxy:
                policy = {"min_delay": 0.05, "max_delay": 0.2, "jitter": 0.0}
                client = transport.client(proxy.url_for(old.url), reconnect=policy)
                lost = Recorder().listen(client, "session_lost", "reconnected")
                async with client:
                    await client.send("c0")
                    assert await client.recv() == "old:c0"
                    socket_id = client.socket_id
                    assert socket_id is not None
                    proxy.target_port = new.address[1]  # the restarted process's replacement
                    await old.close()
                    assert [e[0] for e in moved.events] == ["moved"] and socket_id in new.sockets
                    await new.send(socket_id, "while away")
                    await lost.wait("reconnected", timeout=10)
                    assert await client.recv() == "while away"
                    await client.send("c1")
                    assert await client.recv() == "new:c1"
                    assert client.socket_id == socket_id and not lost.of("session_lost")
                    assert (old.stats.moved_out, new.stats.moved_in) == (1, 1)
        finally:
            await old.close()
