"""Client-side dot-stuffing and CRLF normalisation, and the round trip through the reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore._data import DotStuffer, LineEnds
from smtpcore._unstuff import DataReader


def stuff(*chunks: bytes) -> bytes:
    stuffer = DotStuffer()
    return b"".join(stuffer.stuff(c) for c in chunks) + stuffer.end()


def normalise(data: bytes) -> bytes:
    """Every bare CR and bare LF as CRLF: what the client promises to send."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def unstuff(wire: bytes) -> bytes:
    reader = DataReader()
    content, consumed = reader.feed(wire)
    assert reader.done
    assert consumed == len(wire)
    return content


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        (b"", b".\r\n"),
        (b"Subject: hi\r\n\r\nbody\r\n", b"Subject: hi\r\n\r\nbody\r\n.\r\n"),
        (b"no final newline", b"no final newline\r\n.\r\n"),
        (b".leading\r\n", b"..leading\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"x\r", b"x\r\n.\r\n"),
        (b"\r\r\n", b"\r\n\r\n.\r\n"),
        (b"..", b"...\r\n.\r\n"),
    ],
)
def test_stuffing_exact_bytes(content: bytes, wire: bytes) -> None:
    assert stuff(content) == wire


@pytest.mark.parametrize(
    "content",
    [b"a\r\n.\r\nb", b"a\r.\rb\n.\n", b"\r\n.\r", b".\r\n.\n.\r", b"x\r\n..\r\n.y"],
)
def test_stuffing_is_the_same_at_every_cut(content: bytes) -> None:
    expected = stuff(content)
    for i in range(len(content) + 1):
        for j in range(i, len(content) + 1):
            assert stuff(content[:i], content[i:j], content[j:]) == expected


def test_end_marker_appears_only_at_the_end() -> None:
    hostile = b"x\n.\nMAIL FROM:<evil@x>\r\n\r.\r\n.\r\r\n.\n"
    wire = stuff(hostile)
    assert wire.count(b"\r\n.\r\n") == 1
    assert wire.endswith(b"\r\n.\r\n")


def test_memory_is_per_chunk() -> None:
    stuffer = DotStuffer()
    assert stuffer.stuff(b"abc\r") == b"abc"  # the CR waits for its LF
    assert stuffer.stuff(b"\n.") == b"\r\n.."
    assert stuffer.end() == b"\r\n.\r\n"


@given(st.lists(st.binary(max_size=40), max_size=8))
def test_stuff_then_unstuff_gives_crlf_normalised_content(chunks: list[bytes]) -> None:
    content = b"".join(chunks)
    wire = stuff(*chunks)
    assert wire.count(b"\r\n.\r\n") + (wire == b".\r\n") == 1
    expected = normalise(content)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert unstuff(wire) == expected


@given(st.lists(st.sampled_from([b"a", b".", b"\r\n", b"..", b"x\r\n."]), max_size=20))
def test_crlf_only_content_round_trips_exactly(pieces: list[bytes]) -> None:
    content = b"".join(pieces)
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    assert unstuff(stuff(content)) == content


# -- LineEnds: BDAT content (RFC 3030 2 frames by size: no stuffing) ------------------


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"\n.\n", b"\r\n.\r\n"),
        (b"\r\r\n\n\r", b"\r\n\r\n\r\n\r\n"),
        (b".lead\r\n", b".lead\r\n"),
        (b"", b""),
    ],
)
def test_line_ends_exact_bytes(content: bytes, wire: bytes) -> None:
    ends = LineEnds()
    assert ends.feed(content) + ends.end() == wire


@given(st.binary(max_size=60), st.lists(st.integers(0, 60), max_size=6))
def test_line_ends_are_the_same_at_every_cut(content: bytes, cuts: list[int]) -> None:
    whole = LineEnds()
    expected = whole.feed(content) + whole.end()
    points = sorted({min(c, len(content)) for c in cuts})
    pieces = [content[a:b] for a, b in zip([0, *points], [*points, len(content)], strict=True)]
    ends = LineEnds()
    assert b"".join(ends.feed(p) for p in pieces) + ends.end() == expected
    # Only CRLF pairs remain, and no octet but CR and LF changed.
    assert expected.count(b"\r") == expected.count(b"\n") == expected.count(b"\r\n")
    assert expected.translate(None, b"\r\n") == content.translate(None, b"\r\n")
