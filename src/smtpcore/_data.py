"""Client-side message content: CRLF normalisation and dot-stuffing (RFC 5321 4.5.2).

Order matters. Bare CR and bare LF become CRLF first, then a dot is doubled at
the start of every line. Stuffing first would let ``\\r.\\r`` turn into a real
``CRLF . CRLF`` end marker afterwards (SMTP smuggling); this order cannot emit
one. A CR at the end of a chunk is held back until the next chunk shows
whether an LF follows, so chunk boundaries never change the output.
"""

from __future__ import annotations

__all__ = ["DotStuffer", "LineEnds"]


def _crlf(data: bytes) -> bytes:
    """``data`` with every bare CR and bare LF turned into CRLF (RFC 5321 2.3.8)."""
    # Content already in CRLF form (the usual case) skips the
    # normalisation's three copies. Every CR and LF is part of a CRLF
    # exactly when there are twice as many of them as CRLFs (each CRLF
    # holds one of each, so neither can fall short): two scans, not three.
    pairs = data.count(b"\r\n")
    if len(data) - len(data.translate(None, b"\r\n")) != 2 * pairs:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return data


class DotStuffer:
    """Streaming dot-stuffer: memory proportional to the chunk, not the message."""

    __slots__ = ("_at_line_start", "_ends")

    def __init__(self) -> None:
        self._at_line_start = True  # the content starts right after the 354 line
        self._ends = LineEnds()  # CRLF first, then stuffing (see the module's docstring)

    def stuff(self, data: bytes) -> bytes:
        """The wire form of the next piece of content."""
        data = self._ends.feed(data)
        if not data:
            return b""
        if b"\n." in data:  # every LF is now part of a CRLF
            data = data.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and data[0] == 0x2E:
            data = b"." + data
        self._at_line_start = data[-1] == 0x0A
        return data

    def end(self) -> bytes:
        """The end of the content: a CRLF if the last line is open, then ``.CRLF``."""
        held = self._ends.end()  # a CR held back ends the last line
        out = held + (b".\r\n" if held or self._at_line_start else b"\r\n.\r\n")
        self._at_line_start = True
        return out


class LineEnds:
    """Streaming CRLF normaliser for BDAT chunks: no dot-stuffing, BDAT frames by size.

    RFC 5321 2.3.8 lets CR and LF appear only together, as CRLF, in any
    text sent (RFC 3030 keeps that for 7BIT and 8BITMIME content sent with
    BDAT; only BINARYMIME is sent as it is). As in ``DotStuffer``, a CR at
    the end of a piece is held until the next piece shows whether an LF
    follows, so the cuts never change the output.
    """

    __slots__ = ("_pending_cr",)

    def __init__(self) -> None:
        self._pending_cr = False

    def feed(self, data: bytes) -> bytes:
        """The wire form of the next piece of content."""
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._pending_cr = True
        return _crlf(data) if data else b""

    def end(self) -> bytes:
        """What is still held at the end of the content: a lone CR, as CRLF."""
        if self._pending_cr:
            self._pending_cr = False
            return b"\r\n"
        return b""
