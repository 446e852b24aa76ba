"""The anyio client: smtpcore's procedures on whichever framework anyio runs (asyncio or trio).

Only I/O lives here, and little of it: the five primitives of
``transports._async.AsyncClient`` are those of the asyncio or the trio
client, picked when connecting by the backend that anyio runs on, plus the
one-shot ``send``. Timeouts are each step's own; an outer anyio cancel scope
cancels as usual and the connection is closed at once.
"""

from __future__ import annotations

import ssl
from email.message import Message

try:
    import anyio  # first, so that a missing anyio names its extra
except ModuleNotFoundError as exc:  # the anyio extra is optional: say how to get it
    raise ModuleNotFoundError(
        f"transports.anyio needs anyio ({exc}): pip install 'smtpcore[anyio]'", name=exc.name
    ) from exc

from smtpcore import Limits
from smtpcore.session import SendResult, Timeouts, TLSMode

from ._async import AsyncClient, AsyncPool, Trace
from ._backend import running_on_trio
from ._serve_anyio import serve
from ._tls import TLSLayer

__all__ = ["Pool", "SMTPClient", "send", "serve"]

# == client ===========================================================================


def _native_client() -> type[AsyncClient]:
    """The client of the framework anyio runs on now: trio's, else asyncio's."""
    if running_on_trio():
        from .trio import SMTPClient as TrioClient

        return TrioClient
    from .asyncio import SMTPClient as AsyncioClient

    return AsyncioClient


class SMTPClient(AsyncClient):
    """An SMTP (or LMTP) client over anyio, for one connection; many messages may use it.

    It runs the asyncio or the trio client underneath, whichever anyio runs on.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. Errors
    are ``smtpcore.SMTPError`` subclasses. After a timeout, a lost
    connection or a cancellation the connection is closed at once and the
    error propagates.
    """

    # The I/O is that of the native client of the backend anyio runs on.
    # anyio's own streams cost too much per round trip: on asyncio, every
    # receive() resumes and pauses reading (two selector changes, each an
    # epoll_ctl) and every send() that did not wait adds a checkpoint (one
    # more turn of the event loop); a CancelScope with a deadline around each
    # call arms and cancels a timer. The native clients avoid all of that and
    # honour anyio's cancel scopes like any other code on that loop (on
    # asyncio, a cancelled scope cancels the task; trio's scopes are trio's).
    _io: AsyncClient

    async def _open(self, host: str, port: int, timeout: float) -> str:
        native = _native_client()(host, port, source_address=self._source_address)
        local = await native._open(host, port, timeout)
        self._io = native
        return local

    async def _write(self, data: bytes, timeout: float) -> None:
        await self._io._write(data, timeout)

    async def _read(self, timeout: float) -> bytes:
        return await self._io._read(timeout)

    async def _start_tls(
        self, context: ssl.SSLContext, hostname: str | None, timeout: float
    ) -> None:
        await self._io._start_tls(context, hostname, timeout)

    def _new_lock(self) -> anyio.Lock:
        # anyio's own: honours anyio's cancel scopes on either backend; fair.
        return anyio.Lock()

    def _ssl_object(self) -> TLSLayer | None:
        return self._io._ssl_object()

    async def _close(self) -> None:
        await self._io._close()


async def send(
    msg: Message,
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = "starttls",
    ssl_context: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
    oauth_token: str | None = None,
    local_hostname: str | None = None,
    timeout: float | Timeouts | None = None,
    lmtp: bool = False,
    source_address: tuple[str, int] | None = None,
    auth_in_clear: bool = False,
    chunking: bool | None = None,
    limits: Limits | None = None,
    trace: Trace | None = None,
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    async with SMTPClient(
        host, port, tls=tls, ssl_context=ssl_context, username=username, password=password,
        oauth_token=oauth_token, local_hostname=local_hostname, timeout=timeout, lmtp=lmtp,
        source_address=source_address, auth_in_clear=auth_in_clear, chunking=chunking,
        limits=limits, trace=trace,
    ) as client:  # fmt: skip
        return await client.send_message(msg)


class Pool(AsyncPool):
    """Connections to one server for many sends at once; see ``transports._async.AsyncPool``.

    ``async with Pool("mx.example", connections=20, tls="starttls") as pool:``
    then ``await pool.send_message(msg)`` from any number of tasks.
    """

    _client_class = SMTPClient

    def _new_slots(self, count: int) -> anyio.Semaphore:
        return anyio.Semaphore(count)
