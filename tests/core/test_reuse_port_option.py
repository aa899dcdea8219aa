"""The ``reuse_port`` server option (SPEC.md 7.1): a bool, refused where the OS lacks SO_REUSEPORT."""

from __future__ import annotations

import socket

import pytest

import rtt


def test_reuse_port_defaults_to_off_and_takes_a_bool() -> None:
    assert rtt.ServerOptions().reuse_port is False
    assert rtt.ServerOptions(reuse_port=True).reuse_port is True
    for value in (1, "yes", None):
        with pytest.raises(rtt.OptionError, match="reuse_port must be True or False"):
            rtt.ServerOptions(reuse_port=value)  # type: ignore[arg-type]


def test_reuse_port_is_a_server_option_only(mock: rtt.Transport) -> None:
    assert mock.configure(reuse_port=True).server().options.reuse_port is True
    with pytest.raises(rtt.OptionError, match="unknown option 'reuse_port'"):
        mock.client("mock://x", reuse_port=True)


def test_reuse_port_without_so_reuseport_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with pytest.raises(rtt.OptionError, match="needs SO_REUSEPORT"):
        rtt.ServerOptions(reuse_port=True)
    assert rtt.ServerOptions().reuse_port is False  # off is fine anywhere
