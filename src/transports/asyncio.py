"""The asyncio client and server: smtpcore's procedures over asyncio.

The client is ``transports._async_client.AsyncClient`` (the one client
driver) over an ``AsyncioStream``; this module adds only how to connect, the
lock, the pool's semaphore and the one-shot ``send``.
"""

from __future__ import annotations

import asyncio
from email.message import Message
from typing import TYPE_CHECKING

from smtpcore.session import SendResult

from ._async_client import AsyncClient, send_with
from ._asyncio_stream import AsyncioStream, open_stream
from ._client_options import ConnectOptions
from ._pool import AsyncPool
from ._serve_asyncio import LOOPS, SMTPServer, event_loop_factory, run, serve, start_server

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = [
    "LOOPS",
    "Pool",
    "SMTPClient",
    "SMTPServer",
    "event_loop_factory",
    "run",
    "send",
    "serve",
    "start_server",
]

# == client ===========================================================================


class SMTPClient(AsyncClient):
    """An SMTP (or LMTP) client over asyncio, for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. The
    keywords are the same for every client (``sock=`` talks over a socket
    already connected, ``socket_path=`` over a unix socket). Errors are
    ``smtpcore.SMTPError`` subclasses. After a timeout, a lost connection
    or a cancellation the connection is closed at once and the error
    propagates.
    """

    async def _open(
        self, how: ConnectOptions, host: str, port: int, timeout: float
    ) -> AsyncioStream:
        return await open_stream(how, host, port, timeout)

    # Waiters are woken in order; a cancelled one drops out of the queue.
    _new_lock = asyncio.Lock


async def send(
    msg: Message, host: str, port: int | None = None, **options: Unpack[ClientKeywords]
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    return await send_with(SMTPClient(host, port, **options), msg)


class Pool(AsyncPool):
    """Connections to one server for many sends at once; see ``transports._pool.AsyncPool``."""

    _client_class = SMTPClient
    _new_slots = asyncio.Semaphore
