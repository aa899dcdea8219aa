"""The public surface: exports, the error tree, and no test-only imports at run time."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rtt
from rtt import errors


def test_every_export_exists() -> None:
    for name in rtt.__all__:
        assert hasattr(rtt, name), name
    assert sorted(rtt.__all__) == rtt.__all__


def test_errors_are_split_by_blame_and_subclass_builtins() -> None:
    assert issubclass(errors.ConfigError, errors.UsageError) and issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.UnknownTransportError, LookupError)
    assert issubclass(errors.OptionError, TypeError)
    assert issubclass(errors.StateError, RuntimeError)
    assert issubclass(errors.InvalidMessageError, TypeError)
    assert issubclass(errors.MessageTooBigError, ValueError)
    assert issubclass(errors.UnknownSocketError, LookupError)
    assert issubclass(errors.OfflineQueueFullError, errors.UsageError)
    assert issubclass(errors.ConnectError, errors.TransportError) and issubclass(
        errors.ConnectError, ConnectionError
    )
    assert issubclass(errors.RejectedError, errors.ConnectError)
    assert issubclass(errors.ConnectionClosed, errors.TransportError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RttError)


def test_error_messages_are_specific() -> None:
    assert str(errors.UnknownSocketError("abc")) == "no connected socket with id 'abc'"
    assert str(errors.MessageTooBigError(11, 10)) == "message of 11 bytes exceeds max_message_size=10"
    assert "offline queue is full (5 messages)" in str(errors.OfflineQueueFullError(5))
    assert str(errors.RejectedError(401, "Unauthorized")) == "handshake rejected with HTTP 401: Unauthorized"
    assert str(errors.RejectedError(403)) == "handshake rejected with HTTP 403"
    closed = errors.ConnectionClosed(rtt.CloseReason.SHUTDOWN, "bye")
    assert str(closed) == "connection closed: shutdown (bye)" and closed.reason is rtt.CloseReason.SHUTDOWN
    unknown = errors.UnknownTransportError("nope", [])
    assert "installed transports: none" in str(unknown) and "pip install rtt-nope" in str(unknown)


def test_import_rtt_needs_only_the_standard_library() -> None:
    code = (
        "import sys, rtt, rtt.codec, rtt.registry\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'pytest', 'rtt_mock', 'websockets',"
        " 'engineio', 'sockjs', 'aiohttp'} or m == 'rtt.testing')\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_version_is_exposed() -> None:
    from importlib.metadata import version

    assert rtt.__version__ == version("rtt-core")


def test_testing_kit_exports() -> None:
    import rtt.testing

    for name in rtt.testing.__all__:
        assert hasattr(rtt.testing, name)
    # Mixins carry no Test prefix so pytest never collects them from rtt itself.
    assert not any(name.startswith("Test") for name in rtt.testing.__all__)


@pytest.mark.parametrize("module", ["rtt.client", "rtt.server", "rtt.options", "rtt.registry"])
def test_public_modules_have_docstrings(module: str) -> None:
    mod = __import__(module, fromlist=["__all__"])
    assert mod.__doc__
    for name in mod.__all__:
        assert getattr(mod, name).__doc__, f"{module}.{name}"
