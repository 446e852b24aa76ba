"""The runner that executes the async drivers on blocking sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from transports._blocking import iterate_blocking, run_blocking


async def _add(a: int, b: int) -> int:
    async def inner() -> int:
        return a + b

    return await inner()


async def _waits() -> None:
    await asyncio.sleep(0)


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield await _add(i, 0)


async def _raises() -> None:
    raise KeyError("from inside")


def test_a_coroutine_that_never_suspends_returns_its_value() -> None:
    assert run_blocking(_add(2, 3)) == 5


def test_an_exception_inside_comes_out_as_it_is() -> None:
    with pytest.raises(KeyError, match="from inside"):
        run_blocking(_raises())


def test_a_coroutine_that_waits_on_a_loop_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="suspended"):
        run_blocking(_waits())


def test_an_async_iterator_becomes_a_plain_one() -> None:
    assert list(iterate_blocking(_count(4))) == [0, 1, 2, 3]
