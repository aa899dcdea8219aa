"""A standalone server's TCP listener, hardened against hostile peers (SPEC.md 3.11).

Three guards that every standalone server needs whatever its HTTP library,
written once here on the standard library (rtt-core imports no plugin library):

- :class:`Listener` listens with ``loop.create_server`` and bounds the time a
  connection may take to deliver a request's headers (slowloris): each
  connection has a deadline from its opening, lifted while the server handles a
  request (:meth:`Listener.request`) and set again once the response is out.
- :func:`quiet_accept_errors` folds asyncio's ``socket.accept() out of system
  resource`` reports about given listening sockets (one traceback per failed
  ``accept()``, hundreds per second while the process is out of file
  descriptors) into one WARNING line per :data:`ACCEPT_LOG_INTERVAL`.
- :class:`RequestErrorLog` is a logger for an HTTP library's own records that
  turns a record about a malformed request (given exception types) into one
  DEBUG line naming the error's type: no traceback, so none of the request's
  bytes (SPEC.md 3.8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from ssl import SSLContext
from typing import Any, Final

__all__ = [
    "ACCEPT_LOG_INTERVAL",
    "HEADER_TIMEOUT",
    "Listener",
    "RequestErrorLog",
    "quiet_accept_errors",
]

logger = logging.getLogger("rtt.server")

HEADER_TIMEOUT: Final = 10.0
"""Seconds a connection has to deliver a request's headers, from its opening or the previous response.

