"""The ``rtt`` command, run as a user runs it: list, serve, check, and its errors (SPEC.md 16).

Every test runs the command in a subprocess (``python -m rtt``, the same
``rtt.cli:main`` the console script calls) on 127.0.0.1 with free ports, and
drives ``rtt serve`` with the Python client of the transport it serves.
"""

from __future__ import annotations

import asyncio
import http.client
import signal
import socket
import ssl
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from cli_support import NODE_MODULES, command_env, run, serving
from cryptography.hazmat.primitives import serialization
from tls_support import NAMES, certificate_authority, client_context

import rtt
import rtt.cli
from rtt.testing import eventually

if TYPE_CHECKING:
    from conftest import FreshVenv

#: Every transport with a Python client and a browser client, which rtt serve is for.
TRANSPORTS = ["ws", "picows", "engineio", "sockjs"]


def fetch(
    url: str, method: str = "GET", *, context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of one HTTP request (HTTPS for ``https://``, trusting ``context``)."""
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=10, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, parts.path or "/")
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- rtt --help and rtt list ----------------------------------------------------------------


def test_help_on_every_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    top = run("--help")
    assert top.status == 0 and all(command in top.out for command in ("list", "serve", "check"))
    for command, words in {
        "list": ["capabilities"],
        "serve": [
            *("--transport", "--host", "--port", "--app", "--config", "RTT_TRANSPORT", "--page-port"),
            *(
                "--broker",
                "--workers",
                "RTT_BROKER",
                "--loop",
                "pip install uvloop",
                "--certfile",
                "--keyfile",
            ),
        ],
        "check": ["NAME", "conformance kit", "rtt-core[testing]"],
    }.items():
        result = run(command, "--help", env=command_env({"COLUMNS": "200"}))  # no wrapped words
        assert result.status == 0, result.err
        assert all(word in result.out for word in words), result.out
    # At any width, a command in the help is never cut at a hyphen, so it can be copied whole.
    # In this process (argparse reads COLUMNS each time): 61 interpreters would take a minute.
    for columns in range(40, 101):
        monkeypatch.setenv("COLUMNS", str(columns))
        with pytest.raises(SystemExit) as exited:
            rtt.cli.main(["check", "--help"])
        assert exited.value.code == 0
        narrow = capsys.readouterr().out
        assert "pip install 'rtt-core[testing]'" in " ".join(narrow.split()), columns
    assert run("--version").out.strip() == f"rtt {rtt.__version__}"


def test_no_command_is_a_one_line_error() -> None:
    result = run()
    assert result.status == 2
    assert "choose a command: list, serve or check" in result.error_line()


def test_list_shows_transports_then_the_ones_that_failed() -> None:
    result = run("list")
    assert result.status == 0, result.err
    transports, brokers = result.out.split("\nbrokers:\n")
    table, failed = transports.split("\nfailed to load:\n")
    rows = {line.split()[0]: line.split(maxsplit=3) for line in table.splitlines()}
    assert rows.pop("transport") == ["transport", "distribution", "version", "capabilities"]
    assert {"mock", "ws", "engineio", "sockjs", "tcpline"} <= set(rows)
    assert rows["ws"][1:3] == ["rtt-ws", rtt.__version__]
    assert rows["ws"][3] == "binary, python_client, browser_client, aiohttp, asgi, tls"
    assert rows["picows"][3] == "binary, python_client, browser_client, tls"
    assert rows["engineio"][3] == "binary, http_fallbacks, python_client, browser_client, aiohttp, asgi, tls"
    assert rows["sockjs"][3] == "http_fallbacks, python_client, browser_client, aiohttp, tls"
    assert rows["tcpline"][1:] == ["rtt-tcpline", "0.1.0", "python_client, tls"]
    assert rows["mock"][3] == "binary, python_client"
    assert "broken" not in rows
    (broken,) = failed.splitlines()
    name, distribution, version, reason = broken.split(maxsplit=3)
    assert (name, distribution, version) == ("broken", "rtt-broken", "0.1.0")
    assert "failed to import: ModuleNotFoundError" in reason and "rtt_broken_missing_dependency" in reason
    # Brokers (rtt.brokers) come in a section of their own, never among the transports.
    broker_rows = {line.split()[0]: line.split() for line in brokers.splitlines()}
    assert broker_rows.pop("broker") == ["broker", "distribution", "version"]
    assert broker_rows["redis"] == ["redis", "rtt-redis", rtt.__version__]
    assert broker_rows["memory"] == ["memory", "rtt-mock", rtt.__version__]
    assert not {"redis", "memory"} & set(rows)


# -- Errors: one line, no traceback -----------------------------------------------------------


def test_unknown_transport() -> None:
    result = run("serve", "--transport", "nope")
    assert result.status == 2
    line = result.error_line()
    assert "unknown transport 'nope'" in line and "pip install rtt-nope" in line and "ws" in line


def test_no_transport_anywhere() -> None:
    result = run("serve")
    assert result.status == 2
    assert "no transport given" in result.error_line() and "RTT_TRANSPORT" in result.err


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('transport = "ws"\n[options]\nmax_mesage_size = 10\n', "unknown option 'max_mesage_size'"),
        ('transport = "ws"\n[options]\nmax_message_size = -1\n', "max_message_size must be >= 1"),
        ('transport = "ws"\n[options]\nping_interval = "soon"\n', "ping_interval must be a number"),
        (
            'transport = "ws"\nport = 8000\n',
            "unknown key 'port'; a config file has broker, certfile, keyfile, loop, options",
        ),
        ('transport = "ws"\noptions = 3\n', "'options' must be a mapping"),
        ("transport = 3\n", "transport must be a string"),
        ('transport = "nope"\n', "unknown transport 'nope'"),
        ('transport = "ws\n', "is not valid TOML"),
        ("[options\n", "is not valid TOML"),
        (
            'transprt = "ws"\n',
            "unknown key 'transprt' (did you mean 'transport'?); "
            "a config file has broker, certfile, keyfile, loop, options, transport",
        ),
        (
            'transport = "ws"\n[option]\nmax_message_size = 1\n',
            "unknown key 'option' (did you mean 'options'?)",
        ),
        ('transport = "ws"\nbroker = 3\n', "broker must be a string"),
        ('transport = "ws"\nbroker = "nope://host/0"\n', "unknown broker 'nope'"),
        (
            'transport = "ws"\n[broker]\nbroker = "redis://127.0.0.1:1/0"\nport = 1\n',
            "unknown broker config keys 'port'",
        ),
        (
            'transport = "ws"\n[broker]\nbroker = "redis"\noptions = { prefx = "a" }\n',
            "unknown option 'prefx'",
        ),
    ],
)
def test_bad_config_file(tmp_path: Path, config: str, expected: str) -> None:
    path = write(tmp_path / "rtt.toml", config)
    result = run("serve", "--config", str(path))
    assert result.status == 2
    line = result.error_line()
    assert expected in line and str(path) in line


