"""The ``session_binding`` server option (SPEC.md 7.1, 8.3): a bool, off by default, server side only."""

from __future__ import annotations

import pytest

import rtt


def test_session_binding_defaults_to_off_and_takes_a_bool() -> None:
    assert rtt.ServerOptions().session_binding is False
    assert rtt.ServerOptions(session_binding=True).session_binding is True
    for value in (1, "yes", None):
        with pytest.raises(rtt.OptionError, match="session_binding must be True or False"):
            rtt.ServerOptions(session_binding=value)  # type: ignore[arg-type]


def test_session_binding_is_a_server_option_only(mock: rtt.Transport) -> None:
    # The mock has no HTTP sessions: it takes the option and ignores it.
    assert mock.configure(session_binding=True).server().options.session_binding is True
    with pytest.raises(rtt.OptionError, match="unknown option 'session_binding'"):
        mock.client("mock://x", session_binding=True)
