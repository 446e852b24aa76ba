"""The server driver, written once: each effect of a session performed over a stream.

Every server runs each connection through ``AsyncServing.session``: it
admits the connection, starts the procedure (``ServerOptions.session``) and
performs every effect it yields, against a small stream interface
(``AsyncServerStream``: receive and send within a time, start TLS, close)
and a few services of the framework (``AsyncRuntime``: sleep, a worker
thread, the clock). A framework supplies only those and its listener.
The graceful shutdown is here too (``shut_down``).

The threaded server runs this same code: its stream and runtime do their
work in place and never suspend, so each connection's thread runs
``session`` to its end with ``run_blocking`` (``_blocking``). The runtime
says how a hook is called (``call_hook``): on the loop, or in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from smtpcore.session import (
    SHUT_DOWN,
    TIMED_OUT,
    CallHook,
    Clock,
    Close,
    Handshake,
    NewId,
    Notice,
    Now,
    Pause,
    Peer,
    Receive,
    ServerOptions,
    ServerProcedure,
    SpoolWrite,
    TLSInfo,
    Write,
)

from ._serving import (
    LOG,
    Sessions,
    call_sync_hook,
    finish_hook,
    new_id,
    now,
    session_log,
    threaded_hooks,
    unknown_effect,
    warn_unknown_hooks,
)
from ._spool import spool_write

__all__ = ["AsyncRuntime", "AsyncServerStream", "AsyncServing"]

_POLL: Final = 0.02  # seconds between looks at the sessions left during a shutdown


class AsyncServerStream(Protocol):
    """One client connection as the driver uses it."""

    #: The last wait for the client was for a command (a shutdown may end it).
    idle: bool

    async def receive(self, timeout: float) -> bytes | None:
        """Bytes from the client (``b""``: it closed), or None: ``timeout`` passed or ``wake``."""

    async def send(self, data: bytes, timeout: float) -> None:
        """Send all of ``data`` within ``timeout`` seconds (``TimeoutError`` beyond)."""

    async def start_tls(self, timeout: float) -> TLSInfo:
        """The TLS handshake as a server (STARTTLS, or implicit TLS before the greeting)."""

    async def aclose(self) -> None:
        """Close the connection (more than once is fine)."""

    def wake(self) -> None:
        """End a ``receive`` in progress now: it returns None (thread-safe)."""

    def abort(self) -> None:
        """Drop the connection now, whatever the session is doing (thread-safe)."""


class AsyncRuntime(Protocol):
    """The services of a framework the driver needs beyond the stream."""

    def clock(self) -> float:
        """Monotonic seconds."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""

    async def to_thread(self, function: Callable[[object, CallHook], object], handler: object,
                        effect: CallHook) -> object:  # fmt: skip
        """``function(handler, effect)`` in a worker thread; its result."""

    async def call_hook(self, handler: object, effect: CallHook) -> object:
        """A hook not sent to a worker thread: its answer, or ``HookFailed``."""


