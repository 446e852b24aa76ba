"""The four servers take the same options, so switching transports is one import."""

from __future__ import annotations

import inspect

from transports import _serve_anyio, _serve_asyncio, _serve_sync, _serve_trio

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


def test_every_serve_takes_the_common_options_in_order() -> None:
    for module in (_serve_sync, _serve_asyncio, _serve_trio, _serve_anyio):
        names = list(inspect.signature(module.serve).parameters)
        assert names[: len(COMMON)] == COMMON, module.__name__


#: Only the async servers have a pool for synchronous hooks (the threaded one
#: runs every hook in the session's own thread).
ASYNC = ["hook_threads"]


def test_every_async_serve_takes_hook_threads_next() -> None:
    for module in (_serve_asyncio, _serve_trio, _serve_anyio):
        names = list(inspect.signature(module.serve).parameters)
        assert names[len(COMMON) : len(COMMON) + len(ASYNC)] == ASYNC, module.__name__


#: Last of all: SO_REUSEPORT, for several processes on one port.
REUSE = ["reuse_port"]


def test_every_serve_takes_reuse_port_last_of_the_options() -> None:
    for module in (_serve_asyncio, _serve_trio, _serve_anyio):
        names = list(inspect.signature(module.serve).parameters)
        at = len(COMMON) + len(ASYNC)
        assert names[at : at + len(REUSE)] == REUSE, module.__name__


def test_server_classes_take_the_same_options() -> None:
    sync = inspect.signature(_serve_sync.SMTPServer)
    asyncio = inspect.signature(_serve_asyncio.SMTPServer)
    assert list(sync.parameters) == COMMON + REUSE
    assert list(asyncio.parameters) == COMMON + ASYNC + REUSE
    assert list(inspect.signature(_serve_asyncio.start_server).parameters) == COMMON + ASYNC + REUSE
