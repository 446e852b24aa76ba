"""The asyncio server: ``loop.create_server``, each connection driven from its callbacks.

Each connection is an ``asyncio.Protocol`` (``_Session``) that runs the
session procedure itself: when bytes arrive it answers the ``Receive`` the
procedure waits on and runs it on to its next wait. Most effects need no
waiting (writes, the clock, ids, hooks that return at once), so a command
costs one callback, as in the leanest asyncio server; a task is started
only for what must be awaited (a hook that returns an awaitable, the TLS
handshake, a full send buffer). A task per connection awaiting each read
cost more than the SMTP work of the read.

The protocol holds what was received in a bounded buffer, so the STARTTLS
upgrade can drop every plaintext byte that arrived before it (RFC 3207 5);
asyncio's StreamReader would keep them and hand them out as if they came
through TLS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import secrets
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Final, Literal, TypeVar, cast

from smtpcore import InvalidArgument, Limits, ServerConfig
from smtpcore.session._admission import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT
from smtpcore.session._effects import Close, Handshake, Write
from smtpcore.session._server import (
    AUTH_FAILURE_DELAY,
    AUTH_FAILURES_PER_ADDRESS,
    DATA_TIMEOUT,
    IDLE_TIMEOUT,
    MIN_DATA_RATE,
    SHUT_DOWN,
    SPOOL_THRESHOLD,
    TIMED_OUT,
    CallHook,
    Clock,
    NewId,
    Notice,
    Now,
    Pause,
    Peer,
    Receive,
    ServerOptions,
    ServerProcedure,
    SpoolWrite,
)

from ._serving import (
    HOOK_THREADS,
    LOG,
    RESOURCE_ERRORS,
    AcceptBackoff,
    call_sync_hook,
    failed_hook,
    new_id,
    now,
    session_log,
    threaded_hooks,
    tls_info,
    unknown_effect,
    warn_unknown_hooks,
)
from ._spool import spool_write

__all__ = ["LOOPS", "SMTPServer", "event_loop_factory", "run", "serve", "start_server"]

T = TypeVar("T")

LOOPS: Final = ("asyncio", "uvloop")
"""The event loops ``run`` and ``smtpcore serve --loop`` know: asyncio's own, and
uvloop's (the ``uvloop`` extra; not on Windows)."""

LoopName = Literal["asyncio", "uvloop"]

_HIGH_WATER: Final = 256 * 1024  # octets held before reading pauses
_READ_SIZE: Final = 64 * 1024


