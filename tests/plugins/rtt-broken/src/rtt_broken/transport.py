"""Fails on import, as a plugin whose underlying library is not installed would."""

import rtt_broken_missing_dependency  # type: ignore[import-not-found]  # noqa: F401
