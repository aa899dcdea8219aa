"""Canaries: a plugin overrides or reads private parts of its library; say so the day they move.

Each plugin's canary test lists what it touches: the upstream symbol, the
parameters it had when rtt's code was written, the version it was written
against, and where rtt touches it. A new release that renames a method,
changes its signature or drops an attribute fails here, naming the symbol,
instead of somewhere deep in a test of behaviour.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Touch:
    """One private part of a library that rtt overrides or reads."""

    owner: Any
    """The upstream class or module."""
    name: str
    """The attribute rtt overrides or reads."""
    parameters: tuple[str, ...] | None
    """Its parameters (``self`` included) as rtt was written against; None: only its presence matters."""
    where: str
    """Where rtt touches it, and why."""

    @property
    def symbol(self) -> str:
        owner = (
            self.owner if isinstance(self.owner, type) or inspect.ismodule(self.owner) else type(self.owner)
        )
        if inspect.ismodule(owner):
            return f"{owner.__name__}.{self.name}"
        return f"{owner.__module__}.{owner.__qualname__}.{self.name}"

    def check(self, library: str, version: str) -> None:
        """Fail with a message naming the symbol if it is gone or its parameters changed."""
        found = inspect.getattr_static(self.owner, self.name, None)
        if found is None:
            found = getattr(self.owner, self.name, None)
        assert found is not None, (
            f"{library} {version} has no {self.symbol}, which rtt touches in {self.where}: "
            "review that code against the new release"
        )
        if self.parameters is None:
            return
        actual = tuple(inspect.signature(getattr(self.owner, self.name)).parameters)
        assert actual == self.parameters, (
            f"{library} {version} changed {self.symbol}{actual} (rtt was written against "
            f"{self.parameters}), which rtt touches in {self.where}: review that code against the new release"
        )
