"""The server procedure's message budget and spool, in-process with a fake clock.

``SpoolTimed`` drives the procedure like ``Timed`` of test_server_defences.py
(a fake monotonic clock; a scripted read longer than the ``Receive`` timeout
comes back as ``TIMED_OUT``) and also answers ``SpoolWrite`` with an
in-memory ``FakeSpool``, or with a failure, so the tests see every piece the
procedure hands to the transport.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smtpcore.session import Clock
from smtpcore.session._effects import Close, Write
from smtpcore.session._server import (
    CallHook,
    HookFailed,
    NewId,
    Now,
    Receive,
    ServerEnvelope,
    ServerOptions,
    SpoolWrite,
)
from smtpcore.session._server_session import DATA_TIMEOUT, SPOOL_THRESHOLD
from tests.core.test_server_defences import (
    ENVELOPE,
    HELO,
    MOMENT,
    PEER,
    Keep,
    Step,
    Timed,
    fast,
    options,
)

DATA_TIMED_OUT = b"421 mx.test 4.4.2 Data timeout, closing connection\r\n"
MIB = 1024 * 1024


class FakeSpool:
    """A spool in a list: what the procedure wrote, piece by piece."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.pieces.append(data)

    def chunks(self, size: int) -> Iterator[bytes]:
        data = b"".join(self.pieces)
        for start in range(0, len(data), size):
            yield data[start : start + size]


class SpoolTimed(Timed):
    """``Timed`` that answers ``SpoolWrite`` too (with a failure when ``disk_full``)."""

    def __init__(self, handler: object, steps: list[Step], *, disk_full: bool = False) -> None:
        super().__init__(handler, steps)
        self.disk_full = disk_full
        self.spools: list[FakeSpool] = []
        self.written: list[tuple[bool, int]] = []  # (a new spool?, octets) per SpoolWrite
        self.start_of_data = 0.0

    def run(self, options: ServerOptions, *, tls: object = None) -> int:
        procedure = options.session(PEER, "S1")
        answer: object = None
        while True:
            try:
                effect = procedure.send(answer)
            except StopIteration as done:
                return int(done.value)
            answer = self.answer(effect)

    def answer(self, effect: object) -> object:
        assert not self.closed, f"{effect} after Close"
        self.effects.append(effect)
        if isinstance(effect, SpoolWrite):
            self.written.append((effect.spool is None, len(effect.data)))
            if self.disk_full:
                return HookFailed(OSError(28, "No space left on device"))
            spool = effect.spool
            if spool is None:
                spool = FakeSpool()
                self.spools.append(spool)
            spool.write(effect.data)
            return spool
        if isinstance(effect, Write):
            self.wire += effect.data
            if effect.data.startswith(b"354"):
                self.start_of_data = self.now
        elif isinstance(effect, Receive):
            self.timeouts.append(effect.timeout)
            return self.receive(effect.timeout)
        elif isinstance(effect, Clock):
            return self.now
        elif isinstance(effect, CallHook):
            try:
                return getattr(self.handler, effect.name)(*effect.args)
            except Exception as error:
                return HookFailed(error)
        elif isinstance(effect, Now):
            return MOMENT
        elif isinstance(effect, NewId):
            return "ID1"
        elif isinstance(effect, Close):
            self.closed = True
        return None


# -- the message budget: data_timeout -------------------------------------------------


def test_content_sent_fast_then_a_byte_every_299_s_is_cut_by_data_timeout() -> None:
    """31 MiB fast buys 18 hours of the data-rate budget; the message budget ends it.

    With the default options only: 500 octets/s and idle_timeout 300 s let
    such a client wait 299 s per byte for about 65,000 s before its rate
    runs out. ``data_timeout`` (an hour) cuts it first.
    """
    handler = Keep()
    piece = b"x" * 1022 + b"\r\n"
    fast_content = [(0.01, piece * 1024)] * 31  # 31 MiB in 0.31 s
    steps = [*fast(HELO, ENVELOPE, b"DATA\r\n"), *fast_content, *[(299.0, b"y")] * 300]
    timed = SpoolTimed(handler, steps)
    timed.run(options(handler))
    assert timed.wire.endswith(DATA_TIMED_OUT)
    assert timed.now - timed.start_of_data == pytest.approx(DATA_TIMEOUT, abs=1.0)
    assert DATA_TIMEOUT == 3600.0
    assert handler.messages == []


def test_waits_between_bdat_chunks_count_against_the_message() -> None:
    """Each BDAT chunk arrives whole in one read, 290 s apart: no rate binds, the message does."""
    handler = Keep()
    chunk = b"BDAT 10\r\n" + b"0123456789"
    steps = [*fast(b"EHLO c\r\n", ENVELOPE, chunk), *[(290.0, chunk)] * 40]
    timed = SpoolTimed(handler, steps)
    timed.run(options(handler, data_timeout=1000))
    assert timed.wire.endswith(b"250 2.0.0 Chunk received\r\n" + DATA_TIMED_OUT)
    assert timed.wire.count(b"Chunk received") == 4  # 1 + three waits of 290 s, then 290 > 130
    assert timed.now - 1000.0 == pytest.approx(3 * 290 + 130)


