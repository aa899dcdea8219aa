"""The official engine.io-client (v6) in Node talks to an rtt-engineio server (SPEC.md 12.3)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

import rtt
from rtt.testing import Recorder, echo

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.mark.parametrize(
    ("transports", "final"),
    [("polling", "polling"), ("websocket", "websocket"), ("polling,websocket", "websocket")],
)
# With resume on, a client that did not ask for it is answered as plain (SPEC.md 17.2).
@pytest.mark.parametrize("resume_window", [None, 30], ids=["resume-off", "resume-on"])
async def test_engineio_client_echo(transports: str, final: str, resume_window: float | None) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the interop tests"
    assert (NODE_DIR / "node_modules" / "engine.io-client").is_dir(), "run `npm ci --prefix tests/node` first"
    async with rtt.load("engineio").server(resume_window=resume_window) as server:
        rec = Recorder().listen(echo(server), "disconnect")
        host, port = server.address
        process = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "engineio-interop.mjs"),
            f"http://{host}:{port}/",
            transports,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stdout
        result = json.loads(stdout)
        assert result["seen"] == [{"text": "hello from engine.io-client"}, {"binary": [0, 1, 2, 255]}]
        assert result["closedOver"] == final
        ((socket, reason),) = await rec.wait("disconnect", timeout=10)
        assert socket.transport == "engineio"
        assert reason is rtt.CloseReason.CLIENT_CLOSED
