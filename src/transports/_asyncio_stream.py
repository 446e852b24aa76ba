"""The asyncio client's stream: one buffered protocol per connection, at the least cost.

``AsyncioStream`` is the ``AsyncStream`` of ``transports._async_client`` on
asyncio (and on anyio over asyncio).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import Awaitable
from typing import Final, TypeVar

from smtpcore import RemoteProtocolError
from smtpcore.session import TLSError

from ._client_options import ConnectOptions
from ._tls import TLSLayer

__all__ = ["AsyncioStream", "open_stream"]

T = TypeVar("T")


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


class AsyncioStream(asyncio.BufferedProtocol):
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
        """Some bytes (b"" at the end); TimeoutError after ``timeout`` s without any."""
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
        """All of ``data``; TimeoutError when the transport stays paused ``timeout`` s."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        transport.write(data)
        writable = self.writable
        if writable is not None:
            await self.wait(asyncio.shield(writable), timeout)
            if self.closed:
                raise ConnectionResetError("the connection was lost while writing")

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> AsyncioStream:
        """The TLS client handshake; this stream, now over TLS."""
        if self.buffer:
            # RFC 3207 5: nothing the server sent before the handshake may be
            # taken as if it had come through TLS.
            raise RemoteProtocolError(
                f"{len(self.buffer)} octets arrived after the 220 to STARTTLS and before "
                "the TLS handshake (response injection, RFC 3207 5)"
            )
        assert self.transport is not None and self.loop is not None
        try:
            upgrading = self.loop.start_tls(
                self.transport, self, context, server_hostname=server_hostname
            )
            new = await _within(timeout, upgrading)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSError(f"TLS handshake with {server_hostname} failed: {exc}") from exc
        if new is None:
            raise ConnectionResetError("the connection closed during the TLS handshake")
        self.transport = new
        return self

    def tls_layer(self) -> TLSLayer | None:
        """The TLS layer, or None while the connection is clear."""
        transport = self.transport
        obj = transport.get_extra_info("ssl_object") if transport is not None else None
        return obj if isinstance(obj, ssl.SSLObject) else None

    def local_address(self) -> str:
        """Our own IP address, or "" when the connection has none (a unix socket)."""
        transport = self.transport
        name = transport.get_extra_info("sockname") if transport is not None else None
        return str(name[0]) if isinstance(name, tuple) else ""

    async def close(self) -> None:
        """Abort the transport: at once, even when cancelled; nothing buffered is worth sending."""
        transport = self.transport
        if transport is not None:
            transport.abort()


async def open_stream(how: ConnectOptions, host: str, port: int, timeout: float) -> AsyncioStream:
    """The connection ``how`` asks for (the given socket, a unix socket's, or TCP's)."""
    loop = asyncio.get_running_loop()
    stream = AsyncioStream()
    if how.sock is not None:
        connecting = loop.create_connection(lambda: stream, sock=how.sock)
    elif how.socket_path is not None:
        connecting = loop.create_unix_connection(lambda: stream, os.fspath(how.socket_path))
    else:
        connecting = loop.create_connection(
            lambda: stream, host, port, local_addr=how.source_address
        )
    await _within(timeout, connecting)
    return stream
