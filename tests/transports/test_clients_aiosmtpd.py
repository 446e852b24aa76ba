"""The four clients against aiosmtpd, an independent server, on loopback.

aiosmtpd, as configured here, requires STARTTLS before MAIL here,
offers AUTH PLAIN and LOGIN only over TLS (user "test", password "secret"),
speaks SMTPUTF8, announces SIZE, and has no PIPELINING keyword, BDAT or DSN.
Its handler stores each envelope; the tests compare it byte for byte with
what was sent.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Final

import pytest

from smtpcore import Reply
from smtpcore.session import (
    AuthenticationError,
    NotSupported,
    RecipientsRefused,
)

from .conftest import PASSWORD, USER, Smtp, run

MESSAGE: Final = b"Subject: hi\r\n\r\nline one\r\n.line with a dot\r\nline three\r\n"


def client(kind: str, port: int, context: ssl.SSLContext, **options: Any) -> Smtp:
    """A verifying STARTTLS client of ``kind`` with the test credentials."""
    options.setdefault("username", USER)
    options.setdefault("password", PASSWORD)
    options.setdefault("local_hostname", "client.example")
    options.setdefault("timeout", 10.0)
    return Smtp(kind, "127.0.0.1", port, tls="starttls", ssl_context=context, **options)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_auth_and_delivery(
    kind: str, mechanism: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    server = aiosmtpd_server(exclude_auth=[other])

    async def body() -> Any:
        async with client(kind, server.port, client_context) as smtp:
            assert "AUTH" in smtp.extensions
            return await smtp.sendmail("a@example.org", ["b@example.test"], MESSAGE)

    result = run(kind, body)
    assert set(result.accepted) == {"b@example.test"}
    assert result.reply.code == 250
    assert server.handler.mechanisms_used == [mechanism]
    [received] = server.handler.messages
    assert received.tls
    assert received.login == b"test"
    assert received.mail_from == "a@example.org"
    assert received.rcpt_tos == ["b@example.test"]
    assert received.content == MESSAGE


def test_wrong_password_raises_authentication_error(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    server = aiosmtpd_server()

    async def body() -> Any:
        with pytest.raises(AuthenticationError) as caught:
            async with client(kind, server.port, client_context, password="wrong"):
                pytest.fail("authenticated with a wrong password")
        return caught.value

    error = run(kind, body)
    assert error.reply.code == 535
    assert server.handler.messages == []


def test_smtputf8_addresses(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    """RFC 6531 3.4: UTF-8 addresses need the SMTPUTF8 parameter on MAIL."""
    server = aiosmtpd_server()
    content = "Subject: grüße\r\nFrom: älice@exämple.org\r\n\r\nhéllo\r\n".encode()

    async def body() -> Any:
        async with client(kind, server.port, client_context) as smtp:
            return await smtp.sendmail("älice@exämple.org", ["bøb@example.test"], content)

    result = run(kind, body)
    assert set(result.accepted) == {"bøb@example.test"}
    [received] = server.handler.messages
    assert received.mail_from == "älice@exämple.org"
    assert received.rcpt_tos == ["bøb@example.test"]
    assert "SMTPUTF8" in [option.upper() for option in received.mail_options]
    assert received.content == content


def test_message_over_data_size_limit_is_refused_before_mail(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    """aiosmtpd announces SIZE 1000; a 5000-octet message is not offered at all."""
    server = aiosmtpd_server(data_size_limit=1000)
    big = b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 50

    async def body() -> Any:
        async with client(kind, server.port, client_context) as smtp:
            assert smtp.extensions["SIZE"] == "1000"
            with pytest.raises(NotSupported):
                await smtp.sendmail("a@example.org", ["b@example.test"], big)
            # The refusal cost nothing: the session still delivers.
            return await smtp.sendmail("a@example.org", ["b@example.test"], MESSAGE)

    run(kind, body)
    assert [m.content for m in server.handler.messages] == [MESSAGE]


def test_refused_recipient_is_reported_and_the_others_get_the_mail(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    server = aiosmtpd_server(refuse={"gone@example.test"})

    async def body() -> Any:
        async with client(kind, server.port, client_context) as smtp:
            return await smtp.sendmail(
                "a@example.org", ["gone@example.test", "b@example.test"], MESSAGE
            )

    result = run(kind, body)
    assert dict(result.refused) == {"gone@example.test": Reply(550, ("5.1.1 no such user here",))}
    assert set(result.accepted) == {"b@example.test"}
    [received] = server.handler.messages
    assert received.rcpt_tos == ["b@example.test"]
    assert received.content == MESSAGE


def test_all_recipients_refused_raises(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    server = aiosmtpd_server(refuse={"gone@example.test"})

    async def body() -> Any:
        async with client(kind, server.port, client_context) as smtp:
            with pytest.raises(RecipientsRefused) as caught:
                await smtp.sendmail("a@example.org", ["gone@example.test"], MESSAGE)
            # RSET made the connection usable again.
            await smtp.sendmail("a@example.org", ["b@example.test"], MESSAGE)
            return caught.value

    error = run(kind, body)
    assert set(error.refused) == {"gone@example.test"}
    assert [m.rcpt_tos for m in server.handler.messages] == [["b@example.test"]]


#: 20 MB of 1000-octet lines (998 + CRLF, RFC 5321 4.5.3.1.6); every tenth line
#: starts with a dot, so stuffing is exercised all along the stream.
BIG_LINES: Final = 20_000


@pytest.fixture(scope="module")
def big_message(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "20mb.eml"
    with path.open("wb") as out:
        out.write(b"Subject: twenty megabytes\r\n\r\n")
        for n in range(BIG_LINES):
            first = b"." if n % 10 == 0 else b"x"
            out.write(first + (b"%08d" % n) * 124 + b"y" * 5 + b"\r\n")
    return path


def test_20_mb_message_streamed_from_a_file(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext, big_message: Path
) -> None:
    server = aiosmtpd_server()

    async def body() -> Any:
        with big_message.open("rb") as source:
            async with client(kind, server.port, client_context, timeout=30.0) as smtp:
                return await smtp.sendmail("a@example.org", ["b@example.test"], source)

    result = run(kind, body)
    assert result.reply.code == 250
    [received] = server.handler.messages
    assert received.tls
    expected = big_message.read_bytes()
    assert len(expected) > 20_000_000
    assert len(received.content) == len(expected)
    assert received.content == expected
