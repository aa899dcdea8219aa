"""Four real server processes on ws, engineio and sockjs, one real Redis (SPEC.md 13.4-13.6).

Each process runs ``cluster_node.py``; clients of each transport's Python
client drive it with JSON commands, so every operation crosses processes the
way an application's would.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import rtt
from rtt.testing import eventually

from .conftest import RedisServer

NODE = Path(__file__).with_name("cluster_node.py")
TRANSPORTS = ("ws", "engineio", "sockjs", "ws")


class Node:
    """One server process and what it printed."""

    def __init__(self, transport: str, redis_url: str) -> None:
        self.transport = transport
        self.process = subprocess.Popen(
            [sys.executable, str(NODE), transport, redis_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.log: str | None = None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise AssertionError(f"{transport} node did not start: {self.stop()}")

    def stop(self) -> str:
        """Stop the process (if still running) and return what it wrote on standard error."""
        if self.log is None:
            try:  # communicate() closes standard input: the node's cue to shut down
                _, self.log = self.process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                _, self.log = self.process.communicate(timeout=5)
        return self.log


class Peer:
    """A connected client of one node, its socket id, and what was delivered to it."""

    def __init__(self, client: rtt.Client, node: Node) -> None:
        self.client = client
        self.node = node
        self.id = ""
        self.delivered: list[str | bytes] = []
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        client.on("message", self._message)

    def _message(self, data: str | bytes) -> None:
        if isinstance(data, str) and data.startswith("{"):
            self.replies.put_nowait(json.loads(data))
        else:
            self.delivered.append(data)

    async def ask(self, **command: Any) -> dict[str, Any]:
        await self.client.send(json.dumps(command))
        async with asyncio.timeout(10):
            return await self.replies.get()


@contextmanager
def nodes(redis_url: str, transports: tuple[str, ...] = TRANSPORTS) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for transport in transports:
            started.append(Node(transport, redis_url))
        yield started
    finally:
        for node in started:
            node.stop()


@asynccontextmanager
async def peers(cluster: list[Node], per_node: int) -> AsyncIterator[list[Peer]]:
    made: list[Peer] = []
    try:
        for node in cluster:
            for _ in range(per_node):
                peer = Peer(rtt.load(node.transport).client(node.url, reconnect=False), node)
                made.append(peer)
                await peer.client.connect()
                peer.id = (await peer.ask(op="whoami"))["id"]
        yield made
    finally:
        await asyncio.gather(*(asyncio.wait_for(p.client.close(), 10) for p in made), return_exceptions=True)


async def settle(peers_: list[Peer], expected: dict[str, list[str | bytes]]) -> None:
    """Wait until every peer got what it expects, then a little longer to catch duplicates."""
    await eventually(
        lambda: all(len(p.delivered) >= len(expected[p.id]) for p in peers_), 10, "every delivery"
    )
    await asyncio.sleep(0.3)
    for peer in peers_:
        assert sorted(map(repr, peer.delivered)) == sorted(map(repr, expected[peer.id])), peer.node.transport
        peer.delivered.clear()


async def test_four_processes_on_three_transports_act_as_one(redis_server: RedisServer) -> None:
    with nodes(redis_server.url) as cluster:
        async with peers(cluster, 3) as everyone:
            by_node = [everyone[i * 3 : i * 3 + 3] for i in range(len(cluster))]
            # Broadcast from one process reaches every socket of every process once.
            assert (await by_node[0][0].ask(op="broadcast", data="to all")) == {"local": 3}
            await settle(everyone, {p.id: ["to all"] for p in everyone})
            # exclude works for ids held anywhere.
            skipped = {by_node[1][0].id, by_node[2][1].id}
            await by_node[3][0].ask(op="broadcast", data="some", exclude=sorted(skipped))
            await settle(everyone, {p.id: [] if p.id in skipped else ["some"] for p in everyone})
            # Groups: members on three processes, joined through a fourth.
            members = {by_node[0][1].id, by_node[2][0].id, by_node[3][2].id}
            for member in sorted(members):
                assert (await by_node[1][0].ask(op="join", id=member, group="room")) == {"done": "join"}
            await by_node[2][2].ask(op="broadcast", data="to the room", group="room")
            await settle(everyone, {p.id: ["to the room"] if p.id in members else [] for p in everyone})
            # send to a socket held by another process, on another transport.
            target = by_node[2][0]
            assert (await by_node[0][0].ask(op="send", to=target.id, data="just you")) == {"sent": True}
            await settle(everyone, {p.id: ["just you"] if p is target else [] for p in everyone})
            # Counts and presence across processes.
            await eventually_reply(by_node[1][1], {"op": "count"}, {"count": 12})
            assert (await by_node[3][0].ask(op="connected", id=by_node[0][2].id)) == {"connected": True}
            # disconnect across processes: the client learns it was the server's decision.
            victim = by_node[3][1]
            assert (await by_node[1][2].ask(op="disconnect", id=victim.id)) == {"done": "disconnect"}
            assert await asyncio.wait_for(victim.client.wait_closed(), 10) is rtt.CloseReason.SERVER_CLOSED
            await eventually_reply(by_node[0][0], {"op": "count"}, {"count": 11})
            unknown = await by_node[0][0].ask(op="send", to=victim.id, data="gone")
            assert unknown == {"error": "UnknownSocketError", "local": None}
            # A socket that disconnected left its groups.
            await by_node[0][0].ask(op="broadcast", data="room again", group="room")
            await settle(
                [p for p in everyone if p is not victim],
                {p.id: ["room again"] if p.id in members else [] for p in everyone},
            )


async def eventually_reply(peer: Peer, command: dict[str, Any], expected: dict[str, Any]) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while (got := await peer.ask(**command)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{command} answered {got}, not {expected}")
        await asyncio.sleep(0.05)


async def test_redis_killed_and_restarted_mid_run(redis_server: RedisServer) -> None:
    with nodes(redis_server.url, ("ws", "sockjs")) as cluster:
        async with peers(cluster, 2) as everyone:
            near, far = everyone[:2], everyone[2:]
            redis_server.kill()
            # Local traffic never stops; the cross-process part fails loudly.
            await eventually_reply(near[0], {"op": "stats"}, {"outages": 1, "state": "down"})
            assert (await near[0].ask(op="broadcast", data="local only")) == {
                "error": "BrokerError",
                "local": 2,
            }
            assert (await near[0].ask(op="send", to=far[0].id, data="x"))["error"] == "BrokerError"
            await settle(everyone, {p.id: ["local only"] if p in near else [] for p in everyone})
            redis_server.restart()
            await eventually_reply(near[0], {"op": "stats"}, {"outages": 1, "state": "up"})
            await eventually_reply(far[0], {"op": "stats"}, {"outages": 1, "state": "up"})
            assert (await far[1].ask(op="broadcast", data="back")) == {"local": 2}
            await settle(everyone, {p.id: ["back"] for p in everyone})
            assert (await near[1].ask(op="send", to=far[0].id, data="across again")) == {"sent": True}
            await settle(everyone, {p.id: ["across again"] if p is far[0] else [] for p in everyone})
    # Each process said so in its log, once down and once back.
    logs = [node.stop() for node in cluster]
    for log in logs:
        assert "is down" in log and "is back" in log


async def test_a_killed_process_is_forgotten(redis_server: RedisServer) -> None:
    with nodes(redis_server.url, ("engineio", "ws")) as cluster:
        async with peers(cluster, 1) as (survivor, doomed):
            await eventually_reply(survivor, {"op": "count"}, {"count": 2})
            doomed.node.process.send_signal(signal.SIGKILL)
            doomed.node.process.wait(10)
            started = asyncio.get_running_loop().time()
            await eventually_reply(survivor, {"op": "connected", "id": doomed.id}, {"connected": False})
            unknown = await survivor.ask(op="send", to=doomed.id, data="anyone?")
            assert unknown == {"error": "UnknownSocketError", "local": None}
            await eventually_reply(survivor, {"op": "count"}, {"count": 1})
            # node_timeout (1 s) + heartbeat (0.2 s) is the documented bound; allow scheduling slack.
            assert asyncio.get_running_loop().time() - started < 1.2 + 3.0
