"""The asyncio client: smtpcore's procedures over asyncio streams.

Only I/O lives here: the five primitives of ``transports._async.AsyncClient``
(connect, write, read, STARTTLS, close) and the one-shot ``send``.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Awaitable
from email.message import Message
from typing import Final, TypeVar

from smtpcore import Limits, RemoteProtocolError
from smtpcore.session import SendResult, Timeouts, TLSError, TLSMode

from ._async import AsyncClient, AsyncPool, Trace
from ._loops import LOOPS, event_loop_factory, run
from ._serve_asyncio import SMTPServer, serve, start_server
from ._tls import TLSLayer

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

T = TypeVar("T")

# == client ===========================================================================


async def _within(timeout: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``, or TimeoutError after ``timeout`` seconds (no extra task on 3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError as exc:  # not yet TimeoutError on 3.10
        raise TimeoutError(str(exc)) from exc


#: Octets received and not yet taken before reading pauses (flow control).
_HIGH_WATER: Final = 256 * 1024


#: Octets the transport may receive into our buffer at once.
_RECEIVE: Final = 64 * 1024


class _Stream(asyncio.BufferedProtocol):
    """The bytes of one client connection, in one bounded buffer.

    Why not StreamReader/StreamWriter: each read and write there costs a
    timeout context and a drain even when the bytes are already in hand. Here
    a read waits (with one timer) only when nothing is buffered, and a write
    waits only while the transport has paused us. It also lets STARTTLS see
    plaintext that arrived behind the 220 (RFC 3207 5) instead of handing it
    out later as if it had come through TLS.

    A buffered protocol: the transport receives into one area of ours. A
    plain Protocol gets a fresh bytes object per read, which asyncio
    allocates at 256 KiB and shrinks: with glibc that can be an mmap, an
    mremap and a munmap per reply. The loop is looked up once, at connection:
    ``asyncio.get_running_loop()`` makes a getpid() system call each time.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.area = memoryview(bytearray(_RECEIVE))
        self.buffer = bytearray()
        self.eof = False
        self.lost: Exception | None = None
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.current: asyncio.Future[None] | None = None  # what the timer would end
        self.deadline: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.area

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer += self.area[:nbytes]
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.eof = self.closed = True
        self.lost = exc
        self._wake()
        writable = self.writable
        if writable is not None and not writable.done():
            writable.set_result(None)

    def pause_writing(self) -> None:
        assert self.loop is not None
        self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        writable, self.writable = self.writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, waiter: asyncio.Future[None], timeout: float) -> None:
        """Wait for ``waiter``; TimeoutError after ``timeout`` s.

        One timer per connection, moved only when a wait must end sooner
        than it would fire: the timeouts are minutes long and most waits end
        within a millisecond, so a timer per wait would be created and
        cancelled thousands of times a second for nothing.
        """
        loop = self.loop
        assert loop is not None
        deadline = loop.time() + timeout
        timer = self.timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self.timer = loop.call_at(deadline, self._on_timer)
        self.current, self.deadline = waiter, deadline
        try:
            await waiter
        finally:
            self.current = self.deadline = None

    def _on_timer(self) -> None:
        self.timer = None
        waiter, deadline = self.current, self.deadline
        if waiter is None or deadline is None or waiter.done():
            return  # nothing is waiting: the next wait arms a new timer
        loop = self.loop
        assert loop is not None
        if loop.time() < deadline:
            self.timer = loop.call_at(deadline, self._on_timer)  # a later wait's deadline
        else:
            waiter.set_exception(TimeoutError("no progress within the timeout"))

    async def read(self, timeout: float) -> bytes:
        if not self.buffer and not self.eof:
            assert self.loop is not None
            waiter = self.waiter = self.loop.create_future()
            try:
                await self.wait(waiter, timeout)
            finally:
                self.waiter = None
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            if self.reading_paused and self.transport is not None:
                self.reading_paused = False
                self.transport.resume_reading()
            return data
        if self.lost is not None:
            raise self.lost
        return b""

    async def write(self, data: bytes, timeout: float) -> None:
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        transport.write(data)
        writable = self.writable
        if writable is not None:
            await self.wait(asyncio.shield(writable), timeout)
            if self.closed:
                raise ConnectionResetError("the connection was lost while writing")


class SMTPClient(AsyncClient):
    """An SMTP (or LMTP) client over asyncio streams, for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. Errors
    are ``smtpcore.SMTPError`` subclasses. After a timeout, a lost
    connection or a cancellation the connection is closed at once and the
    error propagates.
    """

    _stream: _Stream

    async def _open(self, host: str, port: int, timeout: float) -> str:
        loop = asyncio.get_running_loop()
        stream = _Stream()
        connecting = loop.create_connection(
            lambda: stream, host, port, local_addr=self._source_address
        )
        await _within(timeout, connecting)
        self._stream = stream
        assert stream.transport is not None
        return str(stream.transport.get_extra_info("sockname")[0])

    async def _write(self, data: bytes, timeout: float) -> None:
        await self._stream.write(data, timeout)

    async def _read(self, timeout: float) -> bytes:
        return await self._stream.read(timeout)

    async def _start_tls(
        self, context: ssl.SSLContext, hostname: str | None, timeout: float
    ) -> None:
        stream = self._stream
        if stream.buffer:
            # RFC 3207 5: nothing the server sent before the handshake may be
            # taken as if it had come through TLS.
            raise RemoteProtocolError(
                f"{len(stream.buffer)} octets arrived after the 220 to STARTTLS and before "
                "the TLS handshake (response injection, RFC 3207 5)"
            )
        assert stream.transport is not None
        loop = asyncio.get_running_loop()
        try:
            upgrading = loop.start_tls(stream.transport, stream, context, server_hostname=hostname)
            new = await _within(timeout, upgrading)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSError(f"TLS handshake with {hostname} failed: {exc}") from exc
        if new is None:
            raise ConnectionResetError("the connection closed during the TLS handshake")
        stream.transport = new

    def _ssl_object(self) -> TLSLayer | None:
        transport = self._stream.transport
        obj = transport.get_extra_info("ssl_object") if transport is not None else None
        return obj if isinstance(obj, ssl.SSLObject) else None

    def _new_lock(self) -> asyncio.Lock:
        # Waiters are woken in order; a cancelled one drops out of the queue.
        return asyncio.Lock()

    async def _close(self) -> None:
        # abort(): at once, even when cancelled; nothing buffered is worth sending.
        transport = self._stream.transport
        if transport is not None:
            transport.abort()


async def send(
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
    async with SMTPClient(
        host, port, tls=tls, ssl_context=ssl_context, username=username, password=password,
        oauth_token=oauth_token, local_hostname=local_hostname, timeout=timeout, lmtp=lmtp,
        source_address=source_address, auth_in_clear=auth_in_clear, chunking=chunking,
        limits=limits, trace=trace,
    ) as client:  # fmt: skip
        return await client.send_message(msg)


class Pool(AsyncPool):
    """Connections to one server for many sends at once; see ``transports._async.AsyncPool``.

    ``async with Pool("mx.example", connections=20, tls="starttls") as pool:``
    then ``await pool.send_message(msg)`` from any number of tasks.
    """

    _client_class = SMTPClient

    def _new_slots(self, count: int) -> asyncio.Semaphore:
        return asyncio.Semaphore(count)
