"""The asyncio server's stream: bytes already held, and room to send, cost no wait.

A read that finds bytes held returns them without waiting on a future, and
a write waits only when the transport paused writing: the coroutine ends at
its first step. Checked on a transport that records what it is asked.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
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


def test_a_read_with_nothing_held_waits_for_the_bytes() -> None:
    async def main() -> None:
        stream = _stream()
        reading = asyncio.ensure_future(stream.receive(5.0))
        await asyncio.sleep(0)
        assert not reading.done()
        stream.area[:4] = b"QUIT"
        stream.buffer_updated(4)
        assert await reading == b"QUIT"
        await stream.aclose()

    asyncio.run(main())


def test_a_write_waits_only_while_writing_is_paused() -> None:
    async def main() -> None:
        stream = _stream()
        stream.pause_writing()
        sending = asyncio.ensure_future(stream.send(b"250 ok\r\n", 5.0))
        await asyncio.sleep(0)
        assert not sending.done()
        stream.resume_writing()
        await sending
        await stream.aclose()

    asyncio.run(main())
