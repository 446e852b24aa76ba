"""The asyncio server: ``loop.create_server``, a task per connection over a BufferedProtocol.

Each connection is an ``asyncio.BufferedProtocol`` (``_Stream``) and a task
running ``AsyncServing.session`` (the one driver) over it. The protocol is
the stream: a read that finds bytes already held returns them without
waiting on a future, and a write waits only when the transport paused
writing, so most effects cost no trip through the event loop. One timer per
connection is re-armed lazily: a fresh timer for every read costs more than
the SMTP work of the read.

The protocol holds what was received in a bounded buffer, so the STARTTLS
upgrade can drop every plaintext byte that arrived before it (RFC 3207 5);
asyncio's StreamReader would keep them and hand them out as if they came
through TLS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, cast

from smtpcore.session import CallHook, TLSInfo

from ._driver import AsyncServing
from ._loops import LOOPS, event_loop_factory, run
from ._server_settings import resolve
from ._serving import RESOURCE_ERRORS, AcceptBackoff, tls_info

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._server_keywords import ServerKeywords

__all__ = ["LOOPS", "SMTPServer", "event_loop_factory", "run", "serve", "start_server"]

_HIGH_WATER: Final = 256 * 1024  # octets held before reading pauses
_READ_SIZE: Final = 64 * 1024


class _Stream(asyncio.BufferedProtocol):
    """One connection: the protocol asyncio calls back, and the driver's stream."""

    def __init__(self, server: SMTPServer) -> None:
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
        self.waiter: asyncio.Future[bytes | None] | None = None  # a receive waiting
        self.drainer: asyncio.Future[None] | None = None  # a send waiting for room
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    # -- the transport's callbacks ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: no isinstance.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        if server._backoff.pause:
            server._backoff.accepted()
        address = transport.get_extra_info("peername") or ("", 0)
        self.task = self.loop.create_task(server._serving.session(self, address))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.area

    def buffer_updated(self, nbytes: int) -> None:
        waiter = self.waiter
        if waiter is not None and not self.buffer and not waiter.done():
            # The common case: a receive waits and nothing is held. One copy
            # straight to it, no trip through the buffer.
            waiter.set_result(bytes(self.area[:nbytes]))
            return
        self.buffer += self.area[:nbytes]
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        if waiter is not None and not waiter.done():
            waiter.set_result(self.take())

    def eof_received(self) -> None:
        self.eof = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.take())

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof_received()  # a receive learns of the close from b""
        if self.drainer is not None and not self.drainer.done():
            self.drainer.set_exception(ConnectionResetError("the client closed the connection"))

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drainer is not None and not self.drainer.done():
            self.drainer.set_result(None)

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
        waiter: asyncio.Future[bytes | None] = self.loop.create_future()
        self.waiter = waiter
        self.arm(timeout)
        try:
            return await waiter
        finally:
            self.waiter = None

    async def send(self, data: bytes, timeout: float) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)
        if self.writing_paused:
            drainer: asyncio.Future[None] = self.loop.create_future()
            self.drainer = drainer
            self.arm(timeout)
            try:
                await drainer
            finally:
                self.drainer = None

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
        waiter, drainer = self.waiter, self.drainer
        if (waiter is None or waiter.done()) and (drainer is None or drainer.done()):
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self.time_out)
        elif waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif drainer is not None:
            drainer.set_exception(TimeoutError("the client reads no replies"))

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
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()


class _Runtime:
    """asyncio's services: synchronous hooks go to the server's pool of threads."""

    clock = staticmethod(time.monotonic)
    sleep = staticmethod(asyncio.sleep)

    def __init__(self) -> None:
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None

    async def to_thread(self, function: Callable[[object, CallHook], object], handler: object,
                        effect: CallHook) -> object:  # fmt: skip
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, function, handler, effect
        )


