"""What the Chromium tests of every transport share: the browser, the event recorder, conversions.

Each transport's browser test module keeps its own fixtures (they are thin
wrappers over :func:`launch` and :func:`new_context`) and its own pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Browser, BrowserContext, async_playwright

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium: Playwright cannot download a browser here."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FAST_RECONNECT = {"minDelay": 0.05, "maxDelay": 0.2, "factor": 2, "jitter": 0.5}

# Installed in every page before its own scripts: records a client's events as
# JSON-friendly lists, with bytes as {"bytes": [...]} and errors as {"error": name}.
RECORDER = """
window.plain = (value) =>
  value instanceof Uint8Array ? { bytes: Array.from(value) }
  : value instanceof Error ? { error: value.name, message: value.message }
  : value;
window.fromPlain = (value) =>
  value !== null && typeof value === "object" ? new Uint8Array(value.bytes) : value;
window.log = [];
window.record = (client) => {
  const events = ["open", "message", "close", "reconnecting", "reconnected", "reconnect_failed", "error"];
  for (const name of events) {
    client.on(name, (...args) => window.log.push([name, ...args.map(window.plain)]));
  }
  return client;
};
// Run fn and return the error it throws as {error, message}, or null.
window.thrown = (fn) => {
  try { fn(); return null; } catch (error) { return window.plain(error); }
};
"""

Message = str | bytes


def to_js(message: Message) -> Any:
    """A message as the page's ``fromPlain`` takes it."""
    return {"bytes": list(message)} if isinstance(message, bytes) else message


def from_js(value: Any) -> Message:
    """A message the page recorded with ``plain``."""
    if isinstance(value, dict):
        return bytes(value["bytes"])
    assert isinstance(value, str), value
    return value


def summary(log: list[list[Any]]) -> str:
    """The event names in order, with the close reason: "open close:shutdown reconnecting ..."."""
    return " ".join(f"close:{event[1]}" if event[0] == "close" else event[0] for event in log)


@asynccontextmanager
async def launch() -> AsyncIterator[Browser]:
    """Headless Debian Chromium, closed on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def new_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh context with the recorder installed.

    A page fulfilled by Playwright counts as public to Chromium's local network
    access check, which would block its requests to 127.0.0.1: grant it.
    """
    context = await browser.new_context()
    try:
        await context.grant_permissions(["local-network-access"])
        await context.add_init_script(RECORDER)
        yield context
    finally:
        await context.close()
