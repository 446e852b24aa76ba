"""The trio client and server: smtpcore's procedures over trio.

The client is the one client driver (``transports._async_client``) over a
trio stream (``transports._trio_stream``) with trio's lock; the ``send`` and
``Pool`` here are the same as asyncio's and anyio's. Timeouts are each
step's own; an outer cancel scope cancels as usual and the connection is
closed at once.
"""

from __future__ import annotations

from ._async_native import NativeClient, send
from ._backend import missing_extra
from ._pool import AsyncPool

try:  # before the server, so that a missing trio names its extra
    import trio  # noqa: F401
except ModuleNotFoundError as exc:  # the trio extra is optional
    raise missing_extra("trio", exc) from exc

from ._serve_trio import serve

__all__ = ["Pool", "SMTPClient", "send", "serve"]

# == client ===========================================================================


class SMTPClient(NativeClient):
    """An SMTP (or LMTP) client over trio, for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO, starts
    TLS and authenticates; on exit it says QUIT and closes. The keywords are
    those of every client: ``sock=`` a connected socket, ``socket_path=`` a
    unix socket. Errors are ``smtpcore.SMTPError`` subclasses; a timeout, a
    lost connection or a cancellation closes the connection at once.
    """


class Pool(AsyncPool):
    """A pool of trio connections to one server; see ``transports._pool.AsyncPool``."""

    _client_class = SMTPClient
