"""One server process of the cluster tests: a transport joined to Redis, driven by its clients.

``python cluster_node.py TRANSPORT REDIS_URL`` prints its URL once listening
and serves until standard input closes. A client sends a JSON command; the
reply is a JSON object; anything else a client receives was delivered to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import rtt

FAST = {
    "heartbeat": 0.2,
    "node_timeout": 1.0,
    "timeout": 1.0,
    "connect_timeout": 2.0,
    "reconnect": {"min_delay": 0.05, "max_delay": 0.2, "factor": 2.0, "jitter": 0.0},
}


async def main(transport_name: str, redis_url: str) -> None:
    transport = rtt.load(transport_name, broker={"broker": redis_url, "options": FAST})
    server = transport.server(port=0)

    async def reply(socket: rtt.Socket, **fields: Any) -> None:
        await server.send(socket.id, json.dumps(fields))

    @server.on("message")
    async def command(socket: rtt.Socket, data: str | bytes) -> None:
        cmd = json.loads(data)
        op = cmd["op"]
        try:
            if op == "whoami":
                await reply(socket, id=socket.id, pid=os.getpid())
            elif op == "broadcast":
                local = await server.broadcast(
                    cmd["data"], exclude=cmd.get("exclude", ()), group=cmd.get("group")
                )
                await reply(socket, local=local)
            elif op == "send":
                await server.send(cmd["to"], cmd["data"])
                await reply(socket, sent=True)
            elif op in ("join", "leave", "disconnect"):
                args = (cmd["id"], cmd["group"]) if op != "disconnect" else (cmd["id"],)
                await getattr(server, op)(*args)
                await reply(socket, done=op)
            elif op == "count":
                await reply(socket, count=await server.socket_count())
            elif op == "connected":
                await reply(socket, connected=await server.is_connected(cmd["id"]))
            elif op == "stats":
                assert server.broker is not None
                await reply(socket, outages=server.stats.broker_outages, state=server.broker.state.value)
        except rtt.RttError as exc:
            await reply(socket, error=type(exc).__name__, local=getattr(exc, "local", None))

    async with server:
        print(server.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
