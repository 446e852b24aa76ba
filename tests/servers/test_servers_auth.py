"""Password guessing over real sockets, on all five servers: the pause after a failed
AUTH, and the failure budget per client address across connections."""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Callable

import pytest

from .conftest import Memory, Raw, Starter

Connect = Callable[..., Raw]
WRONG = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess") + b"\r\n"
RIGHT = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0wonderland") + b"\r\n"
INVALID = b"535 5.7.8 Authentication credentials invalid\r\n"
REFUSED = (
    b"421 mx.test 4.7.0 Too many failed authentication attempts from 127.0.0.1, try again later\r\n"
)


def authenticated_channel(port: int, raw: Connect, client_tls: ssl.SSLContext) -> Raw:
    """A raw client past the greeting, STARTTLS and the second EHLO."""
    client = raw(port)
    assert client.reply() == b"220 mx.test ESMTP\r\n"
    client.send(b"EHLO c.example\r\n")
    client.reply()
    client.send(b"STARTTLS\r\n")
    assert client.reply() == b"220 2.0.0 Ready to start TLS\r\n"
    client.starttls(client_tls)
    client.send(b"EHLO c.example\r\n")
    assert b" PLAIN" in client.reply()
    return client


def test_a_failed_auth_is_answered_after_the_pause(
    start: Starter, raw: Connect, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """Postfix's smtpd_error_sleep_time: a wrong guess costs the client time."""
    server = start(Memory(), hostname="mx.test", tls_context=server_tls, auth_failure_delay=0.3)
    client = authenticated_channel(server.port, raw, client_tls)
    began = time.monotonic()
    client.send(WRONG)
    assert client.reply() == INVALID
    assert time.monotonic() - began >= 0.3
    client.send(RIGHT)
    assert client.reply() == b"235 2.7.0 Authentication successful\r\n"


def test_failures_across_connections_use_up_the_address_budget(
    start: Starter,
    raw: Connect,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reconnecting does not reset the count: the address is refused AUTH, with a log line."""
    caplog.set_level(logging.WARNING, logger="smtpcore")
    server = start(
        Memory(), hostname="mx.test", tls_context=server_tls, auth_failures_per_address=2
    )
    first = authenticated_channel(server.port, raw, client_tls)
    first.send(WRONG)
    assert first.reply() == INVALID
    first.close()
    second = authenticated_channel(server.port, raw, client_tls)
    second.send(WRONG)
    assert second.reply() == REFUSED
    assert second.is_closed()
    third = authenticated_channel(server.port, raw, client_tls)
    third.send(RIGHT)  # even the right password: the address is refused for now
    assert third.reply() == REFUSED
    assert third.is_closed()
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("smtpcore")]
    assert warnings == ["AUTH refused to 127.0.0.1 for up to 600 s: 2 failed attempts within 600 s"]
