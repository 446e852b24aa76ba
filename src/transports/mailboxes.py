"""Ready server handlers: store each message in a Maildir, an mbox file, or memory.

Each has one hook, ``on_message(envelope)``: they are plain handlers, since
the envelope carries all they store (a ``Handler`` subclass that needs the
session for its policy stores through one, as ``UsersHandler`` in
``transports.serving`` does). It returns only once the
message is stored, so the server's 250 comes after the storage; a failure
raises, and the server answers 451 4.3.0 (the client keeps the message and
retries). They are synchronous: the async servers run them in worker
threads (``hook_threads``), so a slow disk holds up only its own session.

The stored message is the content as received with our ``Received:`` header
in front. Maildir and mbox files use Unix line ends (LF), as mail readers
expect; ``MemoryHandler`` keeps the envelopes as they are (CRLF).

The Maildir and mbox handlers copy the message from ``envelope.chunks()``
piece by piece, so a message the server spooled to disk is never held in
memory whole: storing it costs a piece (64 KiB) at a time.
"""

from __future__ import annotations

import datetime
import itertools
import mailbox
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

from smtpcore.session import ServerEnvelope

__all__ = ["MaildirHandler", "MboxHandler", "MemoryHandler"]

#: Makes each Maildir file name of this process unique, with the time and pid.
_DELIVERIES: Final = itertools.count(1)


def _unix(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``pieces`` with every CRLF made LF, even one cut between two pieces."""
    carry = b""
    for piece in pieces:
        data = carry + piece if carry else piece
        carry = b""
        if data.endswith(b"\r"):
            data, carry = data[:-1], b"\r"
        if data:
            yield data.replace(b"\r\n", b"\n")
    if carry:
        yield carry


def _quote_from(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``pieces`` (LF line ends) with each line that starts ``From `` quoted as ``>From ``.

    mboxo quoting, as the stdlib ``mailbox`` writes it; a line start cut
    between two pieces is held back until it can be told apart.
    """
    at_line_start = True
    carry = b""
    for piece in pieces:
        data = carry + piece if carry else piece
        carry = b""
        line_start = data.rfind(b"\n") + 1
        tail = data[line_start:]
        if (line_start or at_line_start) and len(tail) < 5 and b"From ".startswith(tail):
            data, carry = data[:line_start], tail  # may yet become "From "
        if data:
            yield _quoted(data, at_line_start)
            at_line_start = data.endswith(b"\n")
    if carry:
        yield _quoted(carry, at_line_start)


def _quoted(data: bytes, at_line_start: bool) -> bytes:
    data = data.replace(b"\nFrom ", b"\n>From ")
    return b">" + data if at_line_start and data.startswith(b"From ") else data


def _write_all(out: BinaryIO, pieces: Iterable[bytes]) -> bytes:
    """Write every piece; return the last two octets written (to see how it ended)."""
    last = b""
    for piece in pieces:
        out.write(piece)
        last = (last + piece[-2:])[-2:]
    return last


class MaildirHandler:
    """Store each message in the Maildir at ``path`` (created if missing).

    The message is written under ``tmp/``, flushed to disk (fsync), and then
    linked into ``new/`` (the Maildir protocol): it exists whole or not at
    all, and the 250 is sent after the link. ``unix_newlines=False`` keeps
    CRLF line ends.
    """

    def __init__(self, path: str | os.PathLike[str], *, unix_newlines: bool = True) -> None:
        self.path = os.fspath(path)
        self.unix_newlines = unix_newlines
        mailbox.Maildir(self.path, create=True)  # create the folders now, not at the first mail
        for folder in ("tmp", "new", "cur"):  # an existing empty directory has none yet
            os.makedirs(os.path.join(self.path, folder), mode=0o700, exist_ok=True)

    def on_message(self, envelope: ServerEnvelope) -> None:
        """Store the message; raises ``OSError`` when it cannot be stored."""
        now = time.time()
        host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_DELIVERIES)}.{host}"
        temporary = os.path.join(self.path, "tmp", name)
        pieces = envelope.chunks()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with open(fd, "wb") as out:
                _write_all(out, _unix(pieces) if self.unix_newlines else pieces)
                out.flush()
                os.fsync(out.fileno())
            # A link fails rather than replace a message of the same name.
            os.link(temporary, os.path.join(self.path, "new", name))
        finally:
            os.remove(temporary)


class MboxHandler:
    """Append each message to the mbox file at ``path`` (created if missing).

    Each message gets its ``From <sender> <date>`` separator line and an
    empty line after it; body lines starting with ``From `` are quoted as
    ``>From `` (mboxo, as the stdlib ``mailbox`` writes them). The file is
    locked (fcntl and dot-lock) while appending, flushed to disk (fsync)
    before the 250, and cut back to its old end when the append fails.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # one writer per process; the file lock covers the rest

    def on_message(self, envelope: ServerEnvelope) -> None:
        """Append the message; raises ``OSError`` or ``mailbox.Error`` on failure."""
        sender = envelope.sender or "MAILER-DAEMON"
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S %Y")
        separator = f"From {sender} {stamp}\n".encode("utf-8", "replace")
        with self._lock:
            box = mailbox.mbox(self.path, create=True)  # for its lock; we append ourselves
            box.lock()
            try:
                with open(self.path, "ab") as out:
                    before = out.seek(0, os.SEEK_END)
                    try:
                        out.write(separator)
                        last = _write_all(out, _quote_from(_unix(envelope.chunks())))
                        out.write(b"\n" if last.endswith(b"\n") else b"\n\n")
                        out.flush()
                        os.fsync(out.fileno())
                    except BaseException:
                        out.truncate(before)
                        raise
            finally:
                box.unlock()
                box.close()


class MemoryHandler:
    """Keep every accepted envelope in ``messages``, in order: for tests and demos.

    An envelope whose content was spooled keeps its temporary file open (one
    descriptor each) for as long as it is kept here.
    """

    def __init__(self) -> None:
        self.messages: list[ServerEnvelope] = []

    def on_message(self, envelope: ServerEnvelope) -> None:
        """Append ``envelope`` to ``messages``."""
        self.messages.append(envelope)
