"""What rtt-sockjs overrides or reads inside sockjs (SPEC.md 12.4, library coupling).

The list is ``rtt_sockjs._library.COUPLING``; these tests check each entry
against the installed release, and check that the list is complete: every
method or attribute a class of ``_library`` defines over a sockjs class is
in it, so a new override cannot be forgotten.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Any

import pytest
import sockjs  # type: ignore[import-untyped, unused-ignore]
from aiohttp import web
from canary_support import Touch
from sockjs.route import SockJSRoute  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports import transport_handlers  # type: ignore[import-untyped, unused-ignore]
from sockjs.transports.base import StreamingTransport, Transport  # type: ignore[import-untyped, unused-ignore]

from rtt_sockjs import _library
from rtt_sockjs._library import COUPLING, HANDLERS, Coupling

# sockjs 0.13 stores its state under string keys of the aiohttp application.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")

LIBRARY = "rtt_sockjs/_library.py"


async def _ignore(manager: Any, session: Any, message: Any) -> None:
    pass


async def _answer(request: web.Request) -> web.Response:
    return web.Response()


def _instance(owner: type) -> Any:
    """A live object of ``owner``, made as the library makes it, to look for instance attributes."""
    if owner is sockjs.Session:
        return sockjs.Session("canary")
    if owner is sockjs.SessionManager:
        return sockjs.SessionManager("canary", web.Application(), _ignore)
    if owner is SockJSRoute:
        routes = sockjs.add_endpoint(web.Application(), _ignore, name="canary", prefix="/")
        return routes[0].handler.__self__
    if owner is Transport:
        manager = sockjs.SessionManager("canary", web.Application(), _ignore)
        return transport_handlers["xhr"](manager, sockjs.Session("canary"), None)
    if owner is web.WebSocketResponse:
        return owner()
    raise AssertionError(f"no way to make a {owner.__qualname__} for its canary")


@pytest.mark.parametrize("coupling", COUPLING, ids=lambda c: f"{c.owner.__name__}.{c.name}")
def test_what_rtt_sockjs_touches_is_still_there(coupling: Coupling) -> None:
    where = f"{LIBRARY} ({coupling.why})"
    library = "aiohttp" if coupling.owner.__module__.startswith("aiohttp") else "sockjs"
    if not coupling.instance:
        Touch(coupling.owner, coupling.name, coupling.parameters, where).check(library, version(library))
        return
    # Set by the owner's __init__ (its value may well be None): look on a live object. Newer
    # aiohttp releases declare some of these on the class instead.
    symbol = f"{coupling.owner.__module__}.{coupling.owner.__qualname__}.{coupling.name}"
    made = _instance(coupling.owner)
    assert coupling.name in vars(made) or hasattr(type(made), coupling.name), (
        f"{library} {version(library)} no longer sets {symbol}, which rtt touches in {where}: "
        "review that code against the new release"
    )


def _defined_over_upstream(cls: type) -> list[tuple[type, str]]:
    """(upstream class, name) of each attribute ``cls`` defines that a sockjs or aiohttp base also has."""
    found = []
    for name in vars(cls):
        if (name.startswith("__") and name != "__init__") or name == "_abc_impl":
            continue
        for base in cls.__mro__[1:]:
            if base.__module__.startswith(("sockjs", "aiohttp")) and name in vars(base):
                found.append((base, name))
                break
    return found


def test_every_override_in_library_is_listed() -> None:
    listed = {(c.owner, c.name) for c in COUPLING}
    classes = [
        cls
        for cls in vars(_library).values()
        if isinstance(cls, type) and cls.__module__ == _library.__name__
    ]
    classes += [cls for cls in HANDLERS.values() if cls.__module__ == _library.__name__]
    overrides = {touch for cls in classes for touch in _defined_over_upstream(cls)}
    assert overrides, "rtt_sockjs._library overrides nothing: is this test still looking in the right place?"
    missing = sorted(
        f"{owner.__module__}.{owner.__qualname__}.{name}"
        for owner, name in overrides
        if (owner, name) not in listed
    )
    assert not missing, f"rtt_sockjs._library overrides {missing} without a COUPLING entry (reason, version)"


def test_the_library_route_is_given_rtts_transport_table() -> None:
    """rtt finds add_endpoint's route object by its type, not by the order of its routes."""
    app = web.Application()
    manager = sockjs.SessionManager("rtt", app, _ignore)
    _library.add_endpoint(app, manager, "https://example.invalid/sockjs.js")
    answering = {getattr(route.handler, "__self__", None) for route in app.router.routes()}
    owners = {owner for owner in answering if isinstance(owner, SockJSRoute)}
    assert len(owners) == 1
    assert next(iter(owners)).handlers is HANDLERS


def test_a_route_rtt_cannot_find_fails_loudly() -> None:
    """Routes answered by something else (a release that moved its route object) stop rtt at once."""
    app = web.Application()
    routes = [app.router.add_get("/", _answer), app.router.add_get("/info", _answer)]
    with pytest.raises(RuntimeError, match=r"sockjs\.route\.SockJSRoute with a 'handlers' table"):
        _library.library_route(routes)


def test_the_transport_table_and_add_endpoint_are_as_rtt_expects() -> None:
    """rtt keeps the library's transports, by name, each HTTP one with rtt's receiving loop."""
    expected = {
        "eventsource",
        "htmlfile",
        "jsonp",
        "jsonp_send",
        "websocket",
        "xhr",
        "xhr_send",
        "xhr_streaming",
    }
    assert expected <= set(transport_handlers), (
        f"sockjs {version('sockjs')} changed its transport table: {sorted(transport_handlers)}; "
        f"review HANDLERS in {LIBRARY}"
    )
    for name, cls in HANDLERS.items():
        if issubclass(transport_handlers[name], StreamingTransport):
            assert issubclass(cls, _library.Receiving), name
    parameters = set(inspect.signature(sockjs.add_endpoint).parameters)
    wanted = {
        "app",
        "handler",
        "name",
        "prefix",
        "manager",
        "sockjs_cdn",
        "cookie_needed",
        "disable_transports",
    }
    assert wanted <= parameters, (
        f"sockjs {version('sockjs')} changed add_endpoint{sorted(parameters)}; "
        f"review add_endpoint in {LIBRARY}"
    )
