"""RFC 6455 checks a WebSocket library may leave out, for plugins to put in front of it.

Standard library only: a plugin wraps its library's frame parser in these,
so two plugins on the same library share the logic, not a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["FrameParser", "MaskCheck", "check_aiohttp_masks"]


class FrameParser(Protocol):
    """What :class:`MaskCheck` needs of the parser it wraps (aiohttp's ``WebSocketReader``)."""

    def feed_data(self, data: bytes) -> tuple[bool, bytes]: ...

    def feed_eof(self) -> None: ...


class MaskCheck:
    """A server's WebSocket frame parser behind a check that every client frame is masked.

    RFC 6455 5.1: a server MUST close the connection on an unmasked client
    frame. This reads each frame's header (2 to 10 bytes) only to find the
    next one and passes every byte on unchanged; at the first unmasked frame
    it passes on what came before it, then calls ``fail(error())`` (the
    plugin fails the connection as its library does for its own protocol
    errors) and takes nothing more. ``feed_data`` answers as the wrapped
    parser does: ``(ended, unused)``.
    """

    __slots__ = ("error", "fail", "failed", "held", "parser", "skip")

    def __init__(
        self, parser: FrameParser, fail: Callable[[BaseException], Any], error: Callable[[], BaseException]
    ) -> None:
        self.parser = parser
        self.fail = fail
        self.error = error
        self.skip = 0  # bytes of the current frame still to come
        # The start of a frame header cut by a read: held back until the header is whole, so the
        # parser never gets a byte of a frame that turns out to be unmasked.
        self.held = b""
        self.failed = False

    def feed_eof(self) -> None:
        """End of the stream: the wrapped parser's own handling."""
        self.parser.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Check ``data`` and pass it on; after an unmasked frame, nothing more is parsed."""
        if self.failed:
            return True, b""
        buf = self.held + data if self.held else data
        bad, ready = self._scan(buf)
        if bad is None:
            self.held = bytes(buf[ready:])
            return self.parser.feed_data(buf[:ready]) if ready else (False, b"")
        self.failed = True
        ended, _ = self.parser.feed_data(buf[:bad]) if bad else (False, b"")
        if not ended:  # else the parser failed first, on a frame before this one
            self.fail(self.error())
        return True, b""

    def _scan(self, buf: bytes) -> tuple[int | None, int]:
        """``(where the first unmasked frame starts, or None; how many bytes may go to the parser)``."""
        pos = self.skip  # 0 whenever bytes are held
        end = len(buf)
        while pos + 2 <= end:
            second = buf[pos + 1]
            if not second & 0x80:
                return pos, pos
            size = second & 0x7F
            if size < 126:
                pos += 6 + size  # header, mask key, payload
                continue
            extra = 2 if size == 126 else 8
            if pos + 2 + extra > end:
                break
            pos += 6 + extra + int.from_bytes(buf[pos + 2 : pos + 2 + extra], "big")
        if pos >= end:
            self.skip = pos - end
            return None, end
        self.skip = 0
        return None, pos


def check_aiohttp_masks(handler: Any, start: Callable[[], Any], error: Callable[[], BaseException]) -> None:
    """Start an aiohttp server WebSocket with :class:`MaskCheck` in front of its frame parser.

    For a plugin's override of aiohttp's ``WebSocketResponse._post_start``:
    ``handler`` is ``request.protocol`` (aiohttp's ``RequestHandler``),
    ``start()`` runs the inherited ``_post_start`` (which makes the parser)
    and returns the response's message queue (``_reader``), and ``error()``
    is what aiohttp's parser puts in that queue for its own protocol errors
    (``WebSocketError(1002, ...)``). Bytes pipelined with the handshake
    (``_message_tail``), which aiohttp would hand its parser at once, go
    through the check too. Duck-typed, so rtt-core does not import aiohttp;
    each plugin that calls it names these couplings (SPEC.md 12.2-12.4).
    """
    early, handler._message_tail = handler._message_tail, b""
    reader = start()
    check = MaskCheck(handler._payload_parser, reader.set_exception, error)
    handler._payload_parser = check
    if early:
        check.feed_data(early)