def test_missing_config_file(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "missing.toml"))
    assert result.status == 2
    assert "cannot read config file" in result.error_line() and "No such file" in result.err


def test_bad_arguments_are_one_line_errors() -> None:
    for args, expected in [
        (["serve", "-t", "ws", "--app", "blog"], "invalid choice: 'blog'"),
        (["serve", "-t", "ws", "--port", "70000"], "a port is 0 to 65535"),
        (["serve", "-t", "ws", "--port", "http"], "not a port number"),
        (["serve", "-t", "ws", "--port", "65535"], "--page-port"),
        (["lsit"], "invalid choice: 'lsit'"),
    ]:
        result = run(*args)
        assert result.status == 2, args
        assert expected in result.error_line()


BROKEN_BROKER = """\
    class NotABroker:
        name = "ws"
"""


def test_brokers_are_listed_apart_and_never_taken_for_transports(tmp_path: Path) -> None:
    """A broker plugin named like a transport, that fails to load, changes nothing for the transport."""
    write(tmp_path / "rtt_oddbroker.py", BROKEN_BROKER)
    info = tmp_path / "rtt_oddbroker-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rtt-oddbroker\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[rtt.brokers]\nws = rtt_oddbroker:NotABroker\n")
    env = command_env({"PYTHONPATH": str(tmp_path)})
    result = run("list", env=env)
    assert result.status == 0, result.err
    transports, _, brokers = result.out.partition("\nbrokers:\n")
    assert [line.split()[:3] for line in transports.splitlines() if line.startswith("ws ")] == [
        ["ws", "rtt-ws", rtt.__version__]
    ]
    _, _, failed = brokers.partition("\nbrokers that failed to load:\n")
    name, distribution, version, reason = failed.strip().split(maxsplit=3)
    assert (name, distribution, version) == ("ws", "rtt-oddbroker", "0.1.0")
    assert reason == "broker 'ws' (rtt_oddbroker:NotABroker) is not a subclass of rtt.Broker"
    served = run("serve", "-t", "ws", "--broker", "ws", env=env)
    assert served.status == 1 and "is not a subclass of rtt.Broker" in served.error_line()


