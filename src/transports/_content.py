"""Message content sources, for the transports: split what is in hand from what streams.

``sendmail`` takes bytes, str, a binary file or an iterable of bytes (async
clients: an async iterable too). Bytes and str go to the core whole; the
rest is read piece by piece when the procedure asks (``NextChunk``), never
all at once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Final, Protocol

from smtpcore.driver import BATCH, batches
from smtpcore.session import NotSupported, Outgoing

__all__ = [
    "PIECE",
    "Content",
    "async_batches",
    "batches",
    "file_size",
    "pieces",
    "split_async_content",
    "split_content",
]

#: Octets read from a file at a time.
PIECE: Final = 64 * 1024


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


Content = bytes | bytearray | memoryview | str | _Readable | Iterable[bytes]


def file_size(source: object) -> int | None:
    """Octets left in a regular file (for SIZE=), or None when unknown."""
    fileno = getattr(source, "fileno", None)
    tell = getattr(source, "tell", None)
    if fileno is None or tell is None:
        return None
    try:
        info = os.fstat(fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return max(info.st_size - int(tell()), 0)
    except (OSError, ValueError):
        return None


def pieces(source: object) -> Iterator[bytes]:
    """The non-empty pieces of a file or an iterable of bytes, as bytes."""
    read = getattr(source, "read", None)
    if read is not None:
        while True:
            piece = read(PIECE)
            if not piece:
                return
            if not isinstance(piece, (bytes, bytearray, memoryview)):
                raise TypeError(f"content file gave {type(piece).__name__}: open it in binary mode")
            yield bytes(piece)
    if not isinstance(source, Iterable):
        raise TypeError(f"cannot send content of type {type(source).__name__}")
    for piece in source:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"content iterable gave {type(piece).__name__}, not bytes")
        if piece:  # b"" answers NextChunk with "the end": an empty piece must not
            yield bytes(piece)


def split_content(
    content: object, size: int | None
) -> tuple[bytes | str | None, Iterator[bytes] | None, int | None]:
    """(content in hand, or None; an iterator of pieces, or None; the size if known)."""
    if isinstance(content, str):
        return content, None, size
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content), None, size
    if size is None:
        size = file_size(content)
    if not hasattr(content, "read") and not isinstance(content, Iterable):
        raise NotSupported(f"cannot send content of type {type(content).__name__}")
    return None, pieces(content), size


def split_async_content(
    content: object, size: int | None
) -> tuple[bytes | str | None, Iterator[bytes] | AsyncIterator[bytes] | None, int | None]:
    """As ``split_content``, and an async iterable of bytes is streamed too."""
    # bytes and str first: the usual case, before an ABC's slower check.
    if not isinstance(content, (bytes, str)) and isinstance(content, AsyncIterable):
        return None, _async_pieces(content), size
    return split_content(content, size)


async def _async_pieces(source: AsyncIterable[object]) -> AsyncIterator[bytes]:
    """The non-empty pieces of an async iterable, as bytes (b"" would mean the end)."""
    async for piece in source:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"content gave {type(piece).__name__}, not bytes")
        if piece:
            yield bytes(piece)


async def async_batches(
    messages: Iterable[Outgoing] | AsyncIterable[Outgoing],
) -> AsyncIterator[list[Outgoing]]:
    """The messages in batches for ``deliver_many``, from an iterable or an async one."""
    if not isinstance(messages, AsyncIterable):
        for some in batches(messages):
            yield some
        return
    chunk: list[Outgoing] = []
    async for item in messages:
        chunk.append(item)
        if len(chunk) >= BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
