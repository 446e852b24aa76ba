"""Running the one async driver on blocking sockets, with no event loop.

The client and server drivers are written once, as coroutines over a stream.
The blocking transports give them a stream whose methods are coroutines that
do their I/O in place (a blocking ``socket`` call) and never suspend, so a
coroutine of the driver runs to its end at its first ``send``: the blocking
client and the threaded server run the same code as the async ones, not a
copy of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TypeVar

__all__ = ["iterate_blocking", "run_blocking"]

T = TypeVar("T")


def run_blocking(coroutine: Awaitable[T]) -> T:
    """Run ``coroutine`` (or any awaitable) to its end now; it must not wait on an event loop.

    Raises ``RuntimeError`` if it suspends: something awaited a loop's
    future, which a blocking stream never does (a defect, not a condition).
    """
    steps = coroutine.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    steps.close()
    raise RuntimeError("a blocking stream's coroutine suspended: it awaited an event loop")


def iterate_blocking(items: AsyncIterator[T]) -> Iterator[T]:
    """The items of an async iterator whose steps never suspend, as a plain iterator."""
    while True:
        try:
            item = run_blocking(items.__anext__())
        except StopAsyncIteration:
            return
        yield item
