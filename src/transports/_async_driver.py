"""The client's engine, written once: connecting, turns and the effect loop over a stream.

``AsyncDriver`` runs the core's procedures over a stream (``AsyncStream``),
one operation at a time (``_turn``), each ``Read`` within its stage's time
(``StageClock``) and each ``Write`` within its own. A framework supplies only
how to open its stream (``_open``) and its lock (``_new_lock``). The stream
raises ``TimeoutError`` when a step runs out of time, ``OSError`` or
``ConnectionLost`` when the connection breaks, and ``TLSError`` when a
handshake fails; the loop here turns those into the session's errors
(``io_failure``) and closes the connection. The public calls are
``transports._async_client``'s.

The blocking client runs this same code: its stream's coroutines block in
place and never suspend, so ``transports._blocking.run_blocking`` runs each
call to its end with no event loop (``transports.sync``).
"""

from __future__ import annotations

import abc
import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from smtpcore import ClientConnection, ProtocolError
from smtpcore.driver import hello_name, io_failure, is_reusable
from smtpcore.session import (
    Close,
    ConnectionLost,
    Handshake,
    NextChunk,
    Procedure,
    Read,
    SMTPError,
    SMTPTimeout,
    StageClock,
    Write,
    open_session,
    quit,
)

from ._client_options import ConnectOptions, split_options
from ._tls import TLSLayer

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["AsyncDriver", "AsyncLock", "AsyncStream"]

T = TypeVar("T")
Source = Iterator[bytes] | AsyncIterator[bytes]


class AsyncStream(Protocol):
    """One connection, as the client needs it; each framework has its own."""

    async def read(self, timeout: float) -> bytes:
        """Some bytes (b"" when the peer closed); TimeoutError after ``timeout`` s."""

    async def write(self, data: bytes, timeout: float) -> None:
        """All of ``data``; TimeoutError when it takes more than ``timeout`` s."""

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> AsyncStream:
        """The TLS client handshake; the stream to use from now on (TLSError when it fails)."""

    def tls_layer(self) -> TLSLayer | None:
        """The TLS layer, or None while the connection is clear."""

    def local_address(self) -> str:
        """Our own IP address ("" when not an IP connection, as over a unix socket)."""

    async def close(self) -> None:
        """Close at once, nothing flushed; must work when cancelled; twice is harmless."""


