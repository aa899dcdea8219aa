"""Oversized handshakes on every standalone server (issue 12; SPEC.md 3.11).

A huge header value, a huge URL, thousands of headers or a huge Cookie get
a clear refusal (400 from the aiohttp servers; 414 or 431 from websockets,
400 from rtt-ws on websockets 15; 431 from picows) at once: never a hang,
never a crash, nothing at ERROR, none of the request's bytes in a record at
INFO or above (in no record at all on the aiohttp servers), and the server
goes on serving real clients.
"""

from __future__ import annotations

import logging

import pytest

import rtt

from .http_support import TRANSPORTS, echo, echo_once, handshake_target, status_of, text_of

MARK = "Sekr1tHeaderValue"
HUGE = 100_000

OVERSIZED = {
    "huge header value": "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}X-Big: {mark}{pad}\r\n\r\n",
    "huge URL": "GET {path}{sep}x={mark}{pad} HTTP/1.1\r\nHost: x\r\n{extra}\r\n",
    "many headers": "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}{many}\r\n",
    "huge Cookie": "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Cookie: session={mark}{pad}\r\n\r\n",
}


#: The statuses a server other than the aiohttp ones (400) refuses an oversized handshake with.
REFUSALS = {"ws": (414, 431, 400), "picows": (431,)}


def request(case: str, name: str, url: str) -> bytes:
    path, extra = handshake_target(name, url)
    many = "".join(f"X-H{i}: {MARK}\r\n" for i in range(10_000))
    sep = "&" if "?" in path else "?"
    text = OVERSIZED[case].format(path=path, extra=extra, mark=MARK, pad="a" * HUGE, many=many, sep=sep)
    return text.encode("latin-1")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_oversized_handshakes_are_refused_and_the_server_keeps_serving(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = rtt.load(name)
    async with transport.server("127.0.0.1", 0) as server:
        echo(server)
        for case in OVERSIZED:
            caplog.clear()
            status = await status_of(server.address, request(case, name, server.url))
            # websockets 17 answers 414 or 431; websockets 15 cannot parse it, and rtt-ws answers 400.
            assert status in REFUSALS.get(name, (400,)), (case, status)
            errors = [text_of(r) for r in caplog.records if r.levelno >= logging.ERROR]
            assert not errors, (case, errors)
            # websockets may quote the request in its own DEBUG log; the aiohttp servers in none.
            level = logging.INFO if name == "ws" else logging.NOTSET
            leaks = [text_of(r) for r in caplog.records if r.levelno >= level and MARK in text_of(r)]
            assert not leaks, (case, leaks)
        assert not server.sockets and server.stats.connections == 0
        await echo_once(transport, server.url, "still serving")
