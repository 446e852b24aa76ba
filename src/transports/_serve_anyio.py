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

from typing import TYPE_CHECKING, cast

import anyio
import anyio.abc

from . import _serve_asyncio
from ._backend import running_on_trio

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._server_keywords import ServerKeywords

__all__ = ["serve"]


async def serve(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    shutdown: anyio.Event | None = None,
    grace: float = 5.0,
    **options: Unpack[ServerKeywords],
) -> int:
    """Serve ``handler`` on ``host``:``port``; report the port through ``task_status``.

    Returns after a graceful shutdown (``shutdown.set()``): the number of
    sessions cut with a message in flight when ``grace`` ran out (as
    ``transports.sync.SMTPServer.close``); runs until cancelled otherwise.
    Options as in ``transports.sync.SMTPServer``;
    ``hook_threads`` as in ``transports.asyncio.SMTPServer``. Raises
    ``OSError`` when the address cannot be bound.
    """
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
    options: ServerKeywords,
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
