"""Pairs ``ws-resume``, ``engineio-resume``, ``sockjs-resume``: resume on against resume off (SPEC.md 17).

Issue 17's benchmark. Both sides are the same rtt server (``RttBenchServer``,
echo with ``send``, fan out with ``broadcast``); the ``wrapped`` side has
``resume_window=30`` and the ``raw`` side leaves resume off. Both are driven
by rtt's own Python client, which asks for resume: the resume side then keeps
a replay log per socket, counts, escapes and acknowledges, while the other
answers it as a plain connection, so resume's cost is the only difference.
The figures that matter are server CPU per round trip (W1, echo) and per
delivery (W2, broadcast); the target is at most 10 % more with resume on.

The load generator runs rtt's Python client, which is heavier than the raw
clients of the other pairs, so the counts are smaller: echo with 50 clients,
broadcast to 200, memory over 500 idle connections.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from harness import Load, Pair, RttBenchServer, register

import rtt

#: The resume side's window: long enough that nothing expires during a run.
WINDOW = 30.0


def _connect(name: str, url: str) -> Callable[[int], Awaitable[rtt.Client]]:
    transport = rtt.load(name, reconnect=False)

    async def connect(port: int) -> rtt.Client:
        client = transport.client(url.format(port=port))
        await client.connect()
        return client

    return connect


#: Each transport's URL, as its standalone server's ``url`` reads.
_URLS = {
    "ws": "ws://127.0.0.1:{port}/",
    "engineio": "http://127.0.0.1:{port}/engine.io/",
    "sockjs": "http://127.0.0.1:{port}/sockjs",
}

_INSTALLED = {info.name for info in rtt.available() if info.kind == "transport" and info.error is None}

for _name, _url in _URLS.items():
    if _name not in _INSTALLED:
        continue  # the plugin is not installed: the pair is left out, as pair modules do
    register(
        Pair(
            f"{_name}-resume",
            wrapped=functools.partial(RttBenchServer, _name, resume_window=WINDOW),
            raw=functools.partial(RttBenchServer, _name),
            connect=_connect(_name, _url),
            description=f"rtt-{_name} with resume_window={WINDOW:g} (wrapped) vs resume off (raw); "
            "rtt's Python client, which asks for resume, for both",
            load=Load(echo_clients=50, size=64, fanout_clients=200, idle_clients=500),
        )
    )
