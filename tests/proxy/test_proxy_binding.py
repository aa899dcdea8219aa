"""The session-binding cookie follows the client's scheme as a trusted proxy tells it (SPEC.md 8.3, 8.5).

Behind a proxy that ends TLS, the server speaks plain HTTP, yet the browser
is on HTTPS: the cookie must be ``Secure`` (and ``SameSite=None``) there,
and only when the proxy saying so is trusted.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import aiohttp
import pytest
from conftest import echo_server
from proxy_support import PROXY_HOST, TcpRelay

pytestmark = pytest.mark.timeout(60)

HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
SECURE = "SameSite=None; Secure; Partitioned"
LAX = "SameSite=Lax"


async def engineio_cookie(url: str) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}?EIO=4&transport=polling", headers=HTTPS) as response,
    ):
        assert response.status == 200
        json.loads((await response.text())[1:])  # an open packet
        (cookie,) = response.headers.getall("Set-Cookie")
    return cookie


async def sockjs_cookie(url: str) -> str:
    session = f"{url.rstrip('/')}/000/{secrets.token_hex(8)}"
    async with aiohttp.ClientSession() as http, http.post(f"{session}/xhr", headers=HTTPS) as response:
        assert response.status == 200 and await response.text() == "o\n"
        (cookie,) = [c for c in response.headers.getall("Set-Cookie") if c.startswith("rtt_sockjs=")]
    return cookie


FETCH: dict[str, Any] = {"engineio": engineio_cookie, "sockjs": sockjs_cookie}


@pytest.mark.parametrize("name", list(FETCH))
async def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(name: str) -> None:
    async with echo_server(name, session_binding=True, trusted_proxies=[PROXY_HOST], close_timeout=0.5) as (
        server,
        _,
    ):
        async with TcpRelay(server.address) as relay:
            assert (await FETCH[name](relay.url(server.url))).endswith(SECURE)
        # Straight from 127.0.0.1 (not trusted), the same header is ignored: plain HTTP.
        assert (await FETCH[name](server.url)).endswith(LAX)


@pytest.mark.parametrize("name", list(FETCH))
async def test_an_untrusted_proxy_cannot_make_it_secure(name: str) -> None:
    async with (
        echo_server(name, session_binding=True, close_timeout=0.5) as (server, _),
        TcpRelay(server.address) as relay,
    ):
        assert (await FETCH[name](relay.url(server.url))).endswith(LAX)
