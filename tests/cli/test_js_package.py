"""The browser client as npm packages, bundled by esbuild, in Chromium against ``rtt serve`` (SPEC.md 2.7).

A frontend installs ``rtt-client`` and its transport's adapter package from
the repository's browser folders (``npm install <path>``, copied as a
registry install would be, so the packages' ``files`` lists are tested too),
imports them by name, and bundles the page with esbuild. The test serves the
bundle from a loopback HTTP server, opens it in headless Chromium and has it
talk over ws to a real ``rtt serve`` started as a subprocess.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser_support import new_context
from cli_support import NODE_MODULES, REPO, serving
from playwright.async_api import Browser

import rtt

CORE_PACKAGE = REPO / "packages" / "rtt-core" / "src" / "rtt" / "browser"
WS_PACKAGE = REPO / "packages" / "rtt-ws" / "src" / "rtt_ws" / "browser"
ESBUILD = NODE_MODULES / ".bin" / "esbuild"
"""esbuild's command: a Node script or, once its install script has run, the native binary."""
COMMAND_TIMEOUT = 120
"""Seconds for npm install or esbuild."""
WAIT_MS = 10000
"""Every wait in the page is bounded by this many milliseconds."""

# The page's code, as a frontend writes it: the client by name, the ws adapter by name.
APP = """
import { client, CloseReason, version } from "rtt-client";
import "rtt-client-ws";

const server = new URLSearchParams(location.search).get("server");
window.result = new Promise((resolve, reject) => {
  const c = client("ws", server, { reconnect: false });
  const received = [];
  c.on("message", (data) => {
    received.push(typeof data === "string" ? data : Array.from(data));
    if (received.length === 2) c.close();
  });
  c.on("close", (reason) => resolve({ version, received, reason, closed: CloseReason.CLIENT_CLOSED }));
  c.connect().then(() => {
    c.send("hello from a bundle");
    c.send(new Uint8Array([1, 2, 255]));
  }, reject);
});
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>bundled rtt client</title><link rel="icon" href="data:,">
<script type="module" src="app.js"></script></head><body></body></html>
"""


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with index.html and app.js: the page bundled from the installed npm packages."""
    npm = shutil.which("npm")
    assert npm is not None, "Node.js and npm are needed: apt-get install nodejs npm"
    assert ESBUILD.exists(), f"no esbuild: run npm ci --prefix {NODE_MODULES.parent}"
    app = tmp_path_factory.mktemp("frontend")
    (app / "package.json").write_text(json.dumps({"name": "frontend", "private": True}), encoding="utf-8")
    # --install-links copies the folders as packed packages (only their "files"), as from a registry.
    _run(
        npm,
        "install",
        "--install-links",
        "--no-audit",
        "--no-fund",
        str(CORE_PACKAGE),
        str(WS_PACKAGE),
        cwd=app,
    )
    (app / "app.mjs").write_text(APP, encoding="utf-8")
    site = app / "site"
    site.mkdir()
    _run(str(ESBUILD), "app.mjs", "--bundle", "--format=esm", f"--outfile={site / 'app.js'}", cwd=app)
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    return site


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests are not worth a line each in the test's output."""


@pytest.fixture
def page_server(bundle: Path) -> Iterator[str]:
    """The bundle on a loopback HTTP server: its index page's URL."""
    handler = functools.partial(_QuietHandler, directory=str(bundle))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_installed_packages_hold_only_their_files(bundle: Path) -> None:
    installed = bundle.parent / "node_modules"
    assert sorted(p.name for p in (installed / "rtt-client").iterdir()) == [
        "package.json",
        "rtt-client.d.mts",
        "rtt-client.js",
        "rtt-client.mjs",
    ]
    assert sorted(p.name for p in (installed / "rtt-client-ws").iterdir()) == ["package.json", "rtt-ws.js"]


@pytest.mark.asyncio(loop_scope="module")
async def test_bundled_page_talks_to_rtt_serve(browser: Browser, page_server: str) -> None:
    console: list[str] = []
    async with (
        serving("--transport", "ws", "--port", "0") as served,
        new_context(browser) as context,
    ):
        page = await context.new_page()
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        await page.goto(f"{page_server}?server={served.url}")
        await page.wait_for_function("window.result !== undefined", timeout=WAIT_MS)
        result = await page.evaluate(
            f"Promise.race([window.result, new Promise((_, reject) => setTimeout(() => reject("
            f"new Error('no reply in time')), {WAIT_MS}))])"
        )
    assert result == {
        "version": rtt.__version__,
        "received": ["hello from a bundle", [1, 2, 255]],
        "reason": "client closed",
        "closed": "client closed",
    }, console
    assert not [line for line in console if line.startswith(("error", "pageerror"))], console
