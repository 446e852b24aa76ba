"""A hostile server against our five kinds of client, over loopback sockets.

Each test plays one attack from the server's side and checks the client's
answer: a clean error (an ``SMTPError`` or ``ProtocolError``), and nothing
sent that should not be (no MAIL, AUTH or message data in clear, no data
after a bad reply).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest

import smtpcore
from smtpcore import ProtocolError, SMTPError

from .conftest import TIMEOUT, Hostile, Peer, Smtp, run

ERRORS = (SMTPError, ProtocolError)
GREETING = b"220 mx.example ESMTP\r\n"
EHLO_TLS = b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
EHLO = b"250-mx.example\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN SCRAM-SHA-256\r\n250 8BITMIME\r\n"


def attempt(
    kind: str, port: int, content: bytes = b"Subject: x\r\n\r\nhi\r\n", **options: Any
) -> BaseException | None:
    """Connect and send one message; the error raised, or None."""
    options.setdefault("tls", "none")
    options.setdefault("timeout", TIMEOUT)

    async def body() -> BaseException | None:
        try:
            async with Smtp(kind, "127.0.0.1", port, **options) as smtp:
                await smtp.sendmail("a@example.org", ["b@example.net"], content)
        except ERRORS as exc:
            return exc
        return None

    return run(kind, body)


def greet_then(ehlo: bytes) -> Callable[[Peer], None]:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(ehlo)
        peer.drain()

    return play


# -- STARTTLS response injection and stripping -------------------------------------


@pytest.mark.parametrize(
    "injected",
    [b"250 injected\r\n", b"2", b"250-a\r\n250 b\r\n", b"\r\n"],
    ids=["whole-reply", "one-byte", "multiline", "crlf"],
)
def test_bytes_behind_the_220_to_starttls_are_refused(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext, injected: bytes
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO_TLS)
        peer.line()  # STARTTLS
        peer.send(b"220 2.0.0 go ahead\r\n" + injected)  # one segment
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, tls="starttls", ssl_context=client_tls)
    assert isinstance(error, ERRORS), error
    assert b"MAIL" not in server.clear and b"AUTH" not in server.clear


def test_bytes_behind_the_220_in_a_later_segment_fail_the_handshake(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO_TLS)
        peer.line()
        peer.send(b"220 2.0.0 go ahead\r\n")
        time.sleep(0.05)
        peer.send(b"250 injected\r\n")
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, tls="starttls", ssl_context=client_tls)
    assert isinstance(error, ERRORS), error
    assert b"MAIL" not in server.clear


@pytest.mark.parametrize(
    "answer",
    [None, b"454 4.7.0 TLS not available\r\n", b"502 5.5.1 no\r\n"],
    ids=["not-offered", "454", "502"],
)
def test_starttls_stripped_or_refused_means_no_mail_and_no_auth_in_clear(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext, answer: bytes | None
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO if answer is None else EHLO.replace(b"250 8BITMIME", b"250 STARTTLS"))
        if answer is not None:
            peer.line()
            peer.send(answer)
        peer.drain()

    server = hostile(play)
    error = attempt(
        kind, server.port, tls="starttls", ssl_context=client_tls, username="u", password="p"
    )
    assert isinstance(error, ERRORS), error
    assert b"MAIL" not in server.clear and b"AUTH" not in server.clear


# -- malformed and oversized replies --------------------------------------------------

BAD_GREETINGS = {
    "underscore": b"2_0 mx\r\n",
    "plus": b"+22 mx\r\n",
    "fullwidth": "２２０ mx\r\n".encode(),
    "arabic-indic": "22٠ mx\r\n".encode(),
    "nul": b"220 mx\x00\r\n",
    "bare-lf": b"220 mx\n",
    "code-change": b"220-mx\r\n250 mx\r\n",
    "endless-continuation": b"220-x\r\n" * 5000,
    "no-line-end": b"220 " + b"x" * 100_000,
    "two-digits": b"22 mx\r\n",
}


@pytest.mark.parametrize("greeting", BAD_GREETINGS.values(), ids=BAD_GREETINGS.keys())
def test_malformed_greeting_is_a_clean_error(
    kind: str, hostile: Callable[..., Hostile], greeting: bytes
) -> None:
    def play(peer: Peer) -> None:
        peer.send(greeting)
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port)
    assert isinstance(error, ERRORS), error
    assert server.clear in (b"", b"QUIT\r\n")


def test_invalid_utf8_in_a_reply_is_replaced_not_raised(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(b"220 mx \xff\xfe ESMTP\r\n")
        while peer.line():
            peer.send(b"554 5.7.1 go \xc3 away\r\n")

    error = attempt(kind, hostile(play).port)
    assert isinstance(error, SMTPError), error
    assert "\ufffd" in str(error)


def test_surplus_reply_after_a_pipelined_group_is_never_matched_to_data(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO)
        peer.line()  # MAIL
        peer.line()  # RCPT
        peer.line()  # DATA
        peer.send(b"250 ok\r\n250 ok\r\n250 surplus\r\n354 go\r\n")
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, content=b"SECRET\r\n")
    assert isinstance(error, ERRORS), error
    assert b"SECRET" not in server.clear


def test_reply_arriving_after_the_timeout_is_a_timeout(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        time.sleep(TIMEOUT * 0.6 + 0.3)
        peer.send(EHLO)
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, timeout=0.3)
    assert isinstance(error, smtpcore.SMTPTimeout), error
    assert b"MAIL" not in server.clear


# -- application input ------------------------------------------------------------------

BAD_ARGUMENTS = {
    "sender-crlf": ("a@example.org\r\nRCPT TO:<x@example.net>", ["b@example.net"]),
    "sender-lf": ("a@example.org\nX", ["b@example.net"]),
    "recipient-cr": ("a@example.org", ["b@example.net\rDATA"]),
    "recipient-nul": ("a@example.org", ["b\x00@example.net"]),
    "recipient-tab": ("a@example.org", ["b\t@example.net"]),
    "recipient-del": ("a@example.org", ["b\x7f@example.net"]),
}


@pytest.mark.parametrize(("sender", "recipients"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_control_characters_in_addresses_are_refused_before_any_byte(
    kind: str, hostile: Callable[..., Hostile], sender: str, recipients: list[str]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO)
        peer.drain()

    server = hostile(play)

    async def body() -> BaseException | None:
        try:
            async with Smtp(kind, "127.0.0.1", server.port, tls="none", timeout=TIMEOUT) as smtp:
                await smtp.sendmail(sender, recipients, b"x\r\n")
        except (SMTPError, ProtocolError, ValueError) as exc:
            return exc
        return None

    error = run(kind, body)
    assert isinstance(error, (ProtocolError, ValueError, SMTPError)), error
    assert b"MAIL" not in server.clear and b"RCPT" not in server.clear


@pytest.mark.parametrize("name", ["client\r\n.example", "client\x00.example", "a b", "x\tz"])
def test_control_characters_in_the_ehlo_name_are_refused_at_once(kind: str, name: str) -> None:
    with pytest.raises(ValueError, match="local_hostname"):
        Smtp(kind, "127.0.0.1", 9, tls="none", local_hostname=name)


@pytest.mark.parametrize(
    ("username", "password"),
    [("a\r\nMAIL FROM:<x@y.example>", "p"), ("a\x00b", "p"), ("a\tb", "p"), ("", "p"),
     ("user", "p\r\nQUIT"), ("user", "p\x00")],
    ids=["username-crlf", "username-nul", "username-tab", "username-empty", "password-crlf",
         "password-nul"],
)  # fmt: skip
def test_control_characters_in_auth_identities_are_refused_at_once(
    kind: str, username: str, password: str
) -> None:
    """Port 9 (discard) is never dialled: the options are refused when built."""
    with pytest.raises(ValueError, match="username|password") as refused:
        Smtp(kind, "127.0.0.1", 9, tls="none", username=username, password=password)
    if password != "p":
        assert password not in str(refused.value)  # a secret is never echoed


@pytest.mark.parametrize("envid", ["id\r\nRCPT TO:<x@y.example>", "id\x00", "id\x7f", "ïd"])
def test_control_characters_in_dsn_parameters_are_refused_before_any_byte(
    kind: str, hostile: Callable[..., Hostile], envid: str
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO.replace(b"250 8BITMIME", b"250-8BITMIME\r\n250 DSN"))
        peer.drain()

    server = hostile(play)

    async def body() -> BaseException | None:
        try:
            async with Smtp(kind, "127.0.0.1", server.port, tls="none", timeout=TIMEOUT) as smtp:
                await smtp.sendmail(
                    "a@example.org",
                    ["b@example.net"],
                    b"x\r\n",
                    dsn=smtpcore.session.DSN(envid=envid),
                )
        except ValueError as exc:
            return exc
        return None

    error = run(kind, body)
    assert isinstance(error, ValueError) and "envid" in str(error), error
    assert b"MAIL" not in server.clear


# -- SASL -------------------------------------------------------------------------------


def test_endless_334_challenges_end_in_an_error(kind: str, hostile: Callable[..., Hostile]) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO.replace(b"SCRAM-SHA-256", b""))
        while peer.line():
            peer.send(b"334 VXNlcm5hbWU6\r\n")

    server = hostile(play)
    error = attempt(kind, server.port, username="u", password="p", auth_in_clear=True)
    assert isinstance(error, ERRORS), error
    assert server.clear.count(b"\r\n") < 40


@pytest.mark.parametrize(
    "final",
    [b"334 dj1BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE9\r\n", b"235 2.7.0 ok\r\n"],
    ids=["wrong-signature", "missing-signature"],
)
def test_scram_server_signature_must_match(
    kind: str, hostile: Callable[..., Hostile], final: bytes
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO)
        auth = peer.line()
        import base64

        first = base64.b64decode(auth.split()[2]).decode()
        nonce = first.split("r=")[1]
        server_first = f"r={nonce}srv,s=c2FsdA==,i=1".encode()
        peer.send(b"334 " + base64.b64encode(server_first) + b"\r\n")
        peer.line()
        peer.send(final)
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, username="u", password="p", auth_in_clear=True)
    assert isinstance(error, ERRORS), error
    assert b"MAIL" not in server.clear


def test_absurd_scram_iteration_count_is_refused_without_the_work(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        import base64

        peer.send(GREETING)
        peer.line()
        peer.send(EHLO)
        auth = peer.line()
        nonce = base64.b64decode(auth.split()[2]).decode().split("r=")[1]
        server_first = f"r={nonce}srv,s=c2FsdA==,i=4000000000".encode()
        peer.send(b"334 " + base64.b64encode(server_first) + b"\r\n")
        peer.drain()

    server = hostile(play)
    started = time.monotonic()
    error = attempt(kind, server.port, username="u", password="p", auth_in_clear=True)
    assert isinstance(error, ERRORS), error
    assert time.monotonic() - started < 2 * TIMEOUT


def test_auth_offered_only_before_tls_is_not_used_in_clear(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    server = hostile(greet_then(EHLO))
    error = attempt(kind, server.port, username="u", password="p")
    assert isinstance(error, ERRORS), error
    assert b"AUTH" not in server.clear and b"MAIL" not in server.clear


# -- TLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["wrong-name", "expired", "self-signed"])
def test_bad_certificate_is_an_error_and_no_mail_data_on_the_wire(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext, problem: str
) -> None:
    import datetime

    import trustme

    ca = trustme.CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    if problem == "wrong-name":
        cert = ca.issue_cert("other.example")
    elif problem == "expired":
        cert = ca.issue_cert(
            "localhost",
            "127.0.0.1",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
    else:
        cert = ca.issue_cert("localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if problem != "self-signed":
        # The client trusts this CA except for the wrong name / expiry tests' defect.
        client_tls.load_verify_locations(cadata=ca.cert_pem.bytes().decode())

    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO_TLS)
        peer.line()
        peer.send(b"220 2.0.0 go ahead\r\n")
        try:
            peer.starttls()
        except (ssl.SSLError, OSError):
            return
        peer.drain()

    server = hostile(play, context)
    error = attempt(
        kind, server.port, tls="starttls", ssl_context=client_tls, content=b"SECRET\r\n"
    )
    assert isinstance(error, smtpcore.TLSError), error
    server.thread.join(5)
    assert server.peer is not None and server.peer.encrypted == b""
    assert b"SECRET" not in server.clear and b"MAIL" not in server.clear


# -- memory -------------------------------------------------------------------------------


def test_gigabytes_without_a_line_end_cost_bounded_memory(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    import tracemalloc

    block = b"220-" + b"x" * 65532

    def play(peer: Peer) -> None:
        try:
            for _ in range(300):  # 20 MB offered; the client must stop reading long before
                peer.send(block)
        except OSError:
            pass

    server = hostile(play)
    tracemalloc.start()
    try:
        error = attempt(kind, server.port)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, ERRORS), error
    assert peak < 4_000_000, peak
