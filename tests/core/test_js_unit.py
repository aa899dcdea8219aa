"""The browser client's JavaScript, run by Node without a browser (``node --test tests/js/``).

``tests/js/*.test.mjs`` drive ``rtt-client.js`` with a scripted adapter: the
state machine, backoff, the offline queue, errors and options, the adapter
contract; and its plain WebSocket adapter over Node's native WebSocket against
a ``ws`` server on 127.0.0.1. Where the JavaScript must agree with Python (defaults, backoff,
close reasons, versions), this module computes the Python side and hands it
over in a JSON file named by ``RTT_PYTHON_FIGURES``. Also here: the npm
package's committed TypeScript declarations equal a fresh generation.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

import rtt

ROOT = Path(__file__).resolve().parents[2]
TSC = ROOT / "tests" / "node" / "node_modules" / "typescript" / "bin" / "tsc"
BROWSER = ROOT / "packages" / "rtt-core" / "src" / "rtt" / "browser"
DECLARATIONS = "rtt-client.d.mts"
NODE_TIMEOUT = 120
"""Seconds for one node run; the suite takes about two."""

# The distributions with an npm package (a package.json in their browser folder), found as
# packages/<dist>/src/<module>/browser/package.json: each carries its distribution's version.
NPM_PACKAGES = sorted((ROOT / "packages").glob("*/src/*/browser/package.json"))


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed: apt-get install nodejs npm"
    return node


def _websocket_flags() -> list[str]:
    """What Node needs for a global ``WebSocket``: a flag before Node 22, nothing since."""
    found = subprocess.run([_node(), "--version"], capture_output=True, text=True, timeout=NODE_TIMEOUT)
    major = int(found.stdout.strip().lstrip("v").split(".")[0])
    return ["--experimental-websocket"] if major < 22 else []


class _Fixed(random.Random):
    """A generator whose every draw is ``value``: the same draws for Python and JavaScript."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def _source_version(path: Path) -> str:
    """``__version__`` as hatch reads it from a package's source (the plugins need not be installed)."""
    found = re.search(r'^__version__ = "([^"]+)"$', path.read_text(encoding="utf-8"), re.MULTILINE)
    assert found is not None, path
    return found[1]


def python_figures() -> dict[str, Any]:
    """What the JavaScript must agree with, computed by rtt itself."""
    options = rtt.ClientOptions()
    policy = options.reconnect
    assert policy is not None
    draws = [0.0, 0.25, 0.5, 0.999999]
    backoff = []
    for fields, python_policy, count, ends in [
        (None, rtt.ReconnectPolicy(), 8, False),
        (
            {"minDelay": 0.5, "maxDelay": 3, "factor": 2, "jitter": 0.5, "maxAttempts": 5},
            rtt.ReconnectPolicy(min_delay=0.5, max_delay=3, factor=2, jitter=0.5, max_attempts=5),
            5,
            True,
        ),
        (
            {"minDelay": 0.1, "maxDelay": 7, "factor": 1.7, "jitter": 0.3, "maxAttempts": 9},
            rtt.ReconnectPolicy(min_delay=0.1, max_delay=7, factor=1.7, jitter=0.3, max_attempts=9),
            9,
            True,
        ),
    ]:
        taken = []
        for draw in draws:
            delays = python_policy.delays(_Fixed(draw))
            taken.append([draw, [next(delays) for _ in range(count)]])
        backoff.append({"fields": fields, "count": count, "ends": ends, "draws": taken})
    codes: list[int | None] = [None, *range(1000, 1016), 2999, 3000, 4009, 4999, 5000]
    texts = ["", "bogus", "Shutdown", *(reason.value for reason in rtt.CloseReason)]
    return {
        "version": rtt.__version__,
        "distributionVersion": version("rtt-core"),
        "packageJsons": {
            str(path): _source_version(path.parent.parent / "__init__.py") for path in NPM_PACKAGES
        },
        "defaults": {
            "reconnect": {
                "minDelay": policy.min_delay,
                "maxDelay": policy.max_delay,
                "factor": policy.factor,
                "jitter": policy.jitter,
                "maxAttempts": policy.max_attempts,
                "stableAfter": policy.stable_after,
                "retryCodes": sorted(policy.retry_codes),
            },
            "offlineQueueSize": options.offline_queue_size,
            "maxMessageSize": options.max_message_size,
            "connectTimeout": options.connect_timeout,
        },
        "backoff": backoff,
        "closeReasons": [[reason.value, reason.code] for reason in rtt.CloseReason],
        "fromWire": [
            [code, text, rtt.CloseReason.from_wire(code, text).value] for code in codes for text in texts
        ],
        "fromText": [[text, _close_figure(rtt.Close.from_text(text))] for text in _CLOSE_TEXTS],
    }


# Texts a text-only close may carry (Close.as_text), and some that are not closes.
_CLOSE_TEXTS = [
    *(reason.value for reason in rtt.CloseReason),
    "4001 logged in elsewhere",
    "3000 Go away!",
    "4999",
    "4000 ",
    "4002 two  spaces ",
    "4003 line\nbreak",
    "4004 é",
    "4005 " + "é" * 61,
    "4006 " + "é" * 62,
    "1000 normal",
    "5000 x",
    "2999 x",
    "40011 x",
    "4001x",
    " 4001 x",
    "",
    "bogus",
]


def _close_figure(close: rtt.Close | None) -> dict[str, Any] | None:
    if close is None:
        return None
    application = close.reason is rtt.CloseReason.APPLICATION
    return {
        "reason": close.reason.value,
        "code": close.code if application else None,
        "text": close.text if application else None,
    }


def test_every_first_party_npm_package_is_checked() -> None:
    assert {path.parent.parent.name for path in NPM_PACKAGES} >= {
        "rtt",
        "rtt_ws",
        "rtt_engineio",
        "rtt_sockjs",
    }


def test_node_unit_tests_pass(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    figures.write_text(json.dumps(python_figures()), encoding="utf-8")
    result = subprocess.run(
        [_node(), *_websocket_flags(), "--test", "--test-reporter=spec", "tests/js/"],
        cwd=ROOT,
        env={"PATH": str(Path(_node()).parent), "RTT_PYTHON_FIGURES": str(figures), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
    )
    assert result.returncode == 0, f"node --test tests/js/ failed:\n{result.stdout}\n{result.stderr}"
    # Every test file ran, with tests in it.
    assert re.search(r"^ℹ pass [1-9]", result.stdout, re.MULTILINE), result.stdout


def test_committed_declarations_are_a_fresh_generation(tmp_path: Path) -> None:
    """``rtt-client.d.mts`` (the npm package's types) is what tsc makes of the JSDoc today."""
    if not TSC.exists():
        pytest.fail(f"{TSC} is missing: run npm ci --prefix tests/node")
    result = subprocess.run(
        [_node(), str(TSC), "--project", "tests/js/tsconfig.declarations.json", "--outDir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fresh = (tmp_path / DECLARATIONS).read_text(encoding="utf-8")
    assert (BROWSER / DECLARATIONS).read_text(encoding="utf-8") == fresh, (
        f"{DECLARATIONS} is stale; regenerate it with: node tests/js/declarations.mjs"
    )
