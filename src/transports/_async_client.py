"""The client, written once: smtpcore's procedures over a stream, with turns and timeouts.

``AsyncClient`` runs the core's procedures (greeting, EHLO, TLS, AUTH, each
message, the commands, QUIT) over a stream (``AsyncStream``); a framework
supplies only how to open its stream (``_open``) and its lock (``_new_lock``). The
stream raises ``TimeoutError`` when a step runs out of time, ``OSError`` or
``ConnectionLost`` when the connection breaks, and ``TLSError`` when a
handshake fails; the loop here turns those into the session's errors and
closes the connection.

The blocking client (``_sync_client.py``) is written from the async one
(``_async_client.py``) by ``make generate``, the coroutine words taken out:
edit the async one.
"""

from __future__ import annotations

import abc
import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from email.message import Message
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from smtpcore import (
    ClientConnection,
    Etrn,
    Expn,
    Extensions,
    Help,
    InvalidArgument,
    Noop,
    ProtocolError,
    Reply,
    Rset,
    Turn,
    Vrfy,
)
from smtpcore.session import (
    DSN,
    Body,
    Close,
    ConnectionLost,
    Envelope,
    Handshake,
    NextChunk,
    Outcome,
    Outgoing,
    Procedure,
    Read,
    SendResult,
    SMTPError,
    SMTPTimeout,
    StageClock,
    TLSInfo,
    Write,
    connection_failed,
    deliver,
    deliver_many,
    deliver_message,
    hello_name,
    io_failure,
    is_reusable,
    open_session,
    quit,
    simple_command,
    unsent,
)

from ._client_options import ConnectOptions, split_options
from ._content import async_batches, split_async_content
from ._tls import TLSLayer, tls_info

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["AsyncClient", "AsyncLock", "AsyncStream", "send_with"]

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


