"""Bad input over raw sockets, against all five servers: exact replies, nothing smuggled."""

from __future__ import annotations

import base64
import re
import ssl
import time
from collections.abc import Callable

import pytest

from smtpcore import Limits, ServerConfig

from .conftest import Memory, Raw, Starter, wait_for

Connect = Callable[..., Raw]
GREETING = b"220 mx.test ESMTP\r\n"


def session(start: Starter, raw: Connect, **options: object) -> tuple[Memory, Raw]:
    """A server with a Memory handler and a raw client past the greeting and EHLO."""
    handler = Memory()
    server = start(handler, hostname="mx.test", **options)
    client = raw(server.port)
    assert client.reply() == GREETING
    client.send(b"EHLO c.example\r\n")
    assert client.reply().startswith(b"250-mx.test\r\n")
    return handler, client


def envelope(client: Raw) -> None:
    client.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n")
    assert client.reply() == b"250 2.1.0 Sender OK\r\n"
    assert client.reply() == b"250 2.1.5 Recipient OK\r\n"


SMUGGLING = [b"\n.\n", b"\r.\r", b"\r\n.\r", b"\n.\r\n", b"\r.\n", b"\r\n.\n", b"\r.\r\n"]


@pytest.mark.parametrize("bare_lf", ["reject", "normalise"])
@pytest.mark.parametrize("end", SMUGGLING, ids=repr)
def test_smuggling_variant_is_one_message_and_nothing_smuggled(
    start: Starter, raw: Connect, end: bytes, bare_lf: str
) -> None:
    """Only CRLF.CRLF ends DATA: the variant is refused (a bare CR; any bare LF under
    ``reject``) or stored as one message with the injected commands as content."""
    handler, client = session(start, raw, config=ServerConfig(bare_lf=bare_lf))  # type: ignore[arg-type]
    envelope(client)
    client.send(b"DATA\r\n")
    assert client.reply() == b"354 End data with <CR><LF>.<CR><LF>\r\n"
    injected = b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\nDATA\r\n"
    client.send(
        b"Subject: one\r\n\r\nfirst" + end + injected + b"Subject: smuggled\r\n\r\n.\r\nNOOP\r\n"
    )
    refused = bare_lf == "reject" or b"\r" in end.replace(b"\r\n", b"")
    if refused:
        assert client.reply() == (
            b"550 5.5.2 Message refused: bare CR or LF in the content (RFC 5321 2.3.8)\r\n"
        )
    else:
        assert client.reply().startswith(b"250 2.0.0 OK queued as ")
    assert client.reply() == b"250 2.0.0 OK\r\n"  # the NOOP: the session goes on
    envelope(client)  # a clean message afterwards is stored, alone
    client.send(b"DATA\r\n")
    client.reply()
    client.send(b"Subject: two\r\n\r\nclean\r\n.\r\n")
    assert client.reply().startswith(b"250 2.0.0 OK queued as ")
    assert wait_for(lambda: len(handler.messages) == (1 if refused else 2))
    assert handler.messages[-1].original_content == b"Subject: two\r\n\r\nclean\r\n"
    if not refused:
        first = handler.messages[0]
        assert first.sender == "a@x.example" and first.recipients == ("b@y.example",)
        sent = b"Subject: one\r\n\r\nfirst" + end + injected + b"Subject: smuggled\r\n\r\n"
        # Unstuffed after each CRLF only, then each bare LF made CRLF.
        kept = re.sub(rb"(?<!\r)\n", b"\r\n", sent.replace(b"\r\n.", b"\r\n"))
        assert first.original_content == kept


def test_bare_lf_is_normalised_by_default(start: Starter, raw: Connect) -> None:
    """Senders that end lines in LF (curl without --crlf) are served, as by Postfix 3.9."""
    handler, client = session(start, raw)
    envelope(client)
    client.send(b"DATA\r\nSubject: one\n\nfirst\n.\nMAIL FROM:<evil@x.example>\r\n.\r\n")
    assert client.reply().startswith(b"354")
    assert client.reply().startswith(b"250 2.0.0 OK queued as ")
    assert wait_for(lambda: len(handler.messages) == 1)
    assert handler.messages[0].original_content == (
        b"Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<evil@x.example>\r\n"
    )


