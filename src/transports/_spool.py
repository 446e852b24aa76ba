"""Message content beyond the spool threshold: an anonymous temporary file per message.

The session procedure holds a message's first ``spool_threshold`` octets in
memory and hands the rest to the transport with ``SpoolWrite``; the four
servers answer it with ``spool_write`` below, so a message in flight costs
disk, not memory. The file has no name (``tempfile.TemporaryFile``: on
Linux it is never linked into a directory) and disappears when it is closed,
which happens when nothing refers to the spool any more: the message was
stored, refused or abandoned, or the connection dropped.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator

from smtpcore.session import HookFailed, SpoolWrite

from ._serving import LOG

__all__ = ["TemporarySpool", "spool_write"]


class TemporarySpool:
    """A message's content in an anonymous temporary file (``ContentSpool``).

    ``size`` counts the octets written. ``chunks`` reads from the start each
    time, without moving any shared offset (``os.pread``), so several readers
    may read at once. ``directory`` None uses the system's temporary
    directory (``TMPDIR``).
    """

    def __init__(self, directory: str | None = None) -> None:
        # Held open for the spool's life: closing it deletes the content.
        self.file = tempfile.TemporaryFile(buffering=0, prefix="smtpcore-", dir=directory)  # noqa: SIM115
        self.size = 0
        self._lock = threading.Lock()  # for systems without os.pread only

    def write(self, data: bytes) -> None:
        """Append ``data``; raises ``OSError`` (a full disk, say)."""
        view = memoryview(data)
        while view:
            written = self.file.write(view)
            if written is None:  # pragma: no cover - only a non-blocking file says this
                raise BlockingIOError("the spool file would block")
            view = view[written:]
        self.size += len(data)

    def chunks(self, size: int) -> Iterator[bytes]:
        """The content written so far, in pieces of at most ``size`` octets."""
        offset = 0
        while True:
            piece = self._read(offset, size)
            if not piece:
                return
            offset += len(piece)
            yield piece

    def _read(self, offset: int, size: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self.file.fileno(), size, offset)
        with self._lock:  # pragma: no cover - Windows
            self.file.seek(offset)
            return self.file.read(size)

    def fileno(self) -> int:
        """The file descriptor of the spool file."""
        return self.file.fileno()

    def close(self) -> None:
        """Delete the content now rather than when the spool is collected."""
        self.file.close()


def spool_write(effect: SpoolWrite) -> object:
    """The answer to ``SpoolWrite``: the spool written to, or ``HookFailed`` if the disk failed."""
    spool = effect.spool
    try:
        if spool is None:
            spool = TemporarySpool()
        spool.write(effect.data)
    except OSError as error:
        LOG.error("cannot spool message content: %s", error)
        return HookFailed(error)
    return spool
