"""One ``smtpcore serve`` server on the transport asked for, until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from smtpcore import InvalidArgument

__all__ = ["STOP_SIGNALS", "listen_error", "run"]

#: The signals that stop ``smtpcore serve`` gracefully.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class _Job:
    """What every transport's server is given, and whom it tells its port."""

    handler: object
    host: str
    port: int
    ready: Callable[[int], None]
    grace: float
    keywords: dict[str, Any]  # the server's options, the same on every transport


def run(
    transport: str,
    handler: object,
    host: str,
    port: int,
    ready: Callable[[int], None],
    *,
    grace: float,
    loop: str = "asyncio",
    options: dict[str, Any],
) -> tuple[int, int]:
    """Serve on ``transport`` until SIGINT or SIGTERM, then stop within ``grace`` seconds.

    ``ready(port)`` is called once listening; ``options`` are the server's
    keywords. Returns the signal and the number of sessions cut with a
    message in flight. A second signal during the grace changes nothing:
    the grace is the bound.
    """
    if transport not in ("sync", "asyncio", "trio", "anyio"):
        raise InvalidArgument(f"transport must be sync, asyncio, trio or anyio, not {transport!r}")
    job = _Job(handler, host, port, ready, grace, options)
    if transport == "sync":
        return _run_sync(job)
    if transport == "asyncio":
        from .. import asyncio as asyncio_transport

        main = _run_asyncio(job)
        return asyncio_transport.run(main, loop="uvloop" if loop == "uvloop" else "asyncio")
    if transport == "trio":
        import trio

        from .. import trio as trio_transport

        return trio.run(_run_in_task, job, trio, trio.open_nursery, trio_transport.serve)
    import anyio

    from .. import anyio as anyio_transport

    return anyio.run(_run_in_task, job, anyio, anyio.create_task_group, anyio_transport.serve)


def _run_sync(job: _Job) -> tuple[int, int]:
    from .. import sync

    received: list[int] = []
    arrived = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        arrived.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        server = sync.SMTPServer(job.handler, job.host, job.port, **job.keywords).start()
        job.ready(server.port)
        while not arrived.wait(0.5):  # a timeout: signal handlers run between waits
            pass
        return received[0], server.close(job.grace)
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


async def _run_asyncio(job: _Job) -> tuple[int, int]:
    import asyncio

    from .. import asyncio as asyncio_transport

    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if not received.done():
            received.set_result(signum)

    for stop in STOP_SIGNALS:
        loop.add_signal_handler(stop, on_signal, stop)
    server = await asyncio_transport.start_server(job.handler, job.host, job.port, **job.keywords)
    job.ready(server.port)
    signum = await received
    return signum, await server.aclose(job.grace)


async def _run_in_task(
    job: _Job,
    framework: Any,
    open_group: Callable[[], Any],
    serve: Callable[..., Awaitable[int]],
) -> tuple[int, int]:
    """On trio or anyio, whose calls here are the same: ``framework`` is either module."""
    shutdown = framework.Event()
    dropped = 0
    received: list[int] = []

    async def serving(*, task_status: Any) -> None:
        nonlocal dropped
        dropped = await serve(job.handler, job.host, job.port, shutdown=shutdown,
                              grace=job.grace, task_status=task_status, **job.keywords)  # fmt: skip

    with framework.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with open_group() as group:
            job.ready(await group.start(serving))
            async for signum in signals:
                received.append(int(signum))
                shutdown.set()
                break
    return received[0], dropped


def listen_error(exc: BaseException) -> OSError | None:
    """The OSError of a failed bind, also inside the exception groups of trio and anyio."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc
    # By shape, not class: on 3.10 the groups come from the exceptiongroup backport.
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple):
        for each in inner:
            found = listen_error(each) if isinstance(each, BaseException) else None
            if found is not None:
                return found
    return None
