"""The trio client and server: smtpcore's procedures over trio.

The client is ``transports._async_client.AsyncClient`` (the one client
driver) over a trio stream (``transports._trio_stream``); this module adds
only how to connect, the lock, the pool's semaphore and the one-shot
``send``. Timeouts are each step's own; an outer cancel scope cancels as
usual and the connection is closed at once.
"""

from __future__ import annotations

from email.message import Message
from typing import TYPE_CHECKING

try:
    import trio
except ModuleNotFoundError as exc:  # the trio extra is optional: say how to get it
    raise ModuleNotFoundError(
        f"transports.trio needs trio ({exc}): pip install 'smtpcore[trio]'", name=exc.name
    ) from exc

from smtpcore.session import SendResult

from ._async_client import AsyncClient, send_with
from ._client_options import ConnectOptions
from ._pool import AsyncPool
from ._serve_trio import serve
from ._trio_stream import TrioSocket, open_stream

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["Pool", "SMTPClient", "send", "serve"]

# == client ===========================================================================


class SMTPClient(AsyncClient):
    """An SMTP (or LMTP) client over trio, for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. The
    keywords are the same for every client (``sock=`` talks over a socket
    already connected, ``socket_path=`` over a unix socket). Errors are
    ``smtpcore.SMTPError`` subclasses. After a timeout, a lost connection
    or a cancellation the connection is closed at once and the error
    propagates.
    """

    async def _open(self, how: ConnectOptions, host: str, port: int, timeout: float) -> TrioSocket:
        return await open_stream(how, host, port, timeout)

    # Fair: handed to the waiters in order; a cancelled one drops out.
    _new_lock = trio.Lock


async def send(
    msg: Message, host: str, port: int | None = None, **options: Unpack[ClientKeywords]
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    return await send_with(SMTPClient(host, port, **options), msg)


class Pool(AsyncPool):
    """Connections to one server for many sends at once; see ``transports._pool.AsyncPool``."""

    _client_class = SMTPClient
    _new_slots = trio.Semaphore
