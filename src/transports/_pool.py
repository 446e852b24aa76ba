"""A pool of client connections to one server, for the async clients (asyncio, trio, anyio).

Each async transport's ``Pool`` is this one with its own client class; the
semaphore is that of the framework that runs it.

"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from email.message import Message
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from smtpcore import InvalidArgument
from smtpcore.driver import unsent
from smtpcore.session import (
    ConnectionLost,
    Outcome,
    Outgoing,
    SendResult,
    SMTPError,
    TransientError,
)

from ._async_client import AsyncClient
from ._async_driver import AsyncLock
from ._async_native import native_semaphore
from ._content import async_batches

if TYPE_CHECKING:
    from ._client_options import ClientKeywords, Unpack

__all__ = ["AsyncPool"]

_P = TypeVar("_P", bound="AsyncPool")


class AsyncPool:
    """A bounded set of connections to one server, reused by many sends.

    ``async with Pool(host, connections=10, ...) as pool:`` then
    ``await pool.send_message(msg)``, ``await pool.sendmail(...)``,
    ``await pool.send(item)`` or ``async for outcome in pool.send_many(items)``
    from as many tasks as you like: at most ``connections`` connections are
    open at once, each serving one task at a time; the other tasks wait for
    one to be free. The other keyword arguments are the client's.

    Connections are opened when needed and kept between sends. One the
    server closed while it was idle (a 421 for an idle timeout, or a silent
    close) is noticed at its next use: the messages it failed to send are
    "unsent" (nothing of them was delivered), so they are sent again, once,
    on a fresh connection. A message whose end of data went out and whose
    reply never came is "unknown", never sent twice. A connection left in
    any other state (a failure, a cancellation) is closed, not reused.
    Leaving the ``async with`` says QUIT on the idle connections.
    """

    _client_class: type[AsyncClient]

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        connections: int = 10,
        **options: Unpack[ClientKeywords],
    ) -> None:
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise InvalidArgument(f"connections must be a positive number, not {connections!r}")
        if options.get("sock") is not None:
            raise InvalidArgument("a pool opens its own connections: give socket_path, not sock")
        self._host = host
        self._port = port
        self._client_options = options
        self.connections = connections
        self._idle: list[AsyncClient] = []
        self._slots: AsyncLock | None = None  # made at first use, in the running framework
        self._closed = False
        self._client_class(host, port, **options)  # the options are checked now, not later

    async def __aenter__(self: _P) -> _P:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT and close the idle connections; those in use close when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        try:
            while idle:
                client = idle.pop()
                await client.__aexit__(None, None, None)
        finally:
            for client in idle:  # cancelled while saying QUIT: close the rest at once
                await client.aclose()

    async def send(self, item: Outgoing) -> SendResult:
        """Send one message (as ``send_many`` takes them); raise its error unless accepted."""
        [outcome] = await self._run([item])
        if outcome.result is None:
            assert outcome.error is not None
            raise outcome.error
        return outcome.result

    async def send_message(self, msg: Message) -> SendResult:
        """Send an email message, the envelope from its headers; raise its error unless accepted."""
        return await self.send(msg)

    async def sendmail(
        self, sender: str, recipients: str | Sequence[str], content: bytes | str
    ) -> SendResult:
        """Send ``content`` (in hand) to ``recipients``; raise its error unless accepted."""
        return await self.send((sender, recipients, content))

    async def send_many(
        self, messages: Iterable[Outgoing] | AsyncIterable[Outgoing]
    ) -> AsyncIterator[Outcome]:
        """Send many messages, pipelined, a batch at a time on a free connection; one outcome each.

        See ``AsyncClient.send_many``. The batches of one call go one after
        another (each on whichever connection is free); for several
        connections at once, call it from several tasks.
        """
        async for chunk in async_batches(messages):
            for outcome in await self._run(chunk):
                yield outcome

    async def _run(self, chunk: list[Outgoing]) -> list[Outcome]:
        """Send ``chunk`` on a pooled connection; send again what a stale one left unsent."""
        if self._closed:
            raise SMTPError("the pool is closed")
        slots = self._slots
        if slots is None:  # made on first use: inside the framework's event loop
            slots = self._slots = native_semaphore(self.connections)
        async with slots:
            client = self._idle.pop() if self._idle else None
            try:
                outcomes: list[Outcome] = []
                if client is not None:
                    outcomes = await client._deliver_batch(chunk)
                    if not any(_stale(o) for o in outcomes):
                        return outcomes
                    await client.aclose()
                # A fresh connection: at first, or for what a stale one left unsent.
                client = self._client_class(self._host, self._port, **self._client_options)
                again = [i for i, o in enumerate(outcomes) if _stale(o)] or range(len(chunk))
                try:
                    await client.connect()
                except SMTPError as exc:
                    fresh = unsent(len(again), exc)
                else:
                    fresh = await client._deliver_batch([chunk[i] for i in again])
                if not outcomes:
                    return fresh
                for i, outcome in zip(again, fresh, strict=True):
                    outcomes[i] = outcome
                return outcomes
            finally:
                if client is not None:
                    if client._reusable() and not self._closed:
                        self._idle.append(client)
                    else:
                        await client.aclose()


def _stale(outcome: Outcome) -> bool:
    """True for a message a connection the server had closed (421 or silently) did not send."""
    stale = (ConnectionLost, TransientError)
    return outcome.status == "unsent" and isinstance(outcome.error, stale)
