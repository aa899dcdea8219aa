"""Every exception rtt raises, in one place (SPEC.md section 9).

The tree is split by blame, as h11 does: *usage* errors mean the calling code
misused the API and subclass the matching builtin, so ``except ValueError``
style code keeps working; *connection* errors mean the peer or the network let
the caller down.

.. code-block:: text

    RttError
    ├── UsageError                        the caller misused the API
    │   ├── ConfigError (ValueError)      bad transport name, option or config
    │   │   ├── UnknownTransportError (LookupError)
    │   │   ├── UnknownBrokerError (LookupError)
    │   │   └── OptionError (TypeError)
    │   ├── StateError (RuntimeError)     "cannot X in state Y"
    │   ├── InvalidMessageError (TypeError)  data is neither str nor bytes
    │   ├── MessageTooBigError (ValueError)  data exceeds max_message_size
    │   ├── UnknownSocketError (LookupError) no connected socket has that id
    │   ├── InvalidCloseError (ValueError)   a close code or text rtt cannot send
    │   └── OfflineQueueFullError         the client's offline queue is full
    ├── PluginError                       a plugin failed to load or is malformed
    └── TransportError                    the peer or the network failed
        ├── ConnectError (ConnectionError)   could not open a connection
        │   └── RejectedError             the server refused the handshake
        ├── ConnectionClosed              the connection is closed (has a reason)
        └── BrokerError (ConnectionError)    the broker could not carry a
                                          cross-process operation
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Close, CloseReason

__all__ = [
    "BrokerError",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "InvalidCloseError",
    "InvalidMessageError",
    "MessageTooBigError",
    "OfflineQueueFullError",
    "OptionError",
    "PluginError",
    "RejectedError",
    "RttError",
    "StateError",
    "TransportError",
    "UnknownBrokerError",
    "UnknownSocketError",
    "UnknownTransportError",
    "UsageError",
]


class RttError(Exception):
    """Base class of every exception rtt raises on purpose."""


class UsageError(RttError):
    """The calling code used the API in a way the contract forbids."""


class ConfigError(UsageError, ValueError):
    """A transport name, option or configuration mapping is invalid."""


def _hint(name: str, installed: list[str]) -> str:
    """What to do about an unknown plugin name: the installed name meant, or the install command.

    Plugin names are lowercase entry point names and match exactly, so ``WS``
    is pointed at ``ws`` rather than at a distribution ``rtt-WS`` that does not
    exist. From a clone of the rtt repository, where the plugins are not yet on
    a package index, the command installs the checkout's own copy.
    """
    lowered = name.lower()
    if lowered != name and lowered in installed:
        return f"Plugin names are lowercase: did you mean {lowered!r}?"
    close = difflib.get_close_matches(lowered, installed, n=1, cutoff=0.75)
    if close:
        return f"Did you mean {close[0]!r}?"
    distribution = f"rtt-{lowered}"
    if (Path("packages") / distribution / "pyproject.toml").is_file():
        return f"Is it installed? This checkout has it: pip install ./packages/{distribution}"
    return f"Is it installed? Try: pip install {distribution}"


class UnknownTransportError(ConfigError, LookupError):
    """No installed plugin is registered under the requested name."""

    def __init__(self, name: str, installed: list[str]) -> None:
        self.name = name
        self.installed = installed
        listed = ", ".join(installed) if installed else "none"
        super().__init__(
            f"unknown transport {name!r}; installed transports: {listed}. {_hint(name, installed)}"
        )


class UnknownBrokerError(ConfigError, LookupError):
    """No installed broker plugin is registered under the requested name or URL scheme."""

    def __init__(self, name: str, installed: list[str]) -> None:
        self.name = name
        self.installed = installed
        listed = ", ".join(installed) if installed else "none"
        super().__init__(f"unknown broker {name!r}; installed brokers: {listed}. {_hint(name, installed)}")


class OptionError(ConfigError, TypeError):
    """An option name is unknown, or its value has the wrong type or range."""


class StateError(UsageError, RuntimeError):
    """The operation is not allowed in the object's current state."""


class InvalidMessageError(UsageError, TypeError):
    """A message is neither ``str`` nor ``bytes``."""


class MessageTooBigError(UsageError, ValueError):
    """A message is larger than ``max_message_size``."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message of {size} bytes exceeds max_message_size={limit}")


class UnknownSocketError(UsageError, LookupError):
    """No socket with this id is connected to this server."""

    def __init__(self, socket_id: str) -> None:
        self.socket_id = socket_id
        super().__init__(f"no connected socket with id {socket_id!r}")


class InvalidCloseError(UsageError, ValueError):
    """An application close code or reason text that rtt cannot send (SPEC.md 6.3)."""


class OfflineQueueFullError(UsageError):
    """The client is disconnected and its offline queue holds its maximum."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(
            f"client is not connected and its offline queue is full ({size} messages); "
            "the message was not queued"
        )


class PluginError(RttError):
    """A transport plugin could not be imported or does not follow the contract."""


class TransportError(RttError):
    """The peer or the network failed."""


class ConnectError(TransportError, ConnectionError):
    """A client could not open a connection."""


class RejectedError(ConnectError):
    """The server refused the handshake (origin not allowed, ``authorize`` said no)."""

    def __init__(self, status: int, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"handshake rejected with HTTP {status}" + (f": {reason}" if reason else ""))


class ConnectionClosed(TransportError):
    """The connection is closed; :attr:`reason` says why.

    After an application close (``CloseReason.APPLICATION``), :attr:`code` and
    :attr:`text` are the application's close code and text; otherwise ``None``.
    """

    def __init__(
        self, reason: CloseReason, detail: str = "", *, code: int | None = None, text: str | None = None
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.code = code
        self.text = text
        shown = f"{reason} {code}" + (f" {text!r}" if text else "") if code is not None else str(reason)
        super().__init__(f"connection closed: {shown}" + (f" ({detail})" if detail else ""))

    @classmethod
    def of(cls, close: Close, detail: str = "") -> ConnectionClosed:
        """The error for a received close; an application close keeps its code and text."""
        from .events import CloseReason  # events imports this module

        if close.reason is CloseReason.APPLICATION:
            return cls(close.reason, detail, code=close.code, text=close.text)
        return cls(close.reason, detail)


class BrokerError(TransportError, ConnectionError):
    """The broker could not carry a cross-process operation (its service is down, slow or unreachable).

    Raised by ``send``, ``broadcast``, ``disconnect``, ``join`` and ``leave``
    when the part of the operation that crosses processes failed; the part
    that concerns sockets of this process has been done (:attr:`local`
    says how many local sockets a broadcast reached).
    """

    def __init__(self, message: str, local: int = 0) -> None:
        self.local = local
        super().__init__(message)