def test_a_plugin_that_fails_to_load_is_a_failure_not_a_usage_error() -> None:
    result = run("serve", "--transport", "broken")
    assert result.status == 1
    assert "transport 'broken'" in result.error_line() and "failed to import" in result.err


def test_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--transport", "ws", "--port", str(port))
    assert result.status == 1
    line = result.error_line()
    # The OS's words, not asyncio's Python tuple, and the flag that gets around it.
    assert line.endswith(
        f"cannot serve ws on 127.0.0.1:{port}: Address already in use (choose another with --port)"
    )


async def test_page_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await asyncio.to_thread(
            run, "serve", "-t", "ws", "--app", "chat", "--port", "0", "--page-port", str(port)
        )
    assert result.status == 1
    assert result.error_line().endswith(
        f"cannot serve the chat page on 127.0.0.1:{port}: "
        "Address already in use (choose another with --page-port)"
    )


# -- rtt serve: echo and chat, driven by each transport's Python client ----------------------


async def check_echo(name: str, url: str) -> None:
    """Two clients of ``name`` at ``url``: each gets back what it sent, and only that."""
    transport = rtt.load(name)
    async with transport.client(url) as one, transport.client(url) as two:
        messages: list[str | bytes] = ["hello", "héllo 🚀", b"\x00\x01\xff", ""]
        for message in messages:
            await one.send(message)
            assert await asyncio.wait_for(one.recv(), 5) == message
        await two.send("two")
        assert await asyncio.wait_for(two.recv(), 5) == "two"
        # Echo answers only the sender: nothing else is waiting for the first client.
        await one.send("last")
        assert await asyncio.wait_for(one.recv(), 5) == "last"


async def check_chat(name: str, url: str) -> None:
    """Two clients of ``name`` at ``url``: each message reaches both, the sender included."""
    transport = rtt.load(name)
    async with transport.client(url) as one, transport.client(url) as two:
        await one.send("hi from one")
        assert await asyncio.wait_for(one.recv(), 5) == "hi from one"
        assert await asyncio.wait_for(two.recv(), 5) == "hi from one"
        await two.send(b"\x00bytes")
        assert await asyncio.wait_for(one.recv(), 5) == b"\x00bytes"
        assert await asyncio.wait_for(two.recv(), 5) == b"\x00bytes"


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_serve_echo(name: str) -> None:
    async with serving("--transport", name, "--port", "0") as served:
        assert served.name == name and served.page is None
        # asyncio's own loop, the default, is not announced.
        assert not any(line.startswith("rtt: event loop") for line in served.lines)
        await check_echo(name, served.url)


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_serve_chat(name: str) -> None:
    async with serving("--transport", name, "--port", "0", "--app", "chat") as served:
        assert served.name == name and served.page is not None
        await check_chat(name, served.url)


# -- rtt serve --loop uvloop ----------------------------------------------------------------------

UVLOOP_LINE = f"rtt: event loop: uvloop.Loop (uvloop {version('uvloop')})"


@pytest.mark.parametrize("name", TRANSPORTS)
@pytest.mark.parametrize("app", ["echo", "chat"])
async def test_serve_on_uvloop(name: str, app: str) -> None:
    """The apps, unchanged, on uvloop: the first line names the class of the loop the server runs on."""
    async with serving("-t", name, "--port", "0", "--app", app, "--loop", "uvloop") as served:
        assert served.lines[0] == UVLOOP_LINE, served.lines
        await (check_echo if app == "echo" else check_chat)(name, served.url)


