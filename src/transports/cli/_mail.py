"""The messages ``smtpcore send`` sends, as streams; here, one built from the options.

A message made from the command's options is written in pieces: the header
section and the text part in hand, then each attachment read and
base64-encoded a piece at a time. Its size is known before a byte of an
attachment is read, so the server's SIZE can refuse it first. Ready messages
(files, Maildir and mbox entries) are read in ``_ready``.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import BinaryIO, Final

from smtpcore.session import prepare_message

__all__ = ["Outgoing", "attachment_size", "from_options"]

#: Octets of an attachment encoded at a time: whole base64 lines (57 octets each).
_RAW_PIECE: Final = 57 * 1150


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
