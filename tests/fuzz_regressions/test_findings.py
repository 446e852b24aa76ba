"""One test per fuzz finding (docs/security.md, "Findings").

Fixed findings are plain tests. Findings still open are ``xfail(strict=True)``:
they fail loudly once fixed, so the mark (and the skip in the fuzz target
that names them) can be removed.
"""

from __future__ import annotations

import pytest

import smtpcore
from smtpcore import LocalProtocolError, RemoteProtocolError
from smtpcore.sasl import decode_challenge


@pytest.mark.parametrize("text", ["QUJD=", "zq4PhQ6UUfwfHF3324dC=", "QUJDRA=", "QQ"])
def test_challenge_with_surplus_or_missing_padding_is_refused(text: str) -> None:
    """Found by fuzz_sasl_client: b64decode(validate=True) took "QUJD=" as b"ABC"."""
    with pytest.raises(RemoteProtocolError, match="not valid base64"):
        decode_challenge(text)


@pytest.mark.parametrize("text", ["VXNl====", "VXNl========", "QQ======", "QUI=====", "===="])
def test_challenge_with_whole_groups_of_padding_is_refused(text: str) -> None:
    """Found by fuzz_sasl_client (second 10-minute run): "VXNl====" decoded as b"Use"."""
    with pytest.raises(RemoteProtocolError, match="not valid base64"):
        decode_challenge(text)


def test_challenge_with_whole_groups_still_decodes() -> None:
    assert decode_challenge("QUJD") == b"ABC"
    assert decode_challenge("QQ==") == b"A"


def test_surrogate_in_an_address_is_a_local_protocol_error() -> None:
    """Found by fuzz_syntax: Mail("a\\ud800@x.org") is built; to_bytes raises UnicodeEncodeError."""
    with pytest.raises(LocalProtocolError):
        smtpcore.Mail("a\ud800@example.org").to_bytes()
    with pytest.raises(LocalProtocolError):
        smtpcore.Reply(250, ("ok \udc80",))


@pytest.mark.parametrize("literal", ["[IPv6:fe80::1%\x01]", "[IPv6:fe80::1% x]"])
def test_ipv6_zone_in_an_address_literal_is_refused(literal: str) -> None:
    """Found by fuzz_syntax: ipaddress takes "fe80::1%<anything>"; the zone reached the wire."""
    with pytest.raises(LocalProtocolError):
        smtpcore.Ehlo(literal)


def test_lmtp_client_takes_one_reply_per_recipient_after_bdat_last() -> None:
    """Found by fuzz_differential: ServerConnection (like Dovecot) answers BDAT LAST in LMTP
    with one reply per recipient (RFC 2033 4.2); ClientConnection expects one and raises."""
    client = smtpcore.ClientConnection(lmtp=True)
    client.receive_data(b"220 mx LMTP\r\n")
    client.next_event()
    client.send(smtpcore.Lhlo("client.example"))
    client.receive_data(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    client.next_event()
    client.send(smtpcore.Mail("a@example.org"))
    client.send(smtpcore.Rcpt("b@example.net"))
    client.send(smtpcore.Rcpt("c@example.net"))
    client.receive_data(b"250 ok\r\n250 ok\r\n250 ok\r\n")
    for _ in range(3):
        client.next_event()
    client.send(smtpcore.Bdat(1, last=True))
    client.send(smtpcore.MessageData(b"x"))
    client.receive_data(b"250 2.0.0 <b@example.net> Saved\r\n250 2.0.0 <c@example.net> Saved\r\n")
    assert [client.next_event(), client.next_event()] == [
        smtpcore.Reply(250, ("2.0.0 <b@example.net> Saved",)),
        smtpcore.Reply(250, ("2.0.0 <c@example.net> Saved",)),
    ]


def test_unstuff_target_handles_an_empty_message_right_after_the_354() -> None:
    """Found by the CI smoke run: the target's own reference sliced wire[:-2] when the
    message was empty (".\\r\\n" first), and called a clean message bare-newlined."""
    import base64

    from fuzz import fuzz_unstuff

    fuzz_unstuff.test_one_input(base64.b64decode("AAAHLg0K6w=="))
