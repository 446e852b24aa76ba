"""The server procedure's own effects, besides ``Write``, ``Handshake`` and ``Close``.

    Receive(timeout, interruptible)  bytes, or TIMED_OUT / SHUT_DOWN
    CallHook(name, args)             run the handler's hook; answer its result
                                     (awaited if it is awaitable) or HookFailed
    Now()                            the current time, an aware datetime
    Clock()                          seconds on a monotonic clock, a float
    NewId()                          a fresh random token (ids, SASL nonces)
    SpoolWrite(spool, data)          append content beyond the spool threshold to
                                     a spool (a new one when spool is None);
                                     answer the spool, or HookFailed
    Pause(seconds)                   sleep (after a failed AUTH); answer None
    Notice(message)                  log it at WARNING; answer None

A server transport performs each one and sends back its answer; it decides
nothing else.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeAlias, TypeVar

from ._effects import Close, Handshake, Write

__all__ = [
    "SHUT_DOWN",
    "TIMED_OUT",
    "CallHook",
    "Clock",
    "ContentSpool",
    "HookFailed",
    "Interrupted",
    "NewId",
    "Notice",
    "Now",
    "Pause",
    "Receive",
    "ServerEffect",
    "ServerProcedure",
    "SpoolWrite",
]

T = TypeVar("T")


class Interrupted(enum.Enum):
    """Why a ``Receive`` ended without bytes."""

    TIMED_OUT = enum.auto()  # nothing came within the timeout
    SHUT_DOWN = enum.auto()  # the server is shutting down (interruptible reads only)


TIMED_OUT: Final = Interrupted.TIMED_OUT
"""The answer to ``Receive`` when nothing came within its timeout."""
SHUT_DOWN: Final = Interrupted.SHUT_DOWN
"""The answer to an interruptible ``Receive`` when the server is shutting down."""


@dataclass(frozen=True, slots=True)
class Receive:
    """Receive some bytes from the client, waiting at most ``timeout`` seconds.

    Answer: the bytes (``b""`` when the client closed), ``TIMED_OUT`` when the
    time ran out, or ``SHUT_DOWN`` when the server shuts down. A transport
    answers ``SHUT_DOWN`` only when ``interruptible`` is true: no message is
    in flight, so nothing is lost by stopping here.
    """

    timeout: float
    interruptible: bool


@dataclass(frozen=True, slots=True)
class CallHook:
    """Call ``handler.<name>(*args)``; await the result if it is awaitable.

    Answer: what the hook returned, or ``HookFailed`` when it raised. The
    procedure asks only for hooks listed in ``ServerOptions.hooks``.
    """

    name: str
    args: tuple[object, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class HookFailed:
    """The answer to ``CallHook`` when the hook raised ``error`` (the transport logs it)."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class Now:
    """Answer: the current time, a timezone-aware ``datetime``."""


@dataclass(frozen=True, slots=True)
class Clock:
    """Answer: seconds from a monotonic clock, a float (``time.monotonic()``, ``loop.time()``).

    Only differences between two answers count, so any monotonic clock of
    the transport will do. The procedure asks only while part of a command
    line or of a message is in, to charge the client for its waits. Any
    answer but a number is a ``TypeError``: a driver must answer it.
    """


@dataclass(frozen=True, slots=True)
class NewId:
    """Answer: a fresh random token of letters and digits (message ids, SASL nonces)."""


class ContentSpool(Protocol):
    """Where a transport keeps a message's content beyond the spool threshold.

    The transport makes one per message when the procedure first asks
    (``SpoolWrite`` with no spool) and ``write``s into it; the envelope reads
    it back through ``chunks``, from the start, as often as asked. It is
    released when nothing refers to it any more (a temporary file is
    deleted when closed).
    """

    def write(self, data: bytes) -> None:
        """Append ``data``; raises ``OSError`` when it cannot be stored."""

    def chunks(self, size: int) -> Iterator[bytes]:
        """The content written so far, in pieces of at most ``size`` octets."""


@dataclass(frozen=True, slots=True)
class SpoolWrite:
    """Append ``data`` to ``spool``, or to a new spool when ``spool`` is None.

    Answer: the spool written to, or ``HookFailed`` when the write failed
    (a full disk: the message is then refused with 452 4.3.1 at its end).
    """

    spool: ContentSpool | None
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` before going on (after a failed AUTH). Answer: None.

    Like Postfix's smtpd_error_sleep_time: each wrong password costs the
    client time, whatever it does meanwhile (its bytes wait in the buffer).
    """

    seconds: float


@dataclass(frozen=True, slots=True)
class Notice:
    """Log ``message`` at WARNING on the ``smtpcore.server`` logger. Answer: None.

    For what an operator must see (a client address refused AUTH); never a
    password or message content.
    """

    message: str


ServerEffect: TypeAlias = (
    Write
    | Receive
    | Handshake
    | Close
    | CallHook
    | Now
    | Clock
    | NewId
    | SpoolWrite
    | Pause
    | Notice
)
"""Any effect the server procedure yields for its driver to perform."""
ServerProcedure: TypeAlias = Generator[ServerEffect, object, T]
"""The server procedure: yields server effects, is sent their answers, returns ``T``."""
