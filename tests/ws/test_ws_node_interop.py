"""Node's `ws` client talks to an rtt-ws server with plain frames (SPEC.md 12.2)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import rtt
from rtt.testing import Recorder, echo

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


async def test_node_ws_client_echo() -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the interop tests"
    assert (NODE_DIR / "node_modules" / "ws").is_dir(), "run `npm ci --prefix tests/node` first"
    async with rtt.load("ws").server() as server:
        rec = Recorder().listen(echo(server), "disconnect")

        process = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / "ws-interop.mjs"), server.url, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stdout
        result = json.loads(stdout)
        assert result["seen"] == [{"text": "hello from node"}, {"binary": [0, 1, 2, 255]}]
        assert result["code"] == 1000
        assert await rec.wait("disconnect") == [(rec.of("disconnect")[0][0], rtt.CloseReason.CLIENT_CLOSED)]
