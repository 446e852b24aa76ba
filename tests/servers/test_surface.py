"""The four servers take the same options, so switching transports is one import.

Each option is declared once, as a field of ``ServerSettings`` (the
session's) or ``TransportSettings`` (the transport's); every server takes
them as ``**options`` typed by ``ServerKeywords``, written from both.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from smtpcore.session import ServerSettings
from transports import _serve_anyio, _serve_asyncio, _serve_sync, _serve_trio
from transports._server_keywords import ServerKeywords
from transports._server_settings import TransportSettings

COMMON = [
    "handler",
    "host",
    "port",
    "tls_context",
    "implicit_tls",
    "config",
    "limits",
    "hostname",
    "idle_timeout",
    "max_connections",
    "greeting_delay",
    "min_data_rate",
    "spool_threshold",
    "data_timeout",
    "auth_failure_delay",
    "auth_failures_per_address",
    "max_connections_per_client",
]

#: Only the async servers have a pool for synchronous hooks (the threaded one
#: runs every hook in the session's own thread, and takes it without effect).
ASYNC = ["hook_threads"]

#: SO_REUSEPORT, for several processes on one port.
REUSE = ["reuse_port"]

SERVERS: list[Callable[..., Any]] = [
    _serve_sync.SMTPServer,
    _serve_sync.serve,
    _serve_asyncio.SMTPServer,
    _serve_asyncio.start_server,
    _serve_asyncio.serve,
    _serve_trio.serve,
    _serve_anyio.serve,
]


def test_the_keywords_are_the_fields_of_the_two_settings() -> None:
    fields = [f.name for f in dataclasses.fields(TransportSettings)]
    fields += sorted(ServerSettings.keywords(), key=COMMON.index)
    assert list(ServerKeywords.__annotations__) == fields
    assert set(ServerKeywords.__annotations__) == set(COMMON[3:] + ASYNC + REUSE)


@pytest.mark.parametrize("server", SERVERS, ids=lambda s: f"{s.__module__}.{s.__name__}")
def test_every_server_takes_handler_host_port_and_the_keywords(server: Callable[..., Any]) -> None:
    parameters = inspect.signature(server).parameters
    assert list(parameters)[:3] == COMMON[:3]
    options = parameters["options"]
    assert options.kind is inspect.Parameter.VAR_KEYWORD
    assert options.annotation == "Unpack[ServerKeywords]"


def test_a_misspelled_option_is_a_type_error_naming_it() -> None:
    # And a mypy error: the ignores below would be unused otherwise (strict).
    with pytest.raises(TypeError, match="'idle_timout'"):
        _serve_sync.SMTPServer(object(), idle_timout=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'hook_thread'"):
        _serve_asyncio.SMTPServer(object(), hook_thread=2)  # type: ignore[call-arg]


#: The server's own modules in src/transports (the clients' and the CLI's are not).
SERVER_FILES = [
    "_asyncio_session.py",
    "_driver.py",
    "_loops.py",
    "_serve_anyio.py",
    "_serve_asyncio.py",
    "_serve_sync.py",
    "_serve_trio.py",
    "_server_keywords.py",
    "_server_settings.py",
    "_serving.py",
    "_spool.py",
    "mailboxes.py",
]


def test_the_servers_import_only_public_smtpcore_modules() -> None:
    import ast
    from pathlib import Path

    import transports

    root = Path(transports.__file__).parent
    private = []
    for name in SERVER_FILES:
        for node in ast.walk(ast.parse((root / name).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] == "smtpcore" and any(p.startswith("_") for p in parts[1:]):
                    private.append(f"{name}: {module}")
    assert private == []


def test_the_server_files_stay_thin() -> None:
    from pathlib import Path

    import transports

    root = Path(transports.__file__).parent
    sizes = {name: len((root / name).read_text().splitlines()) for name in SERVER_FILES}
    assert {name: size for name, size in sizes.items() if size > 300} == {}