async def test_loop_from_the_config_file_and_the_flag_over_it(tmp_path: Path) -> None:
    config = write(tmp_path / "rtt.toml", 'transport = "ws"\nloop = "uvloop"\n')
    async with serving("--port", "0", "--config", str(config)) as served:
        assert served.lines[0] == UVLOOP_LINE
        await check_echo("ws", served.url)
    async with serving("--port", "0", "--config", str(config), "--loop", "asyncio") as served:
        assert not any(line.startswith("rtt: event loop") for line in served.lines)


def without_uvloop(directory: Path) -> dict[str, str]:
    """An environment in which ``import uvloop`` fails, as where it is not installed.

    A ``sitecustomize`` module on ``PYTHONPATH`` puts ``None`` in ``sys.modules["uvloop"]``
    before anything runs, so the import raises ``ModuleNotFoundError``: a virtualenv
    without uvloop, at the cost of one small file.
    """
    (directory / "sitecustomize.py").write_text('import sys\n\nsys.modules["uvloop"] = None\n')
    return command_env({"PYTHONPATH": str(directory)})


def test_uvloop_not_installed_is_a_usage_error(tmp_path: Path) -> None:
    env = without_uvloop(tmp_path)
    result = run("serve", "-t", "ws", "--port", "0", "--loop", "uvloop", env=env)
    assert result.status == 2
    assert (
        result.error_line()
        == "rtt: error: --loop uvloop needs uvloop, which is not installed: pip install uvloop"
    )
    config = write(tmp_path / "rtt.toml", 'transport = "ws"\nloop = "uvloop"\n')
    result = run("serve", "--port", "0", "--config", str(config), env=env)
    assert result.status == 2
    assert result.error_line() == (
        f'rtt: error: {config}: loop = "uvloop" needs uvloop, which is not installed: pip install uvloop'
    )
    # The parent of --workers says it once, before starting any worker (the broker is never reached).
    result = run(
        "serve",
        "-t",
        "ws",
        "--workers",
        "2",
        "--broker",
        "redis://127.0.0.1:1/0",
        "--loop",
        "uvloop",
        env=env,
    )
    assert result.status == 2 and "pip install uvloop" in result.error_line()


def test_bad_loops_are_usage_errors(tmp_path: Path) -> None:
    result = run("serve", "-t", "ws", "--loop", "trio")
    assert result.status == 2 and "invalid choice: 'trio'" in result.error_line()
    config = write(tmp_path / "rtt.toml", 'transport = "ws"\nloop = "trio"\n')
    result = run("serve", "--config", str(config))
    assert result.status == 2
    assert result.error_line() == f"rtt: error: {config}: loop must be one of 'asyncio', 'uvloop', got 'trio'"


async def test_sigint_shuts_down_gracefully_and_clients_see_it() -> None:
    closed: list[rtt.CloseReason] = []
    async with serving("--transport", "ws", "--port", "0", stop=signal.SIGINT) as served:
        client = rtt.load("ws").client(served.url, reconnect=False)
        client.on("close", closed.append)
        await client.connect()
        await client.send("ping")
        assert await asyncio.wait_for(client.recv(), 5) == "ping"
    # Leaving the block stopped the server with SIGINT (Ctrl-C) and checked it exited 0.
    await eventually(lambda: bool(closed), 10, "the client to see the shutdown")
    assert closed == [rtt.CloseReason.SHUTDOWN]
    await client.close()


async def test_transport_from_flag_then_file_then_environment(tmp_path: Path) -> None:
    config = write(tmp_path / "rtt.toml", 'transport = "engineio"\n[options]\nmax_message_size = 64\n')
    env = command_env({"RTT_TRANSPORT": "sockjs"})
    async with serving("--port", "0", env=env) as served:
        assert served.name == "sockjs"
    async with serving("--port", "0", "--config", str(config), env=env) as served:
        assert served.name == "engineio"
        # The file's options are the transport's options: a message over 64 bytes closes.
        async with rtt.load("engineio").client(served.url, reconnect=False) as client:
            await client.send("x" * 64)
            assert await asyncio.wait_for(client.recv(), 5) == "x" * 64
            await client.send("y" * 65)
            assert await asyncio.wait_for(client.wait_closed(), 10) is rtt.CloseReason.MESSAGE_TOO_BIG
    async with serving("--port", "0", "--config", str(config), "--transport", "ws", env=env) as served:
        assert served.name == "ws" and served.url.startswith("ws://127.0.0.1:")


