"""The sockjs transport: SockJS (WebSocket, HTTP streaming and polling) on aiohttp's ``sockjs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from rtt import Capabilities, ClientOptions, OptionError, ServerOptions, Transport
from rtt.assets import BrowserLibrary, core_assets

from .client import SockjsClient
from .server import SockjsServer

__all__ = [
    "CLIENT_TRANSPORTS",
    "SERVER_TRANSPORTS",
    "SockjsClientOptions",
    "SockjsServerOptions",
    "SockjsTransport",
]

#: SockJS transports the Python client speaks, in the order it tries them.
CLIENT_TRANSPORTS = ("websocket", "xhr-streaming", "xhr-polling")
#: SockJS transports a server serves (sockjs-client's names; ``xhr-polling`` includes ``xhr_send``).
SERVER_TRANSPORTS = ("websocket", "xhr-streaming", "xhr-polling", "eventsource", "htmlfile", "jsonp-polling")


def _server_transports(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(t, str) and t in SERVER_TRANSPORTS for t in value)
        or len(set(value)) != len(value)
    ):
        raise OptionError(
            f"option transports must be a non-empty sequence of {', '.join(map(repr, SERVER_TRANSPORTS))}"
            f" (each at most once), got {value!r}"
        )
    return tuple(value)


def _client_transports(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(t, str) and t in CLIENT_TRANSPORTS for t in value)
        or len(set(value)) != len(value)
    ):
        raise OptionError(
            "option transports must be a non-empty sequence of 'websocket', 'xhr-streaming' "
            f"and/or 'xhr-polling', got {value!r}"
        )
    return tuple(value)


def _path(name: str, value: object, *, none: bool = False) -> None:
    if none and value is None:
        return
    if not (isinstance(value, str) and value.startswith("/") and len(value) > 1 and "{" not in value):
        raise OptionError(f"option {name} must be a path like '/sockjs', got {value!r}")


@dataclass(frozen=True, kw_only=True)
class SockjsServerOptions(ServerOptions):
    """rtt's server options plus the SockJS URL prefix and what the server serves besides."""

    sockjs_prefix: str = "/sockjs"
    """URL prefix of the SockJS endpoint: clients connect to ``http://host:port/sockjs``."""
    assets_path: str | None = "/rtt/"
    """URL path prefix for ``browser_assets()`` (``/rtt/rtt-sockjs.js``) on the standalone
    server; ``None`` serves nothing. (Mounted into an aiohttp application, the
    application serves them if it wants.)"""
    sockjs_client_url: str = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"
    """Where the iframe page of SockJS's iframe-based transports loads ``sockjs-client``
    from (the library's ``sockjs_cdn``); point it at a local copy when offline."""
    transports: Sequence[str] = SERVER_TRANSPORTS
    """The SockJS transports served; the others' URLs are 404 and ``/info`` says
    ``"websocket": false`` without ``websocket``. Given to ``rtt.load``, the value
    also restricts the client (which speaks the first three)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "transports", _server_transports(self.transports))
        _path("sockjs_prefix", self.sockjs_prefix)
        object.__setattr__(self, "sockjs_prefix", self.sockjs_prefix.rstrip("/"))
        _path("assets_path", self.assets_path, none=True)
        if self.assets_path is not None and (
            not self.assets_path.endswith("/") or self.assets_path.rstrip("/") == self.sockjs_prefix
        ):
            raise OptionError(
                f"option assets_path must be None or a path like '/rtt/' apart from the SockJS prefix, "
                f"got {self.assets_path!r}"
            )
        if not isinstance(self.sockjs_client_url, str) or not self.sockjs_client_url:
            raise OptionError(f"option sockjs_client_url must be a URL, got {self.sockjs_client_url!r}")


@dataclass(frozen=True, kw_only=True)
class SockjsClientOptions(ClientOptions):
    """rtt's client options plus the SockJS transports the client may use."""

    transports: Sequence[str] = CLIENT_TRANSPORTS
    """Tried in this order on every connection attempt, the next one when one cannot open:
    ``("websocket",)`` is WebSocket only, ``("xhr-polling",)`` long-polling only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "transports", _client_transports(self.transports))


class SockjsTransport(Transport):
    """``rtt.load("sockjs")``: servers at ``http://host:port/sockjs``, the SockJS protocol on the wire."""

    name = "sockjs"
    capabilities = Capabilities(
        binary=False, http_fallbacks=True, python_client=True, browser_client=True, aiohttp=True, tls=True
    )
    routes_sessions = True
    server_options = SockjsServerOptions
    client_options = SockjsClientOptions
    browser_libraries = (
        BrowserLibrary(
            npm="sockjs-client",
            version="1.6",
            file="dist/sockjs.min.js",
            cdn="https://cdn.jsdelivr.net/npm/sockjs-client@1.6/dist/sockjs.min.js",
        ),
    )

    def browser_assets(self) -> Mapping[str, Traversable]:
        # sockjs-client itself is not among them: the page loads it from npm or a CDN.
        browser = files("rtt_sockjs") / "browser"
        return {
            **core_assets(),
            "rtt-sockjs.js": browser / "rtt-sockjs.js",
            "rtt-sockjs.mjs": browser / "rtt-sockjs.mjs",
        }

    def _create_server(self, options: ServerOptions, host: str, port: int) -> SockjsServer:
        assert isinstance(options, SockjsServerOptions)
        return SockjsServer(self, options, host, port)

    def _create_client(self, url: str, options: ClientOptions) -> SockjsClient:
        assert isinstance(options, SockjsClientOptions)
        self._secure_url(url, options, plain=("http",), secure=("https",))
        return SockjsClient(self, url, options)
