"""Ready messages (an .eml file, a Maildir or mbox entry): the header section, then the body.

The header section is read and prepared (envelope, Bcc removed); the body is
streamed from the file. Its size is known from the file before a byte of it is
read, so the server's SIZE can refuse it first; only the 8-bit scan reads the
body ahead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from email import policy
from email.parser import BytesHeaderParser
from typing import BinaryIO, Final

from smtpcore.session import prepare_message

from ._mail import Outgoing
from ._output import EX_DATAERR, EX_NOINPUT, Failure

__all__ = ["HEADER_LIMIT", "InputError", "from_file", "mbox_spans"]

#: Octets of a ready message's body read at a time.
_PIECE: Final = 64 * 1024
#: The most a ready message's header section may take (it is held in memory).
HEADER_LIMIT: Final = 1024 * 1024


class InputError(Failure):
    """An input the user named cannot be used: ``option`` and ``path`` say which."""

    def __init__(self, option: str, path: str, problem: str, status: int = EX_DATAERR) -> None:
        super().__init__(f"{option} {path}: {problem}", status)


def from_file(
    file: BinaryIO,
    *,
    name: str,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    strip_from_line: bool = False,
    end: int | None = None,
    owns_file: bool = True,
) -> Outgoing:
    """A ready message in ``file``, from its current position to ``end`` (or its end).

    The envelope comes from the header fields unless given. Raises
    ``InputError`` when the header section is too large and
    ``LocalProtocolError`` when no envelope can be found.
    ``strip_from_line`` drops an mbox "From " line first. ``owns_file``:
    ``close()`` closes the file (not so for one message of an mbox).
    """
    lines: list[bytes] = []
    held = 0
    first = True
    while True:
        line = file.readline(HEADER_LIMIT + 1)
        if first and strip_from_line and line.startswith(b"From "):
            first = False
            continue
        first = False
        if not line or line in (b"\r\n", b"\n"):
            break
        held += len(line)
        if held > HEADER_LIMIT:
            raise InputError("the message", name, f"header section over {HEADER_LIMIT} octets")
        lines.append(line)
    head_raw = b"".join(lines)
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(head_raw + b"\n")
    parsed.set_payload("")
    prepared = prepare_message(parsed, sender, recipients)
    head = prepared.content.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    body_start = file.tell()
    if end is None:
        if not _is_regular(file):
            raise InputError("the message", name, "not a regular file", EX_NOINPUT)
        end = os.fstat(file.fileno()).st_size
    total = max(end, body_start)

    def body() -> Iterator[bytes]:
        file.seek(body_start)
        position = body_start
        while position < total:
            chunk = file.read(min(_PIECE, total - position))
            if not chunk:
                return
            position += len(chunk)
            yield chunk

    def scan() -> tuple[int, bool]:
        # Whether the body has 8-bit octets (BODY=8BITMIME), and how many bare
        # CRs and LFs the CRLF rule of RFC 5321 2.3.8 lengthens by one octet
        # each, so that SIZE= is exact.
        eight_bit = False
        bare = 0
        carry = b""  # a CR at the end of a piece waits for the next one
        for chunk in body():
            data = carry + chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            if carry:
                data = data[:-1]
            eight_bit = eight_bit or not data.isascii()
            pairs = data.count(b"\r\n")
            bare += data.count(b"\r") + data.count(b"\n") - 2 * pairs
        bare += len(carry)
        file.seek(body_start)
        return len(head) + total - body_start + bare, eight_bit

    def pieces() -> Iterator[bytes]:
        yield head
        yield from body()

    return Outgoing(prepared.sender, prepared.recipients, len(head) + total - body_start,
                    prepared.needs_smtputf8, False, pieces, name=name,
                    _close=[file] if owns_file else [],
                    _scan=scan)  # fmt: skip


def _is_regular(file: BinaryIO) -> bool:
    import stat

    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def mbox_spans(file: BinaryIO) -> list[tuple[int, int]]:
    """(start, end) offsets of each message of an mbox file, "From " line included.

    A message begins at each line that starts with "From " (as Python's
    ``mailbox`` reads mbox); the empty line before the next one belongs to
    the separator. Reads the file once, line by line.
    """
    spans: list[tuple[int, int]] = []
    start: int | None = None
    previous_blank = b""  # the line end of an empty line just before, if any
    position = file.tell()
    for line in iter(file.readline, b""):
        if line.startswith(b"From "):
            if start is not None:
                spans.append((start, position - len(previous_blank)))
            start = position
        previous_blank = line if line in (b"\n", b"\r\n") else b""
        position += len(line)
    if start is not None:
        spans.append((start, position - len(previous_blank)))
    return spans