The same as websockets' ``open_timeout``, which rtt-ws sets to it.
"""

ACCEPT_LOG_INTERVAL: Final = 10.0
"""At most one WARNING line per this many seconds while ``accept()`` keeps failing."""

# asyncio retries a failed accept() after one second (asyncio.constants.ACCEPT_RETRY_DELAY); the
# retries still pending when the listener closes fail with "Invalid file descriptor" within it.
_RETRY_TAIL = 2.0


class Listener:
    """A TCP listener whose connections must deliver request headers within ``header_timeout``.

    Open it with :meth:`open`. A connection that has not begun a request
    ``header_timeout`` seconds after it opened, or after the response to its
    previous request, is closed. The server marks each request it handles with
    :meth:`request`, entered as soon as the request's headers are parsed (an
    HTTP middleware, say). Failed ``accept()`` calls are logged as
    :func:`quiet_accept_errors` says.
    """

    def __init__(self, header_timeout: float = HEADER_TIMEOUT) -> None:
        self.header_timeout = header_timeout
        self.server: asyncio.Server | None = None
        # Every open connection of this listener: its deadline, or None while a request is handled.
        self._deadlines: dict[asyncio.BaseTransport, asyncio.TimerHandle | None] = {}
        self._release: Callable[[], None] | None = None

    @classmethod
    async def open(
        cls,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str | None,
        port: int,
        *,
        reuse_port: bool = False,
        header_timeout: float = HEADER_TIMEOUT,
        ssl: SSLContext | None = None,
    ) -> Listener:
        """Listen on ``host``/``port`` (``loop.create_server``) for ``protocol_factory``'s protocol.

        With ``ssl``, connections speak TLS; the TLS handshake has ``header_timeout`` too.
        """
        listener = cls(header_timeout)
        loop = asyncio.get_running_loop()
        listener.server = await loop.create_server(
            listener.wrap(protocol_factory),
            host,
            port,
            reuse_port=reuse_port or None,
            backlog=128,
            ssl=ssl,
            ssl_handshake_timeout=header_timeout if ssl is not None else None,
        )
        listener._release = quiet_accept_errors(listener.server.sockets)
        return listener

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` of the first listening socket."""
        if self.server is None or not self.server.sockets:
            raise RuntimeError("the listener is not open")
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def wrap(self, protocol_factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory whose connections this listener's deadline applies to."""

        def factory() -> asyncio.Protocol:
            return _Guarded(protocol_factory(), self)

        return factory

    @contextlib.contextmanager
    def request(self, transport: asyncio.BaseTransport | None) -> Iterator[None]:
        """Mark a request being handled on ``transport``: no deadline until it is answered.

        A transport that is not one of this listener's (a Unix socket, say) is
        left alone.
        """
        if transport is None or transport not in self._deadlines:
            yield
            return
        self._disarm(transport)
        try:
            yield
        finally:
            if transport in self._deadlines:
                if transport.is_closing():
                    del self._deadlines[transport]
                else:
                    self._arm(transport)

    def close(self) -> None:
        """Stop listening and lift every deadline (the server closes its connections itself)."""
        if self.server is not None:
            self.server.close()
        for handle in self._deadlines.values():
            if handle is not None:
                handle.cancel()
        self._deadlines.clear()
        if self._release is not None:
            self._release()
            self._release = None

    # -- Deadlines ------------------------------------------------------------

    def _opened(self, transport: asyncio.BaseTransport) -> None:
        self._deadlines[transport] = None
        self._arm(transport)

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self._disarm(transport)
        self._deadlines.pop(transport, None)

    def _arm(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        self._deadlines[transport] = loop.call_later(self.header_timeout, self._expire, transport)

    def _disarm(self, transport: asyncio.BaseTransport) -> None:
        handle = self._deadlines.get(transport)
        if handle is not None:
            handle.cancel()
            self._deadlines[transport] = None

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        self._deadlines[transport] = None
        if transport.is_closing():
            return
        buffered = getattr(transport, "get_write_buffer_size", None)
        if buffered is not None and buffered():
            # The previous response is still on its way to a slow reader: not a slow request.
            # (Duck-typed: uvloop's transports are not asyncio.WriteTransport instances.)
            self._arm(transport)
            return
        logger.debug(
            "closing a connection from %s: no request headers within %s s",
            transport.get_extra_info("peername"),
            self.header_timeout,
        )
        transport.close()


class _Guarded(asyncio.Protocol):
    """The server's protocol, with the listener told when the connection opens and ends."""

    __slots__ = ("_inner", "_listener", "_transport")

    _transport: asyncio.BaseTransport  # set by connection_made, which asyncio always calls first

    def __init__(self, inner: asyncio.Protocol, listener: Listener) -> None:
        self._inner = inner
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._listener._opened(transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener._closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


# -- accept() failures ------------------------------------------------------


class _AcceptGuard:
    """A loop's exception handler in front of the previous one, for the listening sockets registered."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.previous = loop.get_exception_handler()
        self.names: dict[int, str] = {}
        self.failing: dict[int, int] = {}  # fd -> failures since the last line
        self.total: dict[int, int] = {}  # fd -> failures since the trouble began
        self.tail_until = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if self._swallow(context):
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _swallow(self, context: dict[str, Any]) -> bool:
        exc = context.get("exception")
        sock = context.get("socket")
        if isinstance(exc, OSError) and sock is not None and sock.fileno() in self.names:
            self._failed(sock.fileno(), exc)
            return True
        # A retry asyncio scheduled for a failed accept() that fires after the listener closed.
        return (
            isinstance(exc, ValueError)
            and "_start_serving" in str(context.get("message", ""))
            and self.loop.time() < self.tail_until
        )

    def _failed(self, fd: int, exc: OSError) -> None:
        self.tail_until = self.loop.time() + _RETRY_TAIL
        if fd not in self.total:
            logger.warning(
                "cannot accept connections on %s: %s; retrying, further failures are counted",
                self.names[fd],
                exc.strerror or type(exc).__name__,
            )
            self.total[fd] = 1
            self.failing[fd] = 0
        else:
            self.total[fd] += 1
            self.failing[fd] = self.failing.get(fd, 0) + 1
        if self.timer is None:
            self.timer = self.loop.call_later(self.interval, self._report)

    def _report(self) -> None:
        self.timer = None
        for fd in list(self.total):
            name = self.names.get(fd, f"fd {fd}")
            count = self.failing.get(fd, 0)
            if count:
                logger.warning(
                    "still cannot accept connections on %s: %d failed accept() calls in %s s",
                    name,
                    count,
                    self.interval,
                )
                self.failing[fd] = 0
            else:
                logger.warning(
                    "accepting connections on %s again (%d failed accept() calls in all)",
                    name,
                    self.total.pop(fd),
                )
                self.failing.pop(fd, None)
        if self.total:
            self.timer = self.loop.call_later(self.interval, self._report)

    def release(self, fds: Iterable[int]) -> None:
        for fd in fds:
            self.names.pop(fd, None)
            self.failing.pop(fd, None)
            total = self.total.pop(fd, None)
            if total:
                logger.warning("stopped listening with %d failed accept() calls", total)
        if self.names:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        wait = self.tail_until - self.loop.time()
        if wait > 0:
            self.loop.call_later(wait, self._uninstall)
        else:
            self._uninstall()

    def _uninstall(self) -> None:
        if self.names:  # a listener registered meanwhile
            return
        if _guards.get(self.loop) is self:
            del _guards[self.loop]
        if self.loop.get_exception_handler() is self:
            self.loop.set_exception_handler(self.previous)


_guards: MutableMapping[asyncio.AbstractEventLoop, _AcceptGuard] = weakref.WeakKeyDictionary()


def quiet_accept_errors(
    sockets: Iterable[Any], *, interval: float = ACCEPT_LOG_INTERVAL
) -> Callable[[], None]:
    """Log failed ``accept()`` calls on ``sockets`` (listening sockets of the running loop) briefly.

    asyncio reports each failed ``accept()`` of a server (out of file
    descriptors: ``EMFILE``, ``ENFILE``; ``ENOBUFS``, ``ENOMEM``) to the loop's
    exception handler, whose default logs it at ERROR with a traceback, and
    retries once per second for each failure: a flood of tens of MB a minute.
    For the sockets given, the first failure is one WARNING line on
    ``rtt.server``, then at most one line per ``interval`` seconds counting
    the failures, then one line when an interval passes without any (the
    interval of the first registration on the loop applies to all).
    Everything else goes to the loop's previous handler unchanged: rtt puts
    its handler in front of it while it has sockets registered and puts the
    previous one back after (unless the application has set another meanwhile).
    Returns the function that unregisters the sockets.
    """
    loop = asyncio.get_running_loop()
    guard = _guards.get(loop)
    if guard is None or loop.get_exception_handler() is not guard:
        guard = _guards[loop] = _AcceptGuard(loop, interval)
        loop.set_exception_handler(guard)
    fds = []
    for sock in sockets:
        fd = sock.fileno()
        name = sock.getsockname()
        guard.names[fd] = f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)
        fds.append(fd)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            guard.release(fds)

    return release


# -- A library's records about bad requests ---------------------------------


class RequestErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """``logger``, except that a record about one of the ``quiet`` exceptions becomes one DEBUG line.

    Give it to an HTTP library as its server logger: a malformed or
    oversized request is then logged as ``refused a bad HTTP request
    (LineTooLong)`` at DEBUG (``message`` and the exception's type), without
    the traceback or message that would quote the request's bytes; other
    records pass unchanged.
    """

    def __init__(
        self,
        logger: logging.Logger,
        quiet: tuple[type[BaseException], ...],
        message: str = "refused a bad HTTP request",
    ) -> None:
        super().__init__(logger, {})
        self.quiet = quiet
        self.message = message

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        exc = _exception(kwargs.get("exc_info"))
        if exc is not None and isinstance(exc, self.quiet):
            self.logger.debug("%s (%s)", self.message, type(exc).__name__)
            return
        super().log(level, _encodable(msg), *map(_encodable, args), **kwargs)


def _encodable(value: Any) -> Any:
    """``value``, with lone surrogates escaped if it is a ``str`` that has them.

    Libraries decode a request's undecodable bytes with ``surrogateescape``
    and log them (websockets 15 logs the target at DEBUG): such a record
    would make every UTF-8 log handler fail on it.
    """
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1]  # type: ignore[no-any-return]
    if exc_info:
        return sys.exc_info()[1]
    return None
