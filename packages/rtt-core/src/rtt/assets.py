"""Browser client files: how a transport exposes them and a server hands them out (SPEC.md 2.7).

The shared part of every browser client (events, backoff, offline queue) is
``rtt/browser/rtt-client.js`` in rtt-core, with ``rtt-client.mjs``, the ES
module that holds its one list of named exports; each plugin adds a small
adapter file and an ES module entry that re-exports the core's. The adapter of
a transport whose wire is a plain WebSocket is in the core too
(``rtt.registerWebSocketTransport(name)``), so such a plugin's adapter file is
that one call. A server serves exactly these files, read from the installed
packages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = [
    "CORE_MODULE",
    "CORE_SCRIPT",
    "BrowserLibrary",
    "adapter_assets",
    "asset_headers",
    "content_type",
    "core_assets",
    "core_script",
    "read_asset",
]

CORE_SCRIPT = "rtt-client.js"
CORE_MODULE = "rtt-client.mjs"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".map": "application/json",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class BrowserLibrary:
    """A third-party script a transport's browser client needs on the page first (SPEC.md 2.8).

    rtt never ships these: a page loads them from an npm install or a CDN.
    """

    npm: str
    """The npm package, e.g. ``"engine.io-client"``."""
    version: str
    """The versions that work, as a prefix of dotted numbers: ``"6"`` is any 6.x, ``"1.6"`` any 1.6.x."""
    file: str
    """The classic-script bundle inside the package, e.g. ``"dist/engine.io.min.js"``."""
    cdn: str
    """The same file on a public CDN, for pages without a local copy."""

    def accepts(self, installed: str) -> bool:
        """Whether an installed version (``"6.6.8"``) is one of :attr:`version`."""
        wanted = self.version.split(".")
        return installed.split("-")[0].split("+")[0].split(".")[: len(wanted)] == wanted


def core_script() -> Traversable:
    """The shared browser client, ``rtt-client.js``."""
    return files("rtt") / "browser" / CORE_SCRIPT


def core_assets() -> dict[str, Traversable]:
    """The shared browser client files every transport serves: ``rtt-client.js`` and ``rtt-client.mjs``.

    A plugin's ``.mjs`` entry imports ``./rtt-client.mjs``, so both are served beside its adapter.
    """
    browser = files("rtt") / "browser"
    return {CORE_SCRIPT: browser / CORE_SCRIPT, CORE_MODULE: browser / CORE_MODULE}


def adapter_assets(package: str, name: str) -> dict[str, Traversable]:
    """Every browser file of the transport ``name`` whose plugin is the Python package ``package``.

    That is :func:`core_assets` plus the plugin's adapter ``rtt-<name>.js`` and its ES module
    entry ``rtt-<name>.mjs`` from the ``browser`` folder of ``package``: what a plugin's
    ``browser_assets()`` returns, e.g. ``adapter_assets("rtt_ws", "ws")``. For a transport whose
    wire is a plain WebSocket, the adapter file only calls ``rtt.registerWebSocketTransport(name)``.

    Raises :class:`FileNotFoundError` naming the file when either is missing from ``package``, and
    :class:`ModuleNotFoundError` when ``package`` is not installed.
    """
    browser = files(package) / "browser"
    own = {f"rtt-{name}{suffix}": browser / f"rtt-{name}{suffix}" for suffix in (".js", ".mjs")}
    for file_name, asset in own.items():
        if not asset.is_file():
            raise FileNotFoundError(
                f"the browser client of transport {name!r} needs the file {package}/browser/{file_name}"
            )
    return {**core_assets(), **own}


def content_type(name: str) -> str:
    """The ``Content-Type`` to serve an asset with."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    return _TYPES.get(suffix, "application/octet-stream")


def read_asset(assets: Mapping[str, Traversable], name: str) -> tuple[str, bytes] | None:
    """``(content_type, body)`` of the asset called ``name``, or None if there is none.

    Only names in ``assets`` are served, so no request path can reach any other file.
    """
    asset = assets.get(name)
    if asset is None:
        return None
    return content_type(name), asset.read_bytes()


def asset_headers(content_type: str) -> dict[str, str]:
    """Response headers for an asset: its type, revalidation, and readable from any page.

    The files are public client code, so any origin may load them, as a module too.
    """
    return {"Content-Type": content_type, "Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
