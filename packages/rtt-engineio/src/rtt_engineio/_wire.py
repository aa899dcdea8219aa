"""Engine.IO v4 packets as rtt needs them, shared by the server and the client (SPEC.md 12.3).

python-engineio decodes every text packet as JSON when it can (``'"a"'``
arrives as ``'a'``, ``'[1]'`` as a list), which would change rtt messages.
rtt decodes the packets it receives itself (:func:`decode_packet`, text stays
text) and gives python-engineio a JSON module (:class:`RawJson`) whose
``loads`` only decodes the handshake object of an ``OPEN`` packet.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable
from typing import Any

from engineio import packet  # type: ignore[import-untyped, unused-ignore]

from rtt import CloseReason

__all__ = [
    "CLOSE",
    "MESSAGE",
    "NOOP",
    "PING",
    "PONG",
    "UPGRADE",
    "RawJson",
    "TrackedTasks",
    "decode_packet",
    "message_data",
    "reason_from_close_text",
    "wire_limit",
]

OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = (
    packet.OPEN,
    packet.CLOSE,
    packet.PING,
    packet.PONG,
    packet.MESSAGE,
    packet.UPGRADE,
    packet.NOOP,
)

_HANDSHAKE_KEYS = frozenset({"sid", "upgrades", "pingInterval", "pingTimeout"})


class RawJson:
    """The JSON module rtt hands python-engineio: text messages are never decoded.

    ``loads`` returns its argument unchanged (so a packet's data stays the
    exact text sent) unless the text is an Engine.IO handshake object, which
    the library's client needs as a dict. python-engineio applies this
    module process-wide (its ``json=`` option is a class attribute).
    """

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        if isinstance(text, str) and text.startswith('{"sid":'):
            try:
                value = json.loads(text, **kwargs)
            except ValueError:
                return text
            if isinstance(value, dict) and value.keys() >= _HANDSHAKE_KEYS:
                return value
        return text


def decode_packet(encoded: str | bytes) -> packet.Packet | None:
    """One Engine.IO v4 packet, with text data kept verbatim; ``None`` if malformed.

    A binary frame is a message of bytes; ``b`` + base64 (long-polling) is too.
    """
    if isinstance(encoded, bytes):
        return packet.Packet(MESSAGE, encoded)
    if not encoded:
        return None
    head = encoded[0]
    if head == "b":
        try:
            return packet.Packet(MESSAGE, base64.b64decode(encoded[1:], validate=True))
        except (binascii.Error, ValueError):
            return None
    if not head.isdigit() or int(head) > NOOP:
        return None
    return packet.Packet(int(head), encoded[1:])


def message_data(data: object) -> str | bytes:
    """A received message as rtt delivers it (JSON a library decoded anyway goes back to text)."""
    if isinstance(data, str | bytes):
        return data
    return json.dumps(data, separators=(",", ":"))


def reason_from_close_text(text: object, default: CloseReason) -> CloseReason:
    """rtt writes its close reason into the ``CLOSE`` packet; a bare ``CLOSE`` means ``default``."""
    if isinstance(text, str) and text:
        try:
            return CloseReason(text)
        except ValueError:
            pass
    return default


def wire_limit(max_message_size: int) -> int:
    """Longest Engine.IO packet that can carry a message of ``max_message_size`` bytes.

    ``4`` + text (at most ``max_message_size`` characters), or ``b`` + base64
    of the bytes on long-polling.
    """
    return 2 + 4 * ((max_message_size + 2) // 3)


class TrackedTasks:
    """Mixin for python-engineio's client and server: the background tasks it starts.

    The library fires and forgets its tasks; rtt keeps them in ``rtt_tasks`` so
    that closing a client or server can wait for or cancel every one of them.
    """

    rtt_tasks: set[asyncio.Task[Any]]

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(target(*args, **kwargs))
        self.rtt_tasks.add(task)
        task.add_done_callback(self._rtt_task_done)
        return task

    def _rtt_task_done(self, task: asyncio.Task[Any]) -> None:
        self.rtt_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # e.g. a heartbeat task that found its socket closed
            logging.getLogger("rtt.engineio").debug("engine.io task ended: %r", task.exception())
