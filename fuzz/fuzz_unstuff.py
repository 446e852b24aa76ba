"""Fuzz the DATA reader and the dot-stuffer (RFC 5321 4.1.1.4, 4.5.2; SMTP smuggling).

Asserts, for arbitrary wire bytes after a 354: the reader never raises;
it ends exactly at the first ``CRLF.CRLF`` (the 354's CRLF counting as the
first CRLF) and nowhere else, whatever bare CR or LF variants come before;
the content equals a line-by-line reference unstuffing (a dot goes only
after a real CRLF), with each bare LF made CRLF when the reader normalises
bare LF (the server's default) and bare CRs always kept; the bare-CR and
bare-LF flags match the wire; at most four octets are held back; whole,
byte-wise and cut feeding agree (content, end, octets consumed, flags).

And for arbitrary content: stuffing it (cut anywhere) and unstuffing the
result gives back the content with every bare CR and LF made CRLF (plus
a final CRLF when the last line was open); the wire has no bare CR or LF and
exactly one end marker, at its very end.
"""

from __future__ import annotations

import re

from smtpcore import MessageData
from smtpcore._data import DotStuffer
from smtpcore._unstuff import DataReader

from ._harness import Input, cuts, every_way, run_atheris

END = b"\r\n.\r\n"

# One event: content, or ("end", consumed_total, bare, oversize, size).
Item = MessageData | tuple[object, ...]


def normalise(content: bytes) -> bytes:
    """Bare CR and bare LF made CRLF (RFC 5321 2.3.8): what a client sends."""
    return content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def normalise_lf(content: bytes) -> bytes:
    """Each LF not preceded by CR made CRLF; CRs untouched (the server's ``normalise``)."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", content)


def reference(wire: bytes, normal: bool) -> tuple[bytes, int] | None:
    """(content, octets consumed) of a message in ``wire``, or None when it has no end."""
    framed = b"\r\n" + wire  # the CRLF that ended the 354 line
    end = framed.find(END)
    if end < 0:
        return None
    body = framed[2 : end + 2]
    # Unstuff line by line: a line starting with a dot loses it (RFC 5321 4.5.2).
    lines = body.split(b"\r\n")
    out = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    if normal:
        out = normalise_lf(out)
    return out, end + 5 - 2


class _Reader:
    def __init__(self, normal: bool, max_size: int | None) -> None:
        self.reader = DataReader(normalise_lf=normal, max_size=max_size)
        self.consumed = 0


def test_one_input(data: bytes) -> None:
    """One fuzz case: flags from the first bytes; the rest is wire (and content) bytes."""
    source = Input(data)
    normal = source.flag()
    max_size = source.number(0, 300) if source.flag() else None
    seed = source.byte()
    wire = source.rest()

    def make() -> _Reader:
        return _Reader(normal, max_size)

    def receive(state: _Reader, piece: bytes, events: list[Item]) -> None:
        reader = state.reader
        was_done = reader.done
        content, consumed = reader.feed(piece)
        assert 0 <= consumed <= len(piece)
        assert consumed == len(piece) or reader.done
        assert len(reader._held) <= 4, reader._held
        state.consumed += consumed
        if content:
            events.append(MessageData(content))
        if reader.done and not was_done:
            events.append(
                (
                    "end",
                    state.consumed,
                    (reader.has_bare_cr, reader.has_bare_lf),
                    reader.is_oversize,
                    reader.size,
                )
            )

    outcome = every_way(make, wire, receive, seed=seed)
    content = b"".join(e.data for e in outcome.events if isinstance(e, MessageData))
    ends = [e for e in outcome.events if isinstance(e, tuple)]
    expected = reference(wire, normal)
    if expected is None:
        assert not ends
    else:
        body, consumed = expected
        assert len(ends) == 1 and ends[0][1] == consumed, (ends, consumed)
        _, _, bare, oversize, size = ends[0]
        limit = len(body) if max_size is None else max_size
        assert content == body[:limit], (content, body)
        assert oversize == (max_size is not None and len(body) > max_size)
        assert size == len(body)
        # The content before the end marker; ".\r\n" right after the 354 (consumed
        # == 3) ends an empty message whose CRLF is the 354 line's own.
        stuffed = b"\r\n" + wire[: max(consumed - 5, 0)]
        pairs = stuffed.count(b"\r\n")
        assert bare == (stuffed.count(b"\r") != pairs, stuffed.count(b"\n") != pairs), bare
    roundtrip(wire, seed)


def roundtrip(content: bytes, seed: int) -> None:
    """Stuff ``content`` cut at seeded places, then unstuff: CRLF-normalised content back."""
    stuffer = DotStuffer()
    wire = b"".join(stuffer.stuff(piece) for piece in cuts(content, seed)) + stuffer.end()
    # One end marker, at the very end; no bare CR or LF anywhere (no smuggling).
    assert wire.endswith(b".\r\n")
    assert (b"\r\n" + wire).find(END) == len(wire) - 3, wire
    assert wire.count(b"\r") == wire.count(b"\n") == wire.count(b"\r\n"), wire
    whole = DotStuffer()
    assert whole.stuff(content) + whole.end() == wire, "stuffing depends on the cuts"
    reader = DataReader()
    out, consumed = reader.feed(wire)
    assert reader.done and consumed == len(wire) and not reader.has_bare_newline
    expected = normalise(content)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert out == expected, (content, wire, out)


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
