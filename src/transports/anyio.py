"""The anyio client and server: smtpcore's procedures on whichever framework anyio runs.

The client is ``transports._async_client.AsyncClient`` (the one client
driver) over the stream of the framework anyio runs on (asyncio's or
trio's, picked when connecting), with anyio's lock; this module adds only
that choice, the pool's semaphore and the one-shot ``send``. An outer anyio
cancel scope cancels as usual and the connection is closed at once.
"""

from __future__ import annotations

from email.message import Message
from typing import TYPE_CHECKING

try:
    import anyio  # first, so that a missing anyio names its extra
except ModuleNotFoundError as exc:  # the anyio extra is optional: say how to get it
    raise ModuleNotFoundError(
        f"transports.anyio needs anyio ({exc}): pip install 'smtpcore[anyio]'", name=exc.name
    ) from exc

from smtpcore.session import SendResult

from ._async_client import AsyncClient, AsyncStream, send_with
from ._backend import running_on_trio
from ._client_options import ConnectOptions
from ._pool import AsyncPool
from ._serve_anyio import serve

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["Pool", "SMTPClient", "send", "serve"]

# == client ===========================================================================


class SMTPClient(AsyncClient):
    """An SMTP (or LMTP) client over anyio, for one connection; many messages may use it.

    It talks over asyncio's or trio's own stream, whichever anyio runs on.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. The
    keywords are the same for every client (``sock=`` talks over a socket
    already connected, ``socket_path=`` over a unix socket). Errors are
    ``smtpcore.SMTPError`` subclasses. After a timeout, a lost connection
    or a cancellation the connection is closed at once and the error
    propagates.
    """

    # The stream is that of the backend anyio runs on. anyio's own streams
    # cost too much per round trip: on asyncio, every receive() resumes and
    # pauses reading (two selector changes, each an epoll_ctl) and every
    # send() that did not wait adds a checkpoint (one more turn of the event
    # loop); a CancelScope with a deadline around each call arms and cancels
    # a timer. The native streams avoid all of that and honour anyio's cancel
    # scopes like any other code on that loop (on asyncio, a cancelled scope
    # cancels the task; trio's scopes are trio's).
    async def _open(self, how: ConnectOptions, host: str, port: int, timeout: float) -> AsyncStream:
        if running_on_trio():
            from ._trio_stream import open_stream as open_trio

            return await open_trio(how, host, port, timeout)
        from ._asyncio_stream import open_stream as open_asyncio

        return await open_asyncio(how, host, port, timeout)

    # anyio's own: honours anyio's cancel scopes on either backend; fair.
    _new_lock = anyio.Lock


async def send(
    msg: Message, host: str, port: int | None = None, **options: Unpack[ClientKeywords]
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    return await send_with(SMTPClient(host, port, **options), msg)


class Pool(AsyncPool):
    """Connections to one server for many sends at once; see ``transports._pool.AsyncPool``."""

    _client_class = SMTPClient
    _new_slots = anyio.Semaphore
