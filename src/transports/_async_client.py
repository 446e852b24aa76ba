"""The client, written once: its public calls, each a procedure of the core run in its turn.

``AsyncClient`` offers connecting (greeting, EHLO, TLS, AUTH), each way of
sending, the commands and QUIT; ``transports._async_driver.AsyncDriver``
runs them over a framework's stream.

The blocking client (``transports.sync.SMTPClient``) is this one over a
blocking socket, each call run to its end by ``transports._blocking``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from email.message import Message
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from smtpcore import (
    Etrn,
    Expn,
    Extensions,
    Help,
    InvalidArgument,
    Noop,
    Reply,
    Rset,
    Turn,
    Vrfy,
)
from smtpcore.driver import connection_failed, unsent
from smtpcore.session import (
    DSN,
    Body,
    ConnectionLost,
    Envelope,
    Outcome,
    Outgoing,
    SendResult,
    TLSInfo,
    deliver,
    deliver_many,
    deliver_message,
    quit,
    simple_command,
)

from ._async_driver import AsyncDriver
from ._content import async_batches, split_async_content
from ._tls import tls_info

if TYPE_CHECKING:
    pass

__all__ = ["AsyncClient", "send_with"]


class AsyncClient(AsyncDriver):
    """An SMTP (or LMTP) client for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. The
    keywords are those of ``ClientKeywords``: the fields of
    ``smtpcore.session.ClientOptions`` (``timeout`` for ``timeouts``) and of
    ``ConnectOptions``. Errors are ``smtpcore.SMTPError`` subclasses. After
    a timeout, a lost connection or an interruption the connection is
    closed at once and the error propagates.

    Several tasks (or threads) may share one client: its operations
    (connecting, each message, each command, QUIT, the exit of the ``async
    with``) take turns in the order they were called, each one whole. One
    interrupted while waiting for its turn leaves everything as it was; one
    interrupted during its turn closes the connection, so the operations
    after it fail with ``SMTPError`` rather than on a conversation out of
    step. ``aclose()`` does not wait: it closes at once.
    """

    #: How ``sendmail`` takes its content apart: an async iterable of bytes streams too.
    #: (The blocking client, with no event loop to read one, refuses it instead.)
    _split_content = staticmethod(split_async_content)

    # -- the public calls ---------------------------------------------------------------

    @property
    def extensions(self) -> Extensions:
        """What the server offered in its last EHLO reply (empty before connecting)."""
        return self._conn.extensions if self._conn is not None else Extensions()

    @property
    def tls_info(self) -> TLSInfo | None:
        """The TLS version, cipher and certificate, or None on a clear connection."""
        stream = self._stream
        return tls_info(stream.tls_layer()) if stream is not None else None

    async def __aenter__(self: _C) -> _C:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            async with self._turn():
                await self._finish()
        finally:
            await self._abort()  # at once when interrupted before the turn came

    async def connect(self) -> None:
        """Connect, read the greeting, EHLO, TLS and AUTH as configured."""
        async with self._turn():
            await self._connect()

    async def send_message(
        self,
        msg: Message,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        *,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send an email message; the envelope comes from its headers unless given."""
        async with self._turn():
            job = deliver_message(self._connection(), self._options, msg, sender, recipients,
                                  dsn=dsn, requiretls=requiretls)  # fmt: skip
            return await self._drive(job)

    async def sendmail(
        self,
        sender: str,
        recipients: str | Sequence[str],
        content: object,
        *,
        smtputf8: bool | None = None,
        body: Body | None = None,
        size: int | None = None,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send ``content``, streamed: bytes, str, a binary file, an (async) iterable of bytes."""
        data, source, size = self._split_content(content, size)
        envelope = Envelope.build(sender, recipients, data, smtputf8=smtputf8, body=body,
                                  size=size, dsn=dsn, requiretls=requiretls)  # fmt: skip
        async with self._turn():
            return await self._drive(deliver(self._connection(), self._options, envelope), source)

    async def send_many(
        self, messages: Iterable[Outgoing] | AsyncIterable[Outgoing]
    ) -> AsyncIterator[Outcome]:
        """Send many messages on this connection, pipelined; yield one ``Outcome`` each, in order.

        Each item is an ``email.message.Message`` (envelope from its headers),
        an ``Envelope`` with its content, or ``(sender, recipients, content)``;
        the async clients take an async iterable too. With PIPELINING, each
        message's content goes out with the next one's envelope: one round
        trip per message (RFC 2920 3.1). A refused message does not stop the
        others. After the connection fails, the message in flight is
        "unknown" and the rest "unsent" (see ``Outcome``); nothing here
        raises for what the server did. Messages are taken a batch at a
        time, as the outcomes are consumed; each batch takes one turn on the
        client, and an interruption closes the connection, as for any call.
        """
        failure: Exception | None = None
        async for chunk in async_batches(messages):
            if failure is not None:
                for outcome in unsent(len(chunk), failure):
                    yield outcome
                continue
            outcomes = await self._deliver_batch(chunk)
            failure = connection_failed(outcomes)
            for outcome in outcomes:
                yield outcome

    async def _deliver_batch(self, chunk: list[Outgoing]) -> list[Outcome]:
        """One batch through ``deliver_many``, in one turn (for ``send_many`` and pools)."""
        async with self._turn():
            return await self._drive(deliver_many(self._connection(), self._options, chunk))

    async def send_old(
        self, verb: str, sender: str, recipients: str | Sequence[str], content: object
    ) -> SendResult:
        """Send with RFC 821's SEND, SOML or SAML instead of MAIL (obsolete)."""
        upper = verb.upper()
        if upper not in ("SEND", "SOML", "SAML"):
            raise InvalidArgument(f"verb must be SEND, SOML or SAML, not {verb!r}")
        data, source, size = self._split_content(content, None)
        envelope = Envelope.build(sender, recipients, data, size=size, verb=upper)  # type: ignore[arg-type]
        async with self._turn():
            return await self._drive(deliver(self._connection(), self._options, envelope), source)

    async def noop(self) -> Reply:
        """NOOP; the reply whatever its code (421 raises TransientError)."""
        return await self._simple(Noop())

    async def rset(self) -> Reply:
        """RSET: abort any transaction."""
        return await self._simple(Rset())

    async def vrfy(self, address: str) -> Reply:
        """VRFY: the reply (252 and 550 are answers, not errors)."""
        return await self._simple(Vrfy(address))

    async def expn(self, name: str) -> Reply:
        """EXPN: the reply."""
        return await self._simple(Expn(name))

    async def help(self, topic: str = "") -> Reply:
        """HELP: the reply."""
        return await self._simple(Help(topic))

    async def etrn(self, node: str) -> Reply:
        """ETRN (RFC 1985): ask the server to flush its queue for ``node``."""
        return await self._simple(Etrn(node))

    async def turn(self) -> Reply:
        """TURN (RFC 821, obsolete): the reply; a 250 ends this session."""
        return await self._simple(Turn())

    async def quit(self) -> Reply:
        """QUIT and close. Raises ConnectionLost when the server closed without a reply."""
        async with self._turn():
            reply = await self._drive(quit(self._connection(), self._options.timeouts))
            await self._abort()
        if reply is None:
            raise ConnectionLost("the server closed the connection without answering QUIT")
        return reply

    async def aclose(self) -> None:
        """Close the connection at once (no QUIT). Closing twice is harmless."""
        await self._abort()

    async def _simple(self, command: Noop | Rset | Vrfy | Expn | Help | Etrn | Turn) -> Reply:
        async with self._turn():
            conn = self._connection()
            return await self._drive(simple_command(conn, command, self._options.timeouts.ehlo))


_C = TypeVar("_C", bound=AsyncClient)


async def send_with(client: AsyncClient, msg: Message) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT: every one-shot ``send``."""
    async with client:
        return await client.send_message(msg)
