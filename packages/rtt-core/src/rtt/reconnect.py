"""Reconnection policy: exponential backoff with proportional jitter (SPEC.md section 7).

The delays are a plain generator, as in websockets' ``backoff``: the client
consumes :meth:`ReconnectPolicy.delays` and stops when it is exhausted, so a
caller can swap in any iterable of delays by subclassing and overriding it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import OptionError

__all__ = ["ReconnectPolicy"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconnectPolicy:
    """How a client waits between reconnection attempts.

    Attempt *n* (counting from 1) waits ``min(max_delay, min_delay * factor**(n-1))``
    seconds, moved by a random amount of up to ``jitter`` times itself in either
    direction (so 0.5 means anywhere from half to one and a half times), then
    capped at ``max_delay`` again. ``max_attempts=None`` retries forever.
    """

    min_delay: float = 1.0
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("min_delay", "max_delay", "factor", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise OptionError(f"reconnect {name} must be a number, got {value!r}")
        if self.min_delay < 0:
            raise OptionError(f"reconnect min_delay must be >= 0, got {self.min_delay!r}")
        if self.max_delay < self.min_delay:
            raise OptionError(
                f"reconnect max_delay ({self.max_delay!r}) must be >= min_delay ({self.min_delay!r})"
            )
        if self.factor < 1:
            raise OptionError(f"reconnect factor must be >= 1, got {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise OptionError(f"reconnect jitter must be between 0 and 1, got {self.jitter!r}")
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise OptionError(
                f"reconnect max_attempts must be a positive int or None, got {self.max_attempts!r}"
            )

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the delay before each attempt; the generator ends when attempts run out."""
        uniform = (rng or random).uniform
        attempt = 0
        base = self.min_delay
        while self.max_attempts is None or attempt < self.max_attempts:
            attempt += 1
            spread = base * self.jitter
            yield max(0.0, min(self.max_delay, base + uniform(-spread, spread)))
            base = min(self.max_delay, base * self.factor)
