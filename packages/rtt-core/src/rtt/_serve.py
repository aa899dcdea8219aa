"""``rtt serve``: the echo and chat demo apps, and the chat page's own small web server (SPEC.md 16.2).

The transport servers are built on different libraries (websockets, aiohttp,
...), so the chat page is not served by them: a second, tiny HTTP server
(asyncio streams, ``GET``/``HEAD`` only, a fixed set of files decided at start)
listens on the same host, by default on the transport's port + 1. The page is
then cross-origin to the transport server, which every transport allows by
default (SPEC.md 8.1: no origin check unless ``allowed_origins`` is set).

The third-party libraries are looked up again for each page request, so an
``npm install`` run while the server runs is picked up by the next reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .assets import BrowserLibrary, content_type
from .cli import EXIT_FAILURE, EXIT_USAGE, CliError, describe_loop
from .errors import BrokerError, ConfigError, ConnectionClosed, UnknownSocketError
from .server import Server, Socket
from .transport import Transport

__all__ = ["PageServer", "ServeSettings", "find_library", "serve", "start_page"]

logger = logging.getLogger("rtt.serve")

CHAT_PAGE = "chat.html"
#: Seconds a page request may take to arrive; a slower one is dropped.
REQUEST_TIMEOUT = 10.0
#: Bytes of request line and headers a page request may have.
REQUEST_LIMIT = 16 * 1024
#: Host names that mean "every interface": the page then connects to the host it was loaded from.
ANY_HOST = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """What ``rtt serve`` was asked for, besides the transport."""

    host: str
    port: int
    app: Literal["echo", "chat"]
    page_port: int
    node_modules: Path | None
    """The npm install given with ``--node-modules``; ``None`` looks in ``./node_modules``."""
    reuse_port: bool = False
    """Listen with ``SO_REUSEPORT`` (a worker of ``--workers``, sharing the port with the others)."""
    loop: str = "asyncio"
    """The event loop asked for with ``--loop``; any but asyncio's own is named at start."""
    tls: ssl.SSLContext | None = None
    """The server-side TLS context of ``--certfile``/``--keyfile``: the transport and the page use it."""


# -- The apps ------------------------------------------------------------------------


def echo_app(server: Server[Any]) -> None:
    """Send every message back to its sender."""

    async def send_back(socket: Socket, data: str | bytes) -> None:
        # The sender may be gone by now; that is no error of the app's.
        with contextlib.suppress(UnknownSocketError, ConnectionClosed):
            await server.send(socket.id, data)

    server.on("message", send_back)


def chat_app(server: Server[Any]) -> None:
    """Broadcast every message to every connected socket, the sender included."""

    async def relay(socket: Socket, data: str | bytes) -> None:
        try:
            await server.broadcast(data)
        except BrokerError as exc:
            # The broker is down: this process's sockets got the message, the others did not. One
            # line per message, rather than the traceback a handler's error is logged with.
            logger.warning("chat: %s", exc)

    server.on("message", relay)


# -- Third-party browser libraries ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class FoundLibrary:
    """Where the chat page loads a third-party library from, and what to tell the user."""

    library: BrowserLibrary
    url: str
    """The script's address as the page uses it: a path on the page server, or the CDN."""
    path: Path | None
    """The local file served at :attr:`url`, or ``None`` when the page uses the CDN."""
    note: str
    install: str
    """The npm command that puts the library where the page server looks for it."""


def install_command(library: BrowserLibrary, node_modules: Path | None) -> str:
    """``npm install --no-save NAME@VERSION``, with ``--prefix`` when ``--node-modules`` is elsewhere."""
    prefix = ""
    if node_modules is not None:
        parent = node_modules.parent if node_modules.name == "node_modules" else node_modules
        prefix = f"--prefix {parent} "
    return f"npm install --no-save {prefix}{library.npm}@{library.version}"


