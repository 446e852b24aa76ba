"""Fuzz the client side of SASL: 334 challenge decoding and every client mechanism.

Asserts: ``decode_challenge`` raises only RemoteProtocolError and inverts
base64; every client mechanism, fed arbitrary challenges, answers or raises
RemoteProtocolError, nothing else, and never reports success
(``verify_success``) on a SCRAM exchange whose server signature it did not
verify; a SCRAM exchange between our client and our server succeeds, and a
server-final message changed in any way is refused; an iteration count above
``max_iterations`` is refused before any work.
"""

from __future__ import annotations

import base64

from smtpcore import LocalProtocolError, RemoteProtocolError
from smtpcore.sasl import (
    Challenge,
    ClientMechanism,
    NeedSecret,
    ScramSHA1Client,
    ScramSHA1Server,
    ScramSHA256Client,
    ScramSHA256Server,
    Success,
    client_mechanism,
    decode_challenge,
    derive_scram_credentials,
)

from ._harness import Input, run_atheris

MECHANISMS = (
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "OAUTHBEARER",
    "XOAUTH2",
)
MAX_ITERATIONS = 16  # keeps PBKDF2 cheap; the bound itself is what is tested


def _mechanism(name: str) -> ClientMechanism:
    return client_mechanism(
        name,
        username="user",
        password="pencil",
        oauth_token="vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        nonce="fyko+d2lbbFgONRv9qkxdawL",
        host="mx.example",
        port=587,
        max_iterations=MAX_ITERATIONS,
    )


def check_decode(text: str) -> None:
    try:
        raw = decode_challenge(text)
    except RemoteProtocolError:
        return
    assert isinstance(raw, bytes)
    # Canonical base64 of the result has the same length; a text whose last
    # character has unused low bits set (RFC 4648 3.5) may differ in that character.
    canonical = base64.b64encode(raw).decode()
    assert len(canonical) == len(text) and canonical[:-3] == text[:-3], text


def check_mechanism(name: str, challenges: list[bytes], initial: bool) -> None:
    """Feed ``challenges``; only RemoteProtocolError may come out."""
    mechanism = _mechanism(name)
    try:
        if initial:
            mechanism.initial_response()
        for challenge in challenges:
            answer = mechanism.respond(challenge)
            assert isinstance(answer, bytes)
        mechanism.verify_success()
    except RemoteProtocolError:
        return
    if name.startswith("SCRAM"):
        # Success without a verified server signature would be a forgery.
        assert mechanism.is_complete


def _signature(final: bytes) -> bytes:
    return base64.b64decode(final.split(b",")[0][2:], validate=True)


def check_scram(source: Input, sha256: bool) -> None:
    """Our client against our server; then the server-final message tampered with."""
    client_class = ScramSHA256Client if sha256 else ScramSHA1Client
    server_class = ScramSHA256Server if sha256 else ScramSHA1Server
    username = source.text(20) or "u"
    password = source.text(20) or "p"
    try:
        client = client_class(username, password, "cnonce", max_iterations=MAX_ITERATIONS)
    except LocalProtocolError:  # SASLprep refuses some strings
        return
    server = server_class("snonce")
    step = server.start(client.initial_response())
    assert isinstance(step, NeedSecret), step
    salt = source.raw(16) or b"salt"
    step = server.supply_secret(
        derive_scram_credentials(
            password, salt, source.number(1, MAX_ITERATIONS), "sha256" if sha256 else "sha1"
        )
    )
    assert isinstance(step, Challenge), step
    step = server.receive(client.respond(step.data))
    assert isinstance(step, Challenge), step
    final = step.data
    tampered = bytearray(final)
    if tampered and source.flag():
        tampered[source.number(0, len(tampered) - 1)] ^= source.number(1, 255)
    else:
        tampered = bytearray(source.raw(60))
    if bytes(tampered) != final:
        try:
            client.respond(bytes(tampered))
        except RemoteProtocolError:
            pass
        else:
            # Only another spelling of the same signature (base64's unused low
            # bits in the last character) may pass: the proof is the same.
            assert _signature(bytes(tampered)) == _signature(final), bytes(tampered)
            return
        assert not client.is_complete
        try:
            client.verify_success()
        except RemoteProtocolError:
            pass
        else:
            raise AssertionError("235 accepted without a verified server signature")
        return
    assert client.respond(final) == b""
    client.verify_success()
    assert isinstance(server.receive(b""), Success)


def test_one_input(data: bytes) -> None:
    """One fuzz case: a mechanism, challenges, then a SCRAM exchange."""
    source = Input(data)
    check_decode(source.text(80))
    name = source.pick(MECHANISMS)
    initial = source.flag()
    challenges = [source.raw(120) for _ in range(source.number(0, 4))]
    if name.startswith("SCRAM") and challenges and source.flag():
        # A well-formed server-first message with fuzzed nonce, salt and count.
        count = source.pick(
            (b"1", b"4096", b"0", b"-1", b"99999999999999999999", b"1e3", b"\xd9\xa3")
        )
        challenges[0] = (
            b"r=fyko+d2lbbFgONRv9qkxdawL" + challenges[0][:10] + b",s=QSXCR+Q6sek8bf92,i=" + count
        )
    check_mechanism(name, challenges, initial)
    check_scram(source, source.flag())


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
