"""The official sockjs-client (1.6) in Node talks to an rtt-sockjs server (SPEC.md 12.4).

Node's sockjs-client has no cookie jar. Without ``session_binding`` (the
default) every transport of it works, WebSocket and the xhr fallbacks; with
it only WebSocket can, and the script checks that xhr-streaming is refused
at its first send instead of hanging (SPEC.md 8.3).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from tls_support import run_node

import rtt
from rtt.codec import encode_text
from rtt.testing import Recorder

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")

BYTES = b"\x00\x01\xff"
NUL_TEXT = "\x00 starts with NUL"


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (CI installs it for the interop tests)")
# With resume on, a client that did not ask for it is answered as plain (SPEC.md 17.2).
@pytest.mark.parametrize("resume_window", [None, 30], ids=["resume-off", "resume-on"])
async def test_sockjs_client_over_websocket(resume_window: float | None) -> None:
    assert NODE is not None
    assert (NODE_DIR / "node_modules" / "sockjs-client").is_dir(), "run `npm ci --prefix tests/node` first"
    # close_timeout: at shutdown, the xhr-streaming session whose client has gone is not
    # waited for long.
    async with rtt.load("sockjs").server(
        host="127.0.0.1", port=0, close_timeout=1, session_binding=True, resume_window=resume_window
    ) as server:
        received: list[str | bytes] = []
        rec = Recorder().listen(server, "connect", "disconnect")

        @server.on("message")
        async def script(socket: rtt.Socket, data: str | bytes) -> None:
            received.append(data)
            if data == "bytes please":
                await server.send(socket.id, BYTES)
                await server.send(socket.id, NUL_TEXT)
            elif data == "broadcast please":
                await server.broadcast("to everyone")
            elif data == "close please":
                await server.disconnect(socket.id)
            else:
                await server.send(socket.id, data)

        process = await asyncio.create_subprocess_exec(
            NODE, str(NODE_DIR / "sockjs-interop.mjs"), server.url, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stdout
        result = json.loads(stdout)

        # What a bare SockJS client sees: text unchanged, bytes and NUL-led text in rtt's encoding.
        assert result["a"] == [
            "hello from sockjs-client",
            "\x00bAAH/",
            "\x00\x00 starts with NUL",
            "to everyone",
        ]
        assert result["a"][1:3] == [encode_text(BYTES), encode_text(NUL_TEXT)]
        assert result["b"] == ["to everyone"]
        # The server's close reason reaches sockjs-client as the close event's code and reason.
        assert result["closeB"] == {"code": 1000, "reason": "server closed"}
        assert result["closeA"] == {"code": 1000, "reason": "Normal closure"}  # sockjs-client's own

        # xhr-streaming without the binding cookie: the session opens, its first send is
        # refused (403 "Session binding"), and sockjs-client closes instead of hanging.
        assert result["xhr"]["opened"] is True
        assert result["xhr"]["close"]["code"] == 1006
        assert "403" in result["xhr"]["close"]["reason"], result["xhr"]
        assert "over xhr-streaming" not in received
        assert received == ["hello from sockjs-client", "bytes please", "broadcast please", "close please"]

        connected = [socket for (socket,) in await rec.wait("connect", 3)]
        assert all(socket.transport == "sockjs" for socket in connected)
        a, b, _xhr = connected
        disconnects = dict(await rec.wait("disconnect", 2))
        # A closed its WebSocket with 1000 and no closing notice (a bare client): "client closed".
        assert disconnects == {b: rtt.CloseReason.SERVER_CLOSED, a: rtt.CloseReason.CLIENT_CLOSED}


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (CI installs it for the interop tests)")
@pytest.mark.parametrize("transport", ["xhr-polling", "xhr-streaming"])
@pytest.mark.parametrize("resume_window", [None, 30], ids=["resume-off", "resume-on"])
async def test_sockjs_client_over_xhr_without_binding(transport: str, resume_window: float | None) -> None:
    """Without ``session_binding`` (the default) a cookie-less sockjs-client works over HTTP too."""
    assert NODE is not None
    assert (NODE_DIR / "node_modules" / "sockjs-client").is_dir(), "run `npm ci --prefix tests/node` first"
    async with rtt.load("sockjs").server(
        host="127.0.0.1", port=0, close_timeout=1, resume_window=resume_window
    ) as server:
        rec = Recorder().listen(server, "connect", "message")
        server.on("message", lambda socket, data: server.send(socket.id, data))
        status, result = await run_node("sockjs-echo.mjs", server.url, transport)
        assert status == 0, result
        assert result == {"seen": [f"over {transport}"], "code": 1000}
        ((socket,),) = rec.of("connect")
        assert rec.of("message") == [(socket, f"over {transport}")]
        conn = server._conns[socket.id]
        assert conn.transport_name == transport


# sockjs-client in Node over one transport: open, send one message, report the close event.
CLOSE_EVENT = """
import SockJS from "sockjs-client";
const [url, transport] = process.argv.slice(1);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(1);
}, 15000);
const sock = new SockJS(url, null, { transports: [transport] });
sock.onopen = () => sock.send("close me");
sock.onclose = (event) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ code: event.code, reason: event.reason }));
  process.exit(0);
};
"""


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (CI installs it for the interop tests)")
@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "xhr-streaming"])
async def test_sockjs_client_sees_an_application_close(transport: str) -> None:
    """``disconnect(id, code=4001, reason=...)`` is the close event's code and reason (SPEC.md 6.3)."""
    assert NODE is not None
    assert (NODE_DIR / "node_modules" / "sockjs-client").is_dir(), "run `npm ci --prefix tests/node` first"
    async with rtt.load("sockjs").server(host="127.0.0.1", port=0, close_timeout=1) as server:
        rec = Recorder().listen(server, "disconnect")
        server.on(
            "message", lambda socket, _: server.disconnect(socket.id, code=4001, reason="logged in elsewhere")
        )
        process = await asyncio.create_subprocess_exec(
            NODE,
            "--input-type=module",
            "-e",
            CLOSE_EVENT,
            server.url,
            transport,
            stdout=asyncio.subprocess.PIPE,
            cwd=NODE_DIR,  # where sockjs-client is installed
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stdout
        assert json.loads(stdout) == {"code": 4001, "reason": "logged in elsewhere"}
        ((_, reason),) = await rec.wait("disconnect")
        assert reason is rtt.CloseReason.APPLICATION
