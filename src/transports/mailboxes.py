"""Ready server handlers: store each message in a Maildir, an mbox file, or memory.

Each has one hook, ``on_message(envelope)``. It returns only once the
message is stored, so the server's 250 comes after the storage; a failure
raises, and the server answers 451 4.3.0 (the client keeps the message and
retries). They are synchronous: the async servers run them in worker
threads (``hook_threads``), so a slow disk holds up only its own session.

The stored message is the content as received with our ``Received:`` header
in front. Maildir and mbox files use Unix line ends (LF), as mail readers
expect; ``MemoryHandler`` keeps the envelopes as they are (CRLF).
"""

from __future__ import annotations

import datetime
import mailbox
import os
import threading

from smtpcore.session._server import ServerEnvelope

__all__ = ["MaildirHandler", "MboxHandler", "MemoryHandler"]


def _unix(content: bytes) -> bytes:
    return content.replace(b"\r\n", b"\n")


class MaildirHandler:
    """Store each message in the Maildir at ``path`` (created if missing).

    ``mailbox.Maildir.add`` writes the message under ``tmp/`` and renames it
    into ``new/``: the message exists whole or not at all, and the 250 is
    sent after the rename. ``unix_newlines=False`` keeps CRLF line ends.
    """

    def __init__(self, path: str | os.PathLike[str], *, unix_newlines: bool = True) -> None:
        self.path = os.fspath(path)
        self.unix_newlines = unix_newlines
        mailbox.Maildir(self.path, create=True)  # create the folders now, not at the first mail

    def on_message(self, envelope: ServerEnvelope) -> None:
        """Store ``envelope.content``; raises ``OSError`` when it cannot be stored."""
        content = envelope.content
        box = mailbox.Maildir(self.path, create=False)
        box.add(_unix(content) if self.unix_newlines else content)


class MboxHandler:
    """Append each message to the mbox file at ``path`` (created if missing).

    Each message gets its ``From <sender> <date>`` separator line; body lines
    starting with ``From `` are quoted as ``>From `` (mboxo, as the stdlib
    ``mailbox`` writes them). The file is locked (fcntl and dot-lock) while
    appending, and flushed before the 250.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # one writer per process; the file lock covers the rest

    def on_message(self, envelope: ServerEnvelope) -> None:
        """Append ``envelope.content``; raises ``OSError`` or ``mailbox.Error`` on failure."""
        sender = envelope.sender or "MAILER-DAEMON"
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S %Y")
        separator = f"From {sender} {stamp}\n".encode("utf-8", "replace")
        with self._lock:
            box = mailbox.mbox(self.path, create=True)
            box.lock()
            try:
                box.add(separator + _unix(envelope.content))
                box.flush()
            finally:
                box.unlock()
                box.close()


class MemoryHandler:
    """Keep every accepted envelope in ``messages``, in order: for tests and demos."""

    def __init__(self) -> None:
        self.messages: list[ServerEnvelope] = []

    def on_message(self, envelope: ServerEnvelope) -> None:
        """Append ``envelope`` to ``messages``."""
        self.messages.append(envelope)
