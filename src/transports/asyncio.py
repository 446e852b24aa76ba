"""The asyncio client and server: smtpcore's procedures over asyncio.

The client is the one client driver (``transports._async_client``) over an
asyncio stream (``transports._asyncio_stream``) with asyncio's lock; the
``send`` and ``Pool`` here are the same as trio's and anyio's.
"""

from __future__ import annotations

from ._async_native import NativeClient, send
from ._loops import LOOPS, event_loop_factory, run
from ._pool import AsyncPool
from ._serve_asyncio import SMTPServer, serve, start_server

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


class SMTPClient(NativeClient):
    """An SMTP (or LMTP) client over asyncio, for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. The
    keywords are the same for every client (``sock=`` talks over a socket
    already connected, ``socket_path=`` over a unix socket). Errors are
    ``smtpcore.SMTPError`` subclasses. After a timeout, a lost connection
    or a cancellation the connection is closed at once and the error
    propagates.
    """


class Pool(AsyncPool):
    """Connections to one server for many sends at once; see ``transports._pool.AsyncPool``.

    ``async with Pool("mx.example", connections=20, tls="starttls") as pool:``
    then ``await pool.send_message(msg)`` from any number of tasks.
    """

    _client_class = SMTPClient
