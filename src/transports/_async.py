"""What the three async clients share: the public methods and the effect loop.

Each async transport (asyncio, trio, anyio) subclasses ``AsyncClient`` and
supplies five I/O primitives: ``_open``, ``_write``, ``_read``,
``_start_tls`` and ``_close``. They raise ``TimeoutError`` when a step runs
out of time, ``OSError`` or ``ConnectionLost`` when the connection breaks,
and ``TLSError`` when a handshake fails; the loop here turns those into the
session's errors and closes the connection.
"""

from __future__ import annotations

import abc
import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from email.message import Message
from types import TracebackType
from typing import Any, Protocol, TypeVar

from smtpcore import (
    ClientConnection,
    Etrn,
    Expn,
    Extensions,
    Help,
    InvalidArgument,
    Limits,
    Noop,
    ProtocolError,
    Reply,
    Rset,
    Turn,
    Vrfy,
)
from smtpcore.session import (
    BATCH,
    DSN,
    Body,
    ClientOptions,
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
    Timeouts,
    TLSInfo,
    TLSMode,
    TransientError,
    Write,
    batches,
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

from ._content import split_content
from ._tls import TLSLayer, tls_info

__all__ = ["AsyncClient", "AsyncPool", "Trace"]

T = TypeVar("T")
Trace = Callable[[str, bytes], None]
Source = Iterator[bytes] | AsyncIterator[bytes]


class AsyncClient(abc.ABC):
    """An SMTP (or LMTP) client for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. Errors
    are ``smtpcore.SMTPError`` subclasses. After a timeout, a lost
    connection or a cancellation the connection is closed at once and the
    error propagates.

    Several tasks may share one client: its operations (connecting, each
    message, each command, QUIT, the exit of ``async with``) take turns in
    the order they were called, each one whole. A task cancelled while
    waiting for its turn leaves everything as it was; one cancelled during
    its turn closes the connection, so the operations after it fail with
    ``SMTPError`` rather than on a conversation out of step. ``aclose()``
    does not wait: it closes at once.
    """

    def __init__(
        self,
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
    ) -> None:
        self._options = ClientOptions.build(
            host, port, tls=tls, username=username, password=password,
            oauth_token=oauth_token, local_hostname=local_hostname, timeout=timeout,
            lmtp=lmtp, auth_in_clear=auth_in_clear, chunking=chunking, limits=limits,
        )  # fmt: skip
        self._ssl_context = ssl_context
        self._source_address = source_address
        self._trace = trace
        self._conn: ClientConnection | None = None
        self._is_open = False
        self._turns: _Lock | None = None  # made by the framework's own _new_lock()
        self._clock = StageClock()  # how long each Read may wait

    # -- the I/O primitives of each framework -----------------------------------------

    @abc.abstractmethod
    async def _open(self, host: str, port: int, timeout: float) -> str:
        """Connect; return our local address. Raise TimeoutError or OSError."""

    @abc.abstractmethod
    async def _write(self, data: bytes, timeout: float) -> None:
        """Send all of ``data``."""

    @abc.abstractmethod
    async def _read(self, timeout: float) -> bytes:
        """Receive some bytes; b"" when the peer closed."""

    @abc.abstractmethod
    async def _start_tls(
        self, context: ssl.SSLContext, hostname: str | None, timeout: float
    ) -> None:
        """Run the TLS client handshake; raise TLSError when it or verification fails."""

    @abc.abstractmethod
    def _ssl_object(self) -> TLSLayer | None:
        """The TLS layer, or None while the connection is clear."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Close the connection at once; must work inside a cancelled scope."""

    @abc.abstractmethod
    def _new_lock(self) -> _Lock:
        """A lock of this framework that wakes its waiters in order and survives cancellation."""

    # -- the public calls ---------------------------------------------------------------

    @property
    def extensions(self) -> Extensions:
        """What the server offered in its last EHLO reply (empty before connecting)."""
        return self._conn.extensions if self._conn is not None else Extensions()

    @property
    def tls_info(self) -> TLSInfo | None:
        """The TLS version, cipher and certificate, or None on a clear connection."""
        return tls_info(self._ssl_object()) if self._is_open else None

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
            await self._abort()  # at once when cancelled before the turn came

    def _turn(self) -> _Lock:
        """The lock that makes the operations of several tasks take turns (see the class)."""
        turns = self._turns
        if turns is None:  # made on first use: inside the framework's event loop
            turns = self._turns = self._new_lock()
        return turns

    async def connect(self) -> None:
        """Connect, read the greeting, EHLO, TLS and AUTH as configured."""
        async with self._turn():
            await self._connect()

    async def _connect(self) -> None:
        if self._is_open:
            raise SMTPError("already connected")
        opts = self._options
        timeout = opts.timeouts.connect
        try:
            local = await self._open(opts.host, opts.resolved_port, timeout)
        except SMTPError:
            raise  # ConnectionLost and SMTPTimeout are OSErrors too: already worded
        except TimeoutError as exc:
            raise SMTPTimeout(f"could not connect to {opts.host} within {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"could not connect to {opts.host}: {exc}") from exc
        self._is_open = True
        self._conn = conn = ClientConnection(
            lmtp=opts.lmtp, tls=opts.tls == "implicit", limits=opts.limits
        )
        try:
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
        """Send ``content``: bytes, str, a binary file, an iterable or async iterable of bytes."""
        data, source, size = _split(content, size)
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
        ``messages`` may be an iterable or an async iterable. With PIPELINING,
        each message's content goes out with the next one's envelope: one
        round trip per message (RFC 2920 3.1). A refused message does not
        stop the others. After the connection fails, the message in flight is
        "unknown" and the rest "unsent" (see ``Outcome``); nothing here
        raises for what the server did. Each batch of messages takes one turn
        on the client; a cancellation closes the connection, as for any call.
        """
        failure: Exception | None = None
        async for chunk in _batches(messages):
            if failure is not None:
                for outcome in unsent(len(chunk), failure):
                    yield outcome
                continue
            outcomes = await self._deliver_batch(chunk)
            failure = connection_failed(outcomes)
            for outcome in outcomes:
                yield outcome

    async def _deliver_batch(self, chunk: list[Outgoing]) -> list[Outcome]:
        """One batch through ``deliver_many``, in one turn (for ``send_many`` and ``Pool``)."""
        async with self._turn():
            return await self._drive(deliver_many(self._connection(), self._options, chunk))

    def _reusable(self) -> bool:
        """True when the connection is open and between transactions."""
        return self._is_open and self._conn is not None and is_reusable(self._conn)

    async def send_old(
        self, verb: str, sender: str, recipients: str | Sequence[str], content: object
    ) -> SendResult:
        """Send with RFC 821's SEND, SOML or SAML instead of MAIL (obsolete)."""
        upper = verb.upper()
        if upper not in ("SEND", "SOML", "SAML"):
            raise InvalidArgument(f"verb must be SEND, SOML or SAML, not {verb!r}")
        data, source, size = _split(content, None)
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
        if not self._is_open or self._conn is None:
            raise SMTPError("not connected: use connect() or async with")
        return self._conn

    async def _simple(self, command: Noop | Rset | Vrfy | Expn | Help | Etrn | Turn) -> Reply:
        async with self._turn():
            conn = self._connection()
            return await self._drive(simple_command(conn, command, self._options.timeouts.ehlo))

    async def _finish(self) -> None:
        """QUIT if the connection is in a state to say it; close in every case (in its turn)."""
        if self._is_open and self._conn is not None and is_reusable(self._conn):
            # Politeness only: the connection closes anyway.
            with contextlib.suppress(SMTPError, ProtocolError, OSError):
                await self._drive(quit(self._conn, self._options.timeouts))
        await self._abort()

    async def _abort(self) -> None:
        if self._is_open:
            self._is_open = False
            await self._close()

    async def _drive(self, procedure: Procedure[T], source: Source | None = None) -> T:
        """Run a procedure to its end; on an I/O failure or cancellation close and raise."""
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
                try:
                    # The two effects of every message by exact type, without
                    # the extra coroutine and match statement of _perform.
                    kind = type(effect)
                    if kind is Write and self._is_open:
                        data = effect.data  # type: ignore[union-attr]
                        await self._write(data, effect.timeout)  # type: ignore[union-attr]
                        if self._trace is not None:
                            self._trace(">", data)
                        answer = None
                    elif kind is Read and self._is_open:
                        answer = await self._read(self._clock.wait_for(effect, time.monotonic()))  # type: ignore[arg-type]
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
                except BaseException:  # cancellation: no clean-up, closed at once
                    conn.send_failed()
                    await self._abort()
                    raise
        finally:
            procedure.close()

    async def _perform(self, effect: object, source: Source | None) -> bytes | None:
        if not self._is_open:
            if type(effect) is Close:
                return None  # closing twice is harmless
            raise ConnectionLost("the connection is closed")
        match effect:
            case Write(data, timeout):
                await self._write(data, timeout)
                if self._trace is not None:
                    self._trace(">", data)
            case Read():
                data = await self._read(self._clock.wait_for(effect, time.monotonic()))
                if self._trace is not None and data:
                    self._trace("<", data)
                return data
            case Handshake(server_hostname, timeout):
                context = self._ssl_context or ssl.create_default_context()
                await self._start_tls(context, server_hostname, timeout)
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
_P = TypeVar("_P", bound="AsyncPool")


class AsyncPool(abc.ABC):
    """A bounded set of connections to one server, reused by many sends.

    ``async with Pool(host, connections=10, ...) as pool:`` then
    ``await pool.send_message(msg)``, ``await pool.sendmail(...)``,
    ``await pool.send(item)`` or ``async for outcome in pool.send_many(items)``
    from as many tasks as you like: at most ``connections`` connections are
    open at once, each serving one task at a time; the other tasks wait for
    one to be free. The other keyword arguments are the client's.

    Connections are opened when needed and kept between sends. One the
    server closed while it was idle (a 421 for an idle timeout, or a silent
    close) is noticed at its next use: the messages it failed to send are
    "unsent" (nothing of them was delivered), so they are sent again, once,
    on a fresh connection. A message whose end of data went out and whose
    reply never came is "unknown", never sent twice. A connection left in
    any other state (a failure, a cancellation) is closed, not reused.
    Leaving the ``async with`` says QUIT on the idle connections.
    """

    _client_class: type[AsyncClient]

    def __init__(
        self, host: str, port: int | None = None, *, connections: int = 10, **options: Any
    ) -> None:
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise InvalidArgument(f"connections must be a positive number, not {connections!r}")
        self._host = host
        self._port = port
        self._client_options = options
        self.connections = connections
        self._idle: list[AsyncClient] = []
        self._slots: _Lock | None = None  # made by the framework's own _new_slots()
        self._closed = False
        self._client_class(host, port, **options)  # the options are checked now, not later

    @abc.abstractmethod
    def _new_slots(self, count: int) -> _Lock:
        """A semaphore of this framework with ``count`` places (``async with``)."""

    async def __aenter__(self: _P) -> _P:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT and close the idle connections; those in use close when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        try:
            while idle:
                client = idle.pop()
                await client.__aexit__(None, None, None)
        finally:
            for client in idle:  # cancelled while saying QUIT: close the rest at once
                await client.aclose()

    async def send(self, item: Outgoing) -> SendResult:
        """Send one message (as ``send_many`` takes them); raise its error unless accepted."""
        [outcome] = await self._run([item])
        if outcome.result is None:
            assert outcome.error is not None
            raise outcome.error
        return outcome.result

    async def send_message(self, msg: Message) -> SendResult:
        """Send an email message, the envelope from its headers; raise its error unless accepted."""
        return await self.send(msg)

    async def sendmail(
        self, sender: str, recipients: str | Sequence[str], content: bytes | str
    ) -> SendResult:
        """Send ``content`` (in hand) to ``recipients``; raise its error unless accepted."""
        return await self.send((sender, recipients, content))

    async def send_many(
        self, messages: Iterable[Outgoing] | AsyncIterable[Outgoing]
    ) -> AsyncIterator[Outcome]:
        """Send many messages, pipelined, a batch at a time on a free connection; one outcome each.

        See ``AsyncClient.send_many``. The batches of one call go one after
        another (each on whichever connection is free); for several
        connections at once, call it from several tasks.
        """
        async for chunk in _batches(messages):
            for outcome in await self._run(chunk):
                yield outcome

    async def _run(self, chunk: list[Outgoing]) -> list[Outcome]:
        """Send ``chunk`` on a pooled connection; send again what a stale one left unsent."""
        if self._closed:
            raise SMTPError("the pool is closed")
        slots = self._slots
        if slots is None:  # made on first use: inside the framework's event loop
            slots = self._slots = self._new_slots(self.connections)
        async with slots:
            client = self._idle.pop() if self._idle else None
            try:
                outcomes: list[Outcome] = []
                if client is not None:
                    outcomes = await client._deliver_batch(chunk)
                    if not any(_stale(o) for o in outcomes):
                        return outcomes
                    await client.aclose()
                # A fresh connection: at first, or for what a stale one left unsent.
                client = self._client_class(self._host, self._port, **self._client_options)
                again = [i for i, o in enumerate(outcomes) if _stale(o)] or range(len(chunk))
                try:
                    await client.connect()
                except SMTPError as exc:
                    fresh = unsent(len(again), exc)
                else:
                    fresh = await client._deliver_batch([chunk[i] for i in again])
                if not outcomes:
                    return fresh
                for i, outcome in zip(again, fresh, strict=True):
                    outcomes[i] = outcome
                return outcomes
            finally:
                if client is not None:
                    if client._reusable() and not self._closed:
                        self._idle.append(client)
                    else:
                        await client.aclose()


def _stale(outcome: Outcome) -> bool:
    """True for a message a connection the server had closed (421 or silently) did not send."""
    stale = (ConnectionLost, TransientError)
    return outcome.status == "unsent" and isinstance(outcome.error, stale)


class _Lock(Protocol):
    """What the client needs of a framework's lock: ``async with``."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> object: ...


async def _batches(
    messages: Iterable[Outgoing] | AsyncIterable[Outgoing],
) -> AsyncIterator[list[Outgoing]]:
    """The messages in batches for ``deliver_many``, from an iterable or an async one."""
    if not isinstance(messages, AsyncIterable):
        for some in batches(messages):
            yield some
        return
    chunk: list[Outgoing] = []
    async for item in messages:
        chunk.append(item)
        if len(chunk) >= BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _split(
    content: object, size: int | None
) -> tuple[bytes | str | None, Source | None, int | None]:
    if isinstance(content, AsyncIterable):
        return None, _async_pieces(content), size
    return split_content(content, size)


async def _async_pieces(source: AsyncIterable[object]) -> AsyncIterator[bytes]:
    """The non-empty pieces of an async iterable, as bytes (b"" would mean the end)."""
    async for piece in source:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"content gave {type(piece).__name__}, not bytes")
        if piece:
            yield bytes(piece)
