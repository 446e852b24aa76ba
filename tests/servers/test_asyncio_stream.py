"""The asyncio server's stream: bytes already held, and room to send, cost no wait.

A read that finds bytes held returns them without waiting on a future, and
a write waits only when the transport paused writing: the coroutine ends at
its first step. A wait parks the coroutine, which the stream runs itself
and resumes from its own callbacks. Checked on a transport that records
what it is asked.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Coroutine
from typing import Any

import pytest

from transports._asyncio_session import Stream
from transports._serving import AcceptBackoff


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Server:
    tls_context: ssl.SSLContext | None = None
    _backoff = AcceptBackoff(0)
    _serving: Any = None


def _one_step(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The coroutine's result when it ends without suspending; fails when it waits."""
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    return done.value.value


def _stream() -> Stream:
    stream = Stream(Server())
    stream.transport = Transport()  # type: ignore[assignment]
    return stream


def test_a_read_of_bytes_held_and_a_write_with_room_never_wait() -> None:
    async def main() -> None:
        stream = _stream()
        stream.area[:6] = b"EHLO x"
        stream.buffer_updated(6)  # no receive waiting: held
        assert _one_step(stream.receive(5.0)) == b"EHLO x"
        assert _one_step(stream.send(b"250 ok\r\n", 5.0)) is None
        assert stream.transport.written == [b"250 ok\r\n"]  # type: ignore[union-attr]
        await stream.aclose()

    asyncio.run(main())


class Run:
    """A coroutine run by the stream, as a connection's driver is: its result or error."""

    def __init__(self, stream: Stream, coroutine: Awaitable[Any]) -> None:
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

        async def driver() -> None:
            try:
                self.result = await coroutine
            except BaseException as error:
                self.error = error
                raise
            finally:
                self.done = True

        stream.steps.coroutine = driver()
        stream.steps.step(None, None)


def test_a_read_with_nothing_held_parks_until_the_bytes_come() -> None:
    async def main() -> None:
        stream = _stream()
        run = Run(stream, stream.receive(5.0))
        assert not run.done and stream.steps.parked and stream.receiving
        stream.area[:4] = b"QUIT"
        stream.buffer_updated(4)  # resumes the coroutine within this call
        assert run.done and run.result == b"QUIT"
        await stream.aclose()

    asyncio.run(main())


def test_a_read_that_runs_out_of_time_answers_none_and_later_bytes_are_held() -> None:
    async def main() -> None:
        stream = _stream()
        run = Run(stream, stream.receive(0.05))
        await asyncio.sleep(0.2)
        assert run.done and run.result is None and not stream.receiving
        stream.area[:4] = b"QUIT"
        stream.buffer_updated(4)  # nobody waits now: held for the next read
        assert bytes(stream.buffer) == b"QUIT"
        await stream.aclose()

    asyncio.run(main())


def test_a_write_waits_only_while_writing_is_paused() -> None:
    async def main() -> None:
        stream = _stream()
        stream.pause_writing()
        run = Run(stream, stream.send(b"250 ok\r\n", 5.0))
        assert not run.done and stream.draining
        stream.resume_writing()
        assert run.done and run.error is None
        await stream.aclose()

    asyncio.run(main())


def test_a_write_waiting_for_room_learns_the_client_left() -> None:
    async def main() -> None:
        stream = _stream()
        stream.pause_writing()
        run = Run(stream, stream.send(b"250 ok\r\n", 5.0))
        stream.connection_lost(None)
        assert run.done and isinstance(run.error, ConnectionResetError)

    asyncio.run(main())


def test_abort_cancels_a_parked_read_and_bytes_after_it_resume_nothing() -> None:
    async def main() -> None:
        stream = _stream()
        run = Run(stream, stream.receive(5.0))
        stream.abort()
        stream.area[:4] = b"QUIT"
        stream.buffer_updated(4)  # too late: the read was cancelled
        await asyncio.sleep(0)
        assert run.done and isinstance(run.error, asyncio.CancelledError)
        assert stream.steps.coroutine is None

    asyncio.run(main())


def test_cancel_ends_a_future_awaited_or_the_wait_a_running_session_begins() -> None:
    async def main() -> None:
        stream = _stream()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        run = Run(stream, future)
        assert stream.steps.awaiting is future
        stream.steps.cancel()
        await asyncio.sleep(0)
        assert future.cancelled() and isinstance(run.error, asyncio.CancelledError)

        # Cancelled while it runs (a session aborting itself): at the wait it begins.
        stream = _stream()

        async def cancel_then_read() -> bytes | None:
            stream.steps.cancel()
            return await stream.receive(5.0)

        run = Run(stream, cancel_then_read())
        await asyncio.sleep(0)
        assert run.done and isinstance(run.error, asyncio.CancelledError)

    asyncio.run(main())


def test_a_future_awaited_resumes_the_coroutine_with_its_result() -> None:
    async def main() -> None:
        stream = _stream()
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        run = Run(stream, future)
        asyncio.get_running_loop().call_soon(future.set_result, "done")
        await asyncio.sleep(0.01)
        assert run.done and run.result == "done"

    asyncio.run(main())
