"""The progress line of a large message sent to a terminal."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TextIO

__all__ = ["Progress"]


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
