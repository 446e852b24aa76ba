"""Fuzz the address, domain, parameter and xtext syntax (RFC 5321 4.1.2, RFC 3461 4).

Asserts: every check returns None or a reason and never raises; a check
that passes lets the command be built, formatted without any control
character, and parsed back by the server to the same command; xtext
decodes what it encodes, and ``xtext_decode`` raises ValueError exactly when
``xtext_error`` says so.

Lone surrogates cannot be encoded: ``xtext_encode`` raises ValueError for
them (documented), and every other check refuses them (test_findings.py).
"""

from __future__ import annotations

from smtpcore import Ehlo, Helo, LocalProtocolError, Mail, Rcpt, xtext_decode, xtext_encode
from smtpcore._commands import Refusal, parse_command
from smtpcore._syntax import (
    domain_error,
    ehlo_argument_error,
    mailbox_error,
    parameter_error,
    xtext_error,
)

from ._harness import Input, run_atheris

PARAMETER_NAMES = (
    "SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "NOTIFY", "ORCPT", "AUTH", "REQUIRETLS", "X-FOO",
)  # fmt: skip


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate, which no encoder takes."""
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _string(source: Input, most: int) -> str:
    raw = source.raw(most)
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _no_controls(wire: bytes) -> None:
    body = wire[:-2]
    assert wire.endswith(b"\r\n") and not any(b < 32 or b == 127 for b in body), wire


def check_mailbox(address: str) -> None:
    reason = mailbox_error(address)
    assert reason is None or isinstance(reason, str)
    if reason is not None:
        return
    for command in (Mail(address, {"SMTPUTF8": None}), Rcpt(address)):
        wire = command.to_bytes()
        _no_controls(wire)
        parsed = parse_command(wire[:-2])
        if isinstance(parsed, Refusal):
            # The only refusal a valid address may meet: RFC 5321 4.5.3.1.3's 256 octets.
            assert "Path too long" in parsed.text, (wire, parsed)
        else:
            assert parsed == command, (wire, parsed)


def check_domain(domain: str) -> None:
    reason = domain_error(domain)
    assert reason is None or isinstance(reason, str)
    ehlo = ehlo_argument_error(domain)
    assert ehlo is None or isinstance(ehlo, str)
    if ehlo is not None:
        return
    assert reason is None, (domain, reason)
    for command in (Ehlo(domain), Helo(domain)):
        wire = command.to_bytes()
        _no_controls(wire)
        assert parse_command(wire[:-2]) == command, wire


def check_parameter(name: str, value: str | None) -> None:
    reason = parameter_error(name, value, utf8=True)
    assert reason is None or isinstance(reason, str)
    if reason is not None:
        return
    try:
        command = Mail("a@example.org", {name: value, "SMTPUTF8": None})
    except LocalProtocolError:
        assert name.upper() == "SMTPUTF8", (name, value)  # given twice
        return
    wire = command.to_bytes()
    _no_controls(wire)
    assert parse_command(wire[:-2]) == command, wire


def check_xtext(text: str) -> None:
    if has_surrogate(text):
        assert mailbox_error(f"{text}@example.org") is not None
    else:
        encoded = xtext_encode(text)
        assert xtext_error(encoded) is None, encoded
        assert xtext_decode(encoded) == text, (text, encoded)
    reason = xtext_error(text)
    try:
        decoded = xtext_decode(text)
    except ValueError:
        assert reason is not None, text
    else:
        assert reason is None and isinstance(decoded, str), text


def test_one_input(data: bytes) -> None:
    """One fuzz case: strings from the bytes, each put through the checks."""
    source = Input(data)
    while source.left:
        kind = source.byte() % 5
        text = _string(source, 300)
        if kind == 0:
            check_mailbox(text)
        elif kind == 1:
            check_mailbox(f"{text}@example.org")
        elif kind == 2:
            check_domain(text)
        elif kind == 3:
            value = None if source.flag() else _string(source, 120)
            check_parameter(source.pick(PARAMETER_NAMES) if source.flag() else text, value)
        else:
            check_xtext(text)


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