def event_loop_factory(loop: LoopName = "asyncio") -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop of the kind named: ``"asyncio"`` or ``"uvloop"``.

    ``"uvloop"`` needs the ``uvloop`` extra; without it this raises
    ``ModuleNotFoundError`` naming the extra to install.
    """
    if loop == "asyncio":
        return asyncio.new_event_loop
    if loop != "uvloop":
        raise InvalidArgument(f"loop must be one of {', '.join(LOOPS)}, not {loop!r}")
    try:
        import uvloop
    except ImportError:
        raise ModuleNotFoundError(
            "loop='uvloop' needs uvloop, which is not installed: pip install 'smtpcore[uvloop]'",
            name="uvloop",
        ) from None
    return uvloop.new_event_loop


def run(main: Coroutine[object, object, T], *, loop: LoopName = "asyncio") -> T:
    """``asyncio.run(main)`` on the event loop named (``"asyncio"`` or ``"uvloop"``).

    For a server on uvloop: ``run(serve(handler, port=2525), loop="uvloop")``.
    The servers need nothing else: the loop is theirs to use, whichever it is.
    """
    try:
        factory = event_loop_factory(loop)
    except BaseException:
        main.close()  # never awaited: say nothing about it
        raise
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    # 3.10 has no Runner: the policy makes the loop asyncio.run creates.
    policy = asyncio.get_event_loop_policy()

    class _Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return factory()

    asyncio.set_event_loop_policy(_Policy())
    try:
        return asyncio.run(main)
    finally:
        asyncio.set_event_loop_policy(policy)


class _Session(asyncio.BufferedProtocol):
    """One connection and the session procedure that serves it."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server
        # The transport reads into this area: with a plain Protocol, asyncio
        # allocates 256 KiB for every read, which costs an mmap, an mremap
        # and a munmap per read.
        self.area = memoryview(bytearray(_READ_SIZE))
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.procedure: ServerProcedure[int] | None = None
        self.buffer = bytearray()
        self.eof = False
        self.reading_paused = False
        self.writing_paused = False
        # What the procedure waits for: a Receive ("read"), room in the send
        # buffer ("drain"), a task ("task"), or nothing ("" while it runs).
        self.waiting = ""
        self.interruptible = False
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.finished = self.loop.create_future()
        self.address: tuple[str, int] = ("", 0)
        self.admitted = False  # counted by the server's Admission: released once

    # -- the transport's callbacks ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: no isinstance.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        if server._backoff.pause:
            server._backoff.accepted()
        address = transport.get_extra_info("peername") or ("", 0)
        self.address = address
        refuse = server._admission.admit(address[0], stopping=server._stopping)
        if refuse is None:
            server._sessions.add(self)
            self.admitted = True
        tls = tls_info(transport.get_extra_info("ssl_object")) if server.implicit_tls else None
        self.procedure = server.options.session(
            Peer(address[0], address[1]), new_id(), tls=tls, refuse=refuse, log=session_log()
        )
        self.advance(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.area

    def buffer_updated(self, nbytes: int) -> None:
        if self.waiting == "read" and not self.buffer:
            # The common case: the procedure waits and nothing is held. One copy
            # straight to it, no trip through the buffer.
            self.waiting = ""
            self.advance(bytes(self.area[:nbytes]))
            return
        self.buffer += self.area[:nbytes]
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        if self.waiting == "read":
            self.waiting = ""
            self.advance(self.take())

    def eof_received(self) -> None:
        self.eof = True
        if self.waiting == "read":
            self.waiting = ""
            self.advance(self.take())

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if self.waiting == "read":
            self.waiting = ""
            self.advance(self.take())  # the procedure learns of the close from b""
        elif self.waiting == "drain":
            self.finish()  # the replies it waits to send can never go
        # A task in flight finds the transport closed at its next write.

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.waiting == "drain":
            self.waiting = ""
            self.advance(None)

    # -- running the procedure ------------------------------------------------------

    def take(self) -> bytes:
        """Everything received so far (``b""`` once the client closed and all was taken)."""
        data = bytes(self.buffer)
        self.buffer.clear()
        if self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    def advance(self, answer: object) -> None:
        """Run the procedure on from ``answer`` until it has to wait, or ends."""
        procedure = self.procedure
        if procedure is None:
            return
        server = self.server
        try:
            while True:
                effect = procedure.send(answer)
                answer = None
                # The effects of every command first, by exact type.
                if type(effect) is Receive:
                    if self.buffer or self.eof:
                        answer = self.take()
                    elif effect.interruptible and server._stopping:
                        answer = SHUT_DOWN
                    else:
                        self.wait("read", effect.timeout, effect.interruptible)
                        return
                elif type(effect) is Write:
                    transport = self.transport
                    if transport is None or transport.is_closing():
                        raise ConnectionResetError("the client closed the connection")
                    transport.write(effect.data)
                    if self.writing_paused:
                        self.wait("drain", effect.timeout, False)
                        return
                elif type(effect) is CallHook:
                    if effect.name in server._threaded:
                        self.spawn(self.threaded_hook(effect))
                        return
                    try:
                        answer = getattr(server.handler, effect.name)(*effect.args)
                    except Exception as error:
                        answer = failed_hook(effect, error)
                    # None is the common answer, and isawaitable's ABC check is not free.
                    if answer is not None and inspect.isawaitable(answer):
                        self.spawn(self.hook(effect, answer))
                        return
                else:
                    match effect:
                        case Clock():
                            answer = self.loop.time()
                        case Now():
                            answer = now()
                        case NewId():
                            answer = new_id()
                        case SpoolWrite():
                            answer = spool_write(effect)
                        case Pause(seconds):
                            self.spawn(self.pause(seconds))
                            return
                        case Notice(message):
                            LOG.warning("%s", message)
                        case Close():
                            if self.transport is not None:
                                self.transport.close()
                        case Handshake(_, wait):
                            self.spawn(self.handshake(wait))
                            return
                        case Write() | Receive() | CallHook():  # pragma: no cover - above
                            raise AssertionError(effect)
                        case _:
                            unknown_effect(effect)
        except StopIteration:
            self.finish()
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as error:
            LOG.debug("session with %s ended: %r", self.address, error)
            self.finish()
        except Exception:
            LOG.exception("session with %s failed", self.address)
            self.finish()

    def wait(self, what: str, timeout: float, interruptible: bool) -> None:
        """Park the procedure until bytes (or room to send) come, or ``timeout`` passes."""
        self.waiting = what
        self.interruptible = interruptible
        self.deadline = deadline = self.loop.time() + timeout
        # One timer per connection, re-armed lazily: a fresh timer for every
        # read costs more than the SMTP work of the read.
        timer = self.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self.time_out)

    def time_out(self) -> None:
        self.timer = None
        if self.waiting not in ("read", "drain"):
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self.time_out)
        elif self.waiting == "read":
            self.waiting = ""
            self.advance(TIMED_OUT)
        else:
            LOG.debug("session with %s ended: the client reads no replies", self.address)
            self.finish()

    def interrupt(self) -> None:
        """The server shuts down: a session waiting for a command gets its 421 now."""
        if self.waiting == "read" and self.interruptible:
            self.waiting = ""
            self.advance(SHUT_DOWN)

    def cut(self) -> None:
        """The shutdown's grace ran out: a session waiting for its client gets 421 now.

        Its wait is busy (an idle one was interrupted at once), so its
        transaction is dropped; anything else is aborted.
        """
        if self.waiting == "read":
            self.waiting = ""
            self.advance(SHUT_DOWN)  # the procedure says 421 and closes
        if self.waiting != "done":
            self.abort()

    def spawn(self, step: Coroutine[object, object, None]) -> None:
        self.waiting = "task"
        self.task = self.loop.create_task(step)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.waiting = ""
        self.advance(None)

    async def hook(self, effect: CallHook, pending: Awaitable[object]) -> None:
        try:
            result = await pending
        except Exception as error:
            result = failed_hook(effect, error)
        self.waiting = ""
        self.advance(result)

    async def threaded_hook(self, effect: CallHook) -> None:
        """A synchronous hook, in the server's worker threads: the loop serves on meanwhile."""
        server = self.server
        try:
            result = await self.loop.run_in_executor(
                server._hook_pool, call_sync_hook, server.handler, effect
            )
            if result is not None and inspect.isawaitable(result):
                result = await result
        except Exception as error:
            result = failed_hook(effect, error)
        self.waiting = ""
        self.advance(result)

    async def handshake(self, timeout: float) -> None:
        server = self.server
        assert server.tls_context is not None and self.transport is not None
        # RFC 3207 5: plaintext sent behind STARTTLS is dropped. start_tls pauses
        # the plain transport before its first await, so no later byte gets in.
        self.buffer.clear()
        try:
            upgraded = await self.loop.start_tls(
                self.transport,
                self,
                server.tls_context,
                server_side=True,
                ssl_handshake_timeout=timeout,
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as error:
            LOG.debug("TLS handshake with %s failed: %r", self.address, error)
            self.finish()
            return
        if upgraded is None:
            self.finish()  # the client closed during the handshake
            return
        # Keep the buffer: the client may have sent EHLO through TLS already.
        self.transport = upgraded
        self.waiting = ""
        self.advance(tls_info(upgraded.get_extra_info("ssl_object")))

    def finish(self) -> None:
        """The session is over: close everything, once."""
        self.waiting = "done"
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        procedure, self.procedure = self.procedure, None
        if procedure is not None:
            procedure.close()
        if self.transport is not None:
            self.transport.close()
        self.server._sessions.discard(self)
        if self.admitted:
            self.admitted = False
            self.server._admission.release(self.address[0])
        if not self.finished.done():
            self.finished.set_result(None)

    def abort(self) -> None:
        """Drop the connection now (the grace after a shutdown ran out)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()
        self.finish()


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
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        config: ServerConfig | None = None,
        limits: Limits | None = None,
        hostname: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int | None = MAX_CONNECTIONS,
        greeting_delay: float = 0.0,
        min_data_rate: float = MIN_DATA_RATE,
        spool_threshold: int | None = SPOOL_THRESHOLD,
        data_timeout: float = DATA_TIMEOUT,
        auth_failure_delay: float = AUTH_FAILURE_DELAY,
        auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS,
        max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT,
        hook_threads: int = HOOK_THREADS,
        reuse_port: bool = False,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise InvalidArgument("implicit_tls needs a tls_context")
        self.handler = handler
        self.host = host
        self._port = port
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.options = ServerOptions.create(
            handler,
            config=config,
            limits=limits,
            starttls=tls_context is not None and not implicit_tls,
            hostname=hostname,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            greeting_delay=greeting_delay,
            min_data_rate=min_data_rate,
            spool_threshold=spool_threshold,
            data_timeout=data_timeout,
            scram_secret=secrets.token_bytes(32),  # this server's own: see ServerOptions
            auth_failure_delay=auth_failure_delay,
            auth_failures_per_address=auth_failures_per_address,
            max_connections_per_client=max_connections_per_client,
        )
        warn_unknown_hooks(handler)
        self._admission = self.options.admission()
        self._backoff = AcceptBackoff(port)
        self._exception_handlers: tuple[object, object] | None = None  # (ours, the one before)
        self._threaded = threaded_hooks(handler, hook_threads)
        self._hook_pool = (
            concurrent.futures.ThreadPoolExecutor(hook_threads, thread_name_prefix="smtp-hook")
            if self._threaded
            else None
        )
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._stopping = False

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        return self._port

    async def start(self) -> SMTPServer:
        """Bind and listen; return self. Raises ``OSError`` when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Session(self),
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
            sock = context.get("socket")
            fileno = getattr(sock, "fileno", None)
            if (
                isinstance(error, OSError)
                and error.errno in RESOURCE_ERRORS
                and callable(fileno)
                and fileno() in ours
            ):
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
        if self._server is None or self._stopping:
            return 0
        self._stopping = True
        for session in list(self._sessions):
            session.interrupt()
        if self._sessions:
            await asyncio.wait([session.finished for session in self._sessions], timeout=grace)
        dropped = len(self._sessions)
        for session in list(self._sessions):
            session.cut()
        if dropped:
            LOG.warning("shutdown: %d session(s) cut after the %g s grace with a message "
                        "in flight; their clients got no 250", dropped, grace)  # fmt: skip
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
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    config: ServerConfig | None = None,
    limits: Limits | None = None,
    hostname: str | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int | None = MAX_CONNECTIONS,
    greeting_delay: float = 0.0,
    min_data_rate: float = MIN_DATA_RATE,
    spool_threshold: int | None = SPOOL_THRESHOLD,
    data_timeout: float = DATA_TIMEOUT,
    auth_failure_delay: float = AUTH_FAILURE_DELAY,
    auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS,
    max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT,
    hook_threads: int = HOOK_THREADS,
    reuse_port: bool = False,
) -> SMTPServer:
    """A started ``SMTPServer``; ``await server.aclose()`` stops it."""
    server = SMTPServer(
        handler,
        host,
        port,
        tls_context=tls_context,
        implicit_tls=implicit_tls,
        config=config,
        limits=limits,
        hostname=hostname,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        greeting_delay=greeting_delay,
        min_data_rate=min_data_rate,
        spool_threshold=spool_threshold,
        data_timeout=data_timeout,
        auth_failure_delay=auth_failure_delay,
        auth_failures_per_address=auth_failures_per_address,
        max_connections_per_client=max_connections_per_client,
        hook_threads=hook_threads,
        reuse_port=reuse_port,
    )
    return await server.start()