def find_library(library: BrowserLibrary, node_modules: Path | None) -> FoundLibrary:
    """The library from an npm install if one of the right version is there, else the CDN."""
    where = node_modules if node_modules is not None else Path("node_modules")
    package = where / library.npm
    install = install_command(library, node_modules)
    cdn = f"the page loads it from {library.cdn} until then (no restart needed)"
    try:
        version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        note = f"{library.npm}@{library.version} is not installed in {where} (run: {install}); {cdn}"
        return FoundLibrary(library, library.cdn, None, note, install)
    file = package / library.file
    if not isinstance(version, str) or not library.accepts(version):
        note = f"{package} is version {version}, not {library.version} (run: {install}); {cdn}"
        return FoundLibrary(library, library.cdn, None, note, install)
    if not file.is_file():
        return FoundLibrary(library, library.cdn, None, f"{file} is missing (run: {install}); {cdn}", install)
    url = f"/vendor/{library.npm}/{library.file}"
    return FoundLibrary(library, url, file, f"{library.npm} {version} from {file}", install)


# -- The page server ------------------------------------------------------------------


class PageServer:
    """Serves a fixed mapping of paths to ``(content type, body)`` over HTTP/1.1, ``GET``/``HEAD`` only.

    Nothing outside the mapping is reachable, whatever the request path.
    Each response closes its connection; that is plenty for one page.
    """

    def __init__(
        self, pages: Mapping[str, tuple[str, bytes]] | Callable[[], Mapping[str, tuple[str, bytes]]]
    ) -> None:
        # A callable is asked for the mapping on every request (the chat page's libraries can appear).
        if callable(pages):
            self._pages = pages
        else:
            fixed = dict(pages)
            self._pages = lambda: fixed
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Listen on ``host:port`` (0: a free port), over TLS with ``tls``; return the bound address."""
        self._server = await asyncio.start_server(
            self._handle,
            host,
            port,
            limit=REQUEST_LIMIT,
            ssl=tls,
            # The request's own bound starts after the TLS handshake; this one bounds the handshake.
            ssl_handshake_timeout=REQUEST_TIMEOUT if tls is not None else None,
        )
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        """Stop listening and drop any connection still open."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, headers, body, send_body = self._respond(head)
            lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
            writer.write("\r\n".join(lines).encode("latin-1") + (body if send_body else b""))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that went away or sent nonsense gets nothing more
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)

    def _respond(self, head: bytes) -> tuple[str, dict[str, str], bytes, bool]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _plain("400 Bad Request", "bad request\n")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            status, headers, body, _ = _plain("405 Method Not Allowed", "GET or HEAD only\n")
            return status, {**headers, "Allow": "GET, HEAD"}, body, True
        page = self._pages().get(urlsplit(target).path)
        if page is None:
            status, headers, body, _ = _plain("404 Not Found", "not found\n")
            return status, headers, body, method == "GET"
        kind, body = page
        return "200 OK", _headers(kind, len(body)), body, method == "GET"


def _headers(kind: str, length: int) -> dict[str, str]:
    return {
        "Content-Type": kind,
        "Content-Length": str(length),
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Connection": "close",
    }


def _plain(status: str, text: str) -> tuple[str, dict[str, str], bytes, bool]:
    body = text.encode()
    return status, _headers("text/plain; charset=utf-8", len(body)), body, True


def chat_pages(transport: Transport, url: str, libraries: list[FoundLibrary]) -> dict[str, tuple[str, bytes]]:
    """The chat page's files: the page, its config, the browser client, the local libraries."""
    pages: dict[str, tuple[str, bytes]] = {}
    scripts = [found.url for found in libraries]
    for found in libraries:
        if found.path is not None:
            pages[found.url] = (content_type(found.path.name), found.path.read_bytes())
    assets = transport.browser_assets()
    for name, asset in assets.items():
        pages[f"/rtt/{name}"] = (content_type(name), asset.read_bytes())
    # Classic scripts: the shared client first, then the plugin's adapter(s).
    classic = sorted(name for name in assets if name.endswith(".js"))
    classic.sort(key=lambda name: name != "rtt-client.js")
    scripts += [f"/rtt/{name}" for name in classic]
    config = {
        "transport": transport.name,
        "url": url,
        "anyHost": (urlsplit(url).hostname or "") in ANY_HOST,
        "scripts": scripts,
        # What the page tells its user when a script fails to load (offline, CDN blocked).
        "install": {found.url: found.install for found in libraries},
    }
    pages["/chat-config.js"] = (
        content_type("chat-config.js"),
        f"// Written by rtt serve for this server.\nglobalThis.rttChat = {json.dumps(config)};\n".encode(),
    )
    pages["/"] = (content_type(CHAT_PAGE), (files("rtt") / "browser" / CHAT_PAGE).read_bytes())
    return pages


