"""The async client on whichever framework runs it: asyncio's stream and lock, or trio's.

The asyncio, trio and anyio clients are one client: it connects with the
stream of the framework that runs it (``transports._asyncio_stream`` or
``transports._trio_stream``, picked when connecting) and takes turns with
that framework's lock, so anyio's cancel scopes cancel it like any other
code on that loop (on asyncio, a cancelled scope cancels the task; trio's
scopes are trio's). anyio's own streams and locks would cost more per round
trip: on asyncio, every receive() resumes and pauses reading (two selector
changes, each an epoll_ctl) and every send() that did not wait adds a
checkpoint; a CancelScope with a deadline around each call arms and cancels
a timer.
"""

from __future__ import annotations

import asyncio
from email.message import Message
from typing import TYPE_CHECKING

from smtpcore.session import SendResult

from ._async_client import AsyncClient, send_with
from ._async_driver import AsyncLock, AsyncStream
from ._backend import running_on_trio
from ._client_options import ConnectOptions

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["NativeClient", "native_semaphore", "send"]


class NativeClient(AsyncClient):
    """The client over the stream and with the lock of the framework that runs it."""

    async def _open(self, how: ConnectOptions, host: str, port: int, timeout: float) -> AsyncStream:
        if running_on_trio():
            from ._trio_stream import open_stream as open_trio

            return await open_trio(how, host, port, timeout)
        from ._asyncio_stream import open_stream as open_asyncio

        return await open_asyncio(how, host, port, timeout)

    def _new_lock(self) -> AsyncLock:
        # Made at first use, inside the running framework. Both are fair: the
        # waiters are woken in order, and a cancelled one drops out.
        if running_on_trio():
            import trio

            return trio.Lock()
        return asyncio.Lock()


def native_semaphore(count: int) -> AsyncLock:
    """A semaphore of the framework that runs now, with ``count`` places."""
    if running_on_trio():
        import trio

        return trio.Semaphore(count)
    return asyncio.Semaphore(count)


async def send(
    msg: Message, host: str, port: int | None = None, **options: Unpack[ClientKeywords]
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    return await send_with(NativeClient(host, port, **options), msg)
