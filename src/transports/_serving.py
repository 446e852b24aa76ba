"""What the four servers share that is I/O or user code, so it cannot live in the core.

Running a handler's hook (sync or async), answering ``Now`` and ``NewId``,
describing a TLS layer, the sessions of a server and their shutdown flags
(``Sessions``), and the one logger. Everything a session decides is in
``smtpcore.session``; the servers only interpret its effects (``_driver``).
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import inspect
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from typing import Final, NoReturn, Protocol

from smtpcore.driver import HOOKS, Admission, LogLine, hooks_of, unknown_hooks
from smtpcore.session import CallHook, HookFailed, TLSInfo

from ._tls import TLSLayer
from ._tls import tls_info as layer_info

__all__ = [
    "LOG",
    "RESOURCE_ERRORS",
    "AcceptBackoff",
    "Sessions",
    "Wakeable",
    "call_hook",
    "call_hook_async",
    "call_sync_hook",
    "failed_hook",
    "finish_hook",
    "finish_hook_sync",
    "new_id",
    "now",
    "session_log",
    "threaded_hooks",
    "tls_info",
    "unknown_effect",
    "warn_unknown_hooks",
]

LOG: Final = logging.getLogger("smtpcore.server")

#: What ``accept()`` fails with when the process or the system runs out of
#: descriptors, buffers or memory: the listener is fine, accept again later.
RESOURCE_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BACKOFF_MAX: Final = 1.0  # seconds, the longest pause between accepts that failed


class AcceptBackoff:
    """The pauses of an accept loop that ran out of resources, and their log lines.

    ``failed`` returns how long to pause (10 ms, doubling up to 1 s) and
    logs only the first failure of a run; ``accepted`` ends the run and
    logs the recovery. A flood therefore costs two log lines, not one a
    millisecond.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.pause = 0.0

    def failed(self, why: str) -> float:
        if not self.pause:
            LOG.warning("accept on port %s: %s; pausing and retrying", self.port, why)
        self.pause = min(max(self.pause * 2, 0.01), _BACKOFF_MAX)
        return self.pause

    def accepted(self) -> None:
        if self.pause:
            LOG.warning("accepting connections on port %s again", self.port)
            self.pause = 0.0


def warn_unknown_hooks(handler: object) -> None:
    """Log, when a server starts, each ``on_*`` method of ``handler`` that is no hook.

    Such a method is never called: ``on_rcpt_to`` meant as ``on_rcpt`` would
    let every recipient through unchecked.
    """
    for name in unknown_hooks(handler):
        LOG.warning(
            "handler %s has a method %s, which is no hook and is never called (hooks: %s)",
            type(handler).__name__,
            name,
            ", ".join(HOOKS),
        )


def session_log() -> LogLine | None:
    """Where a new session reports its lines: ``LOG.info``, or None when INFO is off."""
    return LOG.info if LOG.isEnabledFor(logging.INFO) else None


def now() -> datetime.datetime:
    """The answer to ``Now``: local time with its offset, as Received headers show it."""
    return datetime.datetime.now().astimezone()


def new_id() -> str:
    """The answer to ``NewId``: 16 random hex digits (printable, no comma, for SCRAM too)."""
    return secrets.token_hex(8).upper()


def unknown_effect(effect: NoReturn) -> NoReturn:
    """Close a ``match`` over effects: mypy proves it unreachable (assert_never, 3.10-safe)."""
    raise TypeError(f"a server cannot perform {effect!r}")


def tls_info(layer: TLSLayer | None) -> TLSInfo:
    """What an established TLS layer says about itself (empty facts when there is none)."""
    return layer_info(layer) or TLSInfo()


def failed_hook(effect: CallHook, error: BaseException) -> HookFailed:
    """The answer to a hook that raised ``error``, logged once here."""
    LOG.error("handler hook %s raised", effect.name, exc_info=error)
    return HookFailed(error)


def call_hook(handler: object, effect: CallHook) -> object:
    """Run a hook from a thread: a coroutine it returns runs in a fresh event loop."""
    return finish_hook_sync(effect, call_sync_hook(handler, effect))