class ChatPages:
    """The chat page's files, rebuilt when an npm install adds, changes or removes a library.

    Asked on every page request; saying once what changed, as the start did.
    """

    def __init__(self, transport: Transport, url: str, node_modules: Path | None) -> None:
        self.transport, self.url, self.node_modules = transport, url, node_modules
        self.libraries = self._find()
        self.pages = chat_pages(transport, url, self.libraries)

    def _find(self) -> list[FoundLibrary]:
        return [find_library(lib, self.node_modules) for lib in self.transport.browser_libraries]

    def __call__(self) -> Mapping[str, tuple[str, bytes]]:
        libraries = self._find()
        if [(f.url, f.path) for f in libraries] != [(f.url, f.path) for f in self.libraries]:
            for found in libraries:
                _say(f"rtt: now {found.note}")
            self.libraries = libraries
            self.pages = chat_pages(self.transport, self.url, libraries)
        return self.pages


def cannot_listen(what: str, where: str, exc: OSError, flag: str) -> CliError:
    """One line for a listener that could not start: the OS's reason and, if it helps, the flag to change."""
    # asyncio's own text repeats the address as a Python tuple; the errno says it plainly.
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    line = f"cannot serve {what} on {where}: {reason}"
    if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
        line += f" (choose another with {flag})"
    return CliError(line, EXIT_FAILURE)


def _http_url(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}/" if ":" in host else f"{scheme}://{host}:{port}/"


# -- Serving -------------------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)


async def start_page(
    transport: Transport, settings: ServeSettings, url: str
) -> tuple[PageServer | None, str]:
    """Start the chat page for a transport served at ``url``, saying where its libraries come from.

    Returns the page server (``None`` for a transport without a browser
    client) and what the serving line ends with: `` and the chat page at URL``.
    """
    if not transport.capabilities.browser_client:
        _say(f"rtt: {transport.name} has no browser client, so no chat page; Python clients can chat")
        return None, ""
    pages = ChatPages(transport, url, settings.node_modules)
    for found in pages.libraries:
        _say(f"rtt: {found.note}")
    page = PageServer(pages)
    try:
        host, port = await page.start(settings.host, settings.page_port, settings.tls)
    except OSError as exc:
        where = f"{settings.host}:{settings.page_port}"
        raise cannot_listen("the chat page", where, exc, "--page-port") from None
    scheme = "https" if settings.tls is not None else "http"
    return page, f" and the chat page at {_http_url(settings.host or host, port, scheme)}"


async def serve(
    transport: Transport,
    settings: ServeSettings,
    stop: asyncio.Event,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``settings.app`` on ``transport`` until ``stop`` is set, then close gracefully.

    With ``ready`` (a worker of ``--workers``) the process prints nothing and
    serves no page: it calls ``ready(server.url)`` once it listens, and the
    parent does the talking.
    """
    options: dict[str, Any] = {"reuse_port": True} if settings.reuse_port else {}
    if settings.tls is not None:
        options["ssl"] = settings.tls
    try:
        server = transport.server(host=settings.host, port=settings.port, **options)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    (echo_app if settings.app == "echo" else chat_app)(server)
    try:
        await server.start()
    except BrokerError as exc:  # before OSError: a BrokerError is a ConnectionError
        raise CliError(f"cannot serve {transport.name}: {exc}", EXIT_FAILURE) from None
    except OSError as exc:
        raise cannot_listen(transport.name, f"{settings.host}:{settings.port}", exc, "--port") from None
    page: PageServer | None = None
    try:
        if ready is not None:
            ready(server.url)
            await stop.wait()
            return
        if settings.loop != "asyncio":
            _say(f"rtt: event loop: {describe_loop()}")
        line = f"rtt: serving {transport.name} at {server.url}"
        if settings.app == "chat":
            page, suffix = await start_page(transport, settings, server.url)
            line += suffix
        _say(line)
        await stop.wait()
        print("rtt: shutting down", file=sys.stderr, flush=True)
    finally:
        if page is not None:
            await page.close()
        await server.close()
