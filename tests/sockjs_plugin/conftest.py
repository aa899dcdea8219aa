"""Test configuration for rtt-sockjs."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # sockjs 0.13 keeps its managers under a string key of the aiohttp application, which
    # aiohttp warns about. Only that category is ignored, and only where sockjs is tested;
    # every other warning is still an error (filterwarnings = error in pyproject.toml).
    config.addinivalue_line("filterwarnings", "ignore::aiohttp.web_exceptions.NotAppKeyWarning")