async def serve(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    config: ServerConfig | None = None,
    limits: Limits | None = None,
    hostname: str | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int | None = MAX_CONNECTIONS,
    greeting_delay: float = 0.0,
    min_data_rate: float = MIN_DATA_RATE,
    spool_threshold: int | None = SPOOL_THRESHOLD,
    data_timeout: float = DATA_TIMEOUT,
    auth_failure_delay: float = AUTH_FAILURE_DELAY,
    auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS,
    max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT,
    hook_threads: int = HOOK_THREADS,
    reuse_port: bool = False,
    grace: float = 5.0,
) -> None:
    """Serve ``handler`` until cancelled; on cancellation, close gracefully within ``grace``."""
    server = await start_server(
        handler,
        host,
        port,
        tls_context=tls_context,
        implicit_tls=implicit_tls,
        config=config,
        limits=limits,
        hostname=hostname,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        greeting_delay=greeting_delay,
        min_data_rate=min_data_rate,
        spool_threshold=spool_threshold,
        data_timeout=data_timeout,
        auth_failure_delay=auth_failure_delay,
        auth_failures_per_address=auth_failures_per_address,
        max_connections_per_client=max_connections_per_client,
        hook_threads=hook_threads,
        reuse_port=reuse_port,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(server.aclose(grace))
