"""Event handler registry shared by servers and clients."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Emitter:
    """Handlers per event name; each handler may be sync or async."""

    __slots__ = ("_handlers", "_logger", "_owner")

    def __init__(self, events: tuple[str, ...], logger: logging.Logger, owner: str) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {e: [] for e in events}
        self._logger = logger
        self._owner = owner

    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register ``handler`` for ``event``; without a handler, return a decorator."""
        handlers = self._handlers.get(event)
        if handlers is None:
            valid = ", ".join(self._handlers)
            raise ValueError(f"unknown {self._owner} event {event!r}; valid events: {valid}")
        if handler is None:

            def decorator(fn: F) -> F:
                self.on(event, fn)
                return fn

            return decorator
        if not callable(handler):
            raise TypeError(f"handler for {event!r} must be callable, got {handler!r}")
        handlers.append(handler)
        return handler

    def off(self, event: str, handler: Callable[..., Any]) -> None:
        """Remove a handler registered with :meth:`on`; unknown handlers are ignored."""
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    def handlers(self, event: str) -> list[Callable[..., Any]]:
        """The live list of handlers for ``event`` (read it, do not mutate it)."""
        return self._handlers[event]

    async def emit(self, event: str, *args: Any) -> bool:
        """Call every handler of ``event`` in order; return False if one raised.

        A raising handler is logged and the rest still run: one bad handler
        must not stop the server or the other sockets.
        """
        ok = True
        for handler in tuple(self._handlers[event]):
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                ok = False
                self._logger.exception("%s handler %r for %r raised", self._owner, handler, event)
        return ok
