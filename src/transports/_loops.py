"""The event loops the asyncio server runs on: asyncio's own, and uvloop's."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Final, Literal, TypeVar

from smtpcore import InvalidArgument

__all__ = ["LOOPS", "LoopName", "event_loop_factory", "run"]

T = TypeVar("T")

LOOPS: Final = ("asyncio", "uvloop")
"""The event loops ``run`` and ``smtpcore serve --loop`` know: asyncio's own, and
uvloop's (the ``uvloop`` extra; not on Windows)."""

LoopName = Literal["asyncio", "uvloop"]


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
