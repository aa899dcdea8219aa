"""A round-robin HTTP load balancer for the relay tests (SPEC.md 13.8): no stickiness at all.

Every request goes to the next backend in turn, over a fresh connection, so
successive requests of one long-polling session land on different servers,
as they do behind a round-robin load balancer or ``SO_REUSEPORT``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

#: Headers of one connection, not of the request or response.
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"})


class RoundRobin:
    """Listens on 127.0.0.1 and sends each request to the next of ``backends`` (``(host, port)``)."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.hits: Counter[tuple[str, int]] = Counter()
        self._next = itertools.cycle(backends)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.address: tuple[str, int] = ("", 0)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        backend = next(self._next)
        self.hits[backend] += 1
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        url = f"http://{backend[0]}:{backend[1]}{request.path_qs}"
        async with self._http.request(
            request.method, url, headers=headers, data=await request.read(), allow_redirects=False
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers=[(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP],
            )
            with contextlib.suppress(ConnectionResetError):  # the client left
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response

    async def __aenter__(self) -> RoundRobin:
        # A fresh connection per request, and cookies passed through untouched.
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=60),
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.address = (str(host), int(port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()


@contextlib.asynccontextmanager
async def round_robin(backends: list[tuple[str, int]]) -> AsyncIterator[RoundRobin]:
    """A started :class:`RoundRobin` over ``backends``."""
    async with RoundRobin(backends) as balancer:
        yield balancer
