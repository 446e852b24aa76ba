"""Fuzz the server side of SASL: AUTH line decoding and every server mechanism.

Asserts: ``parse_auth_response`` and the AUTH initial-response decoding
never raise and invert base64 exactly (strict: no whitespace, right
padding); every server mechanism, fed arbitrary client messages, only ever
returns a step (a malformed message is ``Failure(malformed=True)``), never
raises, and never says ``Success`` to a password it was told is wrong or to
a SCRAM proof made without the password.
"""

from __future__ import annotations

import base64

from smtpcore import AuthCancel, AuthResponse
from smtpcore._commands import Refusal, decode_base64, parse_auth_response
from smtpcore.sasl import (
    Challenge,
    Failure,
    NeedSecret,
    ServerStep,
    Success,
    VerifyPassword,
    derive_scram_credentials,
    server_mechanism,
)

from ._harness import Input, run_atheris

MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256")


def check_base64(line: bytes) -> None:
    result = parse_auth_response(line)
    if isinstance(result, AuthCancel):
        assert line == b"*"
    elif isinstance(result, AuthResponse):
        # Equal up to the unused low bits of the last character (RFC 4648 3.5).
        canonical = base64.b64encode(result.data)
        assert (line == b"=" and not result.data) or (
            len(canonical) == len(line) and canonical[:-3] == line[:-3]
        ), line
    else:
        assert isinstance(result, Refusal) and result.code == 501, result
    text = line.decode("latin-1")
    decoded = decode_base64(text)
    if decoded is not None:
        expected = base64.b64encode(decoded).decode()
        assert text == "=" or (len(expected) == len(text) and expected[:-3] == text[:-3]), text


def check_mechanism(name: str, source: Input) -> None:
    """Run one exchange with fuzzed client messages and fuzzed application verdicts."""
    mechanism = server_mechanism(name, nonce="snonce", hostname="mx.example")
    initial = source.raw(200) if source.flag() else None
    step: ServerStep = mechanism.start(initial)
    password_ok = False
    for _ in range(8):
        if isinstance(step, Challenge):
            step = mechanism.receive(source.raw(200))
        elif isinstance(step, VerifyPassword):
            password_ok = source.flag()
            step = mechanism.password_checked(password_ok)
            if isinstance(step, Success):
                assert password_ok, "Success for a password the application refused"
        elif isinstance(step, NeedSecret):
            if name.startswith("SCRAM"):
                hash_name = "sha256" if name.endswith("256") else "sha1"
                secret = derive_scram_credentials("pencil", b"salt", 2, hash_name)
                step = mechanism.supply_secret(secret if source.flag() else None)
            else:
                step = mechanism.supply_secret("pencil" if source.flag() else None)
        else:
            break
    assert isinstance(step, (Challenge, VerifyPassword, NeedSecret, Success, Failure)), step
    if isinstance(step, Success) and name.startswith(("SCRAM", "CRAM")):
        # A proof the fuzzer made without the password would be a forgery;
        # it cannot happen, short of breaking HMAC.
        raise AssertionError(f"{name} Success for fuzzed messages: {step!r}")


def test_one_input(data: bytes) -> None:
    """One fuzz case: an AUTH line, then one exchange."""
    source = Input(data)
    check_base64(source.raw(200))
    check_mechanism(source.pick(MECHANISMS), source)


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
