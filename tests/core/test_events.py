"""Every command's exact bytes (RFC 5321 4.1.1, RFC 3030, RFC 4954, RFC 1985, RFC 821)."""

from __future__ import annotations

import pytest

from smtpcore import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Etrn,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
    Turn,
    Vrfy,
)  # fmt: skip


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Helo("client.example"), b"HELO client.example\r\n"),
        (Helo("[192.0.2.1]"), b"HELO [192.0.2.1]\r\n"),
        (Ehlo("client.example"), b"EHLO client.example\r\n"),
        (Lhlo("client.example"), b"LHLO client.example\r\n"),
        (Mail("a@b.example"), b"MAIL FROM:<a@b.example>\r\n"),
        (Mail(""), b"MAIL FROM:<>\r\n"),
        (Mail("a@b.example", {"SIZE": "10"}), b"MAIL FROM:<a@b.example> SIZE=10\r\n"),
        (
            Mail(
                "a@b.example",
                {
                    "body": "8BITMIME",
                    "SMTPUTF8": None,
                    "RET": "HDRS",
                    "ENVID": "QQ314159",
                    "REQUIRETLS": None,
                },
            ),
            b"MAIL FROM:<a@b.example> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159"
            b" REQUIRETLS\r\n",
        ),
        (Rcpt("b@c.example"), b"RCPT TO:<b@c.example>\r\n"),
        (Rcpt("postmaster"), b"RCPT TO:<postmaster>\r\n"),
        (
            Rcpt("b@c.example", {"NOTIFY": "SUCCESS,DELAY", "ORCPT": "rfc822;b+40c.example"}),
            b"RCPT TO:<b@c.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40c.example\r\n",
        ),
        (Data(), b"DATA\r\n"),
        (Bdat(0, last=True), b"BDAT 0 LAST\r\n"),
        (Bdat(65536), b"BDAT 65536\r\n"),
        (Rset(), b"RSET\r\n"),
        (Noop(), b"NOOP\r\n"),
        (Noop("ping"), b"NOOP ping\r\n"),
        (Quit(), b"QUIT\r\n"),
        (Vrfy("Smith"), b"VRFY Smith\r\n"),
        (Expn("staff"), b"EXPN staff\r\n"),
        (Help(), b"HELP\r\n"),
        (Help("MAIL"), b"HELP MAIL\r\n"),
        (Send("a@b.example"), b"SEND FROM:<a@b.example>\r\n"),
        (Soml("a@b.example"), b"SOML FROM:<a@b.example>\r\n"),
        (Saml(""), b"SAML FROM:<>\r\n"),
        (Turn(), b"TURN\r\n"),
        (Etrn("example.org"), b"ETRN example.org\r\n"),
        (Etrn("@example.org"), b"ETRN @example.org\r\n"),
        (Etrn("#queue1"), b"ETRN #queue1\r\n"),
        (StartTLS(), b"STARTTLS\r\n"),
        (Auth("PLAIN"), b"AUTH PLAIN\r\n"),
        (Auth("PLAIN", b"\x00tim\x00tanstaaf"), b"AUTH PLAIN AHRpbQB0YW5zdGFhZg==\r\n"),
        (Auth("EXTERNAL", b""), b"AUTH EXTERNAL =\r\n"),
        (AuthResponse(b"tim"), b"dGlt\r\n"),
        (AuthResponse(b""), b"\r\n"),
        (AuthCancel(), b"*\r\n"),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_command_bytes(command: Command, wire: bytes) -> None:
    assert command.to_bytes() == wire


def test_utf8_address_is_encoded_as_utf8() -> None:
    assert Mail("älice@exämple.org", {"SMTPUTF8": None}).to_bytes() == (
        "MAIL FROM:<älice@exämple.org> SMTPUTF8\r\n".encode()
    )
