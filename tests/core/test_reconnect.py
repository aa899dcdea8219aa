"""The backoff policy (SPEC.md 7.2)."""

from __future__ import annotations

import itertools
import random

import pytest

from rtt import OptionError, ReconnectPolicy


def test_defaults_are_documented_values() -> None:
    policy = ReconnectPolicy()
    assert (
        policy.min_delay,
        policy.max_delay,
        policy.factor,
        policy.jitter,
        policy.max_attempts,
        policy.stable_after,
        policy.retry_codes,
    ) == (1.0, 30.0, 2.0, 0.5, None, 5.0, frozenset())


def test_retry_codes_take_any_collection_of_application_codes() -> None:
    assert ReconnectPolicy(retry_codes=[4503, 3000, 4503]).retry_codes == frozenset({3000, 4503})  # type: ignore[arg-type]
    assert ReconnectPolicy(retry_codes={4999}).retry_codes == frozenset({4999})  # type: ignore[arg-type]


def test_exponential_without_jitter() -> None:
    policy = ReconnectPolicy(min_delay=0.5, max_delay=5, factor=2, jitter=0, max_attempts=6)
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_unlimited_by_default() -> None:
    delays = ReconnectPolicy(jitter=0).delays()
    assert list(itertools.islice(delays, 100))[-1] == 30.0


def test_jitter_is_proportional_and_capped() -> None:
    policy = ReconnectPolicy(min_delay=1, max_delay=8, factor=2, jitter=0.5, max_attempts=8)
    rng = random.Random(7)
    samples = [list(policy.delays(rng)) for _ in range(300)]
    for attempt, base in enumerate([1, 2, 4, 8, 8, 8, 8, 8]):
        seen = [s[attempt] for s in samples]
        assert min(seen) >= base * 0.5 - 1e-9
        assert max(seen) <= min(8, base * 1.5) + 1e-9
        assert max(seen) - min(seen) > base * 0.3, "jitter must actually spread the delays"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_delay": -1}, "min_delay must be >= 0"),
        ({"min_delay": 5, "max_delay": 1}, "max_delay"),
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
        ({"max_attempts": 0}, "max_attempts must be a positive int"),
        ({"max_attempts": True}, "max_attempts"),
        ({"min_delay": "1"}, "min_delay must be a number"),
        ({"stable_after": -0.5}, "stable_after must be >= 0"),
        ({"stable_after": None}, "stable_after must be a number"),
        ({"retry_codes": 4503}, "retry_codes must be a set of close codes"),
        ({"retry_codes": "4503"}, "retry_codes must be a set of close codes"),
        ({"retry_codes": [1001]}, "application codes"),
        ({"retry_codes": [5000]}, "application codes"),
        ({"retry_codes": [True]}, "application codes"),
        ({"retry_codes": ["4503"]}, "application codes"),
    ],
)
def test_invalid_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        ReconnectPolicy(**kwargs)  # type: ignore[arg-type]
