"""The messages ``smtpcore send`` sends, built and read as streams.

A message made from the command's options is written in pieces: the header
section and the text part in hand, then each attachment read and
base64-encoded a piece at a time. A ready message (an .eml file, a Maildir or
mbox entry) has its header section read and prepared (envelope, Bcc removed),
then its body is streamed from the file. The size of each is known before a
byte of an attachment or a body is read, so the server's SIZE can refuse it
first; only the 8-bit scan of a ready message's body reads it ahead.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import BinaryIO, Final, TextIO

from smtpcore.session import prepare_message

__all__ = ["InputError", "Outgoing", "Progress", "attachment_size", "from_file", "from_options"]

#: Octets of an attachment encoded at a time: whole base64 lines (57 octets each).
_RAW_PIECE: Final = 57 * 1150
#: Octets of a ready message's body read at a time.
_PIECE: Final = 64 * 1024
#: The most a ready message's header section may take (it is held in memory).
HEADER_LIMIT: Final = 1024 * 1024


class InputError(Exception):
    """An input the user named cannot be used: ``option`` and ``path`` say which."""

    def __init__(self, option: str, path: str, problem: str) -> None:
        super().__init__(f"{option} {path}: {problem}")


@dataclass
class Outgoing:
    """One message ready to send: its envelope, its exact size and its content as pieces.

    ``pieces()`` may be called once; it reads the files only then.
    ``name`` says where the message came from, for a batch's report. A ready
    message's ``size`` is first a lower bound (its octets as stored) and
    ``body_8bit`` unknown; ``scan()`` reads the body once to settle both.
    """

    sender: str
    recipients: tuple[str, ...]
    size: int
    smtputf8: bool
    body_8bit: bool
    pieces: Callable[[], Iterator[bytes]]
    name: str = ""
    _close: list[BinaryIO] = field(default_factory=list, repr=False)
    _scan: Callable[[], tuple[int, bool]] | None = field(default=None, repr=False)

    @property
    def size_is_exact(self) -> bool:
        """False while ``size`` is only a lower bound (a ready message not yet scanned)."""
        return self._scan is None

    def scan(self) -> None:
        """Settle ``size`` and ``body_8bit`` of a ready message (reads its body once)."""
        if self._scan is not None:
            self.size, self.body_8bit = self._scan()
            self._scan = None

    def close(self) -> None:
        """Close the files this message holds open."""
        for file in self._close:
            file.close()
        self._close.clear()


def attachment_size(octets: int) -> int:
    """Octets of ``octets`` in base64 lines of 76 characters ended by CRLF."""
    whole, rest = divmod(octets, 57)
    return whole * 78 + (((rest + 2) // 3) * 4 + 2 if rest else 0)


def _encode_attachment(file: BinaryIO, octets: int) -> Iterator[bytes]:
    """The base64 lines of the first ``octets`` of ``file``, a piece at a time."""
    left = octets
    while left > 0:
        chunk = file.read(min(_RAW_PIECE, left))
        if not chunk:
            return  # the file shrank: the size was an estimate after all
        left -= len(chunk)
        yield base64.encodebytes(chunk).replace(b"\n", b"\r\n")


def from_options(
    sender: str,
    to: Sequence[str],
    cc: Sequence[str],
    bcc: Sequence[str],
    subject: str,
    body: bytes,
    attachments: Sequence[tuple[str, BinaryIO]],
) -> Outgoing:
    """A message made from the options; attachments are open files, read when sent."""
    recipients = tuple(dict.fromkeys([*to, *cc, *bcc]))
    top = EmailMessage()
    top["From"] = sender
    if to:
        top["To"] = ", ".join(to)
    if cc:
        top["Cc"] = ", ".join(cc)
    if subject:
        top["Subject"] = subject
    top["Date"] = formatdate(localtime=True)
    top["Message-ID"] = make_msgid()
    text = body.decode("utf-8", "replace")
    if not attachments:
        top.set_content(text)
        prepared = prepare_message(top, sender, recipients)
        content = prepared.content
        return Outgoing(prepared.sender, prepared.recipients, prepared.size,
                        prepared.needs_smtputf8, prepared.body_8bit,
                        lambda: iter((content,)))  # fmt: skip
    # The header section goes through prepare_message too, for the envelope
    # checks and the SMTPUTF8 decision; the parts are written after it.
    boundary = "=_smtpcore_" + secrets.token_hex(16)
    top["MIME-Version"] = "1.0"
    top["Content-Type"] = f'multipart/mixed; boundary="{boundary}"'
    prepared = prepare_message(top, sender, recipients)
    # The generator writes an empty multipart body after the header section.
    head = prepared.content.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    line_policy = policy.SMTPUTF8 if prepared.needs_smtputf8 else policy.SMTP
    text_part = MIMEPart(policy=line_policy)
    text_part.set_content(text)
    text_bytes = text_part.as_bytes(policy=line_policy)
    delimiter = f"\r\n--{boundary}\r\n".encode()
    parts: list[tuple[bytes, BinaryIO, int]] = []
    for name, file in attachments:
        kind, encoding = mimetypes.guess_type(name)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        part = MIMEPart(policy=line_policy)
        part["Content-Type"] = kind
        part.add_header("Content-Disposition", "attachment", filename=Path(name).name)
        part["Content-Transfer-Encoding"] = "base64"
        octets = os.fstat(file.fileno()).st_size
        parts.append((part.as_bytes(policy=line_policy), file, octets))
    opening = head + f"--{boundary}\r\n".encode() + text_bytes
    closing = f"\r\n--{boundary}--\r\n".encode()
    size = len(opening) + len(closing)
    size += sum(len(delimiter) + len(part_head) + attachment_size(n) for part_head, _, n in parts)

    def pieces() -> Iterator[bytes]:
        yield opening
        for part_head, file, octets in parts:
            yield delimiter + part_head
            yield from _encode_attachment(file, octets)
        yield closing

    return Outgoing(prepared.sender, prepared.recipients, size, prepared.needs_smtputf8,
                    not text_bytes.isascii(), pieces,
                    _close=[file for _, file, _ in parts])  # fmt: skip


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
            raise InputError("the message", name, "not a regular file")
        end = os.fstat(file.fileno()).st_size
    total = max(end, body_start)

    def read(position: int) -> bytes:
        return file.read(min(_PIECE, total - position)) if position < total else b""

    def scan() -> tuple[int, bool]:
        # Whether the body has 8-bit octets (BODY=8BITMIME), and how many bare
        # CRs and LFs the CRLF rule of RFC 5321 2.3.8 lengthens by one octet
        # each, so that SIZE= is exact.
        eight_bit = False
        bare = 0
        carry = b""  # a CR at the end of a piece waits for the next one
        position = body_start
        while True:
            chunk = read(position)
            if not chunk:
                break
            position += len(chunk)
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
        file.seek(body_start)
        position = body_start
        while True:
            chunk = read(position)
            if not chunk:
                return
            position += len(chunk)
            yield chunk

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


class Progress:
    """Bytes sent, the rate and the time left, redrawn on one terminal line."""

    def __init__(self, total: int, out: TextIO, *, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.out = out
        self.clock = clock
        self.started = clock()
        self.done = 0
        self._drawn = float("-inf")  # when the line was last drawn
        self._open = False  # a line is drawn and not yet ended

    def wrap(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """``pieces`` unchanged, drawing the line as they go; a final newline at the end."""
        for piece in pieces:
            yield piece
            self.done += len(piece)
            now = self.clock()
            if now - self._drawn >= 0.2:
                self._drawn = now
                self.draw(now)
        self.draw(self.clock())
        self.end()

    def end(self) -> None:
        """End the line, once: the next output (an error, the result) starts on its own."""
        if self._open:
            self._open = False
            self.out.write("\n")
            self.out.flush()

    def draw(self, now: float) -> None:
        """Write the line: ``  12.0 MB of 71.7 MB   34.1 MB/s   2 s left``."""
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        line = (
            f"\r  {_megabytes(self.done)} of {_megabytes(self.total)}"
            f"   {_megabytes(int(rate))}/s   {_duration(left)} left "
        )
        self.out.write(line)
        self.out.flush()
        self._open = True


def _megabytes(octets: int) -> str:
    return f"{octets / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    seconds = max(int(seconds + 0.5), 0)
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


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
