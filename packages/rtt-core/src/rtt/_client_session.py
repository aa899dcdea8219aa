"""The Python client's half of a resume session (design of issue 17, 1.3, 1.4 and 2.1-2.5).

A :class:`ClientSession` is what a client keeps of its session between
connections: the socket id, the token and nonce of the last welcome, how many
messages it has received (``n``, sent back in the resume request) and the
messages it wrote that the server has not confirmed yet. It does no I/O: the
client reads the wire and calls it, as the server's session layer does with
:mod:`rtt.resume`.
"""

from __future__ import annotations

from collections import deque

from .resume import QUERY, AckClock, ResumeProtocolError, ResumeRequest, Welcome

__all__ = ["ClientSession", "resume_url"]


class ClientSession:
    """One session as its client sees it.

    Before the first welcome (``id`` is ``None``) it only collects what the
    client writes on its first connection: those messages count in the session
    once the welcome arrives. Nothing confirms them before that, and a server
    that never offers resume never sends a welcome, so ``send()`` cannot wait
    for room then: past ``limit`` the oldest is forgotten and ``overflow``
    remembers it, so that a resume which needs it reports ``overflow``.
    """

    __slots__ = ("base", "clock", "id", "limit", "nonce", "overflow", "token", "unconfirmed")

    def __init__(self, limit: int) -> None:
        self.id: str | None = None
        """The socket id, from the first welcome."""
        self.token = ""
        self.nonce = ""
        self.limit = limit
        """At most this many unconfirmed messages (``offline_queue_size``)."""
        self.clock = AckClock()
        """The received count (``clock.count``) and when to acknowledge it."""
        self.unconfirmed: deque[str | bytes] = deque()
        """The messages written with counts ``base`` to ``written - 1``, oldest first."""
        self.base = 0
        self.overflow = False

    @property
    def received(self) -> int:
        """Messages of the session handed to the application (``n``)."""
        return self.clock.count

    @property
    def written(self) -> int:
        """Messages written in the session (the client's out-count)."""
        return self.base + len(self.unconfirmed)

    def request(self) -> str:
        """The value of the resume query parameter for the next connection."""
        if self.id is None:
            return "1"
        return ResumeRequest("resume", self.id, self.token, self.received).to_value()

    def wrote(self, data: str | bytes) -> None:
        """Keep a message that is being written, until the server confirms it."""
        unconfirmed = self.unconfirmed
        unconfirmed.append(data)
        if self.id is None and len(unconfirmed) > self.limit:
            unconfirmed.popleft()
            self.base += 1
            self.overflow = True

    def unwrite(self, data: str | bytes) -> None:
        """Forget a message whose write failed and that the caller is told about instead."""
        unconfirmed = self.unconfirmed
        for index in range(len(unconfirmed) - 1, -1, -1):
            if unconfirmed[index] is data:
                del unconfirmed[index]
                return

    def confirm(self, count: int) -> None:
        """Apply the server's cumulative ack: it has handled ``count`` messages of the session.

        An ack below what was confirmed is ignored; one above what was written
        is a :class:`~rtt.resume.ResumeProtocolError`.
        """
        if count > self.written:
            raise ResumeProtocolError(f"ack {count} is above the {self.written} messages written")
        dropped = count - self.base
        if dropped < 0:
            return
        # Past base, what overflow forgot is confirmed: no resume can need it any more.
        self.overflow = False
        unconfirmed = self.unconfirmed
        for _ in range(dropped):
            unconfirmed.popleft()
        self.base = count

    def start(self, welcome: Welcome) -> None:
        """Adopt the welcome that starts the session (``new``, or ``lost`` in a fresh ``ClientSession``)."""
        self.id, self.token, self.nonce = welcome.id, welcome.token, welcome.nonce

    def resume(self, welcome: Welcome) -> str | None:
        """Adopt a welcome ``resumed``; return the loss to report (``overflow``, ``broker``) or ``None``.

        Afterwards ``unconfirmed`` holds exactly what the server has not
        handled, to be written again in order. Raises
        :class:`~rtt.resume.ResumeProtocolError` when the welcome does not
        continue this session (another id, another received count, or more
        messages handled than were written).
        """
        if welcome.id != self.id:
            raise ResumeProtocolError("a welcome 'resumed' for another socket id")
        if welcome.received != self.received:
            raise ResumeProtocolError(
                f"the server resumes after message {welcome.received}, the client received {self.received}"
            )
        handled = welcome.handled
        loss: str | None = welcome.loss
        if handled < self.base:
            if not self.overflow:
                raise ResumeProtocolError(
                    f"the server handled {handled} messages, below the {self.base} acked"
                )
            # The server needs messages this client forgot: what it still has is counted from
            # the server's count on, so both sides keep numbering alike.
            loss = "overflow"
            self.base = handled
            self.overflow = False
        else:
            self.confirm(handled)
        self.token, self.nonce = welcome.token, welcome.nonce
        self.clock = AckClock(self.received)
        return loss


def resume_url(url: str, session: ClientSession | None) -> str:
    """``url`` with the resume query parameter of a connection attempt (SPEC.md 10.3).

    ``rtt_resume=1`` without a session (or before its first welcome), else
    ``rtt_resume=<id>.<token>.<n>``. The rest of the URL is kept as it is, a
    fragment included.
    """
    value = "1" if session is None else session.request()
    head, mark, fragment = url.partition("#")
    separator = "?" if "?" not in head else "" if head.endswith(("?", "&")) else "&"
    return f"{head}{separator}{QUERY}={value}{mark}{fragment}"
