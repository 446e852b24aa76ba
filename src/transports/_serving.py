"""What the four servers share that is I/O or user code, so it cannot live in the core.

Running a handler's hook (sync or async), answering ``Now`` and ``NewId``,
describing a TLS layer, and the one logger. Everything a session decides is
in ``smtpcore.session._server``; the servers only interpret its effects.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import inspect
import logging
import secrets
from typing import Final, NoReturn

from smtpcore import InvalidArgument
from smtpcore.session._report import LogLine
from smtpcore.session._server import HOOKS, CallHook, HookFailed, TLSInfo, hooks_of, unknown_hooks

from ._tls import TLSLayer
from ._tls import tls_info as layer_info

__all__ = [
    "HOOK_THREADS",
    "LOG",
    "RESOURCE_ERRORS",
    "AcceptBackoff",
    "call_hook",
    "call_hook_async",
    "call_sync_hook",
    "failed_hook",
    "new_id",
    "now",
    "session_log",
    "threaded_hooks",
    "tls_info",
    "unknown_effect",
    "warn_unknown_hooks",
]

LOG: Final = logging.getLogger("smtpcore.server")

#: Default number of worker threads per async server for synchronous hooks.
HOOK_THREADS: Final = 8

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
    try:
        result = getattr(handler, effect.name)(*effect.args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        elif inspect.isawaitable(result):
            raise TypeError(f"hook {effect.name} returned an awaitable the sync server cannot run")
    except Exception as error:
        return failed_hook(effect, error)
    return result


def threaded_hooks(handler: object, hook_threads: int) -> frozenset[str]:
    """The hooks of ``handler`` an async server runs in worker threads.

    Every hook that is not a coroutine function (``async def``), unless
    ``hook_threads`` is 0: then every hook runs on the event loop. Raises
    ``ValueError`` for a negative ``hook_threads``.
    """
    if hook_threads < 0:
        raise InvalidArgument(f"hook_threads must be >= 0, not {hook_threads!r}")
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


async def call_hook_async(handler: object, effect: CallHook) -> object:
    """Run a hook in an async server: its result is awaited when it is awaitable."""
    try:
        result = getattr(handler, effect.name)(*effect.args)
        # None is the common answer, and isawaitable's ABC check is not free.
        if result is not None and inspect.isawaitable(result):
            result = await result
    except Exception as error:
        return failed_hook(effect, error)
    return result
