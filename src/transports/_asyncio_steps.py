"""Running one coroutine from protocol callbacks, as a task would, without a future per wait.

The asyncio server's connection runs its driver coroutine itself
(``Steps``). When the coroutine waits for the client it parks (``PARK``)
instead of awaiting a future, and the protocol's callback resumes it at
once with what came: a command's wait then costs no future, no callback
scheduled and no task step, which together cost more than the SMTP work of
the command. Whatever else the coroutine awaits (a hook's worker thread, a
TLS handshake, a pause) is an asyncio future, waited for as a task waits.
An ``async def`` hook runs in a task of its own (``in_session_task``), so it
may use what needs a task (``asyncio.timeout``, anyio).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, Final, cast

from ._serving import LOG

__all__ = ["PARK", "Steps", "in_session_task"]

#: The context of the session whose coroutine is running (set inside that context).
_SESSION_CONTEXT: Final[contextvars.ContextVar[contextvars.Context]] = contextvars.ContextVar(
    "smtpcore_session_context"
)


class _Park:
    """What a parked coroutine awaits: ``Steps.step`` resumes it with the answer."""

    __slots__ = ()

    def __await__(self) -> Generator[object, object, Any]:
        return (yield self)


PARK: Final = _Park()


class Steps:
    """One coroutine, stepped by ``step`` until it ends, with a task's context and cancel."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.coroutine: Coroutine[object, object, None] | None = None
        self.context = contextvars.copy_context()
        self.context.run(_SESSION_CONTEXT.set, self.context)
        self.running = False
        self.parked = False  # awaiting PARK: the owner's callback resumes it
        self.awaiting: asyncio.Future[object] | None = None
        self.cancelling = False

    def start(self, coroutine: Coroutine[object, object, None]) -> None:
        """Run ``coroutine`` from the next turn of the loop on, as a new task would."""
        self.coroutine = coroutine
        self.loop.call_soon(self.step, None, None)

    def step(self, value: object, error: BaseException | None) -> None:
        """Resume with ``value`` (or throw ``error`` in) until the coroutine waits again."""
        coroutine = self.coroutine
        if coroutine is None or self.running:
            return
        if self.cancelling:
            self.cancelling = False
            error = asyncio.CancelledError()
        self.parked = False
        self.running = True
        try:
            if error is None:
                waits_for = self.context.run(coroutine.send, value)
            else:
                waits_for = self.context.run(coroutine.throw, error)
        except (StopIteration, asyncio.CancelledError):
            self.coroutine = None
            return
        except Exception:  # the driver catches what a session raises: this is a defect
            self.coroutine = None
            LOG.exception("a session's coroutine failed")
            return
        except BaseException:
            self.coroutine = None
            raise  # KeyboardInterrupt, SystemExit: out of the loop, as from a task
        finally:
            self.running = False
        if waits_for is PARK:
            self.parked = True
        elif waits_for is None:  # a bare yield (asyncio.sleep(0)): again at the next turn
            self.loop.call_soon(self.step, None, None)
        elif getattr(waits_for, "_asyncio_future_blocking", None):
            future = cast("asyncio.Future[object]", waits_for)
            future._asyncio_future_blocking = False
            self.awaiting = future
            future.add_done_callback(self._done)
        else:
            error = RuntimeError(f"a session's coroutine awaited {waits_for!r}, not a future")
            self.loop.call_soon(self.step, None, error)
            return
        if self.cancelling:  # cancelled while it ran: at the wait it just began
            self.cancelling = False
            self.cancel()

    def _done(self, future: asyncio.Future[object]) -> None:
        self.awaiting = None
        self.step(None, None)  # the coroutine's await takes the result or the error

    def cancel(self) -> None:
        """Cancel as ``Task.cancel`` does: at the coroutine's wait, or at its next one."""
        if self.coroutine is None:
            return
        if self.awaiting is not None:
            self.awaiting.cancel()
        elif self.parked:
            self.parked = False
            self.loop.call_soon(self.step, None, asyncio.CancelledError())
        else:
            self.cancelling = True  # it is running, or has not started: at its next wait


def in_session_task(awaitable: Awaitable[object]) -> Awaitable[object]:
    """``awaitable`` in a task of its own, in the session's context.

    A hook awaited in the session's context sees the context variables the
    hooks before it set, as it would in a task per session. Before Python
    3.11 a task cannot be given a context: it gets a copy.
    """
    context = _SESSION_CONTEXT.get(None)
    if sys.version_info >= (3, 11) and context is not None and inspect.iscoroutine(awaitable):
        return asyncio.get_running_loop().create_task(awaitable, context=context)
    return asyncio.ensure_future(awaitable)
