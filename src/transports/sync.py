"""The blocking client and server: smtpcore's procedures over sockets and the ssl module.

The client is the one client driver (``transports._async_client``) itself,
run with no event loop: its stream (``transports._socket_stream``) and its
lock do their blocking work in place and never suspend, so each call runs
to its end in ``transports._blocking.run_blocking``. ``SMTPClient`` holds
such a client and gives each of its calls a blocking twin made by
``blocking`` (signature, types and docstring carried over); this module adds
only how to connect, the lock that makes threads take turns, and the
one-shot ``send``. What to say and when lives in ``smtpcore.session``.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from email.message import Message
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, ParamSpec, TypeVar

from smtpcore import Extensions
from smtpcore.session import Outcome, Outgoing, SendResult, TLSInfo

from ._async_client import AsyncClient, send_with
from ._blocking import iterate_blocking, run_blocking
from ._client_options import ConnectOptions
from ._content import split_content
from ._serve_sync import SMTPServer, serve
from ._socket_stream import PlainSocket, open_socket

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["SMTPClient", "SMTPServer", "send", "serve"]

P = ParamSpec("P")
R = TypeVar("R")
_Self = TypeVar("_Self", bound="SMTPClient")

# == client ===========================================================================


class _Turns:
    """A lock handed over in the order it was asked for, so threads take turns fairly.

    ``threading.Lock`` wakes an arbitrary waiter. Here each waiter parks on a
    lock of its own, queued; ``release`` hands the turn to the oldest. A
    waiter interrupted (KeyboardInterrupt) leaves the queue, or passes the
    turn on if it had just been handed it. The driver takes it with ``async
    with``, which blocks in place (the coroutine never suspends); ``with``
    does the same.
    """

    __slots__ = ("_held", "_mutex", "_queue")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._queue: deque[threading.Lock] = deque()
        self._held = False

    async def __aenter__(self) -> None:
        # Blocks in place: a coroutine of the driver that never suspends.
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

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def __enter__(self) -> None:
        run_blocking(self.__aenter__())

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        with self._mutex:
            if self._queue:
                self._queue.popleft().release()  # held still: by the next in line
            else:
                self._held = False


class _BlockingClient(AsyncClient):
    """The async client over a blocking socket and ``_Turns``: its coroutines never suspend."""

    _lock_at_birth: ClassVar[bool] = True  # threads: made at first use, two could race

    async def _open(self, how: ConnectOptions, host: str, port: int, timeout: float) -> PlainSocket:
        return open_socket(how, host, port, timeout)

    _new_lock = _Turns
    _split_content = staticmethod(split_content)


def blocking(
    call: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]], name: str = ""
) -> Callable[Concatenate[SMTPClient, P], R]:
    """The blocking twin of an ``AsyncClient`` method: run on ``SMTPClient``'s client to its end.

    Its parameters, their types and its docstring are the async one's, so
    mypy checks every argument and ``help()`` shows the same text; ``name``
    is its own name when it differs (``close`` for ``aclose``).
    """

    def run(self: SMTPClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return run_blocking(call(self._client, *args, **kwargs))

    functools.update_wrapper(run, call)
    run.__name__ = name = name or call.__name__
    run.__qualname__ = f"SMTPClient.{name}"
    run.__module__ = __name__
    return run


class SMTPClient:
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
    The methods are those of ``transports._async_client.AsyncClient``, blocking.
    """

    def __init__(self, host: str, port: int | None = None, **options: Unpack[ClientKeywords]):
        self._client = _BlockingClient(host, port, **options)

    @property
    def extensions(self) -> Extensions:
        """What the server offered in its last EHLO reply (empty before connecting)."""
        return self._client.extensions

    @property
    def tls_info(self) -> TLSInfo | None:
        """The TLS version, cipher and certificate, or None on a clear connection."""
        return self._client.tls_info

    def __enter__(self: _Self) -> _Self:
        run_blocking(self._client.__aenter__())
        return self

    __exit__ = blocking(AsyncClient.__aexit__)
    connect = blocking(AsyncClient.connect)
    quit = blocking(AsyncClient.quit)
    close = blocking(AsyncClient.aclose, "close")

    # Sending, and asking the server to send (ETRN, RFC 1985; TURN, RFC 821).
    send_message = blocking(AsyncClient.send_message)
    sendmail = blocking(AsyncClient.sendmail)
    send_old = blocking(AsyncClient.send_old)
    etrn = blocking(AsyncClient.etrn)
    turn = blocking(AsyncClient.turn)

    def send_many(self, messages: Iterable[Outgoing]) -> Iterator[Outcome]:
        """``AsyncClient.send_many``, as a plain iterator: one ``Outcome`` a message, in order."""
        return iterate_blocking(self._client.send_many(messages))

    # The commands answered with a reply.
    noop = blocking(AsyncClient.noop)
    rset = blocking(AsyncClient.rset)
    vrfy = blocking(AsyncClient.vrfy)
    expn = blocking(AsyncClient.expn)
    help = blocking(AsyncClient.help)


def send(
    msg: Message, host: str, port: int | None = None, **options: Unpack[ClientKeywords]
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    return run_blocking(send_with(_BlockingClient(host, port, **options), msg))