@pytest.mark.parametrize("bare_lf", ["reject", "normalise"])
def test_bdat_content_follows_the_bare_lf_policy(
    start: Starter, raw: Connect, bare_lf: str
) -> None:
    """BDAT content other than BINARYMIME is CRLF text (RFC 3030 3): same rule as DATA."""
    config = ServerConfig(chunking=True, bare_lf=bare_lf)  # type: ignore[arg-type]
    handler, client = session(start, raw, config=config)
    envelope(client)
    client.send(b"BDAT 4\r\na\nb\rBDAT 3 LAST\r\n\nc\n")
    assert client.reply() == b"250 2.0.0 Chunk received\r\n"
    if bare_lf == "reject":
        assert client.reply() == (
            b"550 5.5.2 Message refused: bare CR or LF in the content (RFC 5321 2.3.8)\r\n"
        )
    else:
        assert client.reply().startswith(b"250 2.0.0 OK queued as ")
        assert wait_for(lambda: len(handler.messages) == 1)
        assert handler.messages[0].original_content == b"a\r\nb\r\nc\r\n"
    envelope(client)
    client.send(b"BDAT 3 LAST\r\na\rb")  # a bare CR: refused under both policies
    assert client.reply() == (
        b"550 5.5.2 Message refused: bare CR or LF in the content (RFC 5321 2.3.8)\r\n"
    )
    assert len(handler.messages) == (0 if bare_lf == "reject" else 1)


