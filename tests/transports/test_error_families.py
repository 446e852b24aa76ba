"""Code written for smtplib or aiosmtplib catches our failures by the standard families.

A lost connection is a ``ConnectionError`` (an ``OSError``), a timeout a
``TimeoutError``, a bad argument a ``ValueError``; and every one of them,
protocol breaches included, is an ``smtpcore.SMTPError``. Real sockets on
loopback, all five kinds of client.
"""

from __future__ import annotations

import socket
from typing import Any, Final

import pytest

import smtpcore

from .conftest import Smtp, run
from .scripted_server import ScriptedServer

GREETING: Final = """
    S: 220 mx.example ESMTP
    C: EHLO client.example
    S: 250 mx.example
"""

MESSAGE: Final = b"Subject: hi\r\n\r\nHello.\r\n"


def client(kind: str, server: ScriptedServer, **options: Any) -> Smtp:
    options.setdefault("tls", "none")
    options.setdefault("local_hostname", "client.example")
    options.setdefault("timeout", 5.0)
    return Smtp(kind, "127.0.0.1", server.port, **options)


@pytest.mark.parametrize("how", ["CLOSE", "RESET"])
def test_a_lost_connection_is_caught_as_a_connection_error(
    kind: str, how: str, scripted: Any
) -> None:
    server = scripted(GREETING + f"C: MAIL FROM:<a@x.org>\n{how}\n")

    async def body() -> BaseException | None:
        async with client(kind, server) as smtp:
            try:
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)
            except ConnectionError as exc:
                return exc
        return None

    error = run(kind, body)
    server.check()
    assert isinstance(error, smtpcore.ConnectionLost)
    assert isinstance(error, smtpcore.SMTPError)


def test_a_refused_connection_is_caught_as_a_connection_error(kind: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

        async def body() -> BaseException | None:
            try:
                smtp = Smtp(kind, "127.0.0.1", port, tls="none", timeout=5.0)
                async with smtp:
                    pass
            except ConnectionError as exc:
                return exc
            return None

        error = run(kind, body)
    assert isinstance(error, smtpcore.ConnectionLost)


def test_a_timeout_is_caught_as_a_timeout_error(kind: str, scripted: Any) -> None:
    server = scripted(GREETING + "C: MAIL FROM:<a@x.org>\nEOF\n")

    async def body() -> BaseException | None:
        async with client(kind, server, timeout=0.3) as smtp:
            try:
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)
            except TimeoutError as exc:
                return exc
        return None

    error = run(kind, body)
    server.check()
    assert isinstance(error, smtpcore.SMTPTimeout)
    assert isinstance(error, smtpcore.SMTPError)


def test_a_protocol_breach_is_caught_by_the_root(kind: str, scripted: Any) -> None:
    server = scripted(GREETING + "C: MAIL FROM:<a@x.org>\nS: 2x0 garbled\nEOF\n")

    async def body() -> BaseException | None:
        async with client(kind, server) as smtp:
            try:
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)
            except smtpcore.SMTPError as exc:
                return exc
        return None

    error = run(kind, body)
    server.check()
    assert isinstance(error, smtpcore.RemoteProtocolError)


@pytest.mark.parametrize(
    ("sender", "recipients", "expected"),
    [
        ("a@x.org", [], smtpcore.InvalidArgument),
        ("not an address", ["b@y.org"], smtpcore.LocalProtocolError),
    ],
    ids=["no-recipient", "bad-address"],
)
def test_a_bad_request_is_caught_by_the_root_before_anything_is_sent(
    kind: str, sender: str, recipients: list[str], expected: type[Exception], scripted: Any
) -> None:
    server = scripted(GREETING + "QUIT?\n")

    async def body() -> BaseException | None:
        async with client(kind, server) as smtp:
            try:
                await smtp.sendmail(sender, recipients, MESSAGE)
            except smtpcore.SMTPError as exc:
                return exc
        return None

    error = run(kind, body)
    server.check()
    assert isinstance(error, expected)