class AsyncClient(abc.ABC):
    """An SMTP (or LMTP) client for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. The
    keywords are those of ``ClientKeywords``: the fields of
    ``smtpcore.session.ClientOptions`` (``timeout`` for ``timeouts``) and of
    ``ConnectOptions``. Errors are ``smtpcore.SMTPError`` subclasses. After
    a timeout, a lost connection or an interruption the connection is
    closed at once and the error propagates.

    Several tasks (or threads) may share one client: its operations
    (connecting, each message, each command, QUIT, the exit of the ``async
    with``) take turns in the order they were called, each one whole. One
    interrupted while waiting for its turn leaves everything as it was; one
    interrupted during its turn closes the connection, so the operations
    after it fail with ``SMTPError`` rather than on a conversation out of
    step. ``aclose()`` does not wait: it closes at once.
    """

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

    # -- the public calls ---------------------------------------------------------------

    @property
    def extensions(self) -> Extensions:
        """What the server offered in its last EHLO reply (empty before connecting)."""
        return self._conn.extensions if self._conn is not None else Extensions()

    @property
    def tls_info(self) -> TLSInfo | None:
        """The TLS version, cipher and certificate, or None on a clear connection."""
        stream = self._stream
        return tls_info(stream.tls_layer()) if stream is not None else None

    async def __aenter__(self: _C) -> _C:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            async with self._turn():
                await self._finish()
        finally:
            await self._abort()  # at once when interrupted before the turn came

    def _turn(self) -> AsyncLock:
        """The lock that makes the operations of several callers take turns (see the class)."""
        turns = self._turns
        if turns is None:  # made on first use: inside the framework's event loop
            turns = self._turns = self._new_lock()
        return turns

    async def connect(self) -> None:
        """Connect, read the greeting, EHLO, TLS and AUTH as configured."""
        async with self._turn():
            await self._connect()

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

    async def send_message(
        self,
        msg: Message,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        *,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send an email message; the envelope comes from its headers unless given."""
        async with self._turn():
            job = deliver_message(self._connection(), self._options, msg, sender, recipients,
                                  dsn=dsn, requiretls=requiretls)  # fmt: skip
            return await self._drive(job)

    async def sendmail(
        self,
        sender: str,
        recipients: str | Sequence[str],
        content: object,
        *,
        smtputf8: bool | None = None,
        body: Body | None = None,
        size: int | None = None,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send ``content``, streamed: bytes, str, a binary file, an (async) iterable of bytes."""
        data, source, size = split_async_content(content, size)
        envelope = Envelope.build(sender, recipients, data, smtputf8=smtputf8, body=body,
                                  size=size, dsn=dsn, requiretls=requiretls)  # fmt: skip
        async with self._turn():
            return await self._drive(deliver(self._connection(), self._options, envelope), source)

    async def send_many(
        self, messages: Iterable[Outgoing] | AsyncIterable[Outgoing]
    ) -> AsyncIterator[Outcome]:
        """Send many messages on this connection, pipelined; yield one ``Outcome`` each, in order.

        Each item is an ``email.message.Message`` (envelope from its headers),
        an ``Envelope`` with its content, or ``(sender, recipients, content)``;
        the async clients take an async iterable too. With PIPELINING, each
        message's content goes out with the next one's envelope: one round
        trip per message (RFC 2920 3.1). A refused message does not stop the
        others. After the connection fails, the message in flight is
        "unknown" and the rest "unsent" (see ``Outcome``); nothing here
        raises for what the server did. Messages are taken a batch at a
        time, as the outcomes are consumed; each batch takes one turn on the
        client, and an interruption closes the connection, as for any call.
        """
        failure: Exception | None = None
        async for chunk in async_batches(messages):
            if failure is not None:
                for outcome in unsent(len(chunk), failure):
                    yield outcome
                continue
            outcomes = await self._deliver_batch(chunk)
            failure = connection_failed(outcomes)
            for outcome in outcomes:
                yield outcome

    async def _deliver_batch(self, chunk: list[Outgoing]) -> list[Outcome]:
        """One batch through ``deliver_many``, in one turn (for ``send_many`` and pools)."""
        async with self._turn():
            return await self._drive(deliver_many(self._connection(), self._options, chunk))

    def _reusable(self) -> bool:
        """True when the connection is open and between transactions."""
        return self._stream is not None and self._conn is not None and is_reusable(self._conn)

    async def send_old(
        self, verb: str, sender: str, recipients: str | Sequence[str], content: object
    ) -> SendResult:
        """Send with RFC 821's SEND, SOML or SAML instead of MAIL (obsolete)."""
        upper = verb.upper()
        if upper not in ("SEND", "SOML", "SAML"):
            raise InvalidArgument(f"verb must be SEND, SOML or SAML, not {verb!r}")
        data, source, size = split_async_content(content, None)
        envelope = Envelope.build(sender, recipients, data, size=size, verb=upper)  # type: ignore[arg-type]
        async with self._turn():
            return await self._drive(deliver(self._connection(), self._options, envelope), source)

    async def noop(self) -> Reply:
        """NOOP; the reply whatever its code (421 raises TransientError)."""
        return await self._simple(Noop())

    async def rset(self) -> Reply:
        """RSET: abort any transaction."""
        return await self._simple(Rset())

    async def vrfy(self, address: str) -> Reply:
        """VRFY: the reply (252 and 550 are answers, not errors)."""
        return await self._simple(Vrfy(address))

    async def expn(self, name: str) -> Reply:
        """EXPN: the reply."""
        return await self._simple(Expn(name))

    async def help(self, topic: str = "") -> Reply:
        """HELP: the reply."""
        return await self._simple(Help(topic))

    async def etrn(self, node: str) -> Reply:
        """ETRN (RFC 1985): ask the server to flush its queue for ``node``."""
        return await self._simple(Etrn(node))

    async def turn(self) -> Reply:
        """TURN (RFC 821, obsolete): the reply; a 250 ends this session."""
        return await self._simple(Turn())

    async def quit(self) -> Reply:
        """QUIT and close. Raises ConnectionLost when the server closed without a reply."""
        async with self._turn():
            reply = await self._drive(quit(self._connection(), self._options.timeouts))
            await self._abort()
        if reply is None:
            raise ConnectionLost("the server closed the connection without answering QUIT")
        return reply

    async def aclose(self) -> None:
        """Close the connection at once (no QUIT). Closing twice is harmless."""
        await self._abort()

    # -- the effect loop ---------------------------------------------------------------

    def _connection(self) -> ClientConnection:
        if self._stream is None or self._conn is None:
            raise SMTPError("not connected: use connect() or a with block")
        return self._conn

    async def _simple(self, command: Noop | Rset | Vrfy | Expn | Help | Etrn | Turn) -> Reply:
        async with self._turn():
            conn = self._connection()
            return await self._drive(simple_command(conn, command, self._options.timeouts.ehlo))

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


_C = TypeVar("_C", bound=AsyncClient)


async def send_with(client: AsyncClient, msg: Message) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT: every one-shot ``send``."""
    async with client:
        return await client.send_message(msg)
