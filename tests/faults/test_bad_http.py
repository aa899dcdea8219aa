"""Malformed HTTP requests on every standalone server (issue 12 defect 8; SPEC.md 3.8, 3.11).

aiohttp logged every request it could not parse at ERROR with a traceback
quoting the offending bytes: a log flood anyone could cause, and header
values at ERROR against SPEC 3.8. The aiohttp servers (engineio, sockjs) now
answer 400 and log one DEBUG line naming the error's type, with none of the
request's bytes in any record. ws answers a request websockets cannot parse
with 400 too (websockets itself closed without an answer) and logs it as one
INFO line with the status, without a traceback; websockets may quote the
request at DEBUG (its own debug log of the handshake), never above. picows
answers 400 (405 to a POST, which it refuses before reading any body) and
logs nothing.
Each server keeps serving real clients afterwards.
"""

from __future__ import annotations

import logging

import pytest

import rtt

from .http_support import (
    AIOHTTP_TRANSPORTS,
    PLAIN_TRANSPORTS,
    TRANSPORTS,
    echo,
    echo_once,
    handshake_target,
    status_of,
    text_of,
)

MARK = "Sekr1tHeaderValue"

# name -> request, from the target and the extra header lines of a handshake.
MALFORMED = {
    "space in a header name": "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Bad Name: {mark}\r\n\r\n",
    "header line without a colon": "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}{mark}\r\n\r\n",
    "control character in a value": "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}X-A: {mark}\x01z\r\n\r\n",
    "bad HTTP version": "GET {path} HTTP/{mark}\r\nHost: x\r\n{extra}\r\n",
    "garbage request line": "{mark} {mark}\r\nHost: x\r\n\r\n",
    "obsolete line folding": "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}X-A: a\r\n {mark}\r\n\r\n",
    "NUL in the target": "GET {path}\x00{mark} HTTP/1.1\r\nHost: x\r\n{extra}\r\n",
    "two Content-Lengths": (
        "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: 1\r\nContent-Length: 2{mark}\r\n\r\nab"
    ),
    "bad chunk size": (
        "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Transfer-Encoding: chunked\r\n\r\nZZ{mark}\r\n"
    ),
}


def request(case: str, name: str, url: str) -> bytes:
    path, extra = handshake_target(name, url)
    return MALFORMED[case].format(path=path, extra=extra, mark=MARK).encode("latin-1")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", AIOHTTP_TRANSPORTS)
async def test_aiohttp_servers_answer_400_and_log_one_debug_line_without_the_bytes(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = rtt.load(name)
    async with transport.server("127.0.0.1", 0) as server:
        echo(server)
        for case in MALFORMED:
            caplog.clear()
            assert await status_of(server.address, request(case, name, server.url)) == 400, case
            records = [r for r in caplog.records if r.name.startswith("aiohttp")]
            assert [(r.levelno, r.getMessage().split(" (")[0]) for r in records] == [
                (logging.DEBUG, "refused a bad HTTP request")
            ], (case, [text_of(r) for r in records])
            assert all(r.exc_info is None for r in records)
            leaks = [text_of(r) for r in caplog.records if MARK in text_of(r)]
            assert not leaks, (case, leaks)
        await echo_once(transport, server.url, "still serving")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", PLAIN_TRANSPORTS)
async def test_plain_servers_answer_400_and_log_no_bytes_at_info_or_above(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = rtt.load(name)
    async with transport.server("127.0.0.1", 0) as server:
        echo(server)
        for case in MALFORMED:
            caplog.clear()
            refusals = (400, 405) if name == "picows" and MALFORMED[case].startswith("POST") else (400,)
            assert await status_of(server.address, request(case, name, server.url)) in refusals, case
            loud = [r for r in caplog.records if r.levelno >= logging.INFO]
            assert all(r.levelno < logging.ERROR for r in loud), [text_of(r) for r in loud]
            assert not [text_of(r) for r in loud if MARK in text_of(r)], case
            assert not [text_of(r) for r in caplog.records if r.exc_info], case
        await echo_once(transport, server.url, "still serving")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_bad_request_among_good_ones_changes_nothing_for_them(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transport = rtt.load(name)
    async with transport.server("127.0.0.1", 0) as server:
        echo(server)
        async with transport.client(server.url, reconnect=False) as client:
            bad = request("control character in a value", name, server.url)
            for i in range(3):
                assert await status_of(server.address, bad) in (None, 400)
                await client.send(f"message {i}")
                assert await client.recv() == f"message {i}"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
