"""Fuzz the BDAT framer (RFC 3030 2) inside a ServerConnection.

The fuzzer chooses chunks (size, LAST, payload octets that may look like
commands, dots or end markers) and raw bytes after them (absurd, negative,
non-ASCII sizes). Asserts: a chunk's octets are counted off exactly and
never parsed: each chunk gives either ``Bdat`` + its octets as content +
``EndOfChunk``/``EndOfData``, or one ``InvalidCommand`` (a refused chunk is
read and dropped); with BINARYMIME the content is the octets sent, otherwise
the message's content is its octets with each bare LF made CRLF (or the
LAST chunk refused: a bare CR, or a bare LF when the server rejects them);
nothing inside a payload becomes a command; feeding whole, byte-wise and
cut agrees; the buffer stays below the line limit.
"""

from __future__ import annotations

import re

from smtpcore import (
    Bdat,
    EndOfChunk,
    EndOfData,
    Event,
    InvalidCommand,
    Limits,
    MessageData,
    ServerConfig,
    ServerConnection,
)

from ._harness import Input, every_way, join_data, run_atheris
from .fuzz_server import check_buffer, check_sequence, drain

PREAMBLE = b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
LOOKALIKES = (
    b"",
    b"\r\n.\r\n",
    b"MAIL FROM:<evil@example.org>\r\n",
    b"BDAT 0 LAST\r\n",
    b"QUIT\r\n",
    b".\r\n",
    b"\n.\n",
)


def test_one_input(data: bytes) -> None:
    """One fuzz case: chunks from the first bytes, the rest is sent raw after them."""
    source = Input(data)
    size = source.number(0, 600) if source.flag() else None
    binary = source.flag()
    reject = source.flag()
    config = ServerConfig(
        hostname="mx.example",
        chunking=True,
        binarymime=binary,
        size=size,
        bare_lf="reject" if reject else "normalise",
    )
    limits = Limits(command_line=source.number(16, 300))
    chunks: list[tuple[int, bool, bytes]] = []
    for _ in range(source.number(0, 6)):
        payload = source.pick(LOOKALIKES) + source.raw(40) + source.pick(LOOKALIKES)
        chunks.append((len(payload), source.byte() % 4 == 0, payload))
    preamble = PREAMBLE.replace(b">\r\nRCPT", b"> BODY=BINARYMIME\r\nRCPT") if binary else PREAMBLE
    wire = preamble + b"".join(
        f"BDAT {n}{' LAST' if last else ''}\r\n".encode() + payload for n, last, payload in chunks
    )
    wire += source.rest()

    def make() -> ServerConnection:
        server = ServerConnection(config, limits)
        server.send(server.greeting_reply())
        return server

    def receive(server: ServerConnection, piece: bytes, events: list[Event]) -> None:
        server.receive_data(piece)
        drain(server, events)

    outcome = every_way(make, wire, receive, seed=len(data), check=check_buffer)
    assert outcome.error is None, outcome
    check_sequence(outcome.events, limits)
    events = [e for e in outcome.events if not isinstance(e, MessageData) or e.data]
    # Joined content, so each chunk's octets are one MessageData.
    events = join_data(events)[3:]  # EHLO, MAIL and RCPT come first
    sent = received = b""  # the message so far: octets sent, content that came out
    for n, last, payload in chunks:
        assert events, f"chunk of {n} octets gave no event"
        head = events.pop(0)
        if isinstance(head, InvalidCommand):
            sent = received = b""  # a refused chunk ends the transaction
            continue
        assert head == Bdat(n, last=last), (head, n, last)
        sent += payload
        first = events[0] if events else None
        if isinstance(first, MessageData):
            events.pop(0)
            piece = first.data
            assert not binary or piece == payload, (piece, payload)
            received += piece
        else:  # nothing, or (not binary) a lone CR held for the next chunk
            assert not n or (not binary and payload == b"\r"), (n, payload)
        end = events.pop(0)
        if not last:
            assert isinstance(end, EndOfChunk), end
            continue
        pairs = sent.count(b"\r\n")
        bare_cr, bare_lf = sent.count(b"\r") != pairs, sent.count(b"\n") != pairs
        if not binary and (bare_cr or (bare_lf and reject)):
            assert isinstance(end, InvalidCommand) and end.reply.code == 550, end
        else:
            assert isinstance(end, EndOfData), end
            assert received == (sent if binary else re.sub(rb"(?<!\r)\n", b"\r\n", sent))
        sent = received = b""


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
