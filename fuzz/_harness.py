"""What every fuzz target shares: reading the fuzzer's bytes, feeding them every way.

The fuzz targets must run with and without atheris (CI runs them over their
seed corpora as plain pytest tests), so the input is read by ``Input``, a
small deterministic reader of our own, not atheris' FuzzedDataProvider.

``every_way`` is the fuzzing twin of tests/feeding.py: the same bytes fed
whole, one byte at a time and at random cuts must give the same events, or
the same error class. Only ``RemoteProtocolError`` may leave a receiving
parser: any other exception propagates, and the fuzzer reports it as a crash.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from smtpcore import MessageData, RemoteProtocolError

__all__ = [
    "BYTEWISE_MAX",
    "Input",
    "Outcome",
    "cuts",
    "every_way",
    "join_data",
    "run_atheris",
]

#: Inputs longer than this are not fed one byte at a time (it would dominate
#: the run time); they are still fed whole and at several random cuts.
BYTEWISE_MAX = 4096

C = TypeVar("C")
E = TypeVar("E")


class Input:
    """Reads numbers, flags and strings off the front of the fuzzer's bytes.

    Every read is total: past the end it returns zeros and empty strings, so
    any input is a valid program.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def left(self) -> int:
        """How many bytes are still unread."""
        return len(self._data) - self._pos

    def byte(self) -> int:
        """The next byte, 0 past the end."""
        if self._pos >= len(self._data):
            return 0
        self._pos += 1
        return self._data[self._pos - 1]

    def flag(self) -> bool:
        """A bool from the low bit of the next byte."""
        return bool(self.byte() & 1)

    def number(self, low: int, high: int) -> int:
        """An int in ``low..high`` from the next two bytes."""
        value = self.byte() << 8 | self.byte()
        return low + value % (high - low + 1)

    def pick(self, choices: tuple[E, ...]) -> E:
        """One of ``choices``."""
        return choices[self.byte() % len(choices)]

    def raw(self, most: int) -> bytes:
        """Up to ``most`` bytes, the count read first."""
        count = self.number(0, most)
        piece = self._data[self._pos : self._pos + count]
        self._pos += len(piece)
        return piece

    def text(self, most: int) -> str:
        """A str from up to ``most`` bytes of UTF-8 (invalid bytes become U+FFFD)."""
        return self.raw(most).decode("utf-8", "replace")

    def rest(self) -> bytes:
        """Everything not read yet."""
        piece = self._data[self._pos :]
        self._pos = len(self._data)
        return piece


def cuts(wire: bytes, seed: int) -> list[bytes]:
    """``wire`` cut at seeded random places (pieces of 1 to about a third)."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(wire):
        step = rng.randint(1, max(1, len(wire) // 3))
        out.append(wire[i : i + step])
        i += step
    return out


def bytewise(wire: bytes) -> list[bytes]:
    """``wire`` one byte at a time."""
    return [wire[i : i + 1] for i in range(len(wire))]


def join_data(events: list[E]) -> list[E]:
    """Adjacent MessageData joined: how content is cut depends on the wire, not the content."""
    out: list[E] = []
    for event in events:
        if isinstance(event, MessageData) and out and isinstance(out[-1], MessageData):
            out[-1] = MessageData(out[-1].data + event.data)  # type: ignore[assignment]
        else:
            out.append(event)
    return out


class Outcome(Generic[E]):
    """The events of one way of feeding, and the error class if one was raised."""

    __slots__ = ("error", "events", "message")

    def __init__(self, events: list[E], error: str | None, message: str = "") -> None:
        self.events = events
        self.error = error
        self.message = message

    def verdict(self) -> tuple[list[E], str | None]:
        """What must agree between the ways: joined events and the error class."""
        return join_data(self.events), self.error

    def __repr__(self) -> str:
        return f"Outcome(events={self.events!r}, error={self.error!r}: {self.message})"


def feed(
    make: Callable[[], C],
    pieces: list[bytes],
    receive: Callable[[C, bytes, list[E]], None],
    check: Callable[[C], None] | None = None,
) -> Outcome[E]:
    """Feed ``pieces`` to a fresh ``make()``; ``receive`` feeds one piece and drains the events.

    ``check`` runs after every piece (buffer bounds). A RemoteProtocolError
    ends the feeding and is recorded; anything else propagates.
    """
    conn = make()
    events: list[E] = []
    try:
        for piece in pieces:
            receive(conn, piece, events)
            if check is not None:
                check(conn)
    except RemoteProtocolError as exc:
        if check is not None:
            check(conn)
        return Outcome(events, type(exc).__name__, str(exc))
    return Outcome(events, None)


def ways(wire: bytes, seed: int, *, close: bool = False) -> Iterator[list[bytes]]:
    """Whole, byte by byte (if not too long), and at two seeded random cuts."""
    tail = [b""] if close else []
    yield [wire, *tail] if wire else tail
    if len(wire) <= BYTEWISE_MAX:
        yield [*bytewise(wire), *tail]
    for n in range(2):
        yield [*cuts(wire, seed * 2 + n), *tail]


def every_way(
    make: Callable[[], C],
    wire: bytes,
    receive: Callable[[C, bytes, list[E]], None],
    *,
    seed: int = 0,
    close: bool = False,
    check: Callable[[C], None] | None = None,
) -> Outcome[E]:
    """The outcome of ``wire`` fed whole; every other way must give the same verdict."""
    outcomes = [feed(make, pieces, receive, check) for pieces in ways(wire, seed, close=close)]
    first = outcomes[0]
    for other in outcomes[1:]:
        if (
            other.verdict() != first.verdict()
            and not _same_injection(first, other)
            and not _unasked_cut_short(first, other)
        ):
            raise AssertionError(f"feeding differs:\n whole: {first!r}\n other: {other!r}")
    return first


def _same_injection(a: Outcome[E], b: Outcome[E]) -> bool:
    """STARTTLS response injection, the one designed difference between cuts.

    When bytes already sit behind the go-ahead reply to STARTTLS, the client
    refuses that reply itself (no handshake may start on a dirty buffer); when
    they arrive later, the reply comes out and the late bytes are refused. Both
    are the same RemoteProtocolError; one outcome has the go-ahead as one more
    event.
    """
    if a.error != b.error or not all("response injection" in o.message for o in (a, b)):
        return False
    short, long = sorted((a.events, b.events), key=len)
    return len(long) == len(short) + 1 and long[: len(short)] == short


def _unasked_cut_short(a: Outcome[E], b: Outcome[E]) -> bool:
    """A reply nothing asked for: the other designed difference between cuts.

    Whether a reply arrives before or after the command it could answer
    depends on the cut. Fed whole, every reply arrives before the client has
    sent anything more, so the replies beyond those owed answer nothing and
    the client refuses them on arrival (RFC 5321 4.3.1, RFC 2920 3.2); fed in
    pieces, the client has sent its next commands by the time they come. Such
    a refusal may only cut the conversation short: the refused outcome's
    events are a prefix of the other's, so no reply ever means something else.
    """
    for short, other in ((a, b), (b, a)):
        if short.error is not None and "no command waiting" in short.message:
            events = join_data(short.events)
            if join_data(other.events)[: len(events)] == events:
                return True
    return False


def run_atheris(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under atheris with the command line's libFuzzer options.

    Started this way (``python -m fuzz.fuzz_replies``), smtpcore was imported
    before atheris could instrument it, so everything loaded is instrumented
    (slow to start). ``python -m fuzz.run`` instruments only smtpcore and the
    targets, at import.
    """
    import atheris  # only the fuzzing run needs it

    if not getattr(run_atheris, "instrumented", False):
        atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
