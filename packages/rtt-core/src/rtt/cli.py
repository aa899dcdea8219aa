"""The ``rtt`` command (SPEC.md 16): list transports, serve a demo app, check a plugin.

::

    rtt list                                   installed transports and brokers, and any that failed to load
    rtt serve --transport ws --app chat        a chat server and its page, on any transport
    rtt serve -t ws --app chat --workers 4 --broker redis://127.0.0.1:6379/0
                                               the same on four processes sharing one port
    rtt serve -t picows --loop uvloop          the echo demo on uvloop's event loop (pip install uvloop)
    rtt serve -t ws --certfile cert.pem --keyfile key.pem
                                               the same over TLS: wss:// and an https:// chat page
    rtt check foo                              the conformance kit against the plugin "foo"
    rtt new foo                                write rtt-foo/, a plugin that passes rtt check foo

Standard library only, like the rest of rtt-core (``rtt check`` needs pytest,
which ``pip install 'rtt-core[testing]'`` brings). A mistake of the user's is
one line ``rtt: error: ...`` on standard error and exit status 2; a failure at
run time (a plugin that does not load, a port in use, a failed check) is
exit status 1. Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import importlib
import os
import signal
import socket
import ssl
import sys
import textwrap
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .errors import ConfigError, PluginError, RttError
from .registry import BROKER_ENV_VAR, ENV_VAR, PluginInfo, available, load, load_broker
from .transport import Capabilities, Transport

if TYPE_CHECKING:
    from ._workers import WorkerLink

__all__ = ["CliError", "main"]

#: The hidden ``rtt serve`` flag that makes a process a worker of ``--workers`` (see :mod:`rtt._workers`).
WORKER_FLAG = "--worker-fd"

EXIT_USAGE = 2
"""Exit status for what must be fixed before the command can run: typed, configured or installed wrong."""
EXIT_FAILURE = 1
"""Exit status for a failure at run time: the command ran and something failed or broke."""

#: The top-level keys of a ``--config`` file that go to :func:`rtt.load`.
LOAD_KEYS = frozenset({"transport", "options", "broker"})
#: The top-level keys of a ``--config`` file that only ``rtt serve`` reads (``rtt check`` ignores them).
SERVE_KEYS = frozenset({"loop", "certfile", "keyfile"})
CONFIG_KEYS = LOAD_KEYS | SERVE_KEYS

#: The event loops of ``rtt serve --loop``: asyncio's own (the default) and uvloop's, if installed.
LOOPS = ("asyncio", "uvloop")


class CliError(Exception):
    """An error shown to the user as one line, ``rtt: error: MESSAGE``, with an exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, wrapping only at spaces, so a command in the help can be copied whole."""

    # textwrap breaks after hyphens by default: "pip install 'rtt-" / "core[testing]'".
    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtt`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        command: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
        if command is None:
            raise CliError(
                "choose a command: list, serve or check (or new, to write a plugin; see 'rtt --help')"
            )
        return command(args)
    except CliError as exc:
        print(f"rtt: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        # Ctrl-C outside the loop's own handling (while starting up, say): no traceback.
        print("rtt: interrupted", file=sys.stderr)
        return 130


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="rtt",
        formatter_class=_Formatter,
        description="Realtime Transports for Python: one API over WebSocket, Engine.IO and SockJS.",
        epilog="Each command has its own --help. SPEC.md section 16 describes them.",
    )
    parser.add_argument("--version", action="version", version=f"rtt {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        formatter_class=_Formatter,
        help="installed transports and brokers, and any that failed to load",
        description="List the transports registered in the rtt.transports entry point group: "
        "name, distribution, version and capabilities, then any that failed to load, with the reason; "
        "then the same for the brokers registered in the rtt.brokers group.",
    )
    listing.set_defaults(run=_cmd_list)

    serve = commands.add_parser(
        "serve",
        formatter_class=_Formatter,
        help="serve the echo or chat demo on a transport",
        description="Serve a demo app on a transport until Ctrl-C or SIGTERM. 'echo' sends every "
        "message back to its sender; 'chat' broadcasts every message to every connected socket and "
        "serves a chat page for browsers that uses the transport's browser client. The transport "
        f"comes from --transport, else the config file, else the {ENV_VAR} environment variable. "
        "With a broker (--broker, the config file's broker key, or the "
        f"{BROKER_ENV_VAR} environment variable) the process joins the other processes on that "
        "broker; --workers N runs N such processes on one port.",
    )
    _transport_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="port of the transport server (default: 8000; 0: a free port)",
    )
    serve.add_argument(
        "--app", choices=("echo", "chat"), default="echo", help="the demo app to serve (default: echo)"
    )
    serve.add_argument(
        "--page-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="port of the chat page's HTTP server (default: the transport's port + 1; 0: a free port)",
    )
    serve.add_argument(
        "--broker",
        metavar="URL",
        help="join other processes through this broker: a URL such as redis://127.0.0.1:6379/0 or a "
        f"broker's name (default: the config file's broker, else {BROKER_ENV_VAR})",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="run N worker processes on one port (SO_REUSEPORT), joined through the broker, which is "
        "then required; a worker that dies is restarted",
    )
    serve.add_argument(
        "--certfile",
        type=Path,
        metavar="FILE",
        help="serve over TLS with this PEM certificate (chain) and --keyfile: wss:// or https:// URLs and "
        "an https:// chat page (default: the config file's certfile)",
    )
    serve.add_argument(
        "--keyfile",
        type=Path,
        metavar="FILE",
        help="the unencrypted PEM private key of --certfile (default: the config file's keyfile)",
    )
    serve.add_argument(
        "--loop",
        choices=LOOPS,
        default=None,
        help="the event loop to serve on (default: the config file's loop, else asyncio); uvloop is "
        "not a dependency of rtt: pip install uvloop",
    )
    # Internal: set by the parent of --workers on each worker it runs (rtt._workers).
    serve.add_argument(WORKER_FLAG, dest="worker_fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument(
        "--node-modules",
        type=Path,
        default=None,
        metavar="DIR",
        help="an npm install to serve the transport's third-party browser library from "
        "(default: ./node_modules; without it the page loads the library from a CDN)",
    )
    serve.set_defaults(run=_cmd_serve)

    check = commands.add_parser(
        "check",
        formatter_class=_Formatter,
        help="run the conformance kit against an installed transport",
        description="Run rtt's conformance kit (rtt.testing.TransportTests) with pytest against an "
        "installed transport, the same cases a plugin's own test file runs, and exit with status 1 "
        "if any case fails. Needs pytest: pip install 'rtt-core[testing]'.",
    )
    check.add_argument(
        "name", nargs="?", metavar="NAME", help=f"the transport (default: from --config, else {ENV_VAR})"
    )
    check.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML file with the transport's options to check it with (see 'rtt serve --help')",
    )
    check.add_argument(
        "-k", dest="keyword", metavar="EXPR", help="only the cases matching this pytest -k expression"
    )
    check.add_argument(
        "--broker",
        metavar="URL",
        help="check a broker instead (rtt.testing.BrokerTests): its URL or name; the cluster's nodes "
        "serve the transport NAME (default: mock, from rtt-mock)",
    )
    check.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing case")
    check.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    check.set_defaults(run=_cmd_check)

    new = commands.add_parser(
        "new",
        formatter_class=_Formatter,
        help="write a new transport plugin that passes rtt check as written",
        description="Write DIR/rtt-NAME, a complete transport plugin distribution (SPEC.md 14): "
        "pyproject.toml registering NAME in the rtt.transports entry point group, README.md, "
        "src/rtt_NAME/ (transport, server, client and wire modules: newline-delimited JSON over TCP "
        "on the standard library) and tests/test_conformance.py. As written it passes the "
        "conformance kit; put your library in its place. An existing directory is never overwritten.",
    )
    new.add_argument(
        "name",
        metavar="NAME",
        help="the transport's name: lowercase letters and digits, starting with a letter, "
        "with single '-' or '_' between them",
    )
    new.add_argument(
        "--dir",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="where to write rtt-NAME (default: the current directory; made if missing)",
    )
    new.set_defaults(run=_cmd_new)
    return parser


def _transport_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", "-t", metavar="NAME", help="the transport's name, e.g. ws")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help='a TOML file: transport = "NAME", an [options] table of the transport\'s options and '
        'optionally broker = "URL" (and for rtt serve loop = "uvloop")',
    )


def _workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"at least one worker, got {count}")
    return count


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


# -- Choosing the transport ----------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    """The table in a TOML config file; every problem is a :class:`CliError`."""
    try:
        with path.open("rb") as file:
            config = tomllib.load(file)
    except OSError as exc:
        raise CliError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        # Named here, before a misspelled "transport" can surface as "no transport given".
        near = difflib.get_close_matches(unknown[0], CONFIG_KEYS, n=1, cutoff=0.75)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise CliError(
            f"{path}: unknown key {', '.join(map(repr, unknown))}{hint}; "
            f"a config file has {', '.join(sorted(CONFIG_KEYS))}"
        )
    if "transport" in config and not isinstance(config["transport"], str):
        raise CliError(f'{path}: transport must be a string, e.g. transport = "ws"')
    if "broker" in config and not isinstance(config["broker"], str | dict):
        raise CliError(
            f'{path}: broker must be a string, e.g. broker = "redis://127.0.0.1:6379/0", '
            "or a table with a broker key and an options table"
        )
    for key in ("certfile", "keyfile"):
        if key in config and not isinstance(config[key], str):
            raise CliError(
                f'{path}: {key} must be a string, the path of a PEM file, e.g. {key} = "{key}.pem"'
            )
    if "loop" in config and config["loop"] not in LOOPS:
        raise CliError(f"{path}: loop must be one of {', '.join(map(repr, LOOPS))}, got {config['loop']!r}")
    return config


def load_transport(name: str | None, config_path: Path | None, broker: str | None = None) -> Transport:
    """The transport named by ``name``, else by the config file, else by ``RTT_TRANSPORT``.

    The file's options (and its ``broker``, which ``broker`` replaces) go
    through :func:`rtt.load` as a config mapping, so they are validated
    exactly as the Python API validates them; without either, ``rtt.load``
    takes the broker from ``RTT_BROKER``.
    """
    config = read_config(config_path) if config_path is not None else {}
    config = {key: value for key, value in config.items() if key in LOAD_KEYS}
    chosen = name or config.get("transport") or os.environ.get(ENV_VAR, "").strip()
    if not chosen:
        installed = ", ".join(info.name for info in _transports(available()) if info.ok) or "none"
        raise CliError(
            f'no transport given: use --transport NAME, transport = "NAME" in a --config file, or '
            f"the {ENV_VAR} environment variable (installed: {installed})"
        )
    where = f"{config_path}: " if config_path is not None else ""
    if broker is not None:
        # Checked on its own first, so that a mistake in it is not blamed on the config file.
        try:
            load_broker(broker)
        except PluginError as exc:
            raise CliError(str(exc), EXIT_FAILURE) from None
        except ConfigError as exc:
            raise CliError(f"--broker: {exc}") from None
        config["broker"] = broker
    try:
        return load({**config, "transport": chosen})
    except PluginError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None
    except ConfigError as exc:
        raise CliError(f"{where}{exc}") from None
    except RttError as exc:  # pragma: no cover - load raises only the two above; a guard for plugins
        raise CliError(f"{where}{exc}") from None


# -- rtt list --------------------------------------------------------------------


def capability_names(capabilities: Capabilities) -> list[str]:
    """The capabilities a transport has, in the order :class:`~rtt.Capabilities` declares them."""
    return [f.name for f in fields(capabilities) if getattr(capabilities, f.name)]


def _transports(infos: list[PluginInfo]) -> list[PluginInfo]:
    """The transports among :func:`rtt.available`'s plugins (it lists brokers too)."""
    return [info for info in infos if info.kind == "transport"]


