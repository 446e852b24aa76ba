"""The asyncio server's connection: a BufferedProtocol that is also the driver's stream.

The protocol runs the driver's coroutine itself (``_asyncio_steps``): a wait
for the client parks it, and the protocol's callback resumes it with what
came. A read that finds bytes already held returns them without parking,
and a write parks only when the transport paused writing, so most effects
cost no trip through the event loop. One timer per connection is
re-armed lazily: a fresh timer for every read costs more than the SMTP work
of the read.

The protocol holds what was received in a bounded buffer, so the STARTTLS
upgrade can drop every plaintext byte that arrived before it (RFC 3207 5);
asyncio's StreamReader would keep them and hand them out as if they came
through TLS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ssl
import time
from collections.abc import Callable
from typing import Final, Protocol, cast

from smtpcore.session import CallHook, TLSInfo

from ._asyncio_steps import PARK, Steps, in_session_task
from ._driver import AsyncServing
from ._serving import AcceptBackoff, call_hook_async, tls_info

__all__ = ["Listening", "Runtime", "Stream"]

_HIGH_WATER: Final = 256 * 1024  # octets held before reading pauses
_READ_SIZE: Final = 64 * 1024


class Listening(Protocol):
    """What a connection needs of its server."""

    tls_context: ssl.SSLContext | None
    _backoff: AcceptBackoff
    _serving: AsyncServing


class Stream(asyncio.BufferedProtocol):
    """One connection: the protocol asyncio calls back, and the driver's stream."""

    def __init__(self, server: Listening) -> None:
        self.server = server
        # The transport reads into this area: with a plain Protocol, asyncio
        # allocates 256 KiB for every read, which costs an mmap, an mremap
        # and a munmap per read.
        self.area = memoryview(bytearray(_READ_SIZE))
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.reading_paused = False
        self.writing_paused = False
        self.idle = False
        self.receiving = False  # a receive is parked
        self.draining = False  # a send is parked until there is room
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.steps = Steps(self.loop)  # runs the driver's coroutine

    # -- the transport's callbacks ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: no isinstance.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        if server._backoff.pause:
            server._backoff.accepted()
        address = transport.get_extra_info("peername") or ("", 0)
        self.steps.start(server._serving.session(self, address))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.area

    def buffer_updated(self, nbytes: int) -> None:
        if self.receiving and not self.buffer:
            # The common case: a receive waits and nothing is held. One copy
            # straight to it, no trip through the buffer.
            self.answer_receive(bytes(self.area[:nbytes]))
            return
        self.buffer += self.area[:nbytes]
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        if self.receiving:
            self.answer_receive(self.take())

    def eof_received(self) -> None:
        self.eof = True
        if self.receiving:
            self.answer_receive(self.take())

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof_received()  # a receive learns of the close from b""
        self.end_drain(ConnectionResetError("the client closed the connection"))

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.end_drain(None)

    # -- resuming the parked driver -------------------------------------------------

    def answer_receive(self, data: bytes | None) -> None:
        """A parked receive returns ``data`` (None: its time ran out, or a wake)."""
        self.receiving = False
        self.steps.step(data, None)

    def end_drain(self, error: BaseException | None) -> None:
        """A send parked for room goes on, or fails with ``error``; nothing when none is."""
        if self.draining:
            self.draining = False
            self.steps.step(None, error)

    # -- the driver's stream --------------------------------------------------------

    def take(self) -> bytes:
        """Everything received so far (``b""`` once the client closed and all was taken)."""
        data = bytes(self.buffer)
        self.buffer.clear()
        if self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    async def receive(self, timeout: float) -> bytes | None:
        if self.buffer or self.eof:
            return self.take()
        self.receiving = True
        self.arm(timeout)
        data: bytes | None = await PARK  # bytes, or None when the time ran out
        return data

    async def send(self, data: bytes, timeout: float) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)
        if self.writing_paused:
            self.draining = True
            self.arm(timeout)
            await PARK

    def arm(self, timeout: float) -> None:
        """Make sure the timer fires by ``timeout`` from now (it re-arms itself when early)."""
        self.deadline = deadline = self.loop.time() + timeout
        timer = self.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self.time_out)

    def time_out(self) -> None:
        self.timer = None
        if not (self.receiving or self.draining):
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self.time_out)
        elif self.receiving:
            self.answer_receive(None)
        else:
            self.end_drain(TimeoutError("the client reads no replies"))

    async def start_tls(self, timeout: float) -> TLSInfo:
        transport = self.transport
        assert transport is not None
        layer = transport.get_extra_info("ssl_object")
        if layer is not None:  # implicit TLS: the listener's handshake is done
            return tls_info(layer)
        assert self.server.tls_context is not None
        # RFC 3207 5: plaintext sent behind STARTTLS is dropped. start_tls pauses
        # the plain transport before its first await, so no later byte gets in.
        self.buffer.clear()
        try:
            upgraded = await self.loop.start_tls(
                transport, self, self.server.tls_context, server_side=True,
                ssl_handshake_timeout=timeout,
            )  # fmt: skip
        except asyncio.TimeoutError as error:  # not TimeoutError itself on 3.10
            raise TimeoutError("the TLS handshake took too long") from error
        if upgraded is None:
            raise ConnectionResetError("the client closed during the TLS handshake")
        # Keep the buffer: the client may have sent EHLO through TLS already.
        self.transport = upgraded
        return tls_info(upgraded.get_extra_info("ssl_object"))

    async def aclose(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()

    def wake(self) -> None:
        if self.receiving:
            self.receiving = False
            # Called from another task: the session goes on in a turn of its own.
            self.loop.call_soon(self.steps.step, None, None)

    def abort(self) -> None:
        self.receiving = self.draining = False  # no callback may resume it with bytes now
        self.steps.cancel()
        if self.transport is not None:
            self.transport.abort()


class Runtime:
    """asyncio's services: synchronous hooks go to the server's pool of threads."""

    clock = staticmethod(time.monotonic)
    sleep = staticmethod(asyncio.sleep)

    #: A hook on the loop; what an ``async def`` hook returns is run in a task.
    call_hook = functools.partial(call_hook_async, wait=in_session_task)

    def __init__(self) -> None:
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None

    async def to_thread(self, function: Callable[[object, CallHook], object], handler: object,
                        effect: CallHook) -> object:  # fmt: skip
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, function, handler, effect
        )