def test_pipelined_starttls_injection_is_never_executed(
    start: Starter, raw: Connect, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """RFC 3207 5 (CVE-2011-0411): what follows STARTTLS in the same packet is dropped."""
    _, client = session(start, raw, tls_context=server_tls)
    client.send(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
    assert client.reply() == b"220 2.0.0 Ready to start TLS\r\n"
    client.starttls(client_tls)
    client.send(b"EHLO c.example\r\n")
    assert b"250-STARTTLS" not in client.reply()
    client.send(b"RCPT TO:<b@y.example>\r\n")
    assert client.reply() == b"503 5.5.1 Bad sequence of commands: need MAIL before RCPT\r\n"


def test_commands_before_ehlo_after_tls_are_refused(
    start: Starter, raw: Connect, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    _, client = session(start, raw, tls_context=server_tls)
    client.send(b"STARTTLS\r\n")
    client.reply()
    client.starttls(client_tls)
    client.send(b"MAIL FROM:<a@x.example>\r\n")
    assert client.reply() == b"503 5.5.1 Bad sequence of commands: send EHLO or HELO first\r\n"


def test_over_long_line_is_500_and_skipped(start: Starter, raw: Connect) -> None:
    _, client = session(start, raw)
    client.send(b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n")
    assert client.reply() == b"500 5.5.2 Line too long (limit 512 octets)\r\n"
    assert client.reply() == b"250 2.0.0 OK\r\n"


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (b"BDAT +4\r\n", b"501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)\r\n"),
        (
            b"BDAT " + b"9" * 21 + b"\r\n",
            b"501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)\r\n",
        ),
        (b"BDAT 4 FIRST\r\n", b"501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)\r\n"),
        (b"BDAT\r\n", b"501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)\r\n"),
        (b"BDAT " + b"9" * 3000 + b"\r\n", b"500 5.5.2 Line too long (limit 512 octets)\r\n"),
    ],
    ids=["plus", "21-digits", "first", "no-size", "3000-digits"],
)
def test_malformed_bdat_is_501_and_closes(
    start: Starter, raw: Connect, command: bytes, reply: bytes
) -> None:
    """A chunk of unknown size cannot be skipped: its octets would be read as commands."""
    _, client = session(start, raw)
    envelope(client)
    client.send(command + b"RSET\r\n")
    assert client.reply() == reply
    assert client.is_closed()


def test_bdat_beyond_size_is_read_dropped_and_552(start: Starter, raw: Connect) -> None:
    handler, client = session(start, raw, config=ServerConfig(chunking=True, size=10))
    envelope(client)
    client.send(b"BDAT 20 LAST\r\n" + b"RSET\r\n" * 3 + b"zz" + b"NOOP\r\n")
    assert client.reply() == b"552 5.3.4 Message size exceeds fixed limit of 10 octets\r\n"
    assert client.reply() == b"250 2.0.0 OK\r\n"
    assert handler.messages == []


def test_bdat_chunks_make_one_message(start: Starter, raw: Connect) -> None:
    handler, client = session(start, raw)
    envelope(client)
    client.send(b"BDAT 12\r\nSubject: x\r\nBDAT 11 LAST\r\n\r\n.body\r\n\r\n")
    assert client.reply() == b"250 2.0.0 Chunk received\r\n"
    assert client.reply().startswith(b"250 2.0.0 OK queued as ")
    assert wait_for(lambda: len(handler.messages) == 1)
    assert handler.messages[0].original_content == b"Subject: x\r\n\r\n.body\r\n\r\n"


def test_too_many_recipients_is_452(start: Starter, raw: Connect) -> None:
    _, client = session(start, raw, limits=Limits(recipients=2))
    client.send(b"MAIL FROM:<a@x.example>\r\n")
    client.reply()
    client.send(b"RCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\nRCPT TO:<d@y.example>\r\n")
    assert [client.reply() for _ in range(3)] == [
        b"250 2.1.5 Recipient OK\r\n",
        b"250 2.1.5 Recipient OK\r\n",
        b"452 4.5.3 Too many recipients (limit 2)\r\n",
    ]


def test_too_many_errors_is_421_and_close(start: Starter, raw: Connect) -> None:
    _, client = session(start, raw, limits=Limits(errors=3))
    client.send(b"BOGUS\r\n" * 4)
    replies = [client.reply() for _ in range(4)]
    assert replies[:3] == [b"500 5.5.1 Command BOGUS unrecognized\r\n"] * 3
    assert replies[3] == b"421 4.7.0 mx.test Error limit reached, closing\r\n"
    assert client.is_closed()


def test_silent_client_is_dropped_after_idle_timeout(start: Starter, raw: Connect) -> None:
    _, client = session(start, raw, idle_timeout=0.5)
    began = time.monotonic()
    assert client.reply() == b"421 mx.test 4.4.2 Idle timeout, closing connection\r\n"
    assert client.is_closed()
    assert 0.4 < time.monotonic() - began < 3.0


def test_slow_data_is_dropped_too(start: Starter, raw: Connect) -> None:
    handler, client = session(start, raw, idle_timeout=0.5)
    envelope(client)
    client.send(b"DATA\r\n")
    client.reply()
    client.send(b"Subject: half")
    assert client.reply() == b"421 mx.test 4.4.2 Idle timeout, closing connection\r\n"
    assert handler.messages == []


def test_default_replies(start: Starter, raw: Connect) -> None:
    _, client = session(start, raw)
    client.send(b"VRFY bob\r\nEXPN list\r\nTURN\r\nHELP\r\nNOOP\r\nRSET\r\nQUIT\r\n")
    assert [client.reply() for _ in range(7)] == [
        b"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n",
        b"502 5.5.1 Command EXPN not implemented\r\n",
        b"502 5.5.1 Command TURN not implemented\r\n",
        b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n",
        b"250 2.0.0 OK\r\n",
        b"250 2.0.0 OK\r\n",
        b"221 2.0.0 mx.test closing connection\r\n",
    ]
    assert client.is_closed()


def test_auth_cancel_is_501(
    start: Starter, raw: Connect, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    _, client = session(start, raw, tls_context=server_tls)
    client.send(b"STARTTLS\r\n")
    client.reply()
    client.starttls(client_tls)
    client.send(b"EHLO c.example\r\nAUTH LOGIN\r\n")
    client.reply()
    assert client.reply() == b"334 VXNlcm5hbWU6\r\n"
    client.send(b"*\r\n")
    assert client.reply() == b"501 5.7.0 Authentication cancelled\r\n"


def test_lmtp_gives_one_reply_per_recipient(start: Starter, raw: Connect) -> None:
    handler = Memory()
    server = start(handler, hostname="mx.test", config=ServerConfig(lmtp=True))
    client = raw(server.port)
    assert client.reply() == b"220 mx.test LMTP\r\n"
    client.send(b"LHLO c.example\r\nMAIL FROM:<a@x.example>\r\n")
    client.reply()
    client.reply()
    client.send(b"RCPT TO:<b@y.example>\r\nRCPT TO:<nobody@y.example>\r\nRCPT TO:<c@y.example>\r\n")
    assert [client.reply()[:3] for _ in range(3)] == [b"250", b"550", b"250"]
    client.send(b"DATA\r\nSubject: l\r\n\r\nx\r\n.\r\n")
    assert client.reply().startswith(b"354")
    first, second = client.reply(), client.reply()
    assert first == second and first.startswith(b"250 2.0.0 OK queued as ")
    assert wait_for(lambda: len(handler.messages) == 1)
    assert handler.messages[0].recipients == ("b@y.example", "c@y.example")
    assert b" with LMTP id " in handler.messages[0].received_header


def test_empty_challenge_is_334_space_on_the_wire(
    start: Starter, raw: Connect, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """RFC 4954 4: ``334 SP [base64]``; the AUTH PLAIN of s-nail waits for ``334 \\r\\n``."""
    _, client = session(start, raw, tls_context=server_tls)
    client.send(b"STARTTLS\r\n")
    client.reply()
    client.starttls(client_tls)
    client.send(b"EHLO c.example\r\nAUTH PLAIN\r\n")
    client.reply()
    assert client.reply() == b"334 \r\n"
    client.send(b"AGFsaWNlAHdvbmRlcmxhbmQ=\r\n")
    assert client.reply() == b"235 2.7.0 Authentication successful\r\n"


def _replies_until_closed(client: Raw, limit: int) -> list[bytes]:
    """Every reply until the server closes; fails if it answers more than ``limit``."""
    replies: list[bytes] = []
    while len(replies) <= limit:
        try:
            replies.append(client.reply())
        except (EOFError, ConnectionResetError):
            return replies
    raise AssertionError(f"still answering after {limit} replies: {replies[-1]!r}")


@pytest.mark.parametrize("command", [b"EHLO c.example\r\n", b"BDAT 0\r\n"], ids=["ehlo", "bdat0"])
def test_5000_free_commands_end_the_session(start: Starter, raw: Connect, command: bytes) -> None:
    """Repeated EHLO and empty BDAT chunks are junk: past Limits.junk_commands (100)
    each is an error, and past Limits.errors (20) the session ends with 421."""
    _, client = session(start, raw)
    if command.startswith(b"BDAT"):
        envelope(client)
    try:
        client.send(command * 5000)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may have closed before it read everything
    replies = _replies_until_closed(client, 200)
    assert replies[-1] == b"421 4.7.0 mx.test Error limit reached, closing\r\n"
    assert len(replies) == 100 + 20 + 1  # free, then errors still answered, then the 421


def test_a_huge_refused_bdat_is_answered_and_closed_not_read(start: Starter, raw: Connect) -> None:
    """A refused chunk over Limits.skipped_chunk (1 MiB) is not read: reply and hang up."""
    _, client = session(start, raw)
    client.send(b"BDAT 100000000000 LAST\r\n" + b"x" * 65536)
    assert client.reply() == (
        b"503 5.5.1 Bad sequence of commands: need MAIL and RCPT before BDAT\r\n"
    )
    assert _replies_until_closed(client, 0) == []


def test_scram_does_not_tell_which_accounts_exist(
    start: Starter, raw: Connect, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """RFC 5802 9: an unknown user gets a challenge like a known one (a salt stable
    per user, the same iteration count) and fails only at the proof, with 535."""

    def server_first(client: Raw, username: bytes) -> bytes:
        first = base64.b64encode(b"n,,n=" + username + b",r=cnonce")
        client.send(b"AUTH SCRAM-SHA-256 " + first + b"\r\n")
        reply = client.reply()
        assert reply.startswith(b"334 "), reply
        return base64.b64decode(reply[4:-2])

    _, client = session(start, raw, tls_context=server_tls, limits=Limits(auth_failures=5))
    client.send(b"STARTTLS\r\n")
    client.reply()
    client.starttls(client_tls)
    client.send(b"EHLO c.example\r\n")
    client.reply()
    seen: dict[bytes, list[bytes]] = {}
    for username in (b"alice", b"nobody", b"nobody"):
        nonce, salt, iterations = server_first(client, username).split(b",")
        assert iterations == b"i=4096" and len(base64.b64decode(salt[2:])) == 16
        seen.setdefault(username, []).append(salt)
        proof = base64.b64encode(bytes(32))
        client.send(base64.b64encode(b"c=biws," + nonce + b",p=" + proof) + b"\r\n")
        assert client.reply() == b"535 5.7.8 Authentication credentials invalid\r\n"
    assert seen[b"nobody"][0] == seen[b"nobody"][1] != seen[b"alice"][0]