class AsyncLock(Protocol):
    """What the client needs of a framework's lock: fair, usable with ``async with``."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> object: ...


class AsyncDriver(abc.ABC):
    """One connection's conversation: connect, take turns, run procedures to their end."""

    #: Make the lock with the client, not at first use (when that could race).
    _lock_at_birth: ClassVar[bool] = False

    def __init__(self, host: str, port: int | None = None, **options: Unpack[ClientKeywords]):
        self._options, self._connect_options = split_options(host, port, options)
        self._trace = self._connect_options.trace
        self._stream: AsyncStream | None = None  # None: closed
        self._conn: ClientConnection | None = None
        self._turns: AsyncLock | None = self._new_lock() if self._lock_at_birth else None
        self._clock = StageClock()  # how long each Read may wait

    # -- what each framework supplies ---------------------------------------------------

    @abc.abstractmethod
    async def _open(self, how: ConnectOptions, host: str, port: int, timeout: float) -> AsyncStream:
        """Connect as ``how`` says (TCP, a unix socket, a given socket); TimeoutError or OSError."""

    #: A lock of the framework that wakes its waiters in order and survives interruption.
    _new_lock: Callable[[], AsyncLock]

    def _turn(self) -> AsyncLock:
        """The lock that makes the operations of several callers take turns (see the class)."""
        turns = self._turns
        if turns is None:  # made on first use: inside the framework's event loop
            turns = self._turns = self._new_lock()
        return turns

    async def _connect(self) -> None:
        if self._stream is not None:
            raise SMTPError("already connected")
        opts, how = self._options, self._connect_options
        timeout = opts.timeouts.connect
        try:
            stream = await self._open(how, opts.host, opts.resolved_port, timeout)
        except SMTPError:
            raise  # ConnectionLost and SMTPTimeout are OSErrors too: already worded
        except TimeoutError as exc:
            where = how.where(opts.host, opts.resolved_port)
            raise SMTPTimeout(f"could not connect to {where} within {timeout} s") from exc
        except OSError as exc:
            where = how.where(opts.host, opts.resolved_port)
            raise ConnectionLost(f"could not connect to {where}: {exc}") from exc
        self._stream = stream
        self._conn = conn = ClientConnection(
            lmtp=opts.lmtp, tls=opts.tls == "implicit", limits=opts.limits
        )
        try:
            local = stream.local_address()  # before any handshake
            if opts.tls == "implicit":
                await self._perform(Handshake(opts.host, timeout), None)
            hello = opts.local_hostname or hello_name(socket.getfqdn(), local)
            nonce = secrets.token_urlsafe(18)
            await self._drive(open_session(conn, opts, hello=hello, nonce=nonce))
        except BaseException:
            await self._finish()
            raise

    def _reusable(self) -> bool:
        """True when the connection is open and between transactions."""
        return self._stream is not None and self._conn is not None and is_reusable(self._conn)

    # -- the effect loop ---------------------------------------------------------------

    def _connection(self) -> ClientConnection:
        if self._stream is None or self._conn is None:
            raise SMTPError("not connected: use connect() or a with block")
        return self._conn

    async def _finish(self) -> None:
        """QUIT if the connection is in a state to say it; close in every case (in its turn)."""
        if self._stream is not None and self._conn is not None and is_reusable(self._conn):
            # Politeness only: the connection closes anyway.
            with contextlib.suppress(SMTPError, ProtocolError, OSError):
                await self._drive(quit(self._conn, self._options.timeouts))
        await self._abort()

    async def _abort(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()

    async def _drive(self, procedure: Procedure[T], source: Source | None = None) -> T:
        """Run a procedure to its end; on an I/O failure or interruption close and raise."""
        conn = self._connection()
        answer: bytes | None = None
        failure: Exception | None = None
        try:
            while True:
                try:
                    # A failure the transport met is thrown in: the procedure judges it.
                    effect = procedure.send(answer) if failure is None else procedure.throw(failure)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                except BaseException:
                    if not is_reusable(conn):
                        await self._abort()
                    raise
                failure = None
                stream = self._stream
                try:
                    # The two effects of every message by exact type: a match
                    # statement tries its class patterns one by one.
                    kind = type(effect)
                    if kind is Write and stream is not None:
                        data = effect.data  # type: ignore[union-attr]
                        await stream.write(data, effect.timeout)  # type: ignore[union-attr]
                        if self._trace is not None:
                            self._trace(">", data)
                        answer = None
                    elif kind is Read and stream is not None:
                        answer = await stream.read(self._clock.wait_for(effect, time.monotonic()))  # type: ignore[arg-type]
                        if self._trace is not None and answer:
                            self._trace("<", answer)
                    else:
                        answer = await self._perform(effect, source)
                except Exception as exc:
                    # The procedure decides what the failure means (a failed
                    # clean-up after a refusal is not the answer); the connection
                    # is closed first. Worded before send_failed(), which forgets
                    # what was awaited.
                    failure = io_failure(exc, effect, conn)
                    conn.send_failed()
                    await self._abort()
                except BaseException:  # interrupted: no clean-up, closed at once
                    conn.send_failed()
                    await self._abort()
                    raise
        finally:
            procedure.close()

    async def _perform(self, effect: object, source: Source | None) -> bytes | None:
        """The effects other than an open connection's Write and Read."""
        stream = self._stream
        if stream is None:
            if type(effect) is Close:
                return None  # closing twice is harmless
            raise ConnectionLost("the connection is closed")
        match effect:
            case Handshake(server_hostname, timeout):
                context = self._connect_options.ssl_context or ssl.create_default_context()
                self._stream = await stream.start_tls(context, server_hostname, timeout)
            case Close():
                await self._abort()
            case NextChunk():
                if source is None:
                    raise TypeError("the procedure asked for content but none was given")
                if isinstance(source, Iterator):
                    return next(source, b"")
                return await anext(source, b"")
            case _:
                raise TypeError(f"unknown effect {effect!r}")
        return None