async def test_chat_page_server() -> None:
    async with serving(
        "-t", "engineio", "--app", "chat", "--port", "0", "--node-modules", str(NODE_MODULES)
    ) as served:
        assert served.page is not None
        page = served.page
        assert any(
            line.startswith("rtt: engine.io-client 6.") and "node_modules" in line for line in served.lines
        )
        status, headers, body = await asyncio.to_thread(fetch, page)
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"/chat-config.js" in body
        status, headers, body = await asyncio.to_thread(fetch, page + "chat-config.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert served.url.encode() in body
        assert (
            b'"/vendor/engine.io-client/dist/engine.io.min.js", "/rtt/rtt-client.js", "/rtt/rtt-engineio.js"'
            in body
        )
        for path in [
            "rtt/rtt-client.js",
            "rtt/rtt-engineio.js",
            "vendor/engine.io-client/dist/engine.io.min.js",
        ]:
            status, _, body = await asyncio.to_thread(fetch, page + path)
            assert status == 200 and len(body) > 1000, path
        # Only those files: nothing else of the disk or the packages is reachable.
        for path in ["rtt/../../etc/passwd", "vendor/engine.io-client/package.json", "rtt/", "chat.html"]:
            assert (await asyncio.to_thread(fetch, page + path))[0] == 404, path
        assert (await asyncio.to_thread(fetch, page, "POST"))[0] == 405
        status, headers, body = await asyncio.to_thread(fetch, page, "HEAD")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000


async def test_chat_page_falls_back_to_the_cdn(tmp_path: Path) -> None:
    async with serving("-t", "sockjs", "--app", "chat", "--port", "0", cwd=tmp_path) as served:
        assert served.page is not None
        (note,) = [line for line in served.lines if "sockjs-client" in line]
        # The exact command README.md gives, run where rtt serve runs; no restart needed after it.
        assert "not installed in node_modules (run: npm install --no-save sockjs-client@1.6)" in note
        assert "(no restart needed)" in note
        cdn = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6/dist/sockjs.min.js"
        assert cdn in note
        _, _, body = await asyncio.to_thread(fetch, served.page + "chat-config.js")
        assert f'"scripts": ["{cdn}", "/rtt/rtt-client.js", "/rtt/rtt-sockjs.js"]'.encode() in body


async def test_chat_page_refuses_a_library_of_the_wrong_version(tmp_path: Path) -> None:
    package = tmp_path / "node_modules" / "engine.io-client"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text('{"name": "engine.io-client", "version": "5.2.0"}')
    (package / "dist" / "engine.io.min.js").write_text("// old")
    async with serving("-t", "engineio", "--app", "chat", "--port", "0", cwd=tmp_path) as served:
        (note,) = [line for line in served.lines if "engine.io-client" in line]
        assert "is version 5.2.0, not 6" in note and "cdn.jsdelivr.net" in note


async def test_chat_without_a_browser_client_still_relays() -> None:
    async with serving("-t", "tcpline", "--app", "chat", "--port", "0") as served:
        assert served.page is None
        assert "tcpline has no browser client, so no chat page" in served.lines[0]
        transport = rtt.load("tcpline")
        async with transport.client(served.url) as one, transport.client(served.url) as two:
            await one.send("over tcp")
            assert await asyncio.wait_for(two.recv(), 5) == "over tcp"


# -- rtt serve --certfile/--keyfile: TLS -------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    """PEM files of a throwaway CA's certificate for 127.0.0.1, in one folder, and a client that trusts it."""

    folder: Path
    certfile: Path
    keyfile: Path
    client_tls: ssl.SSLContext


@pytest.fixture
def pem(tmp_path: Path) -> Pem:
    ca = certificate_authority()
    issued = ca.issue_cert(*NAMES)
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(certfile))
    issued.private_key_pem.write_to_path(str(keyfile))
    # Another certificate's key, and a file that is no PEM at all, for the errors.
    ca.issue_cert("other.example").private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    (tmp_path / "junk.pem").write_text("not a PEM file\n")
    # The key, encrypted with a password (rtt serve cannot ask for one).
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    (tmp_path / "encrypted-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return Pem(tmp_path, certfile, keyfile, client_context(ca))


TLS_TRANSPORTS = ["ws", "picows"]


@pytest.mark.parametrize("name", TLS_TRANSPORTS)
async def test_serve_over_tls(name: str, pem: Pem) -> None:
    """wss:// for the transport, https:// for the chat page, with the same certificate."""
    args = (
        "-t",
        name,
        "--app",
        "chat",
        "--port",
        "0",
        "--certfile",
        str(pem.certfile),
        "--keyfile",
        str(pem.keyfile),
    )
    async with serving(*args) as served:
        assert served.url.startswith("wss://127.0.0.1:") and served.page is not None
        assert served.page.startswith("https://127.0.0.1:")
        async with (
            rtt.load(name).client(served.url, ssl=pem.client_tls) as one,
            rtt.load(name).client(served.url, ssl=pem.client_tls) as two,
        ):
            await one.send("over TLS")
            assert await asyncio.wait_for(two.recv(), 5) == "over TLS"
        status, _, body = await asyncio.to_thread(fetch, served.page, context=pem.client_tls)
        assert status == 200 and b"rtt chat" in body
        _, _, config = await asyncio.to_thread(fetch, served.page + "chat-config.js", context=pem.client_tls)
        assert f'"url": "{served.url}"'.encode() in config
        # Without the test CA the client refuses the server, saying why.
        with pytest.raises(rtt.ConnectError, match="certificate"):
            await rtt.load(name).client(served.url, reconnect=False).connect()


async def test_tls_files_from_the_config_file_are_relative_to_it(pem: Pem, tmp_path: Path) -> None:
    config = write(pem.folder / "rtt.toml", 'transport = "ws"\ncertfile = "cert.pem"\nkeyfile = "key.pem"\n')
    async with serving("--port", "0", "--config", str(config), cwd=tmp_path.parent) as served:
        assert served.url.startswith("wss://")
        await check_echo_over(served.url, pem.client_tls)


async def check_echo_over(url: str, context: ssl.SSLContext) -> None:
    async with rtt.load("ws").client(url, ssl=context) as client:
        await client.send("echo")
        assert await asyncio.wait_for(client.recv(), 5) == "echo"


def test_tls_errors_are_one_line(pem: Pem) -> None:
    folder = pem.folder
    cert, key = str(pem.certfile), str(pem.keyfile)
    for args, expected in [
        (["--certfile", cert], "--certfile needs --keyfile"),
        (["--keyfile", key], "--keyfile needs --certfile"),
        (
            ["--certfile", str(folder / "missing.pem"), "--keyfile", key],
            f"cannot read {folder}/missing.pem: No such file",
        ),
        (
            ["--certfile", cert, "--keyfile", str(folder / "other-key.pem")],
            f"the key in {folder}/other-key.pem is not the private key of the certificate in {cert}",
        ),
        (
            ["--certfile", str(folder / "junk.pem"), "--keyfile", key],
            f"{folder}/junk.pem holds no PEM certificate",
        ),
        (["--certfile", key, "--keyfile", key], f"{key} holds no PEM certificate"),
        (
            ["--certfile", cert, "--keyfile", str(folder / "junk.pem")],
            f"{folder}/junk.pem holds no PEM private key",
        ),
        (
            ["--certfile", cert, "--keyfile", str(folder / "encrypted-key.pem")],
            f"{folder}/encrypted-key.pem is encrypted: rtt serve takes an unencrypted private key",
        ),
    ]:
        result = run("serve", "-t", "ws", "--port", "0", *args)
        assert result.status == 2, (args, result.err)
        assert expected in result.error_line(), (args, result.err)
    result = run("serve", "-t", "mock", "--port", "0", "--certfile", cert, "--keyfile", key)
    assert result.status == 2
    assert (
        "mock cannot serve TLS (it lacks the tls capability): use a transport that can ("
        in result.error_line()
    )
    config = write(folder / "bad.toml", 'transport = "ws"\ncertfile = "cert.pem"\n')
    result = run("serve", "--config", str(config))
    assert result.status == 2 and f"{config}: certfile needs --keyfile" in result.error_line()
    config = write(folder / "bad.toml", 'transport = "ws"\ncertfile = 1\nkeyfile = "key.pem"\n')
    result = run("serve", "--config", str(config))
    assert result.status == 2 and f"{config}: certfile must be a string" in result.error_line()


# -- rtt check ------------------------------------------------------------------------------------


def test_check_mock_passes() -> None:
    result = run("check", "mock")
    assert result.status == 0, result.out + result.err
    assert (
        "rtt: mock (rtt-mock 0.1.0) passes the conformance kit: 50 passed, 0 failed, 5 skipped" in result.out
    )


def test_check_of_selected_cases_never_claims_the_kit() -> None:
    result = run("check", "mock", "-k", "round_trip")
    assert result.status == 0, result.out + result.err
    assert result.out.splitlines()[-1] == (
        "rtt: mock (rtt-mock 0.1.0) passes the selected cases ('round_trip') of the conformance kit: "
        "1 passed, 0 failed, 0 skipped"
    )


def test_check_a_third_party_plugin_with_options(tmp_path: Path) -> None:
    """tcpline, from the test tree, as its author would check it: no test file, options from a file."""
    config = write(tmp_path / "tcpline.toml", 'transport = "tcpline"\n[options]\nclose_timeout = 2\n')
    result = run("check", "--config", str(config), "-v", cwd=tmp_path)
    assert result.status == 0, result.out + result.err
    assert "TestTcpline::test_ping_timeout_drops_a_silent_peer PASSED" in result.out
    assert "passes the conformance kit" in result.out
    assert list(tmp_path.iterdir()) == [config], "rtt check leaves nothing behind"


def test_check_a_plugin_that_fails_to_load() -> None:
    result = run("check", "broken")
    assert result.status == 1
    assert "failed to import" in result.error_line()


def test_check_unknown_transport_and_no_matching_case() -> None:
    result = run("check", "nope")
    assert result.status == 2 and "unknown transport 'nope'" in result.error_line()
    result = run("check", "mock", "-k", "no_such_case")
    assert result.status == 2 and "no case of the conformance kit matches" in result.err


def test_check_a_broker() -> None:
    """The broker kit, on mock nodes by default; the memory broker overrides no outage hook."""
    result = run("check", "--broker", "memory://check", "-v")
    assert result.status == 0, result.out + result.err
    assert "TestBrokerMock::test_groups_across_processes PASSED" in result.out
    assert (
        "rtt: broker memory (rtt-mock 0.1.0) on mock nodes passes the broker conformance kit: "
        "12 passed, 0 failed, 2 skipped" in result.out
    )
    result = run("check", "--broker", "nats://127.0.0.1:4222")
    assert result.status == 2
    assert result.error_line() == (
        "rtt: error: --broker: unknown broker 'nats'; installed brokers: memory, redis. "
        "Is it installed? Try: pip install rtt-nats"
    )


FAULTY_PLUGIN = """
    '''A plugin that imports fine but breaks the contract twice.'''

    from rtt import Capabilities, Client
    from rtt_mock import MockTransport
    from rtt_mock.client import MockClient
    from rtt_mock.server import MockServer


    class FaultyServer(MockServer):
        async def broadcast(self, data, exclude=()):
            return await super().broadcast(data)  # ignores exclude (SPEC 3.6)


    class FaultyClient(MockClient):
        pause_reading = Client.pause_reading  # the contract's default: not implemented (SPEC 10.3)


    class FaultyTransport(MockTransport):
        name = "faulty"

        def _create_server(self, options, host, port):
            return FaultyServer(self, options, host, port, self.network)

        def _create_client(self, url, options):
            return FaultyClient(self, url, options, self.network)


    class ServerOnlyTransport(MockTransport):
        name = "serveronly"
        capabilities = Capabilities(binary=True, python_client=False)
"""


def faulty_plugin(directory: Path) -> dict[str, str]:
    """Install (on a PYTHONPATH) ``faulty``, which fails two cases of the kit, and ``serveronly``."""
    write(directory / "rtt_faulty.py", FAULTY_PLUGIN)
    info = directory / "rtt_faulty-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rtt-faulty\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[rtt.transports]\nfaulty = rtt_faulty:FaultyTransport\nserveronly = rtt_faulty:ServerOnlyTransport\n"
    )
    return command_env({"PYTHONPATH": str(directory)})