def test_a_message_within_data_timeout_is_accepted_and_the_next_starts_afresh() -> None:
    handler = Keep()
    message = [(0.0, b"DATA\r\n"), *[(250.0, b"line\r\n")] * 3, (250.0, b".\r\n")]
    steps = [*fast(HELO, ENVELOPE), *message, *fast(ENVELOPE), *message]
    timed = SpoolTimed(handler, steps)
    # 750 s of waiting each (the first wait is not charged); the rate does not bind.
    assert timed.run(options(handler, data_timeout=900, min_data_rate=0.001)) == 2
    assert len(handler.messages) == 2


def test_the_first_wait_after_354_asks_for_no_time() -> None:
    """Content that arrives in one read still costs no Clock effect: the fast path stays."""
    handler = Keep()
    timed = SpoolTimed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", b"a\r\n.\r\n"))
    timed.run(options(handler, data_timeout=5))
    assert timed.clocks == 0 and len(handler.messages) == 1


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_data_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match="data_timeout"):
        ServerOptions.create(Keep(), data_timeout=value)


# -- the spool: content beyond spool_threshold -------------------------------------------


def test_content_beyond_the_threshold_goes_to_one_spool_in_order() -> None:
    handler = Keep()
    reads = [b"a" * 398 + b"\r\n", b"b" * 398 + b"\r\n", b"c" * 398 + b"\r\n", b".\r\n"]
    timed = SpoolTimed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", *reads))
    timed.run(options(handler, spool_threshold=600))
    (envelope,) = handler.messages
    header = envelope.received_header
    # Header + "a" fit (len(header) + 400 <= 600); with "b" the whole goes to the
    # spool, in one piece, then the rest (the unstuffer holds a CRLF back a while).
    assert len(header) + 400 <= 600 < len(header) + 800
    assert [new for new, _ in timed.written] == [True] + [False] * (len(timed.written) - 1)
    assert timed.written[0][1] >= len(header) + 798
    assert sum(octets for _, octets in timed.written) == len(header) + 1200
    assert envelope.held == b"" and envelope.spool is timed.spools[0]
    assert envelope.size == len(header) + 1200
    assert envelope.content == header + b"".join(reads[:3])
    assert b"".join(envelope.chunks(7)) == envelope.content
    assert envelope.original_content == b"".join(reads[:3])


def test_content_within_the_threshold_never_asks_for_a_spool() -> None:
    handler = Keep()
    timed = SpoolTimed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", b"x" * 98 + b"\r\n.\r\n"))
    timed.run(options(handler))
    (envelope,) = handler.messages
    assert timed.written == [] and envelope.spool is None
    assert envelope.held == envelope.content == envelope.received_header + b"x" * 98 + b"\r\n"
    assert envelope.size == len(envelope.content)
    assert SPOOL_THRESHOLD == MIB


def test_a_spool_that_cannot_be_written_refuses_the_message_with_452() -> None:
    handler = Keep()
    big = b"z" * 998 + b"\r\n"
    steps = fast(HELO, ENVELOPE, b"DATA\r\n", big, big, big, b".\r\n", ENVELOPE, b"DATA\r\n")
    steps += fast(b"small\r\n.\r\n")
    timed = SpoolTimed(handler, steps, disk_full=True)
    timed.run(options(handler, spool_threshold=1500))
    assert timed.wire.count(b"452 4.3.1 Insufficient system storage\r\n") == 1
    assert [new for new, _ in timed.written] == [True]  # tried once, then the rest dropped
    (envelope,) = handler.messages  # the next message, small, goes through
    assert envelope.content.endswith(b"\r\nsmall\r\n")


def test_without_a_threshold_nothing_is_spooled() -> None:
    handler = Keep()
    content = b"y" * 998 + b"\r\n"
    timed = SpoolTimed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", content * 50, b".\r\n"))
    timed.run(options(handler, spool_threshold=None))
    assert timed.written == [] and handler.messages[0].spool is None


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_spool_threshold_must_be_a_count_of_octets(value: object) -> None:
    with pytest.raises(ValueError, match="spool_threshold"):
        ServerOptions.create(Keep(), spool_threshold=value)  # type: ignore[arg-type]


def test_an_envelope_in_memory_reads_in_chunks_too() -> None:
    handler = Keep()
    timed = SpoolTimed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", b"abc\r\n.\r\n"))
    timed.run(options(handler))
    envelope: ServerEnvelope = handler.messages[0]
    assert list(envelope.chunks(len(envelope.content))) == [envelope.content]
    with pytest.raises(ValueError, match="chunk size"):
        next(envelope.chunks(0))