class SMTPServer:
    """An SMTP server on asyncio: ``await start()``, ``port``, ``await aclose(grace)``.

    ``aclose`` stops gracefully: sessions waiting for a command get 421,
    sessions in the middle of a message may finish it within ``grace``
    seconds, new connections meanwhile get 421. Also an async context
    manager. Options as in ``transports.sync.SMTPServer``, and
    ``hook_threads``: synchronous hooks (the shipped Maildir and mbox
    handlers, say) run in a pool of that many worker threads per server, so
    one slow hook does not hold up the other sessions; ``async def`` hooks
    run on the loop. ``hook_threads=0`` runs every hook on the loop (for
    hooks that never block).
    """

    def __init__(
        self,
        handler: object,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Unpack[ServerKeywords],
    ) -> None:
        transport, self.options = resolve(handler, "SMTPServer", dict(options))
        self.handler = handler
        self.host = host
        self._port = port
        self.tls_context = transport.tls_context
        self.implicit_tls = transport.implicit_tls
        self._reuse_port = transport.reuse_port
        runtime = _Runtime()
        self._serving = AsyncServing(
            handler, self.options, runtime,
            implicit_tls=self.implicit_tls, hook_threads=transport.hook_threads,
        )  # fmt: skip
        if self._serving.threaded:
            runtime.pool = concurrent.futures.ThreadPoolExecutor(
                transport.hook_threads, thread_name_prefix="smtp-hook"
            )
        self._hook_pool = runtime.pool
        self._backoff = AcceptBackoff(port)
        self._exception_handlers: tuple[object, object] | None = None  # (ours, the one before)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        return self._port

    async def start(self) -> SMTPServer:
        """Bind and listen; return self. Raises ``OSError`` when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Stream(self),
            self.host,
            self._port,
            ssl=self.tls_context if self.implicit_tls else None,
            ssl_handshake_timeout=self.options.idle_timeout if self.implicit_tls else None,
            reuse_port=self._reuse_port or None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._watch_accept_failures(loop)
        return self

    def _watch_accept_failures(self, loop: asyncio.AbstractEventLoop) -> None:
        """Log a run of failed accepts once, not once per retry.

        asyncio's accept loop pauses a second after ``EMFILE`` and the like
        and goes on, but reports every failure through the loop's exception
        handler, with a traceback. Those of our listeners are taken here
        (``AcceptBackoff``); every other report goes where it went before.
        """
        previous = loop.get_exception_handler()
        ours = {sock.fileno() for sock in self._server.sockets} if self._server else set()
        backoff = self._backoff
        backoff.port = self._port

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
            error = context.get("exception")
            fileno = getattr(context.get("socket"), "fileno", None)
            if isinstance(error, OSError) and error.errno in RESOURCE_ERRORS and callable(fileno) \
                    and fileno() in ours:  # fmt: skip
                backoff.failed(str(error))
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)
        self._exception_handlers = (handle, previous)

    async def aclose(self, grace: float = 5.0) -> int:
        """Stop gracefully; return the number of sessions cut with a message in flight.

        As ``transports.sync.SMTPServer.close``: idle sessions get 421 now,
        busy ones get ``grace`` seconds to finish, then those waiting for
        their client get 421 and the rest are aborted.
        """
        if self._server is None or self._serving.sessions.stopping:
            return 0
        dropped = await self._serving.shut_down(grace)
        self._server.close()
        await self._server.wait_closed()
        loop = asyncio.get_running_loop()
        if self._exception_handlers is not None:
            ours, previous = self._exception_handlers
            if loop.get_exception_handler() is ours:  # else another changed it since: leave it
                loop.set_exception_handler(previous)  # type: ignore[arg-type]
        if self._hook_pool is not None:
            # A hook still running finishes in its thread; nothing waits for it.
            self._hook_pool.shutdown(wait=False, cancel_futures=True)
        return dropped

    async def __aenter__(self) -> SMTPServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def start_server(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Unpack[ServerKeywords],
) -> SMTPServer:
    """A started ``SMTPServer``; ``await server.aclose()`` stops it."""
    return await SMTPServer(handler, host, port, **options).start()


async def serve(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    grace: float = 5.0,
    **options: Unpack[ServerKeywords],
) -> None:
    """Serve ``handler`` until cancelled; on cancellation, close gracefully within ``grace``."""
    server = await start_server(handler, host, port, **options)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(server.aclose(grace))
