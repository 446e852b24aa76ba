"""The anyio client and server: smtpcore's procedures on whichever framework anyio runs.

The client is the one client driver (``transports._async_client``) over the
stream of the framework anyio runs on (asyncio's or trio's, picked when
connecting) with that framework's lock; ``transports._async_native`` says
why not anyio's own streams. The ``send`` and ``Pool`` here are the same as
asyncio's and trio's. An outer anyio cancel scope cancels as usual and the
connection is closed at once.
"""

from __future__ import annotations

from ._async_native import NativeClient, send
from ._backend import missing_extra
from ._pool import AsyncPool

try:  # before the server, so that a missing anyio names its extra
    import anyio  # noqa: F401
except ModuleNotFoundError as exc:  # the anyio extra is optional
    raise missing_extra("anyio", exc) from exc

from ._serve_anyio import serve

__all__ = ["Pool", "SMTPClient", "send", "serve"]

# == client ===========================================================================


class SMTPClient(NativeClient):
    """An SMTP (or LMTP) client over anyio (on asyncio or trio), for one connection.

    Many messages may use it. ``async with SMTPClient(host) as smtp:``
    connects, greets, says EHLO, starts TLS and authenticates; on exit it
    says QUIT and closes. Same keywords as every client. Errors are
    ``smtpcore.SMTPError`` subclasses; after a timeout, a lost connection or
    a cancellation the connection is closed at once.
    """


class Pool(AsyncPool):
    """anyio's pool: connections to one server, shared by many tasks (see ``AsyncPool``)."""

    _client_class = SMTPClient
