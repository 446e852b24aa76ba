"""The asyncio server: ``loop.create_server``, each connection a BufferedProtocol.

Each connection is an ``asyncio.BufferedProtocol`` that runs
``AsyncServing.session`` (the one driver) itself, as a task would
(``_asyncio_steps``); the protocol is the driver's stream
(``_asyncio_session``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from types import TracebackType
from typing import TYPE_CHECKING

from ._asyncio_session import Runtime, Stream
from ._driver import AsyncServing
from ._loops import LOOPS, event_loop_factory, run
from ._server_settings import ServerBase
from ._serving import RESOURCE_ERRORS, AcceptBackoff

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._server_keywords import ServerKeywords

__all__ = ["LOOPS", "SMTPServer", "event_loop_factory", "run", "serve", "start_server"]


class SMTPServer(ServerBase):
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

    def _setup(self) -> None:
        handler = self.handler
        transport = self.transport
        runtime = Runtime()
        self._serving = AsyncServing(
            handler, self.options, runtime,
            implicit_tls=self.implicit_tls, hook_threads=transport.hook_threads,
        )  # fmt: skip
        if self._serving.threaded:
            runtime.pool = concurrent.futures.ThreadPoolExecutor(
                transport.hook_threads, thread_name_prefix="smtp-hook"
            )
        self._hook_pool = runtime.pool
        self._backoff = AcceptBackoff(self._port)
        self._exception_handlers: tuple[object, object] | None = None  # (ours, the one before)
        self._server: asyncio.Server | None = None

    async def start(self) -> SMTPServer:
        """Bind and listen; return self. Raises ``OSError`` when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Stream(self),
            self.host,
            self._port,
            ssl=self.tls_context if self.implicit_tls else None,
            ssl_handshake_timeout=self.options.idle_timeout if self.implicit_tls else None,
            reuse_port=self.transport.reuse_port or None,
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
