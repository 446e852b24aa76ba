"""Server-side message content: DATA unstuffing and BDAT framing (RFC 5321 4.5.2, RFC 3030).

How the DATA reader works: the content ends only at ``CRLF . CRLF``
(RFC 5321 4.1.1.4). The 354 line ended with a CRLF, so the reader starts as
if it had just seen one (a virtual ``CRLF`` that is never content): ``.CRLF``
right after the 354 ends an empty message. Each chunk is joined to the few
bytes held back from the last one and searched once with ``bytes.find``.
Without the end marker, the longest tail that could start it (``CR``,
``CRLF``, ``CRLF.``, ``CRLF.CR``) is held back, so where the wire was cut
never changes the result. What is released is unstuffed with one
``replace`` (a dot after CRLF goes), checked for bare CR and bare LF by
counting, and, when asked, a bare LF is made CRLF (Postfix 3.9's
``smtpd_forbid_bare_newline = normalize``). Bare CR and bare LF never end
anything: ``LF.LF``, ``CR.CR``, ``CRLF.CR``, ``LF.CRLF``, ``CRLF.LF`` and
the rest are content (the SMTP smuggling variants, CVE-2023-51764/51765/
51766). Only a dot after a real CRLF is stuffing: a line that follows a
bare LF keeps its leading dot, as a sender that ends lines in LF does not
stuff them.

Memory: one received chunk plus at most four held bytes; the message itself
is never held.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ChunkReader", "DataReader", "LineEndCheck"]

_END: Final = b"\r\n.\r\n"
# Tails that may be the start of the end marker, longest first.
_PARTIAL_ENDS: Final = (b"\r\n.\r", b"\r\n.", b"\r\n", b"\r")


class DataReader:
    """Streaming reader of DATA content: unstuffs, ends only on ``CRLF.CRLF``.

    ``feed(data)`` returns ``(content, consumed)``: the unstuffed content now
    released, and how many octets of ``data`` belong to the message. When
    ``done`` becomes true, ``data[consumed:]`` is what the client sent after
    the end marker (pipelined commands).

    ``has_bare_cr`` and ``has_bare_lf`` say whether the content held a CR
    not followed by LF, or an LF not preceded by CR. ``normalise_lf`` turns
    each bare LF into CRLF (after unstuffing, so a dot after a bare LF is
    kept); a bare CR is always kept as it is, for the server to refuse.
    Content beyond ``max_size`` octets is dropped and ``is_oversize`` set
    (the first ``max_size`` octets are released); the reader still reads to
    the end marker (RFC 1870 6.2).
    """

    __slots__ = (
        "_held",
        "_max_size",
        "_normalise_lf",
        "_virtual",
        "done",
        "has_bare_cr",
        "has_bare_lf",
        "is_oversize",
        "size",
    )

    def __init__(self, *, normalise_lf: bool = False, max_size: int | None = None) -> None:
        self._held = b"\r\n"  # the CRLF that ended the 354 line: not content
        self._virtual = True
        self._normalise_lf = normalise_lf
        self._max_size = max_size
        self.done = False
        self.has_bare_cr = False
        self.has_bare_lf = False
        self.is_oversize = False
        self.size = 0  # octets of content seen, kept or not

    @property
    def has_bare_newline(self) -> bool:
        """Whether the content held a bare CR or a bare LF."""
        return self.has_bare_cr or self.has_bare_lf

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """The content ``data`` releases, and how many of its octets were content."""
        if self.done:
            return b"", 0
        held = self._held
        buf = held + data if held else data
        end = buf.find(_END)
        if end >= 0:
            body = buf[: end + 2]
            consumed = end + 5 - len(held)
            self._held = b""
            self.done = True
        else:
            keep = 0
            for tail in _PARTIAL_ENDS:
                if buf.endswith(tail):
                    keep = len(tail)
                    break
            body = buf[: len(buf) - keep] if keep else buf
            self._held = buf[len(buf) - keep :] if keep else b""
            consumed = len(data)
        return self._release(body), consumed

    def _release(self, body: bytes) -> bytes:
        if not body:
            return b""
        # RFC 5321 4.5.2: a line starting with a dot lost its first dot.
        body = body.replace(b"\r\n.", b"\r\n")
        pairs = body.count(b"\r\n")
        if body.count(b"\r") != pairs:
            self.has_bare_cr = True
        if body.count(b"\n") != pairs:
            self.has_bare_lf = True
            if self._normalise_lf:
                # A CR held back at the end never reaches here, so a CRLF is
                # never split: every LF left alone after this is bare.
                body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._virtual:
            body = body[2:]
            self._virtual = False
        before = self.size
        self.size += len(body)
        if self._max_size is not None and self.size > self._max_size:
            # Content flows up to the limit exactly, wherever the wire was cut;
            # the rest is dropped and the message is refused at its end.
            self.is_oversize = True
            return body[: max(self._max_size - before, 0)]
        return body


class LineEndCheck:
    """Line ends of BDAT content (RFC 5321 2.3.8, RFC 3030 3), across all chunks of a message.

    Content sent with BDAT is framed by size, so a bare CR or LF cannot end
    anything; but outside ``BODY=BINARYMIME`` it must still be CRLF text, and
    the server applies the same rule as for DATA: ``feed`` notes bare CRs and
    bare LFs and, with ``normalise_lf``, makes each bare LF CRLF. A CR at the
    end of a piece is held until the next piece (of this chunk or the next)
    shows whether an LF follows; ``end`` says what is held at the last chunk
    (a CR then is bare).
    """

    __slots__ = ("_normalise_lf", "_pending_cr", "has_bare_cr", "has_bare_lf")

    def __init__(self, *, normalise_lf: bool) -> None:
        self._normalise_lf = normalise_lf
        self._pending_cr = False
        self.has_bare_cr = False
        self.has_bare_lf = False

    def feed(self, data: bytes) -> bytes:
        """The content ``data`` releases (normalised when asked)."""
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._pending_cr = True
        pairs = data.count(b"\r\n")
        if data.count(b"\r") != pairs:
            self.has_bare_cr = True
        if data.count(b"\n") != pairs:
            self.has_bare_lf = True
            if self._normalise_lf:
                data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return data

    def end(self) -> bytes:
        """The held CR, if any, at the end of the content: a bare CR."""
        if self._pending_cr:
            self._pending_cr = False
            self.has_bare_cr = True
            return b"\r"
        return b""


class ChunkReader:
    """Counts off the octets of one BDAT chunk (RFC 3030 2): no unstuffing, no scanning.

    ``take(data)`` returns the part of ``data`` that belongs to the chunk;
    ``left`` is what is still due. ``discard`` drops the content (a refused
    chunk must still be read, RFC 3030 2).
    """

    __slots__ = ("discard", "left")

    def __init__(self, size: int, *, discard: bool = False) -> None:
        self.left = size
        self.discard = discard

    def take(self, data: bytes) -> bytes:
        """The first octets of ``data`` that belong to the chunk."""
        piece = data[: self.left]
        self.left -= len(piece)
        return piece
