"""Fuzz the command-line reader and parser (RFC 5321 4.1, 2.3.8, 4.5.3.1).

Asserts: ``LineReader`` and ``parse_command`` never raise; the lines come
out exactly as a reference split on CRLF says (a too long line is reported
once and its rest is never a line of its own: no second command, no lone
dot); whole, byte-wise and cut feeding agree; the buffer stays below the
line limit; a parsed command formatted again (``to_bytes``) parses to itself,
and the checked constructor of a parsed MAIL or RCPT takes it unchanged
(the parser, which builds them without it, checks no less).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from smtpcore import Command, Limits, Mail, Rcpt
from smtpcore._commands import (
    AUTH_VERB,
    PARAMETER_VERBS,
    LineReader,
    Refusal,
    parse_auth_response,
    parse_command,
)

from ._harness import Input, every_way, run_atheris

TOO_LONG = "too long"
Line = bytes | str


def limit_function(limits: Limits) -> Callable[[bytes], int]:
    """The limit of a line by its first octets, as the server chooses it."""

    def limit_of(start: bytes) -> int:
        start = start.upper()
        if start in PARAMETER_VERBS:
            return max(limits.parameter_line, limits.command_line)
        if start == AUTH_VERB:
            return max(limits.auth_line, limits.command_line)
        return limits.command_line

    return limit_of


def reference_lines(wire: bytes, limit_of: Callable[[bytes], int]) -> list[Line]:
    """What the reader must return: complete CRLF lines, or TOO_LONG once per long line."""
    *complete, tail = wire.split(b"\r\n")
    out: list[Line] = []
    for line in complete:
        out.append(TOO_LONG if len(line) + 2 > limit_of(line[:5]) else line)
    # An open line is reported as soon as even its CRLF could not make it fit.
    if len(tail) >= limit_of(tail[:5]):
        out.append(TOO_LONG)
    return out


def check_command(command: Command) -> None:
    """Format ``command`` and parse it again: the same command comes back."""
    wire = command.to_bytes()
    assert wire.endswith(b"\r\n") and wire.count(b"\r") == 1 and wire.count(b"\n") == 1, wire
    again = parse_command(wire[:-2])
    assert again == command, (command, wire, again)
    if isinstance(command, (Mail, Rcpt)):
        # Built without the constructor's checks: run them, they must pass and change nothing.
        assert dataclasses.replace(command) == command, command


def check_refusal(refusal: Refusal) -> None:
    assert 500 <= refusal.code <= 555, refusal
    assert refusal.status[0] == "5" and not any(c in refusal.text for c in "\r\n\x00"), refusal


def test_one_input(data: bytes) -> None:
    """One fuzz case: limits from the first bytes, the rest is the client's bytes."""
    source = Input(data)
    limits = Limits(
        command_line=source.number(8, 700),
        parameter_line=source.number(1, 900),
        auth_line=source.number(1, 900),
    )
    limit_of = limit_function(limits)
    wire = source.rest()
    biggest = max(limits.command_line, limits.parameter_line, limits.auth_line)

    def receive(reader: LineReader, piece: bytes, events: list[Line]) -> None:
        reader.buffer += piece
        while (line := reader.take_line(limit_of)) is not None:
            events.append(TOO_LONG if isinstance(line, int) else line)
        assert len(reader.buffer) < biggest, len(reader.buffer)

    outcome = every_way(LineReader, wire, receive, seed=len(data))
    assert outcome.error is None
    assert outcome.events == reference_lines(wire, limit_of), wire
    for line in outcome.events:
        if isinstance(line, str):
            continue
        result = parse_command(line)
        if isinstance(result, Refusal):
            check_refusal(result)
        else:
            check_command(result)
        response = parse_auth_response(line)
        if isinstance(response, Refusal):
            check_refusal(response)


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
