"""Fuzz the reply parser (RFC 5321 4.2): bytes from a server in, replies out.

Asserts: only RemoteProtocolError leaves the parser; whole, byte-wise and
cut feeding agree; the buffer never holds a whole line over
``Limits.reply_line`` and a reply never has more than ``Limits.reply_lines``
lines; every code is three ASCII digits 2-5/0-5/0-9 and every line is
free of CR, LF and NUL; and a parsed reply formatted again parses to itself.
"""

from __future__ import annotations

from smtpcore import Limits, RemoteProtocolError, Reply
from smtpcore._replies import ReplyParser

from ._harness import Input, every_way, run_atheris

Parsed = tuple[int, tuple[str, ...]]


def _receive(parser: ReplyParser, piece: bytes, events: list[Parsed]) -> None:
    parser.receive_data(piece)
    while (reply := parser.next_reply()) is not None:
        events.append(reply)


def _check_reply(limits: Limits, code: int, lines: tuple[str, ...]) -> None:
    assert 200 <= code <= 599 and (code // 10) % 10 <= 5, code
    assert 1 <= len(lines) <= limits.reply_lines, len(lines)
    for line in lines:
        assert not any(ch in line for ch in "\r\n\x00"), line
        assert len(line.encode("utf-8")) <= 3 * limits.reply_line, len(line)


def _roundtrip(limits: Limits, code: int, lines: tuple[str, ...]) -> None:
    """Format the reply again and parse it: the same reply comes back."""
    wire = Reply(code, lines).to_bytes()
    parser = ReplyParser(Limits(reply_line=1 << 20, reply_lines=1000))
    parser.receive_data(wire)
    again = parser.next_reply()
    assert again == (code, lines), (wire, again)
    assert parser.next_reply() is None and parser.buffered == 0


def test_one_input(data: bytes) -> None:
    """One fuzz case: limits from the first bytes, the rest is the server's bytes."""
    source = Input(data)
    limits = Limits(reply_line=source.number(8, 600), reply_lines=source.number(1, 12))
    wire = source.rest()

    def make() -> ReplyParser:
        return ReplyParser(limits)

    def receive(parser: ReplyParser, piece: bytes, events: list[Parsed]) -> None:
        _receive(parser, piece, events)
        # Drained: what is held is one incomplete line (RFC 5321 4.5.3.1.5).
        assert parser.buffered < limits.reply_line, parser.buffered

    outcome = every_way(make, wire, receive, seed=len(data))
    for code, lines in outcome.events:
        _check_reply(limits, code, lines)
        _roundtrip(limits, code, lines)
    # Formatting first: a reply made of the fuzz text survives the wire.
    text = Input(wire)
    code = text.pick((220, 250, 251, 334, 354, 421, 450, 452, 500, 501, 535, 554))
    lines = tuple(
        text.text(40).replace("\r", "").replace("\n", "").replace("\x00", "")
        for _ in range(text.number(1, 4))
    )
    _roundtrip(limits, code, lines)
    try:
        ReplyParser(limits).receive_data(wire)
    except RemoteProtocolError:  # pragma: no cover - receive_data only buffers
        raise AssertionError("receive_data must not judge the bytes") from None


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
