"""Node's `ws` client talks to an rtt-picows server with plain frames (SPEC.md 12)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import rtt
from rtt.testing import Recorder, echo

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def node() -> str:
    found = shutil.which("node")
    assert found is not None, "Node.js is needed for the interop tests"
    assert (NODE_DIR / "node_modules" / "ws").is_dir(), "run `npm ci --prefix tests/node` first"
    return found


async def test_node_ws_client_echo() -> None:
    async with rtt.load("picows").server() as server:
        rec = Recorder().listen(echo(server), "disconnect")
        process = await asyncio.create_subprocess_exec(
            node(), str(NODE_DIR / "ws-interop.mjs"), server.url, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stdout
        result = json.loads(stdout)
        assert result["seen"] == [{"text": "hello from node"}, {"binary": [0, 1, 2, 255]}]
        assert result["code"] == 1000
        assert await rec.wait("disconnect") == [(rec.of("disconnect")[0][0], rtt.CloseReason.CLIENT_CLOSED)]


# Node's `ws` client, resolved from tests/node: connects, says hello, prints how the server closed it.
CLOSE_WATCHER = """
const { createRequire } = require("node:module");
const WebSocket = createRequire(process.argv[1])("ws");
const socket = new WebSocket(process.argv[2]);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 10000);
socket.on("open", () => socket.send("hello"));
socket.on("close", (code, reason) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ code, reason: reason.toString("utf8") }));
});
socket.on("error", (err) => { console.log(JSON.stringify({ error: String(err) })); process.exit(1); });
"""


async def test_node_ws_client_sees_the_application_close() -> None:  # SPEC 6.3
    async with rtt.load("picows").server() as server:
        rec = Recorder().listen(server, "message", "disconnect")
        process = await asyncio.create_subprocess_exec(
            node(),
            "-e",
            CLOSE_WATCHER,
            str(NODE_DIR / "package.json"),
            server.url,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            ((socket, data),) = await rec.wait("message")
            assert data == "hello"
            text = "déjà connecté ailleurs"
            await server.disconnect(socket.id, code=4001, reason=text)
            stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, stdout
        assert json.loads(stdout) == {"code": 4001, "reason": text}
        assert await rec.wait("disconnect") == [(socket, rtt.CloseReason.APPLICATION)]
