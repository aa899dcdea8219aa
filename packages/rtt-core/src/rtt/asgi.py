"""ASGI helpers for plugins whose server can be mounted in an ASGI application (SPEC.md 10).

Standard library only. A plugin's ``asgi_app()`` hands the ``lifespan``
scope to :func:`serve_lifespan`, which starts and closes the rtt server with
the application and runs the wrapped application's own lifespan around it,
and routes by :func:`route_path`, the path below the point the application
is mounted at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ASGIApp", "LifespanRelay", "Receive", "Scope", "Send", "route_path", "serve_lifespan"]

Scope = MutableMapping[str, Any]
"""An ASGI connection scope."""
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
"""The ASGI ``receive`` callable."""
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
"""The ASGI ``send`` callable."""
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""


def route_path(scope: Scope) -> str:
    """The scope's path below its ``root_path`` (where the application is mounted).

    ASGI servers and frameworks (uvicorn's ``--root-path``, Starlette's
    ``Mount``) keep the full path in ``path`` and put the mount point in
    ``root_path``; an application compares its own routes with what follows.
    A path outside ``root_path`` is returned whole.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    rest = path[len(root) :]
    if not rest:
        return "/"
    return rest if rest.startswith("/") else path


async def serve_lifespan(server: Server[Any], scope: Scope, receive: Receive, send: Send, other: Any) -> None:
    """Answer an ASGI ``lifespan`` scope: start ``server`` at startup, close it at shutdown.

    ``other`` (an ASGI application, or ``None``) gets its startup before the
    server starts and its shutdown after the server closed; an application
    without lifespan support (it raises or returns on the lifespan scope) is
    left out, as ASGI servers do. A server already started (by the caller) is
    not started again. A failure is answered ``lifespan.startup.failed`` or
    ``lifespan.shutdown.failed`` with its message.
    """
    # Imported here: rtt.server imports the whole core, rtt.asgi is light.
    from .server import ServerState

    relay = LifespanRelay(other, scope) if other is not None else None
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            failure = await relay.ask("lifespan.startup") if relay is not None else None
            if failure is None:
                try:
                    if server.state is ServerState.NEW:
                        await server.start()
                except Exception as exc:
                    failure = str(exc) or repr(exc)
            if failure is not None:
                await send({"type": "lifespan.startup.failed", "message": failure})
                return
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await server.close()
            failure = await relay.ask("lifespan.shutdown") if relay is not None else None
            if failure is not None:
                await send({"type": "lifespan.shutdown.failed", "message": failure})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            return


class LifespanRelay:
    """Runs another ASGI application's lifespan beside the caller's, one event at a time."""

    def __init__(self, app: Any, scope: Scope) -> None:
        self._inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = asyncio.get_running_loop().create_task(
            app(scope, self._inbox.get, self._outbox.put)
        )

    async def ask(self, event_type: str) -> str | None:
        """Send ``event_type``; return the failure message, or ``None`` if it completed.

        ``None`` too when the application has no lifespan support (it raised
        or returned instead of answering): it is left out from then on.
        """
        task = self._task
        if task is None:
            return None
        await self._inbox.put({"type": event_type})
        answer = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({answer, task}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            self._task = None  # no lifespan support: it raised or returned
            if not task.cancelled():
                task.exception()  # retrieved: an app may refuse the lifespan scope
            return None
        message = answer.result()
        if message["type"].endswith(".failed"):
            return str(message.get("message", ""))
        if event_type == "lifespan.shutdown":
            await asyncio.wait({task}, timeout=5)
        return None