def test_check_a_plugin_that_breaks_the_contract(tmp_path: Path) -> None:
    env = faulty_plugin(tmp_path)
    listed = [line.split()[:3] for line in run("list", env=env).out.splitlines()]
    assert ["faulty", "rtt-faulty", "0.1.0"] in listed
    result = run("check", "faulty", "-k", "broadcast_with_exclude or ping_timeout or round_trip", env=env)
    assert result.status == 1, result.out + result.err
    assert "FAILED test_rtt_check.py::TestFaulty::test_broadcast_with_exclude" in result.out
    assert "FAILED test_rtt_check.py::TestFaulty::test_ping_timeout_drops_a_silent_peer" in result.out
    assert "FaultyClient does not implement Client.pause_reading() (SPEC.md 10.3)" in result.out
    summary, _, failed = result.err.strip().rpartition(" (")
    assert summary == (
        "rtt: faulty (rtt-faulty 0.1.0) fails the selected cases "
        "('broadcast_with_exclude or ping_timeout or round_trip') of the conformance kit: "
        "1 passed, 2 failed, 0 skipped"
    )
    assert sorted(failed.rstrip(")").split(", ")) == [
        "test_broadcast_with_exclude",
        "test_ping_timeout_drops_a_silent_peer",
    ]


def test_check_a_transport_without_a_python_client_is_not_a_pass(tmp_path: Path) -> None:
    result = run("check", "serveronly", env=faulty_plugin(tmp_path))
    assert result.status == 1
    assert result.err.strip() == (
        "rtt: serveronly (rtt-faulty 0.1.0) was not checked: every case was skipped "
        "(0 passed, 0 failed, 55 skipped)"
    )


