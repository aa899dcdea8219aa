"""Reconnection policy: exponential backoff with proportional jitter (SPEC.md section 7).

The delays are a plain generator, as in websockets' ``backoff``: the client
consumes :meth:`ReconnectPolicy.delays` and stops when it is exhausted, so a
caller can swap in any iterable of delays by subclassing and overriding it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
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

    A connection that ends less than ``stable_after`` seconds after it opened
    does not restart the count: the next outage goes on from the attempt (and
    delay) where the last one succeeded, so a server that accepts and then
    drops every connection (a crash loop, a refusal after open) is retried
    ever more slowly and ``max_attempts`` still bounds the attempts. A
    connection that stays up that long starts the next outage at attempt 1;
    ``stable_after=0`` always does.

    A connection the server ended with an application close (SPEC.md 6.3) is
    final, as a plain ``disconnect`` is, unless its code is in ``retry_codes``:
    a server that kicks a user "logged in elsewhere" should not see them come
    back, while one that says "come back later" (say 4503) lists that code.
    """

    min_delay: float = 1.0
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    stable_after: float = 5.0
    retry_codes: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        codes: object = self.retry_codes
        if isinstance(codes, str | bytes) or not isinstance(codes, Iterable):
            raise OptionError(f"reconnect retry_codes must be a set of close codes, got {codes!r}")
        codes = frozenset(codes)
        for code in codes:
            if isinstance(code, bool) or not isinstance(code, int) or not 3000 <= code <= 4999:
                raise OptionError(
                    f"reconnect retry_codes must be application codes (3000-4999), got {code!r}"
                )
        object.__setattr__(self, "retry_codes", codes)
        for name in ("min_delay", "max_delay", "factor", "jitter", "stable_after"):
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
        if self.stable_after < 0:
            raise OptionError(f"reconnect stable_after must be >= 0, got {self.stable_after!r}")
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