def _listing(infos: list[PluginInfo], kind: str, last_column: str) -> tuple[list[list[str]], list[list[str]]]:
    """The rows (a header first) of the plugins of ``kind`` that load, and of those that fail to."""
    rows = [[kind, "distribution", "version", last_column]]
    failed: list[list[str]] = []
    for info in infos:
        if info.kind != kind:
            continue
        row = [info.name, info.distribution or "?", info.version or "?"]
        if info.ok:
            rows.append([*row, ", ".join(capability_names(info.capabilities)) if info.capabilities else ""])
        else:
            failed.append([*row, info.error or "unknown error"])
    return rows, failed


def _cmd_list(args: argparse.Namespace) -> int:
    infos = available()
    transports, failed = _listing(infos, "transport", "capabilities")
    brokers, brokers_failed = _listing(infos, "broker", "")
    # One set of column widths for both tables, so they line up.
    widths = [max(len(row[i]) for row in [*transports, *failed, *brokers, *brokers_failed]) for i in range(3)]

    def line(row: list[str]) -> str:
        cells = [*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]]
        return "  ".join(cells).rstrip()

    def section(rows: list[list[str]], failed: list[list[str]], empty: str, failed_title: str) -> None:
        print(empty if len(rows) == 1 and not failed else "\n".join(map(line, rows)))
        if failed:
            print(f"\n{failed_title}:")
            for row in failed:
                print(line(row))

    section(
        transports,
        failed,
        "no transports installed: pip install rtt-ws (or rtt-engineio, rtt-sockjs)",
        "failed to load",
    )
    print("\nbrokers:")
    section(
        brokers,
        brokers_failed,
        "no brokers installed: pip install rtt-redis (needed for rtt serve --broker and --workers)",
        "brokers that failed to load",
    )
    return 0