# -- A fresh virtualenv, as a newcomer gets it --------------------------------------------------


@pytest.mark.timeout(600)
async def test_fresh_virtualenv_console_script(fresh_venv: Callable[..., FreshVenv], tmp_path: Path) -> None:
    """`pip install ./packages/rtt-core ./packages/rtt-ws` installs `rtt`, which serves the chat."""
    venv = await asyncio.to_thread(fresh_venv, "packages/rtt-core", "packages/rtt-ws")
    script = venv.python.parent / "rtt"
    assert script.is_file()
    listed = await asyncio.to_thread(run_script, script, "list")
    assert listed[0] == 0 and listed[1].splitlines()[1].split()[:3] == ["ws", "rtt-ws", "0.1.0"]
    # rtt check needs pytest, which only the testing extra brings.
    status, _, err = await asyncio.to_thread(run_script, script, "check", "ws")
    assert status == 2  # an installation to fix before it can run, like an unknown transport
    assert err.strip() == (
        "rtt: error: rtt check runs the conformance kit with pytest, which is not installed: "
        "pip install 'rtt-core[testing]'"
    )
    process = await asyncio.create_subprocess_exec(
        str(script), "serve", "--transport", "ws", "--app", "chat", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=command_env(), cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("rtt: serving ws at ws://127.0.0.1:") and " and the chat page at " in line
        url, page = line.split()[4], line.split()[-1]
        status_code, _, body = await asyncio.to_thread(fetch, page)
        assert status_code == 200 and b"rtt chat" in body
        async with rtt.load("ws").client(url) as one, rtt.load("ws").client(url) as two:
            await one.send("fresh")
            assert await asyncio.wait_for(two.recv(), 5) == "fresh"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def run_script(script: Path, *args: str) -> tuple[int, str, str]:
    """Run an installed console script to completion."""
    done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60, env=command_env())
    return done.returncode, done.stdout, done.stderr
