"""rtt-redis: a Redis broker, so several rtt server processes act as one (SPEC.md section 13).

``rtt.load("ws", broker="redis://127.0.0.1:6379/0")`` gives servers that
reach each other's sockets through Redis pub/sub; :class:`RedisBroker` is the
plugin behind the ``redis``, ``rediss`` and ``unix`` URL schemes.
"""

from .broker import MAX_PAYLOAD, RedisBroker

__version__ = "0.1.0"

__all__ = ["MAX_PAYLOAD", "RedisBroker"]
