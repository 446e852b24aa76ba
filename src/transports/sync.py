"""The blocking client: smtpcore's procedures over a socket and the ssl module.

This module is only I/O: connect, TLS, timeouts and the effect loop. What to
say and when lives in ``smtpcore.session``.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import ssl
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from email.message import Message
from types import TracebackType
from typing import Final, TypeVar

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
    TLSError,
    TLSInfo,
    TLSMode,
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
from ._serve_sync import SMTPServer, serve
from ._tls import tls_info

__all__ = ["SMTPClient", "SMTPServer", "send", "serve"]

T = TypeVar("T")
Trace = Callable[[str, bytes], None]

# == client ===========================================================================


class SMTPClient:
    """A blocking SMTP (or LMTP) client for one connection; many messages may use it.

    ``with SMTPClient(host) as smtp:`` connects, greets, says EHLO, starts TLS
    and authenticates; on exit it says QUIT and closes. Errors are
    ``smtpcore.SMTPError`` subclasses (``TransientError``, ``PermanentError``,
    ``RecipientsRefused``, ``AuthenticationError``, ``ConnectionLost``,
    ``SMTPTimeout``, ``TLSError``, ``NotSupported``). After a timeout, a lost
    connection or an interruption (KeyboardInterrupt) the socket is closed.

    Several threads may share one client: its operations (connecting, each
    message, each command, QUIT, the exit of ``with``) take turns in the order
    they asked, each one whole. ``close()`` does not wait: it closes at once.
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
        self._sock: socket.socket | None = None
        self._plain: _Plain | None = None  # while the socket is clear
        self._conn: ClientConnection | None = None
        self._turn = _Turns()
        self._clock = StageClock()  # how long each Read may wait

    @property
    def extensions(self) -> Extensions:
        """What the server offered in its last EHLO reply (empty before connecting)."""
        return self._conn.extensions if self._conn is not None else Extensions()

    @property
    def tls_info(self) -> TLSInfo | None:
        """The TLS version, cipher and certificate, or None on a clear connection."""
        sock = self._sock
        return tls_info(sock if isinstance(sock, ssl.SSLSocket) else None)

    def __enter__(self) -> SMTPClient:
        self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            with self._turn:
                self._finish()
        finally:
            self._abort()  # at once when interrupted before the turn came

    def connect(self) -> None:
        """Connect, read the greeting, EHLO, TLS and AUTH as configured."""
        with self._turn:
            self._connect()

    def _connect(self) -> None:
        if self._sock is not None:
            raise SMTPError("already connected")
        opts = self._options
        timeout = opts.timeouts.connect
        try:
            sock = socket.create_connection(
                (opts.host, opts.resolved_port), timeout, self._source_address
            )
        except TimeoutError as exc:
            raise SMTPTimeout(f"could not connect to {opts.host} within {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"could not connect to {opts.host}: {exc}") from exc
        _make_plain(sock)  # see _Plain; a handshake sets its own timeout
        self._plain = _Plain(sock)
        self._sock = sock
        self._conn = conn = ClientConnection(
            lmtp=opts.lmtp, tls=opts.tls == "implicit", limits=opts.limits
        )
        try:
            # Before any handshake: wrap_socket detaches the clear socket.
            local = str(sock.getsockname()[0])
            if opts.tls == "implicit":
                self._perform(Handshake(opts.host, timeout), None)
            hello = opts.local_hostname or hello_name(socket.getfqdn(), local)
            nonce = secrets.token_urlsafe(18)
            self._drive(open_session(conn, opts, hello=hello, nonce=nonce))
        except BaseException:
            self._finish()
            raise

    def send_message(
        self,
        msg: Message,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        *,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send an email message; the envelope comes from its headers unless given."""
        with self._turn:
            conn = self._connection()
            job = deliver_message(conn, self._options, msg, sender, recipients, dsn=dsn,
                                  requiretls=requiretls)  # fmt: skip
            return self._drive(job)

    def sendmail(
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
        """Send ``content`` (bytes, str, a binary file or an iterable of bytes), streamed."""
        data, source, size = split_content(content, size)
        envelope = Envelope.build(sender, recipients, data, smtputf8=smtputf8, body=body,
                                  size=size, dsn=dsn, requiretls=requiretls)  # fmt: skip
        with self._turn:
            return self._drive(deliver(self._connection(), self._options, envelope), source)

    def send_many(self, messages: Iterable[Outgoing]) -> Iterator[Outcome]:
        """Send many messages on this connection, pipelined; yield one ``Outcome`` each, in order.

        Each item is an ``email.message.Message`` (envelope from its headers),
        an ``Envelope`` with its content, or ``(sender, recipients, content)``.
        With PIPELINING, each message's content goes out with the next one's
        envelope: one round trip per message (RFC 2920 3.1). A refused
        message does not stop the others. After the connection fails, the
        message in flight is "unknown" and the rest "unsent" (see
        ``Outcome``); nothing here raises for what the server did.

        Messages are taken from ``messages`` a batch at a time, as the
        outcomes are consumed; each batch takes one turn on the client.
        """
        failure: Exception | None = None
        for chunk in batches(messages):
            if failure is not None:
                yield from unsent(len(chunk), failure)
                continue
            with self._turn:
                outcomes = self._drive(deliver_many(self._connection(), self._options, chunk))
            failure = connection_failed(outcomes)
            yield from outcomes

    def send_old(
        self, verb: str, sender: str, recipients: str | Sequence[str], content: object
    ) -> SendResult:
        """Send with RFC 821's SEND, SOML or SAML instead of MAIL (obsolete)."""
        data, source, size = split_content(content, None)
        upper = verb.upper()
        if upper not in ("SEND", "SOML", "SAML"):
            raise InvalidArgument(f"verb must be SEND, SOML or SAML, not {verb!r}")
        envelope = Envelope.build(sender, recipients, data, size=size, verb=upper)  # type: ignore[arg-type]
        with self._turn:
            return self._drive(deliver(self._connection(), self._options, envelope), source)

    def noop(self) -> Reply:
        """NOOP; the reply whatever its code (421 raises TransientError)."""
        return self._simple(Noop())

    def rset(self) -> Reply:
        """RSET: abort any transaction."""
        return self._simple(Rset())

    def vrfy(self, address: str) -> Reply:
        """VRFY: the reply (252 and 550 are answers, not errors)."""
        return self._simple(Vrfy(address))

    def expn(self, name: str) -> Reply:
        """EXPN: the reply."""
        return self._simple(Expn(name))

    def help(self, topic: str = "") -> Reply:
        """HELP: the reply."""
        return self._simple(Help(topic))

    def etrn(self, node: str) -> Reply:
        """ETRN (RFC 1985): ask the server to flush its queue for ``node``."""
        return self._simple(Etrn(node))

    def turn(self) -> Reply:
        """TURN (RFC 821, obsolete): the reply; a 250 ends this session."""
        return self._simple(Turn())

    def quit(self) -> Reply:
        """QUIT and close. Raises ConnectionLost when the server closed without a reply."""
        with self._turn:
            reply = self._drive(quit(self._connection(), self._options.timeouts))
            self._abort()
        if reply is None:
            raise ConnectionLost("the server closed the connection without answering QUIT")
        return reply

    def close(self) -> None:
        """Close the connection at once (no QUIT). Closing twice is harmless."""
        self._abort()

    # -- the effect loop ---------------------------------------------------------------

    def _connection(self) -> ClientConnection:
        if self._sock is None or self._conn is None:
            raise SMTPError("not connected: use connect() or a with block")
        return self._conn

    def _simple(self, command: Noop | Rset | Vrfy | Expn | Help | Etrn | Turn) -> Reply:
        with self._turn:
            conn = self._connection()
            return self._drive(simple_command(conn, command, self._options.timeouts.ehlo))

    def _finish(self) -> None:
        """QUIT if the connection is in a state to say it; close in every case."""
        if self._sock is not None and self._conn is not None and is_reusable(self._conn):
            # Politeness only: the connection closes anyway.
            with contextlib.suppress(SMTPError, ProtocolError, OSError):
                self._drive(quit(self._conn, self._options.timeouts))
        self._abort()

    def _abort(self) -> None:
        sock, self._sock = self._sock, None
        self._plain = None
        if sock is not None:
            # shutdown() first: close() alone would not wake another thread
            # blocked reading this socket (it would wait out its timeout).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _drive(self, procedure: Procedure[T], source: Iterator[bytes] | None = None) -> T:
        """Run a procedure to its end; on an I/O failure close the socket and raise."""
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
                        self._abort()
                    raise
                failure = None
                try:
                    answer = self._perform(effect, source)
                except Exception as exc:
                    # The procedure decides what the failure means (a failed
                    # clean-up after a refusal is not the answer); the socket is
                    # closed first. Worded before send_failed(), which forgets
                    # what was awaited.
                    failure = io_failure(exc, effect, conn)
                    conn.send_failed()
                    self._abort()
                except BaseException:
                    conn.send_failed()
                    self._abort()
                    raise
        finally:
            procedure.close()

    def _perform(self, effect: object, source: Iterator[bytes] | None) -> bytes | None:
        # By exact type, the two effects of every message first: a match
        # statement tries its class patterns one by one, and this runs for
        # every effect of every message.
        kind = type(effect)
        sock = self._sock
        if sock is None:
            if kind is Close:
                return None  # closing twice is harmless
            raise ConnectionLost("the connection is closed")
        if kind is Write:
            data = effect.data  # type: ignore[attr-defined]
            plain = self._plain
            if plain is not None:
                plain.send(data, effect.timeout)  # type: ignore[attr-defined]
            else:
                sock.settimeout(effect.timeout)  # type: ignore[attr-defined]
                sock.sendall(data)
            if self._trace is not None:
                self._trace(">", data)
            return None
        if kind is Read:
            timeout = self._clock.wait_for(effect, time.monotonic())  # type: ignore[arg-type]
            plain = self._plain
            if plain is not None:
                received = plain.recv(timeout)
            else:
                sock.settimeout(timeout)
                received = sock.recv(65536)
            if self._trace is not None and received:
                self._trace("<", received)
            return received
        match effect:
            case Handshake(server_hostname, timeout):
                context = self._ssl_context or ssl.create_default_context()
                sock.settimeout(timeout)
                self._plain = None
                try:
                    self._sock = context.wrap_socket(sock, server_hostname=server_hostname)
                except (ssl.SSLError, ssl.CertificateError) as exc:
                    raise TLSError(f"TLS handshake with {server_hostname} failed: {exc}") from exc
            case Close():
                self._abort()
            case NextChunk():
                if source is None:
                    raise TypeError("the procedure asked for content but none was given")
                return next(source, b"")
            case _:
                raise TypeError(f"unknown effect {effect!r}")
        return None


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


# A clear socket's I/O, at the fewest system calls per round trip.
#
# On Linux the socket stays blocking, with the kernel's receive timeout
# (SO_RCVTIMEO) standing for the Read's: one recv() per read, where a
# non-blocking socket needs poll() and recv(), and where settimeout() would
# add an ioctl per call and a poll before every send and recv. Sends pass
# MSG_DONTWAIT and wait with poll() only when the kernel's buffer is full.
# The kernel timeout is set only when a Read allows less than it: a longer
# Read waits in several kernel timeouts, checking its own deadline after
# each, so the timeouts of the stages (5 and 10 minutes) need no system call
# per message. Elsewhere the socket is non-blocking and waits with poll().
# A TLS socket keeps settimeout(), since its reads and writes may need the
# other direction.

_KERNEL_TIMEOUT: Final = sys.platform == "linux" and hasattr(socket, "MSG_DONTWAIT")
_DONTWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0)


def _make_plain(sock: socket.socket) -> None:
    """Put a freshly connected clear socket in the mode ``_Plain`` expects."""
    sock.setblocking(_KERNEL_TIMEOUT)


class _Plain:
    """Send and receive on a clear socket, with timeouts, at the least cost."""

    __slots__ = ("_kernel_timeout", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._kernel_timeout = 0.0  # SO_RCVTIMEO now; 0: not set (would block forever)

    def send(self, data: bytes, timeout: float) -> None:
        """All of ``data`` within ``timeout`` seconds in total (as sendall with a timeout)."""
        sock = self._sock
        try:
            sent = sock.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        deadline = time.monotonic() + timeout
        while True:
            _wait(sock, select.POLLOUT, deadline - time.monotonic())
            try:
                view = view[sock.send(view, _DONTWAIT) :]
            except BlockingIOError:
                continue  # a spurious wake-up
            if not view:
                return

    def recv(self, timeout: float) -> bytes:
        """Some bytes (b"" when the server closed) within ``timeout`` seconds."""
        sock = self._sock
        if not _KERNEL_TIMEOUT:
            # poll() first: a read follows a write, and the reply is rarely in
            # yet, so trying recv() first would mostly cost one failed call.
            end = time.monotonic() + timeout
            while True:
                _wait(sock, select.POLLIN, end - time.monotonic())
                try:
                    return sock.recv(65536)
                except BlockingIOError:
                    continue  # a spurious wake-up
        kernel = self._kernel_timeout
        if timeout == kernel:  # the usual case: one system call
            try:
                return sock.recv(65536)
            except BlockingIOError:  # the kernel timeout ran out
                raise TimeoutError(f"no progress within {timeout} s") from None
        # The kernel timeout may stand for this Read's when it is shorter but
        # not so short that waking up would cost much: then the Read waits in
        # several of them, up to its deadline. Otherwise it is set to this one.
        deadline: float | None = None
        if not min(timeout, 1.0) <= kernel <= timeout:  # also when not yet set
            kernel = self._set_kernel_timeout(timeout)
        if kernel < timeout:
            deadline = time.monotonic() + timeout
        while True:
            try:
                return sock.recv(65536)
            except BlockingIOError:  # the kernel timeout ran out
                if deadline is None:
                    raise TimeoutError(f"no progress within {timeout} s") from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no progress within {timeout} s") from None
                if left < self._kernel_timeout:
                    self._set_kernel_timeout(left)
                    deadline = None  # the next wait ends at the deadline itself

    def _set_kernel_timeout(self, seconds: float) -> float:
        """Set SO_RCVTIMEO to ``seconds`` (a day at most); return what was set."""
        seconds = min(seconds, 86400.0)
        whole = int(seconds)
        # A struct timeval; at least a microsecond, since 0 would mean "never".
        micro = max(int((seconds - whole) * 1e6), 0 if whole else 1)
        self._sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", whole, micro)
        )
        self._kernel_timeout = seconds
        return seconds


def _wait(sock: socket.socket, events: int, timeout: float) -> None:
    """Wait until ``sock`` is ready for ``events``; TimeoutError after ``timeout`` s."""
    poller = select.poll()
    poller.register(sock, events)
    if not poller.poll(max(timeout, 0.0) * 1000):
        raise TimeoutError(f"no progress within {timeout} s")


def send(
    msg: Message,
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
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    with SMTPClient(
        host, port, tls=tls, ssl_context=ssl_context, username=username, password=password,
        oauth_token=oauth_token, local_hostname=local_hostname, timeout=timeout, lmtp=lmtp,
        source_address=source_address, auth_in_clear=auth_in_clear, chunking=chunking,
        limits=limits, trace=trace,
    ) as client:  # fmt: skip
        return client.send_message(msg)
