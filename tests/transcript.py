"""Run a session procedure against an S:/C: transcript, with no socket.

A transcript reads like an RFC example session::

    S: 220 mx.example ESMTP      what the server sends (CRLF added)
    C: EHLO client.example       what the client must write, exactly (CRLF added)
    TLS                          the client must run the TLS handshake now
    EOF                          the client must close the connection now
                                 (closing after the last line is always allowed)
    GONE                         the connection broke: every later Write or Read
                                 fails as a transport reports it, by throwing
                                 ConnectionLost into the procedure (the last line)

Blank lines and lines starting with "#" are ignored; leading spaces too.
Each ``Write`` must match the next expected ``C:`` bytes exactly, and may not
run past an ``S:`` line (that would be sending before the reply came). Each
``Read`` is answered with the whole next block of ``S:`` lines; a ``Read``
while ``C:`` bytes are still expected fails (the client waits for a reply the
server would never send), and one after the last line gets ``b""`` (the
server closed). ``NextChunk`` is answered from ``chunks``, then ``b""``.
Anything left over at the end fails, also when the procedure raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from smtpcore.session import Close, ConnectionLost, Handshake, NextChunk, Procedure, Read, Write

T = TypeVar("T")

DIRECTORY: Final = Path(__file__).parent / "transcripts"


@dataclass
class Line:
    kind: str  # "S", "C", "TLS" or "EOF"
    data: bytes = b""


def parse(script: str) -> list[Line]:
    """The lines of a transcript, CRLF added to each S: and C: line."""
    lines: list[Line] = []
    for raw in script.splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text in ("TLS", "EOF", "GONE"):
            lines.append(Line(text))
        elif text[:2] in ("S:", "C:"):
            body = raw.lstrip()[2:]
            body = body[1:] if body.startswith(" ") else body
            lines.append(Line(text[0], body.encode("utf-8") + b"\r\n"))
        else:
            raise ValueError(f"transcript line {raw!r} is not S:, C:, TLS, EOF or GONE")
    return lines


def load(name_or_script: str) -> str:
    """A transcript by name (tests/transcripts/<name>.txt), or the script itself."""
    if "\n" in name_or_script:
        return name_or_script
    return (DIRECTORY / f"{name_or_script}.txt").read_text(encoding="utf-8")


@dataclass
class Record:
    """What the procedure did, for tests that look closer than the bytes."""

    writes: list[bytes]
    reads: list[float]
    handshakes: list[Handshake]
    write_timeouts: list[float] = field(default_factory=list)


def run_transcript(
    procedure: Procedure[T],
    script: str,
    *,
    chunks: Iterable[bytes] = (),
    record: Record | None = None,
) -> T:
    """Drive ``procedure`` through the transcript; return its value or raise its error."""
    lines = parse(load(script))
    pieces = iter(chunks)
    record = record if record is not None else Record([], [], [])
    position = 0
    partial = 0  # octets of lines[position] (a C: line) already written
    answer: bytes | None = None
    thrown: ConnectionLost | None = None

    def where() -> str:
        return (
            f"at transcript line {position + 1} of {len(lines)}: {lines[position : position + 3]}"
        )

    def gone() -> bool:
        return position < len(lines) and lines[position].kind == "GONE" and not partial

    def leftovers() -> str | None:
        if position < len(lines) and not gone():
            return f"transcript not finished {where()}"
        return None

    try:
        while True:
            try:
                # A failure the transport met is thrown in: the procedure judges it.
                effect = procedure.send(answer) if thrown is None else procedure.throw(thrown)
            except StopIteration as done:
                problem = leftovers()
                if problem:
                    raise AssertionError(problem) from None
                return done.value  # type: ignore[no-any-return]
            answer, thrown = None, None
            if isinstance(effect, (Write, Read)) and gone():
                thrown = ConnectionLost("connection lost: [Errno 104] Connection reset by peer")
            elif isinstance(effect, Write):
                record.writes.append(effect.data)
                record.write_timeouts.append(effect.timeout)
                data = effect.data
                while data:
                    if position >= len(lines) or lines[position].kind != "C":
                        raise AssertionError(f"unexpected write {data!r} {where()}")
                    expected = lines[position].data[partial:]
                    if not (data.startswith(expected) or expected.startswith(data)):
                        raise AssertionError(f"wrote {data!r}, expected {expected!r} {where()}")
                    taken = min(len(data), len(expected))
                    data = data[taken:]
                    partial += taken
                    if partial == len(lines[position].data):
                        position, partial = position + 1, 0
            elif isinstance(effect, Read):
                record.reads.append(effect.timeout)
                if partial or (position < len(lines) and lines[position].kind == "C"):
                    raise AssertionError(f"client waits for a reply {where()}")
                if position < len(lines) and lines[position].kind == "TLS":
                    raise AssertionError(f"client reads where a handshake is due {where()}")
                block = b""
                while position < len(lines) and lines[position].kind == "S":
                    block += lines[position].data
                    position += 1
                answer = block  # b"" after the last line, or before EOF: the server closed
            elif isinstance(effect, Handshake):
                record.handshakes.append(effect)
                if position >= len(lines) or lines[position].kind != "TLS" or partial:
                    raise AssertionError(f"unexpected handshake {where()}")
                position += 1
            elif isinstance(effect, Close):
                # Closing is expected at an EOF line, and allowed after the last line.
                if gone():
                    continue
                if position < len(lines) and (lines[position].kind != "EOF" or partial):
                    raise AssertionError(f"unexpected close {where()}")
                position = min(position + 1, len(lines))
            elif isinstance(effect, NextChunk):
                answer = next(pieces, b"")
            else:  # pragma: no cover
                raise AssertionError(f"unknown effect {effect!r}")
    except AssertionError:
        raise
    except BaseException as exc:
        problem = leftovers()
        if problem:
            raise AssertionError(f"{problem}; the procedure raised {exc!r}") from exc
        raise
    finally:
        procedure.close()
