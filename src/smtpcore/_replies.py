"""The reply parser: bytes from a server in, complete replies out (RFC 5321 4.2).

How this works: bytes accumulate in one bounded buffer. Each complete line
(ended by CRLF) is checked octet by octet before anything is decoded: three
ASCII digits of RFC 5321's grammar, then "-" (more lines follow), " " (last
line) or the end of the line. Lines are collected until the last one of a
reply; all lines must carry the same code. Line length and the number of
lines are bounded by ``Limits``, checked before and after the line end
arrives, so one chunk and one byte at a time give the same verdict.
"""

from __future__ import annotations

from typing import Final

from ._errors import RemoteProtocolError
from ._limits import Limits

__all__ = ["ReplyParser"]

#: Every code RFC 5321 4.2's grammar allows (first digit 2-5, second 0-5, third
#: 0-9), as its three octets -> its value: one lookup checks and converts.
_CODES: Final = {
    f"{first}{second}{third}".encode(): first * 100 + second * 10 + third
    for first in range(2, 6)
    for second in range(6)
    for third in range(10)
}


#: The first four octets of a usual reply line -> (code, more lines follow):
#: a code of ``_CODES`` and a space (last line) or a hyphen (RFC 5321 4.2).
_HEADS: Final = {
    octets + separator: (value, separator == b"-")
    for octets, value in _CODES.items()
    for separator in (b" ", b"-")
}


def _excerpt(line: bytes | bytearray) -> str:
    """A short, printable quotation of what the peer sent."""
    text = bytes(line[:60])
    return repr(text) + ("..." if len(line) > 60 else "")


class ReplyParser:
    """Incremental, bounded parser of server replies.

    ``receive_data`` appends bytes; ``next_reply`` returns ``(code, lines)``
    for the next complete reply, or ``None`` while it is incomplete. Raises
    ``RemoteProtocolError`` for anything RFC 5321 4.2 does not allow.
    """

    __slots__ = ("_buffer", "_code", "_lines", "_max_line", "_max_lines", "_scanned")

    def __init__(self, limits: Limits) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        self._code: int | None = None  # of the lines so far of a multiline reply
        self._lines: list[str] = []
        self._max_line = limits.reply_line
        self._max_lines = limits.reply_lines

    def receive_data(self, data: bytes) -> None:
        """Append bytes received from the server."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a returned reply."""
        return len(self._buffer)

    @property
    def in_reply(self) -> bool:
        """Whether part of a reply has been received (a line, or a line's start)."""
        return bool(self._buffer) or bool(self._lines)

    def next_reply(self) -> tuple[int, tuple[str, ...]] | None:
        """The next complete reply as ``(code, lines)``, or None while it is incomplete."""
        # Lines are read at an offset and the buffer is cut once per reply:
        # a pipelined batch of replies is not shifted once per line.
        buffer = self._buffer
        scanned = self._scanned
        if scanned == len(buffer):
            # Nothing new since the last call (often: nothing at all, as when
            # a client asks before its first read): that call's verdict stands.
            return None
        lines = self._lines
        max_line = self._max_line
        pos = 0
        end = buffer.find(b"\n", scanned)
        while True:
            if end < 0:
                if len(buffer) - pos >= max_line:
                    raise RemoteProtocolError(
                        f"reply line exceeds Limits.reply_line ({max_line} octets): "
                        f"{_excerpt(buffer[pos:])}"
                    )
                if pos:
                    del buffer[:pos]
                self._scanned = len(buffer)
                return None
            if end == pos or buffer[end - 1] != 0x0D:
                raise RemoteProtocolError(
                    "reply line ends with a bare LF (RFC 5321 2.3.8): "
                    f"{_excerpt(buffer[pos : end + 1])}"
                )
            if end + 1 - pos > max_line:
                raise RemoteProtocolError(
                    f"reply line of {end + 1 - pos} octets exceeds Limits.reply_line ({max_line})"
                )
            line = bytes(buffer[pos : end - 1])
            pos = end + 1
            # One lookup checks the code and the separator of the usual line
            # ("250 text", "250-text"); any other line takes the long way,
            # which finds the verdict and its reason.
            head = _HEADS.get(line[:4])
            if head is None:
                value, more = self._head(line)
            else:
                value, more = head
                if self._code is not None and value != self._code:
                    raise _code_change(self._code, value, line)
            if b"\x00" in line or b"\r" in line:
                raise RemoteProtocolError(f"reply line contains NUL or a bare CR: {_excerpt(line)}")
            text = line[4:].decode("utf-8", "replace")
            if more:
                lines.append(text)
                if len(lines) >= self._max_lines:
                    raise RemoteProtocolError(
                        f"reply of more than {self._max_lines} lines exceeds Limits.reply_lines"
                    )
                self._code = value
                end = buffer.find(b"\n", pos)
                continue
            del buffer[:pos]
            self._scanned = 0
            if not lines:
                return value, (text,)
            lines.append(text)
            result = tuple(lines)
            lines.clear()
            self._code = None
            return value, result

    def _head(self, line: bytes) -> tuple[int, bool]:
        """The code of a line ``_HEADS`` does not know, and whether more lines follow.

        Raises ``RemoteProtocolError`` for a code outside RFC 5321 4.2's
        grammar, a code other than the reply's earlier lines', or a separator
        other than space or hyphen.
        """
        value = _CODES.get(line[:3])
        if value is None:
            raise RemoteProtocolError(
                f"reply does not start with a code of three digits 2-5, 0-5, 0-9 "
                f"(RFC 5321 4.2): {_excerpt(line)}"
            )
        if self._code is not None and value != self._code:
            raise _code_change(self._code, value, line)
        if len(line) > 3:
            separator = line[3]
            if separator == 0x2D:
                return value, True
            if separator != 0x20:
                raise RemoteProtocolError(
                    f"reply code followed by {chr(separator)!r}, not space or hyphen "
                    f"(RFC 5321 4.2): {_excerpt(line)}"
                )
        return value, False


def _code_change(before: int, now: int, line: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"reply code changes from {before} to {now} "
        f"inside a multiline reply (RFC 5321 4.2.1): {_excerpt(line)}"
    )