def threaded_hooks(handler: object, hook_threads: int) -> frozenset[str]:
    """The hooks of ``handler`` an async server runs in worker threads.

    Every hook that is not a coroutine function (``async def``), unless
    ``hook_threads`` is 0: then every hook runs on the event loop.
    """
    if hook_threads == 0:
        return frozenset()
    return frozenset(name for name in hooks_of(handler) if not _is_async(getattr(handler, name)))


def _is_async(hook: object) -> bool:
    if inspect.iscoroutinefunction(hook):
        return True
    # An object whose __call__ is async is an async hook too.
    return inspect.iscoroutinefunction(getattr(hook, "__call__", None))  # noqa: B004


def call_sync_hook(handler: object, effect: CallHook) -> object:
    """Run a synchronous hook in a worker thread: its result, or HookFailed.

    An awaitable it returns is handed back for the event loop to await.
    """
    try:
        return getattr(handler, effect.name)(*effect.args)
    except Exception as error:
        return failed_hook(effect, error)


async def call_hook_async(
    handler: object,
    effect: CallHook,
    wait: Callable[[Awaitable[object]], Awaitable[object]] | None = None,
) -> object:
    """Run a hook in an async server: its result is awaited when it is awaitable.

    ``wait`` says how, when not in place: the asyncio server runs it in a task.
    """
    try:
        result = getattr(handler, effect.name)(*effect.args)
        # None is the common answer, and isawaitable's ABC check is not free.
        if result is not None and inspect.isawaitable(result):
            result = await (result if wait is None else wait(result))
    except Exception as error:
        return failed_hook(effect, error)
    return result


async def finish_hook(effect: CallHook, result: object) -> object:
    """What a hook run in a worker thread answers: an awaitable it returned, awaited."""
    if result is not None and inspect.isawaitable(result):
        try:
            result = await result
        except Exception as error:
            return failed_hook(effect, error)
    return result


def finish_hook_sync(effect: CallHook, result: object) -> object:
    """``finish_hook`` for the threaded server: a coroutine runs in a fresh event loop."""
    try:
        if inspect.iscoroutine(result):
            return asyncio.run(result)
        if result is not None and inspect.isawaitable(result):
            raise TypeError(f"hook {effect.name} returned an awaitable the sync server cannot run")
    except Exception as error:
        return failed_hook(effect, error)
    return result


class Wakeable(Protocol):
    """A session's stream as ``Sessions`` sees it: is its wait idle, and how to end it."""

    #: The last wait for the client was for a command (a shutdown may end it).
    idle: bool

    def wake(self) -> None:
        """End a wait for the client in progress now (thread-safe)."""

    def abort(self) -> None:
        """Drop the connection now, whatever the session is doing (thread-safe)."""


class Sessions:
    """The sessions of one server: who is admitted, who is live, and the shutdown's flags.

    ``stop`` begins a graceful shutdown (idle waits end now); ``cut`` ends
    its grace (every wait ends, a transaction open is dropped). Thread-safe:
    the threaded server calls it from every session's thread.
    """

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._lock = threading.Lock()
        self.live: set[Wakeable] = set()
        self.stopping = False
        self.cutting = False
        self.dropped: set[Wakeable] = set()  # cut with a message in flight

    def admit(self, host: str, stream: Wakeable) -> str | None:
        """Why ``stream`` gets 421 instead of a session, or None: it counts until ``release``."""
        with self._lock:
            refuse = self._admission.admit(host, stopping=self.stopping)
            if refuse is None:
                self.live.add(stream)
        return refuse

    def release(self, host: str, stream: Wakeable) -> None:
        """The admitted session of ``stream`` is over."""
        with self._lock:
            if stream in self.live:
                self.live.discard(stream)
                self._admission.release(host)

    def drop(self, stream: Wakeable) -> None:
        """``stream`` answered the cut with 421, its message dropped."""
        with self._lock:
            self.dropped.add(stream)

    def snapshot(self) -> set[Wakeable]:
        """The live sessions, now."""
        with self._lock:
            return set(self.live)

    def stop(self) -> None:
        """A graceful shutdown begins: the sessions waiting for a command end their wait."""
        self.stopping = True
        for stream in self.snapshot():
            if stream.idle:
                stream.wake()

    def cut(self) -> None:
        """The grace ran out: every wait for a client ends."""
        self.cutting = True
        for stream in self.snapshot():
            stream.wake()
