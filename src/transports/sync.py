"""The blocking client and server: smtpcore's procedures over sockets and the ssl module.

The client is ``transports._sync_client`` (the blocking twin of the one
client driver) over a socket (``transports._socket_stream``); this module
adds only how to connect, the lock that makes threads take turns, and the
one-shot ``send``. What to say and when lives in ``smtpcore.session``.
"""

from __future__ import annotations

import threading
from collections import deque
from email.message import Message
from typing import TYPE_CHECKING, ClassVar

from smtpcore.session import SendResult

from ._client_options import ConnectOptions
from ._serve_sync import SMTPServer, serve
from ._socket_stream import PlainSocket, open_socket
from ._sync_client import SyncClient, send_with

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["SMTPClient", "SMTPServer", "send", "serve"]

# == client ===========================================================================


class _Turns:
    """A lock handed over in the order it was asked for, so threads take turns fairly.

    ``threading.Lock`` wakes an arbitrary waiter. Here each waiter parks on a
    lock of its own, queued; ``release`` hands the turn to the oldest. A
    waiter interrupted (KeyboardInterrupt) leaves the queue, or passes the
    turn on if it had just been handed it.
    """

    __slots__ = ("_held", "_mutex", "_queue")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._queue: deque[threading.Lock] = deque()
        self._held = False

    def __enter__(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            parked = threading.Lock()
            parked.acquire()
            self._queue.append(parked)
        try:
            parked.acquire()  # released by the holder's release(): our turn
        except BaseException:
            with self._mutex:
                if parked in self._queue:
                    self._queue.remove(parked)
                    raise
            self._release()  # the turn came as we were interrupted: pass it on
            raise

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        with self._mutex:
            if self._queue:
                self._queue.popleft().release()  # held still: by the next in line
            else:
                self._held = False


class SMTPClient(SyncClient):
    """A blocking SMTP (or LMTP) client for one connection; many messages may use it.

    ``with SMTPClient(host) as smtp:`` connects, greets, says EHLO, starts TLS
    and authenticates; on exit it says QUIT and closes. The keywords are
    those of ``transports.ClientKeywords`` (the same for every client).
    ``sock=`` talks over a socket already connected, ``socket_path=`` over
    a unix socket; ``host`` still names the server for TLS. Errors are
    ``smtpcore.SMTPError`` subclasses (``TransientError``, ``PermanentError``,
    ``RecipientsRefused``, ``AuthenticationError``, ``ConnectionLost``,
    ``SMTPTimeout``, ``TLSError``, ``NotSupported``). After a timeout, a lost
    connection or an interruption (KeyboardInterrupt) the socket is closed.

    Several threads may share one client: its operations (connecting, each
    message, each command, QUIT, the exit of ``with``) take turns in the order
    they asked, each one whole. ``close()`` does not wait: it closes at once.
    """

    _lock_at_birth: ClassVar[bool] = True  # threads: made at first use, two could race

    def _open(self, how: ConnectOptions, host: str, port: int, timeout: float) -> PlainSocket:
        return open_socket(how, host, port, timeout)

    _new_lock = _Turns


def send(
    msg: Message, host: str, port: int | None = None, **options: Unpack[ClientKeywords]
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    return send_with(SMTPClient(host, port, **options), msg)