# -- rtt serve -------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.worker_fd is not None:
        from ._workers import WorkerLink

        link = WorkerLink(args.worker_fd)
        try:
            return _serve_one(args, link)
        except CliError as exc:
            # The parent prints it (once, however many workers fail alike): not on stderr here.
            link.failed(str(exc), exc.status)
            return exc.status
    if args.workers is not None:
        return _serve_workers(args)
    return _serve_one(args, None)


def _page_port(args: argparse.Namespace) -> int:
    page_port: int | None = args.page_port
    if page_port is None:
        page_port = args.port + 1 if args.port else 0
        if page_port > 65535:
            raise CliError(f"no port after {args.port} for the chat page: choose one with --page-port")
    return page_port


def _loop(args: argparse.Namespace) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """``rtt serve``'s event loop (``--loop``, else the config file's, else asyncio) and its factory.

    The factory is ``None`` for asyncio's own loop. uvloop is imported here,
    by name, because it is not a dependency of rtt-core: without it, the
    error says how to install it.
    """
    name: str | None = args.loop
    where = "--loop uvloop"
    if name is None and args.config is not None:
        name = read_config(args.config).get("loop")
        where = f'{args.config}: loop = "uvloop"'
    if name is None or name == "asyncio":
        return "asyncio", None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        raise CliError(f"{where} needs uvloop, which is not installed: pip install uvloop") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return name, factory


