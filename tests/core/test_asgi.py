"""rtt.asgi: the lifespan a mounted server shares with its application, and routing below root_path."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from rtt import ServerState
from rtt.asgi import LifespanRelay, Receive, Scope, Send, route_path, serve_lifespan
from rtt_mock import MockTransport

Event = MutableMapping[str, Any]


class Lifespan:
    """Plays the ASGI server's side of a lifespan scope: feeds events, records the answers."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.answers: list[str] = []
        self.messages: list[str] = []

    async def receive(self) -> Event:
        return await self.events.get()

    async def send(self, message: Event) -> None:
        self.answers.append(message["type"])
        if "message" in message:
            self.messages.append(message["message"])

    async def run(self, mock: MockTransport, other: Any, *events: str) -> Any:
        server = mock.server()
        for event in events:
            self.events.put_nowait({"type": event})
        async with asyncio.timeout(10):
            await serve_lifespan(server, {"type": "lifespan"}, self.receive, self.send, other)
        return server


class OtherApp:
    """An ASGI application with lifespan support, recording what it was asked and when."""

    def __init__(self, fail: str | None = None) -> None:
        self.seen: list[tuple[str, ServerState | None]] = []
        self.fail = fail
        self.server: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            event = await receive()
            kind = event["type"]
            self.seen.append((kind, self.server.state if self.server is not None else None))
            suffix = "failed" if self.fail == kind else "complete"
            answer: Event = {"type": f"{kind}.{suffix}"}
            if suffix == "failed":
                answer["message"] = f"{kind} broke"
            await send(answer)
            if kind == "lifespan.shutdown" or suffix == "failed":
                return


async def test_startup_starts_the_server_and_shutdown_closes_it(mock: MockTransport) -> None:
    life = Lifespan()
    server = await life.run(mock, None, "lifespan.startup", "lifespan.unknown", "lifespan.shutdown")
    assert life.answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert server.state is ServerState.CLOSED


async def test_a_started_server_is_not_started_again(mock: MockTransport) -> None:
    life = Lifespan()
    server = mock.server()
    await server.start()
    life.events.put_nowait({"type": "lifespan.startup"})
    life.events.put_nowait({"type": "lifespan.shutdown"})
    async with asyncio.timeout(10):
        await serve_lifespan(server, {"type": "lifespan"}, life.receive, life.send, None)
    assert life.answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert server.state is ServerState.CLOSED


async def test_the_other_app_starts_first_and_stops_last(mock: MockTransport) -> None:
    life = Lifespan()
    other = OtherApp()
    server = mock.server()
    other.server = server
    for event in ("lifespan.startup", "lifespan.shutdown"):
        life.events.put_nowait({"type": event})
    async with asyncio.timeout(10):
        await serve_lifespan(server, {"type": "lifespan"}, life.receive, life.send, other)
    assert other.seen == [("lifespan.startup", ServerState.NEW), ("lifespan.shutdown", ServerState.CLOSED)]
    assert life.answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_the_other_apps_startup_failure_is_reported_and_the_server_never_starts(
    mock: MockTransport,
) -> None:
    life = Lifespan()
    server = await life.run(mock, OtherApp(fail="lifespan.startup"), "lifespan.startup")
    assert life.answers == ["lifespan.startup.failed"]
    assert life.messages == ["lifespan.startup broke"]
    assert server.state is ServerState.NEW


async def test_the_other_apps_shutdown_failure_is_reported(mock: MockTransport) -> None:
    life = Lifespan()
    server = await life.run(mock, OtherApp(fail="lifespan.shutdown"), "lifespan.startup", "lifespan.shutdown")
    assert life.answers == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert life.messages == ["lifespan.shutdown broke"]
    assert server.state is ServerState.CLOSED


async def test_a_server_that_cannot_start_fails_the_startup(mock: MockTransport) -> None:
    life = Lifespan()
    async with mock.server() as first:
        taken = mock.server(port=first.address[1])
        life.events.put_nowait({"type": "lifespan.startup"})
        async with asyncio.timeout(10):
            await serve_lifespan(taken, {"type": "lifespan"}, life.receive, life.send, None)
    assert life.answers == ["lifespan.startup.failed"]
    assert "address already in use" in life.messages[0]


async def refuses_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] != "lifespan", "no lifespan support"


async def returns_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    return None


@pytest.mark.parametrize("other", [refuses_lifespan, returns_at_once])
async def test_an_app_without_lifespan_support_is_left_out(mock: MockTransport, other: Any) -> None:
    life = Lifespan()
    server = await life.run(mock, other, "lifespan.startup", "lifespan.shutdown")
    assert life.answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert server.state is ServerState.CLOSED


async def test_a_cancelled_lifespan_task_is_left_out() -> None:
    started = asyncio.Event()

    async def hangs(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.Event().wait()

    relay = LifespanRelay(hangs, {"type": "lifespan"})
    await started.wait()
    relay._task.cancel()  # type: ignore[union-attr]
    async with asyncio.timeout(10):
        assert await relay.ask("lifespan.startup") is None
        assert await relay.ask("lifespan.shutdown") is None


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/ws", "", "/ws"),
        ("/ws", None, "/ws"),
        ("/api/ws", "/api", "/ws"),
        ("/api", "/api", "/"),
        ("/apix/ws", "/api", "/apix/ws"),
        ("/other/ws", "/api", "/other/ws"),
    ],
)
def test_route_path_is_the_path_below_root_path(path: str, root: str | None, expected: str) -> None:
    scope: Scope = {"type": "http", "path": path}
    if root is not None:
        scope["root_path"] = root
    assert route_path(scope) == expected
