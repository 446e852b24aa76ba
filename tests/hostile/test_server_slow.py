"""Slow and cheap attacks on our five servers, over real loopback sockets.

Slowloris on a command line and on message content, a client that talks
before the greeting, endless cancelled AUTH and endless NOOP: each must end
in a reply and a closed connection within a bounded time, on every
transport. Timeouts are tiny so each test ends within about two seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from smtpcore import Limits, ServerConfig
from tests.servers.conftest import wait_for

from .conftest import Memory, Raw, Running

Start = Callable[..., Running]
HELLO = b"EHLO client.example\r\n"
ENVELOPE = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
STEP = 0.2  # seconds between two trickled pieces


def connect(start: Start, **options: object) -> tuple[Memory, Raw]:
    handler = Memory()
    server = start(handler, hostname="mx.test", **options)
    return handler, Raw(server.port, timeout=3.0)


def trickle(raw: Raw, pieces: list[bytes], limit: float) -> tuple[bytes, float]:
    """Send one piece every STEP seconds until a reply comes; the reply and when it came.

    The time counts from the first piece; a reply that does not come within
    ``limit`` seconds fails the test (without a defence it never would).
    """
    began = time.monotonic()
    raw.sock.settimeout(STEP)
    for piece in pieces:
        try:
            raw.sock.sendall(piece)
        except OSError:
            break  # the server closed on us: its reply is waiting
        try:
            chunk = raw.sock.recv(65536)
        except TimeoutError:
            assert time.monotonic() - began < limit, "no reply: the trickle goes on"
            continue
        raw.buffer += chunk
        break
    raw.sock.settimeout(3.0)
    return raw.line(), time.monotonic() - began


def test_trickled_command_line_gets_421_after_idle_timeout(start_server: Start) -> None:
    _handler, raw = connect(start_server, idle_timeout=0.6)
    assert raw.reply() == b"220 mx.test ESMTP\r\n"
    line = b"HELO " + b"x" * 40 + b"\r\n"  # 9 s at one byte per 0.2 s
    reply, elapsed = trickle(raw, [line[i : i + 1] for i in range(len(line))], limit=2.0)
    assert reply == b"421 mx.test 4.4.2 Command timeout, closing connection\r\n"
    assert 0.5 < elapsed < 1.6, elapsed
    assert raw.is_closed()


def test_content_below_min_data_rate_gets_421(start_server: Start) -> None:
    handler, raw = connect(start_server, idle_timeout=0.6, min_data_rate=1000)
    raw.reply()
    raw.send(HELLO + ENVELOPE + b"DATA\r\n")
    assert [raw.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    # 50 octets per 0.2 s is 250 octets/s: each read buys 0.05 s and costs 0.2 s.
    pieces = [b"y" * 48 + b"\r\n"] * 40
    reply, elapsed = trickle(raw, pieces, limit=2.0)
    assert reply == b"421 mx.test 4.4.2 Data rate too low, closing connection\r\n"
    assert 0.6 < elapsed < 1.8, elapsed
    assert raw.is_closed()
    assert handler.messages == []


def test_content_at_a_good_rate_is_accepted(start_server: Start) -> None:
    handler, raw = connect(start_server, idle_timeout=0.6, min_data_rate=100)
    raw.reply()
    raw.send(HELLO + ENVELOPE + b"DATA\r\n")
    assert [raw.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    for _ in range(6):  # 1.2 s in all, more than idle_timeout; 250 octets/s
        raw.send(b"z" * 48 + b"\r\n")
        time.sleep(STEP)
    raw.send(b".\r\n")
    assert raw.reply().startswith(b"250 2.0.0 OK queued as ")
    assert wait_for(lambda: len(handler.messages) == 1)
    assert handler.messages[0].original_content == (b"z" * 48 + b"\r\n") * 6


def test_early_talker_during_greeting_delay_gets_554_and_is_closed(start_server: Start) -> None:
    handler, raw = connect(start_server, greeting_delay=0.5)
    began = time.monotonic()
    raw.send(HELLO + ENVELOPE)
    assert raw.reply() == b"220 mx.test ESMTP\r\n"
    assert raw.reply() == b"554 5.5.0 Protocol error: data sent before the greeting\r\n"
    assert time.monotonic() - began < 0.45  # judged when it spoke, not after the delay
    assert raw.is_closed()
    assert handler.messages == []


def test_patient_client_is_greeted_after_the_delay(start_server: Start) -> None:
    _handler, raw = connect(start_server, greeting_delay=0.4)
    began = time.monotonic()
    assert raw.reply() == b"220 mx.test ESMTP\r\n"
    assert time.monotonic() - began > 0.3
    raw.send(b"HELO client.example\r\n")
    assert raw.reply() == b"250 mx.test\r\n"


def test_endless_cancelled_auth_ends_in_421(start_server: Start) -> None:
    config = ServerConfig(auth_before_tls=True, auth_mechanisms=("LOGIN",))
    _handler, raw = connect(start_server, config=config, limits=Limits(auth_failures=2))
    raw.reply()
    raw.send(HELLO)
    raw.reply()
    seen = []
    for _ in range(3):
        raw.send(b"AUTH LOGIN\r\n")
        seen.append(raw.reply())
        raw.send(b"*\r\n")
        seen.append(raw.reply())
        if seen[-1].startswith(b"421"):
            break
    assert seen == [
        b"334 VXNlcm5hbWU6\r\n",
        b"501 5.7.0 Authentication cancelled\r\n",
        b"334 VXNlcm5hbWU6\r\n",
        b"421 mx.test 4.7.0 Too many failed authentication attempts, closing\r\n",
    ]
    assert raw.is_closed()


def test_endless_noop_ends_in_421(start_server: Start) -> None:
    _handler, raw = connect(start_server, limits=Limits(junk_commands=2, errors=1))
    raw.reply()
    raw.send(b"NOOP\r\n" * 5)
    assert [raw.reply() for _ in range(4)] == [b"250 2.0.0 OK\r\n"] * 3 + [
        b"421 4.7.0 mx.test Error limit reached, closing\r\n"
    ]
    assert raw.is_closed()


def test_quiet_sessions_are_unaffected(start_server: Start) -> None:
    """A client that sends each command whole, however slowly within idle_timeout, goes on."""
    handler, raw = connect(start_server, idle_timeout=0.6, min_data_rate=10_000)
    raw.reply()
    for command in (HELLO, ENVELOPE, b"DATA\r\n"):
        time.sleep(0.4)
        raw.send(command)
    assert [raw.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    raw.send(b"Subject: ok\r\n\r\nbody\r\n.\r\n")
    assert raw.reply().startswith(b"250 2.0.0 OK queued as ")
    raw.send(b"QUIT\r\n")
    assert raw.reply() == b"221 2.0.0 mx.test closing connection\r\n"
    assert wait_for(lambda: len(handler.messages) == 1)
