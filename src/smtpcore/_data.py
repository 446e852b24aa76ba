"""Client-side message content: CRLF normalisation and dot-stuffing (RFC 5321 4.5.2).

Order matters. Bare CR and bare LF become CRLF first, then a dot is doubled at
the start of every line. Stuffing first would let ``\\r.\\r`` turn into a real
``CRLF . CRLF`` end marker afterwards (SMTP smuggling); this order cannot emit
one. A CR at the end of a chunk is held back until the next chunk shows
whether an LF follows, so chunk boundaries never change the output.
"""

from __future__ import annotations

__all__ = ["DotStuffer"]


class DotStuffer:
    """Streaming dot-stuffer: memory proportional to the chunk, not the message."""

    __slots__ = ("_at_line_start", "_pending_cr")

    def __init__(self) -> None:
        self._at_line_start = True  # the content starts right after the 354 line
        self._pending_cr = False

    def stuff(self, data: bytes) -> bytes:
        """The wire form of the next piece of content."""
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._pending_cr = True
        if not data:
            return b""
        # Counting scans without copying: content already in CRLF form (the
        # usual case) skips the normalisation's three copies.
        pairs = data.count(b"\r\n")
        if data.count(b"\r") != pairs or data.count(b"\n") != pairs:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        if b"\n." in data:  # every LF is now part of a CRLF
            data = data.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and data[0] == 0x2E:
            data = b"." + data
        self._at_line_start = data[-1] == 0x0A
        return data

    def end(self) -> bytes:
        """The end of the content: a CRLF if the last line is open, then ``.CRLF``."""
        if self._pending_cr:
            self._pending_cr = False
            self._at_line_start = True
            return b"\r\n.\r\n"
        out = b".\r\n" if self._at_line_start else b"\r\n.\r\n"
        self._at_line_start = True
        return out