class AsyncServing:
    """What the sessions of one server share, and the loop that serves each."""

    def __init__(
        self,
        handler: object,
        options: ServerOptions,
        runtime: AsyncRuntime,
        *,
        implicit_tls: bool = False,
        hook_threads: int = 0,
    ) -> None:
        warn_unknown_hooks(handler)
        self.handler = handler
        self.options = options
        self.runtime = runtime
        self.implicit_tls = implicit_tls
        self.threaded = threaded_hooks(handler, hook_threads)
        self.sessions = Sessions(options.admission())

    async def session(self, stream: AsyncServerStream, address: tuple[str, int]) -> None:
        """Serve one connection to its end, whatever happens to it."""
        refuse = self.sessions.admit(address[0], stream)
        try:
            tls = None
            if self.implicit_tls and refuse is None:
                tls = await stream.start_tls(self.options.idle_timeout)
            procedure = self.options.session(
                Peer(address[0], address[1]), new_id(), tls=tls, refuse=refuse, log=session_log()
            )
            await self.drive(procedure, stream)
        except (OSError, TimeoutError) as error:
            LOG.debug("session with %s ended: %r", address, error)
        except Exception:
            LOG.exception("session with %s failed", address)
        finally:
            if refuse is None:
                self.sessions.release(address[0], stream)
            await stream.aclose()

    async def drive(self, procedure: ServerProcedure[int], stream: AsyncServerStream) -> None:
        """Run a session procedure to its end over ``stream``."""
        answer: object = None
        try:
            while True:
                try:
                    effect = procedure.send(answer)
                except StopIteration:
                    return
                answer = None
                # The effects of every command first, by exact type.
                if type(effect) is Receive:
                    answer = await self.receive(stream, effect.timeout, effect.interruptible)
                elif type(effect) is Write:
                    await stream.send(effect.data, effect.timeout)
                elif type(effect) is CallHook:
                    if effect.name in self.threaded:
                        answer = await self.runtime.to_thread(call_sync_hook, self.handler, effect)
                        answer = await finish_hook(effect, answer)
                    else:
                        answer = await self.runtime.call_hook(self.handler, effect)
                else:
                    match effect:
                        case Clock():
                            answer = self.runtime.clock()
                        case Now():
                            answer = now()
                        case NewId():
                            answer = new_id()
                        case SpoolWrite():
                            answer = spool_write(effect)
                        case Pause(seconds):
                            await self.runtime.sleep(seconds)
                        case Notice(message):
                            LOG.warning("%s", message)
                        case Close():
                            await stream.aclose()
                        case Handshake(_, timeout):
                            answer = await stream.start_tls(timeout)
                        case Write() | Receive() | CallHook():  # pragma: no cover - above
                            raise AssertionError(effect)
                        case _:
                            unknown_effect(effect)
        finally:
            procedure.close()

    async def receive(
        self, stream: AsyncServerStream, timeout: float, interruptible: bool
    ) -> object:
        """The answer to ``Receive``: bytes, ``TIMED_OUT``, or ``SHUT_DOWN`` when stopping."""
        sessions = self.sessions
        stream.idle = interruptible
        deadline = self.runtime.clock() + timeout
        left = timeout
        while True:
            if interruptible and sessions.stopping:
                return SHUT_DOWN
            if sessions.cutting:
                # A transaction is open (else the wait would be interruptible
                # and have ended above): the session answers 421 and drops it.
                sessions.drop(stream)
                return SHUT_DOWN
            data = await stream.receive(left)
            if data is not None:
                return data
            left = deadline - self.runtime.clock()
            if left <= 0:
                return TIMED_OUT

    async def shut_down(self, grace: float) -> int:
        """Stop gracefully; the number of sessions cut with a message in flight.

        Sessions waiting for a command get ``421 4.3.2`` now; new connections
        get it instead of a greeting. Sessions with a transaction open have
        ``grace`` seconds to finish; then a session still waiting for its
        client gets 421 and its message is dropped, and one still in a hook
        is cut off a second later. Each cut session counts in the result
        and in the warning logged.
        """
        sessions = self.sessions
        sessions.stop()
        await self.wait_for_sessions(grace)
        if sessions.live:
            sessions.cut()
            await self.wait_for_sessions(1.0)  # for the 421s
        left = sessions.snapshot()
        dropped = len(sessions.dropped | left)
        for stream in left:
            stream.abort()
        if dropped:
            LOG.warning("shutdown: %d session(s) cut after the %g s grace with a message "
                        "in flight; their clients got no 250", dropped, grace)  # fmt: skip
        return dropped

    async def wait_for_sessions(self, seconds: float) -> None:
        """Until every session has ended, or ``seconds`` have passed."""
        deadline = self.runtime.clock() + seconds
        while self.sessions.live and self.runtime.clock() < deadline:
            await self.runtime.sleep(_POLL)
