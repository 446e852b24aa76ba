"""The parsers alone, in one process: replies, command lines, dot-stuffing, unstuffing.

    python benchmarks/parsers.py        # prints one JSON object

Each figure is the best of several timed rounds. The peers' equivalent code
paths are timed where they can be cut out of their clients: smtplib's
``getreply`` over an in-memory file and its ``_quote_periods`` (what
``sendmail`` does to bytes), aiosmtplib's ``_read_response_from_buffer`` and
its line-end normalisation plus period quoting (what ``execute_data_command``
does). Neither client parses commands or unstuffs: those rows have no peer.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

from _common import message

ROUNDS = 5

#: A pipelined transaction's replies and an EHLO reply, as a server sends them.
REPLIES = (
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    b"250 2.0.0 Ok: queued as 4Xq1Lw0mQzz\r\n"
    b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n"
)
REPLY_COUNT = 5
COMMANDS = (
    b"MAIL FROM:<a@example.org> SIZE=1024 BODY=8BITMIME\r\nRCPT TO:<b@example.test>\r\n"
    b"DATA\r\nRSET\r\nNOOP\r\n"
)
COMMAND_COUNT = 5


def best(fn: Callable[[], int], rounds: int = ROUNDS) -> float:
    """Units per second of ``fn`` (which returns how many units it did), best round."""
    top = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        units = fn()
        top = max(top, units / (time.perf_counter() - start))
    return top


def replies_smtpcore(repeat: int) -> Callable[[], int]:
    from smtpcore import Limits
    from smtpcore._replies import ReplyParser

    def run() -> int:
        parser = ReplyParser(Limits())
        count = 0
        for _ in range(repeat):
            parser.receive_data(REPLIES)
            while parser.next_reply() is not None:
                count += 1
        return count

    return run


def replies_smtplib(repeat: int) -> Callable[[], int]:
    import smtplib

    def run() -> int:
        client = smtplib.SMTP()
        client.file = io.BytesIO(REPLIES * repeat)
        for _ in range(repeat * REPLY_COUNT):
            client.getreply()
        return repeat * REPLY_COUNT

    return run


def replies_aiosmtplib(repeat: int) -> Callable[[], int]:
    from aiosmtplib.protocol import SMTPProtocol

    def run() -> int:
        protocol = SMTPProtocol()
        count = 0
        for _ in range(repeat):
            protocol._buffer.extend(REPLIES)
            while protocol._read_response_from_buffer() is not None:
                count += 1
        return count

    return run


def commands_smtpcore(repeat: int) -> Callable[[], int]:
    from smtpcore import Limits
    from smtpcore._commands import LineReader, parse_command

    limit = Limits().parameter_line

    def run() -> int:
        reader = LineReader()
        count = 0
        for _ in range(repeat):
            reader.buffer += COMMANDS
            while True:
                line = reader.take_line(lambda head: limit)
                if line is None:
                    break
                assert isinstance(line, bytes)
                parse_command(line)
                count += 1
        return count

    return run


def content(megabytes: int) -> list[bytes]:
    """A message of about ``megabytes`` MB with a dot line every ~10 lines, in 64 KiB pieces."""
    block = message(1024)[:-4] + b"\r\n.dot\r\n"
    data = block * (megabytes * 1000)
    return [data[i : i + 65536] for i in range(0, len(data), 65536)]


def stuff_smtpcore(pieces: list[bytes]) -> Callable[[], int]:
    from smtpcore._data import DotStuffer

    def run() -> int:
        stuffer = DotStuffer()
        total = 0
        for piece in pieces:
            total += len(stuffer.stuff(piece))
        stuffer.end()
        return sum(map(len, pieces))

    return run


def stuff_smtplib(pieces: list[bytes]) -> Callable[[], int]:
    import smtplib

    whole = b"".join(pieces)

    def run() -> int:
        smtplib._quote_periods(whole)  # type: ignore[attr-defined]
        return len(whole)

    return run


def stuff_aiosmtplib(pieces: list[bytes]) -> Callable[[], int]:
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    whole = b"".join(pieces)

    def run() -> int:
        PERIOD_REGEX.sub(b"..", normalize_message_line_endings(whole))
        return len(whole)

    return run


def unstuff_smtpcore(pieces: list[bytes]) -> Callable[[], int]:
    from smtpcore._data import DotStuffer
    from smtpcore._unstuff import DataReader

    stuffer = DotStuffer()
    wire = [stuffer.stuff(piece) for piece in pieces] + [stuffer.end()]

    def run() -> int:
        reader = DataReader()
        for piece in wire:
            reader.feed(piece)
        assert reader.done
        return sum(map(len, wire))

    return run


def measure() -> dict[str, float]:
    pieces = content(20)
    mb = 1e6
    return {
        "replies/s smtpcore": best(replies_smtpcore(20_000)),
        "replies/s smtplib": best(replies_smtplib(20_000)),
        "replies/s aiosmtplib": best(replies_aiosmtplib(20_000)),
        "command lines/s smtpcore": best(commands_smtpcore(20_000)),
        "stuffing MB/s smtpcore": best(stuff_smtpcore(pieces)) / mb,
        "stuffing MB/s smtplib": best(stuff_smtplib(pieces)) / mb,
        "stuffing MB/s aiosmtplib": best(stuff_aiosmtplib(pieces)) / mb,
        "unstuffing MB/s smtpcore": best(unstuff_smtpcore(pieces)) / mb,
    }


if __name__ == "__main__":
    print(json.dumps(measure()))
