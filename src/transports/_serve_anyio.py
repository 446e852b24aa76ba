"""The anyio server (asyncio or trio): ``await task_group.start(serve, handler, host, port)``.

The same shape as the trio server: the port comes back through
``task_status``; cancel the scope to stop at once, or set ``shutdown`` (an
``anyio.Event``) to stop gracefully within ``grace`` seconds.

It runs the asyncio server or the trio server, whichever framework anyio
runs on (as the anyio client runs their clients' I/O): anyio's own streams
pause and resume reading on every receive and pass through the scheduler on
every send, which made this server slower than either of them for the same
work. Both honour anyio's cancellation like any other code.
"""

from __future__ import annotations

import ssl
from typing import TypedDict, cast

import anyio
import anyio.abc

from smtpcore import Limits, ServerConfig
from smtpcore.session._admission import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT
from smtpcore.session._server import (
    AUTH_FAILURE_DELAY,
    AUTH_FAILURES_PER_ADDRESS,
    DATA_TIMEOUT,
    IDLE_TIMEOUT,
    MIN_DATA_RATE,
    SPOOL_THRESHOLD,
)

from . import _serve_asyncio
from ._backend import running_on_trio
from ._serving import HOOK_THREADS

__all__ = ["serve"]


class _Options(TypedDict):
    """The options both servers take, passed on as they came."""

    tls_context: ssl.SSLContext | None
    implicit_tls: bool
    config: ServerConfig | None
    limits: Limits | None
    hostname: str | None
    idle_timeout: float
    max_connections: int | None
    greeting_delay: float
    min_data_rate: float
    spool_threshold: int | None
    data_timeout: float
    auth_failure_delay: float
    auth_failures_per_address: int | None
    max_connections_per_client: int | None
    hook_threads: int
    reuse_port: bool


async def serve(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    config: ServerConfig | None = None,
    limits: Limits | None = None,
    hostname: str | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int | None = MAX_CONNECTIONS,
    greeting_delay: float = 0.0,
    min_data_rate: float = MIN_DATA_RATE,
    spool_threshold: int | None = SPOOL_THRESHOLD,
    data_timeout: float = DATA_TIMEOUT,
    auth_failure_delay: float = AUTH_FAILURE_DELAY,
    auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS,
    max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT,
    hook_threads: int = HOOK_THREADS,
    reuse_port: bool = False,
    shutdown: anyio.Event | None = None,
    grace: float = 5.0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> int:
    """Serve ``handler`` on ``host``:``port``; report the port through ``task_status``.

    Returns after a graceful shutdown (``shutdown.set()``): the number of
    sessions cut with a message in flight when ``grace`` ran out (as
    ``transports.sync.SMTPServer.close``); runs until cancelled otherwise.
    Options as in ``transports.sync.SMTPServer``;
    ``hook_threads`` as in ``transports.asyncio.SMTPServer``. Raises
    ``OSError`` when the address cannot be bound.
    """
    options = _Options(
        tls_context=tls_context,
        implicit_tls=implicit_tls,
        config=config,
        limits=limits,
        hostname=hostname,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        greeting_delay=greeting_delay,
        min_data_rate=min_data_rate,
        spool_threshold=spool_threshold,
        data_timeout=data_timeout,
        auth_failure_delay=auth_failure_delay,
        auth_failures_per_address=auth_failures_per_address,
        max_connections_per_client=max_connections_per_client,
        hook_threads=hook_threads,
        reuse_port=reuse_port,
    )
    if running_on_trio():
        return await _on_trio(handler, host, port, options, shutdown, grace, task_status)
    server = _serve_asyncio.SMTPServer(handler, host, port, **options)
    await server.start()
    task_status.started(server.port)
    graceful = False
    try:
        if shutdown is None:
            await anyio.sleep_forever()
        else:
            await shutdown.wait()
            graceful = True
    finally:
        with anyio.CancelScope(shield=True):
            dropped = await server.aclose(grace if graceful else 0.0)
    return dropped


async def _on_trio(
    handler: object,
    host: str,
    port: int,
    options: _Options,
    shutdown: anyio.Event | None,
    grace: float,
    task_status: anyio.abc.TaskStatus[int],
) -> int:
    import trio  # only here: the anyio extra does not need trio

    from . import _serve_trio

    stop = None if shutdown is None else trio.Event()
    dropped = 0
    async with anyio.create_task_group() as group:
        if shutdown is not None and stop is not None:

            async def relay() -> None:
                await shutdown.wait()
                stop.set()

            group.start_soon(relay)

        async def serving(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            nonlocal dropped
            dropped = await _serve_trio.serve(
                handler, host, port, shutdown=stop, grace=grace,
                task_status=cast("trio.TaskStatus[int]", task_status), **options,
            )  # fmt: skip

        task_status.started(await group.start(serving))
    return dropped
