"""The effects a procedure yields, and the two small steps every procedure uses.

How this works: a procedure is a generator. It yields an effect, the
transport performs it and sends back the answer (the bytes read for ``Read``
and ``NextChunk``, ``None`` otherwise), and the procedure goes on. The
generator's return value is the procedure's result. Nothing here performs
I/O; a transport is a loop around ``procedure.send(answer)``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

from .._client import ClientConnection, ClientPhase
from .._events import NEED_DATA, ConnectionClosed, Reply
from ._errors import ConnectionLost, SMTPError, SMTPTimeout, command_text

__all__ = [
    "Close",
    "Effect",
    "Handshake",
    "NextChunk",
    "Procedure",
    "Read",
    "StageClock",
    "Write",
    "io_failure",
    "is_reusable",
    "next_reply",
    "read",
    "waiting_for",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Write:
    """Send all of ``data`` to the peer within ``timeout`` seconds. Answer: ``None``.

    The time is the procedure's to choose, so every transport applies the
    same one: a command goes within the time its stage has for its reply,
    message content within the data block time (RFC 5321 4.5.3.2.6), and a
    server's replies within its idle time. A peer that stops reading for
    longer makes the transport raise ``SMTPTimeout``.
    """

    data: bytes = field(repr=False)
    timeout: float


@dataclass(frozen=True, slots=True)
class Read:
    """Receive some bytes; ``timeout`` bounds the whole reply, not each read.

    RFC 5321 4.5.3.2 gives each stage of the conversation a time for its
    reply. A Read with ``continued`` False starts that time: the transport
    waits at most ``timeout`` seconds. One with ``continued`` True asks for
    more of a reply an earlier Read began to wait for: the transport waits
    only for what is left of that earlier Read's ``timeout``, so a server
    that trickles a reply a byte at a time cannot hold the client longer.

    Answer: the bytes (any amount, at least one octet), or ``b""`` when the
    peer closed. A transport whose time runs out raises ``SMTPTimeout``.
    """

    timeout: float
    continued: bool = False


@dataclass(frozen=True, slots=True)
class Handshake:
    """Run the TLS client handshake now (after the 220 to STARTTLS, RFC 3207 4).

    ``server_hostname`` is the name to verify and to send as SNI. Answer:
    ``None``. A failed handshake or verification is ``TLSError``.
    """

    server_hostname: str | None
    timeout: float


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection now. Answer: ``None``."""


@dataclass(frozen=True, slots=True)
class NextChunk:
    """Get the next piece of message content from the caller's source.

    Answer: bytes, ``b""`` at the end. Reading files and iterators is the
    transport's business, so the core never touches them.
    """

    timeout: float


class StageClock:
    """How long each ``Read`` may wait, so that a stage's timeout bounds its whole reply.

    A transport keeps one per connection and asks ``wait_for(read, now)``
    before each Read, ``now`` from its monotonic clock: the first Read of a
    reply gets the stage's whole ``timeout`` and starts its clock; a
    continued one gets what is left (RFC 5321 4.5.3.2).
    """

    __slots__ = ("_deadline",)

    def __init__(self) -> None:
        self._deadline = 0.0

    def wait_for(self, read: Read, now: float) -> float:
        """Seconds ``read`` may wait; ``TimeoutError`` when the stage's time is already spent."""
        if not read.continued:
            self._deadline = now + read.timeout
            return read.timeout
        left = self._deadline - now
        if left <= 0:
            raise TimeoutError(f"no reply within {read.timeout} s")
        return left


Effect: TypeAlias = Write | Read | Handshake | Close | NextChunk
"""Any effect a client procedure yields for its driver to perform."""
Procedure: TypeAlias = Generator[Effect, bytes | None, T]
"""A client procedure: yields effects, is sent their answers, returns ``T``."""


def read(timeout: float) -> Procedure[bytes]:
    """Yield one ``Read`` and return its bytes."""
    data = yield Read(timeout)
    if not isinstance(data, bytes):
        raise TypeError(f"a transport answered Read with {type(data).__name__}, not bytes")
    return data


def next_reply(conn: ClientConnection, timeout: float) -> Procedure[Reply]:
    """The next reply from the server, reading as much as it takes.

    Raises ``ConnectionLost`` when the server closed first, and
    ``RemoteProtocolError`` for a reply SMTP does not allow.
    """
    event = conn.next_event()
    if event is NEED_DATA:
        event = yield from receive_event(conn, timeout)
    return reply_of(conn, event)


def receive_event(conn: ClientConnection, timeout: float) -> Procedure[Reply | ConnectionClosed]:
    """Read until the next reply is in, or the server closed: that event.

    For when ``conn.next_event()`` said ``NEED_DATA``; a reply already
    parsed (the later replies to a pipelined group arrive with the first)
    needs no ``Read``.
    """
    effect = Read(timeout)  # the stage's time starts now (RFC 5321 4.5.3.2)
    while True:
        data = yield effect
        if not isinstance(data, bytes):
            raise TypeError(f"a transport answered Read with {type(data).__name__}, not bytes")
        conn.receive_data(data)
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        effect = Read(timeout, continued=True)


def reply_of(conn: ClientConnection, event: Reply | ConnectionClosed) -> Reply:
    """``event`` as a reply; ``ConnectionLost`` when it says the server closed."""
    if isinstance(event, ConnectionClosed):
        raise ConnectionLost(f"the server closed the connection {waiting_for(conn)}")
    return event


def waiting_for(conn: ClientConnection) -> str:
    """What the connection waits for, in words, for error messages."""
    if conn.phase is ClientPhase.GREETING:
        return "before its greeting"
    pending = conn.pending
    if not pending:
        return "while no reply was due"
    return f"before replying to {command_text(pending[0])}"


def is_reusable(conn: ClientConnection) -> bool:
    """True when no command, data or handshake is half done: the next one may start.

    A transport closes the connection instead of keeping it when this is
    False after a failure, since the peer's state is then unknown.
    """
    return (
        conn.phase in (ClientPhase.HELLO, ClientPhase.READY)
        and not conn.pending
        and conn.chunk_left == 0
    )


def io_failure(exc: Exception, effect: object, conn: ClientConnection) -> Exception:
    """What a transport's I/O failure while performing ``effect`` means for the session.

    A timeout becomes ``SMTPTimeout`` naming what was awaited, any other
    ``OSError`` ``ConnectionLost``, each with ``exc`` as its cause; an
    ``SMTPError`` and anything else is returned as it is. Call it before
    ``conn.send_failed()``, which forgets what was awaited. A transport closes
    the connection, then throws the result into the procedure, which decides
    what it means (a failed clean-up after a refusal does not replace the
    refusal).
    """
    if isinstance(exc, SMTPError):
        return exc
    error: SMTPError
    if isinstance(exc, TimeoutError):
        if isinstance(effect, Read):
            error = SMTPTimeout(f"no reply within {effect.timeout} s {waiting_for(conn)}")
        else:
            error = SMTPTimeout(f"timed out during {type(effect).__name__}")
    elif isinstance(exc, OSError):
        error = ConnectionLost(f"connection lost: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error