def _tls_files(args: argparse.Namespace) -> tuple[Path, Path] | None:
    """The certificate and key files of ``--certfile``/``--keyfile``, else of the config file, or ``None``.

    A path in the config file is relative to the file's own folder.
    """
    files: dict[str, Path | None] = {"certfile": args.certfile, "keyfile": args.keyfile}
    named = {key: f"--{key}" for key in files}
    if args.config is not None and None in files.values():
        config = read_config(args.config)
        for key, value in files.items():
            if value is None and key in config:
                files[key] = args.config.parent / config[key]
                named[key] = f"{args.config}: {key}"
    certfile, keyfile = files["certfile"], files["keyfile"]
    if certfile is None and keyfile is None:
        return None
    if keyfile is None:
        raise CliError(
            f"{named['certfile']} needs --keyfile (or keyfile in the config file): its private key"
        )
    if certfile is None:
        raise CliError(
            f"{named['keyfile']} needs --certfile (or certfile in the config file): its certificate"
        )
    return certfile, keyfile


class _EncryptedKey(Exception):
    """Raised by the password callback: the key wants a password, which ``rtt serve`` cannot take."""


def _no_password() -> str:
    raise _EncryptedKey


def server_tls(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """A server-side TLS context with the certificate chain in ``certfile`` and its key in ``keyfile``.

    Every problem is a one-line :class:`CliError` naming the file: missing or
    unreadable, not a PEM certificate or key, an encrypted key, or a key that
    is not the certificate's.
    """
    for path in (certfile, keyfile):
        try:
            path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    check = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # Parses the certificates alone, so a bad certificate file is not blamed on the key.
        check.load_verify_locations(cafile=certfile)
    except ssl.SSLError:
        raise CliError(f"{certfile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_password)
    except _EncryptedKey:
        raise CliError(f"{keyfile} is encrypted: rtt serve takes an unencrypted private key") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise CliError(
                f"the key in {keyfile} is not the private key of the certificate in {certfile}"
            ) from None
        raise CliError(f"{keyfile} holds no PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    return context


def _tls(args: argparse.Namespace, transport: Transport) -> tuple[ssl.SSLContext, tuple[Path, Path]] | None:
    """The TLS context ``rtt serve`` was asked for, and its files, or ``None``; checked for the transport."""
    files = _tls_files(args)
    if files is None:
        return None
    if not transport.capabilities.tls:
        able = ", ".join(
            info.name for info in _transports(available()) if info.capabilities and info.capabilities.tls
        )
        raise CliError(
            f"{transport.name} cannot serve TLS (it lacks the tls capability): use a transport that can "
            f"({able or 'none installed'}), or a reverse proxy that terminates TLS in front of it"
        )
    return server_tls(*files), files


def describe_loop() -> str:
    """The running event loop's class, with its distribution's version if it is not asyncio's."""
    kind = type(asyncio.get_running_loop())
    text = f"{kind.__module__}.{kind.__qualname__}"
    package = sys.modules.get(kind.__module__.partition(".")[0])
    version = getattr(package, "__version__", None)
    return f"{text} ({package.__name__} {version})" if package is not None and version else text


def _run(
    main: Callable[[asyncio.Event], Any], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> int:
    """Run ``main(stop)`` on a new loop from ``loop_factory`` (``None``: asyncio's own) until it returns."""
    # asyncio.run takes loop_factory from Python 3.12 on; Runner takes it on 3.11 too.
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_until_signalled(main))


def _serve_one(args: argparse.Namespace, link: WorkerLink | None) -> int:
    """One process: plain ``rtt serve``, with or without a broker, or one worker of ``--workers``."""
    from ._serve import ServeSettings, serve  # the demo's web server is loaded only when used

    loop, loop_factory = _loop(args)
    transport = load_transport(args.transport, args.config, args.broker)
    tls = _tls(args, transport)
    settings = ServeSettings(
        host=args.host,
        port=args.port,
        app=args.app,
        page_port=0 if link is not None else _page_port(args),
        node_modules=args.node_modules,
        reuse_port=link is not None,
        loop=loop,
        tls=tls[0] if tls is not None else None,
    )

    async def run(stop: asyncio.Event) -> None:
        if link is None:
            await serve(transport, settings, stop)
            return
        async with link.watching_parent(stop):
            await serve(transport, settings, stop, ready=link.ready)

    return _run(run, loop_factory)


def _workers_refusal(transport: Transport) -> str | None:
    """Why ``transport`` cannot be served by several workers on one port, or ``None`` if it can.

    The kernel hands each TCP connection to any of the workers, so a session
    made of several connections (HTTP long-polling, streaming) is split among
    workers unless the transport routes a request to the worker holding its
    session; a transport that does declares ``routes_sessions = True``.
    """
    if not transport.capabilities.http_fallbacks or type(transport).routes_sessions:
        return None
    return (
        f"{transport.name} cannot be served by several workers yet: its HTTP fallbacks send one session's "
        "requests over several connections, which may reach different workers; use one worker (no "
        "--workers, or --workers 1), or several 'rtt serve --broker' processes on their own ports behind "
        "a load balancer with sticky sessions"
    )


def _serve_workers(args: argparse.Namespace) -> int:
    """``--workers N``: the parent, which runs the workers and the chat page (SPEC.md 16.2)."""
    from ._workers import serve_workers

    # Checked here, so a missing uvloop is one line and not every worker's failure. The parent itself
    # only supervises and serves the page: it stays on asyncio's loop.
    loop, _ = _loop(args)
    transport = load_transport(args.transport, args.config, args.broker)
    if transport.options.get("broker") is None:
        raise CliError(
            '--workers needs a broker to join the workers: use --broker URL, broker = "URL" in a '
            f"--config file, or the {BROKER_ENV_VAR} environment variable"
        )
    if args.workers > 1 and (refusal := _workers_refusal(transport)) is not None:
        raise CliError(refusal)
    # Checked here once, so a bad file is one line; each worker loads the files again for itself.
    tls = _tls(args, transport)
    broker = load_broker(transport.options["broker"])
    if args.workers > 1 and broker is not None and not broker.spans_processes:
        raise CliError(
            f"broker {broker.name!r} joins servers of one process only, so it cannot join workers; "
            "use a broker such as redis (pip install rtt-redis)"
        )
    if not hasattr(socket, "SO_REUSEPORT"):
        raise CliError("--workers shares one port with SO_REUSEPORT, which this operating system lacks")
    page_port = _page_port(args)

    def worker_command(port: int, fd: int) -> list[str]:
        command = ["serve", "--transport", transport.name, "--host", args.host, "--port", str(port)]
        command += ["--app", args.app, "--loop", loop, WORKER_FLAG, str(fd)]
        if args.config is not None:
            command += ["--config", str(args.config.resolve())]
        if args.broker is not None:
            command += ["--broker", args.broker]  # else from the same file or RTT_BROKER, inherited
        if tls is not None:
            command += ["--certfile", str(tls[1][0].resolve()), "--keyfile", str(tls[1][1].resolve())]
        return command

    return _run(
        lambda stop: serve_workers(
            transport,
            host=args.host,
            port=args.port,
            count=args.workers,
            command=worker_command,
            app=args.app,
            page_port=page_port,
            node_modules=args.node_modules,
            stop=stop,
            loop=loop,
            tls=tls[0] if tls is not None else None,
        ),
        None,
    )


async def _until_signalled(run: Callable[[asyncio.Event], Any]) -> int:
    """Run ``run(stop)``, setting ``stop`` on SIGINT or SIGTERM, so shutdown is graceful."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows has no add_signal_handler
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        await run(stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0


# -- rtt check -------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        import pytest  # noqa: F401  # checked first: without it nothing else matters
    except ImportError:
        raise CliError(
            "rtt check runs the conformance kit with pytest, which is not installed: "
            "pip install 'rtt-core[testing]'",
            EXIT_USAGE,
        ) from None
    from ._check import run_check

    name = args.name
    if args.broker is not None:
        try:
            load_broker(args.broker)  # a bad name or URL is one line, not a failure in every case
        except PluginError as exc:
            raise CliError(str(exc), EXIT_FAILURE) from None
        except ConfigError as exc:
            raise CliError(f"--broker: {exc}") from None
        if name is None and args.config is None and not os.environ.get(ENV_VAR, "").strip():
            name = "mock"  # the nodes need some transport; the broker kit's default
    # Loaded once here so that a bad name or option is one line, not a failure in every case.
    transport = load_transport(name, args.config)
    options = read_config(args.config).get("options", {}) if args.config is not None else {}
    return run_check(
        transport.name,
        dict(options),
        keyword=args.keyword,
        exitfirst=args.exitfirst,
        verbose=args.verbose,
        broker=args.broker,
    )


# -- rtt new ---------------------------------------------------------------------


def _cmd_new(args: argparse.Namespace) -> int:
    from ._new import SkeletonError, placeholders, write_skeleton

    try:
        target = write_skeleton(args.name, args.dir)
    except SkeletonError as exc:
        raise CliError(str(exc), EXIT_USAGE if exc.usage else EXIT_FAILURE) from None
    dist = placeholders(args.name)["dist"]
    print(f"rtt: wrote {target}, the transport {args.name!r} (distribution {dist})")
    print(f"rtt: next: pip install -e '{target}[testing]' && rtt check {args.name}")
    return 0
