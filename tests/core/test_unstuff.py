"""DATA unstuffing and BDAT framing, server side (RFC 5321 4.5.2, 4.1.1.4; RFC 3030)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore import NEED_DATA, EndOfData, Event, MessageData
from smtpcore._unstuff import ChunkReader, DataReader
from tests.feeding import feed_every_way


class Unstuffing:
    """A DataReader seen as a connection: content, then EndOfData; ``rest`` after the end."""

    def __init__(self, *, normalise_lf: bool = False, max_size: int | None = None) -> None:
        self.reader = DataReader(normalise_lf=normalise_lf, max_size=max_size)
        self.events: list[Event] = []
        self.rest = b""

    def receive_data(self, data: bytes) -> None:
        if self.reader.done:
            self.rest += data
            return
        content, consumed = self.reader.feed(data)
        if content:
            self.events.append(MessageData(content))
        if self.reader.done:
            self.events.append(EndOfData())
            self.rest += data[consumed:]

    def next_event(self) -> object:
        return self.events.pop(0) if self.events else NEED_DATA


def unstuff(wire: bytes, **kwargs: bool) -> list[Event]:
    return feed_every_way(lambda: Unstuffing(**kwargs), wire)


def test_empty_message_ends_right_after_the_354() -> None:
    assert unstuff(b".\r\n") == [EndOfData()]


def test_plain_lines() -> None:
    assert unstuff(b"Subject: hi\r\n\r\nbody\r\n.\r\n") == [
        MessageData(b"Subject: hi\r\n\r\nbody\r\n"),
        EndOfData(),
    ]


def test_leading_dot_is_removed_on_every_line() -> None:
    wire = b"..first\r\n..\r\nx.y\r\n...three\r\n.\r\n"
    assert unstuff(wire) == [MessageData(b".first\r\n.\r\nx.y\r\n..three\r\n"), EndOfData()]


def test_no_data_before_the_end_marker_is_complete() -> None:
    conn = Unstuffing()
    conn.receive_data(b"abc\r\n.\r")
    assert conn.next_event() == MessageData(b"abc")
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize(
    ("wire", "content"),
    [
        (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n"),
        (b"a\r.\rb\r\n.\r\n", b"a\r.\rb\r\n"),
        (b"a\r\n.\rb\r\n.\r\n", b"a\r\n\rb\r\n"),
        (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),
        (b"a\r.\nb\r\n.\r\n", b"a\r.\nb\r\n"),
        (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n"),
        (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n"),
        (b"a\n\n.\n\nb\r\n.\r\n", b"a\n\n.\n\nb\r\n"),
    ],
)
@pytest.mark.parametrize("normalise_lf", [False, True], ids=["reject", "normalise"])
def test_smuggling_variants_never_end_the_data(
    wire: bytes, content: bytes, normalise_lf: bool
) -> None:
    """RFC 5321 2.3.8, 4.1.1.4: only CRLF.CRLF ends the data; the rest is one message.

    Normalising bare LF to CRLF changes the content, never where it ends."""
    if normalise_lf:
        content = re.sub(rb"(?<!\r)\n", b"\r\n", content)
    conn = Unstuffing(normalise_lf=normalise_lf)
    assert unstuff(wire, normalise_lf=normalise_lf) == [MessageData(content), EndOfData()]
    conn.receive_data(wire)
    assert conn.reader.has_bare_newline
    assert conn.reader.has_bare_cr == (b"\r" in wire.replace(b"\r\n", b""))
    assert conn.reader.has_bare_lf == (b"\n" in wire.replace(b"\r\n", b""))


def test_normalise_lf_turns_bare_lf_into_crlf_and_keeps_bare_cr() -> None:
    """Postfix 3.9's normalize: a line ending in LF ends in CRLF; a bare CR stays, to be refused.

    A dot after a bare LF is not stuffing: it stays."""
    wire = b"a\n.\nb\rc\r\r\nd\n..e\r\n.\r\n"
    assert unstuff(wire, normalise_lf=True) == [
        MessageData(b"a\r\n.\r\nb\rc\r\r\nd\r\n..e\r\n"),
        EndOfData(),
    ]
    conn = Unstuffing(normalise_lf=True)
    conn.receive_data(wire)
    assert conn.reader.has_bare_cr and conn.reader.has_bare_lf


def test_normalise_lf_alone_leaves_no_bare_cr() -> None:
    conn = Unstuffing(normalise_lf=True)
    conn.receive_data(b"a\nb\n\r\n.\r\n")
    assert conn.reader.has_bare_lf and not conn.reader.has_bare_cr


def test_clean_message_has_no_bare_newline() -> None:
    conn = Unstuffing()
    conn.receive_data(b"a\r\n..b\r\n\r\n.\r\n")
    assert not conn.reader.has_bare_newline


def test_bytes_after_the_end_are_left_for_the_commands() -> None:
    wire = b"a\r\n.\r\nQUIT\r\n"
    for cut in range(len(wire) + 1):
        conn = Unstuffing()
        conn.receive_data(wire[:cut])
        conn.receive_data(wire[cut:])
        assert conn.rest == b"QUIT\r\n", cut


@pytest.mark.parametrize("cut", range(1, 18))
def test_data_split_at_every_position(cut: int) -> None:
    wire = b"..a\r\n..\r\nb\r\n\r\n.\r\n"
    conn = Unstuffing()
    conn.receive_data(wire[:cut])
    conn.receive_data(wire[cut:])
    content = b"".join(e.data for e in conn.events if isinstance(e, MessageData))
    assert content == b".a\r\n.\r\nb\r\n\r\n"
    assert conn.events[-1] == EndOfData()


def test_oversize_content_is_dropped_but_read_to_the_end() -> None:
    conn = Unstuffing(max_size=10)
    conn.receive_data(b"0123456789\r\n")
    conn.receive_data(b"more\r\n.\r\nNOOP\r\n")
    # What came before the limit was passed did flow; the rest is dropped, and the
    # server refuses the message at its end (the session discards what it got).
    assert conn.events == [MessageData(b"0123456789"), EndOfData()]
    cut = Unstuffing(max_size=10)
    cut.receive_data(b"0123456789\r\nmore\r\n.\r\n")
    assert cut.events == [MessageData(b"0123456789"), EndOfData()]
    assert conn.reader.is_oversize
    assert conn.reader.size == 18
    assert conn.rest == b"NOOP\r\n"


def test_content_up_to_the_limit_is_kept() -> None:
    conn = Unstuffing(max_size=5)
    conn.receive_data(b"abc\r\n.\r\n")
    assert conn.events == [MessageData(b"abc\r\n"), EndOfData()]
    assert not conn.reader.is_oversize


def _stuff(content: bytes) -> bytes:
    """A tiny independent client-side stuffer: normalise to CRLF, double leading dots."""
    lines = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    wire = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return wire + b".\r\n"


@given(st.binary(max_size=300), st.lists(st.integers(0, 320), max_size=6))
def test_any_content_through_stuffing_comes_back_crlf_normalised(
    content: bytes, cuts: list[int]
) -> None:
    wire = _stuff(content)
    conn = Unstuffing()
    last = 0
    for cut in sorted(c for c in cuts if c <= len(wire)):
        conn.receive_data(wire[last:cut])
        last = cut
    conn.receive_data(wire[last:] + b"NEXT")
    got = b"".join(e.data for e in conn.events if isinstance(e, MessageData))
    normal = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if normal and not normal.endswith(b"\r\n"):
        normal += b"\r\n"
    assert got == normal
    assert conn.events[-1] == EndOfData()
    assert conn.rest == b"NEXT"
    assert not conn.reader.has_bare_newline


@given(st.binary(max_size=200), st.integers(0, 200))
def test_whole_and_cut_agree_on_any_bytes(wire: bytes, cut: int) -> None:
    whole, parts = Unstuffing(), Unstuffing()
    if wire:
        whole.receive_data(wire)
    for piece in (wire[:cut], wire[cut:]):
        if piece:
            parts.receive_data(piece)

    def content(conn: Unstuffing) -> bytes:
        return b"".join(e.data for e in conn.events if isinstance(e, MessageData))

    assert content(whole) == content(parts)
    assert whole.reader.done == parts.reader.done
    assert whole.rest == parts.rest
    assert whole.reader.has_bare_newline == parts.reader.has_bare_newline


def test_chunk_reader_takes_exactly_its_size() -> None:
    reader = ChunkReader(14)
    assert reader.take(b"RCPT TO:<x@y>\r\nQUIT\r\n") == b"RCPT TO:<x@y>\r\n"[:14]
    assert reader.left == 0
    reader = ChunkReader(5)
    assert reader.take(b"ab") == b"ab"
    assert reader.take(b"cdefg") == b"cde"
    assert reader.left == 0
