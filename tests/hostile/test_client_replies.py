"""Replies that do not fit the conversation, from a server on a real socket, to every client.

Each test plays the server's side and checks what the caller learns (the
server's own refusal when it gave one, a protocol error when it broke SMTP)
and what went on the wire (no content after a reply that did not open the
data phase).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpcore import ProtocolError, RemoteProtocolError, SMTPError
from smtpcore.session import (
    PermanentError,
    RecipientsRefused,
    ReplyError,
    SMTPTimeout,
    TransientError,
)

from .conftest import TIMEOUT, Hostile, Peer, Smtp, run
from .test_client_hostile import EHLO, GREETING, attempt

CONTENT = b"Subject: x\r\n\r\nSECRET\r\n"
PLAIN_EHLO = b"250-mx.example\r\n250 8BITMIME\r\n"


# -- only 354 opens the data phase (RFC 5321 4.3.2) -------------------------------------


@pytest.mark.parametrize("answer", [b"250 2.0.0 ok\r\n", b"221 2.0.0 bye\r\n"])
@pytest.mark.parametrize("ehlo", [EHLO, PLAIN_EHLO], ids=["pipelined", "one-by-one"])
def test_a_2xx_to_data_is_a_protocol_error_and_the_connection_closes(
    kind: str, hostile: Callable[..., Hostile], answer: bytes, ehlo: bytes
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(ehlo)
        if ehlo is EHLO:
            for _ in range(3):  # MAIL, RCPT, DATA in one group
                peer.line()
            peer.send(b"250 ok\r\n250 ok\r\n" + answer)
        else:
            for _ in range(2):
                peer.line()
                peer.send(b"250 ok\r\n")
            peer.line()
            peer.send(answer)
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, content=CONTENT)
    assert isinstance(error, RemoteProtocolError), error
    assert "only 354" in str(error)
    peer = server.finished()
    assert peer.clear.endswith(b"DATA\r\n")  # no content, no RSET: closed
    assert b"SECRET" not in peer.clear


# -- replies nothing asked for (RFC 5321 4.3.1, RFC 2920 3.2) ---------------------------


def test_a_surplus_reply_with_the_greeting_is_a_protocol_error(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING + b"250 surplus\r\n")  # one segment
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, content=CONTENT)
    assert isinstance(error, RemoteProtocolError), error
    assert "no command waiting" in str(error)
    assert server.finished().clear == b""  # not even EHLO: it would get the surplus 250


def test_a_fourth_reply_to_the_pipelined_group_is_no_delivery(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO)
        for _ in range(3):  # MAIL, RCPT, DATA
            peer.line()
        peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued as FAKE\r\n")
        peer.drain()

    server = hostile(play)
    error = attempt(kind, server.port, content=CONTENT)
    assert isinstance(error, RemoteProtocolError), error
    assert "no command waiting" in str(error)
    assert b"SECRET" not in server.finished().clear


# -- a server that replies and then closes (Exim's drop ACL, Haraka's DISCONNECT) -------


def attempt_to(kind: str, port: int, recipients: list[str]) -> BaseException | None:
    """Send CONTENT to ``recipients``; the error raised, or None."""

    async def body() -> BaseException | None:
        try:
            async with Smtp(kind, "127.0.0.1", port, tls="none", timeout=TIMEOUT) as smtp:
                await smtp.sendmail("a@example.org", recipients, CONTENT)
        except (SMTPError, ProtocolError) as exc:
            return exc
        return None

    return run(kind, body)


def test_a_554_greeting_then_close_is_a_permanent_error_with_its_reply(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(b"554 5.7.1 go away\r\n")

    error = attempt(kind, hostile(play).port)
    assert isinstance(error, PermanentError), error
    assert error.reply.code == 554 and error.reply.lines == ("5.7.1 go away",)


@pytest.mark.parametrize("ehlo", [EHLO, PLAIN_EHLO], ids=["pipelined", "one-by-one"])
@pytest.mark.parametrize(
    ("answer", "error_class"),
    [(b"550 5.7.1 go away\r\n", PermanentError), (b"451 4.7.1 not now\r\n", TransientError)],
    ids=["5xx", "4xx"],
)
def test_mail_refused_then_close_is_the_refusal(
    kind: str,
    hostile: Callable[..., Hostile],
    ehlo: bytes,
    answer: bytes,
    error_class: type[ReplyError],
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(ehlo)
        peer.line()  # MAIL (and in one group RCPT and DATA, left unread)
        peer.send(answer)

    error = attempt(kind, hostile(play).port)
    assert type(error) is error_class, error
    assert error.reply.code == int(answer[:3])
    assert error.command == "MAIL FROM:<a@example.org>"


@pytest.mark.parametrize("ehlo", [EHLO, PLAIN_EHLO], ids=["pipelined", "one-by-one"])
def test_every_recipient_refused_then_close_is_recipients_refused(
    kind: str, hostile: Callable[..., Hostile], ehlo: bytes
) -> None:
    """The RSET that follows the refusals fails on the closed connection; it changes nothing."""

    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(ehlo)
        if ehlo is EHLO:
            for _ in range(4):  # MAIL, RCPT, RCPT, DATA
                peer.line()
            peer.send(b"250 ok\r\n550 5.1.1 nobody\r\n550 5.1.1 nobody\r\n554 5.5.1 no rcpt\r\n")
        else:
            peer.line()
            peer.send(b"250 ok\r\n")
            for _ in range(2):
                peer.line()
                peer.send(b"550 5.1.1 nobody\r\n")

    error = attempt_to(kind, hostile(play).port, ["b@example.net", "c@example.net"])
    assert isinstance(error, RecipientsRefused), error
    assert set(error.refused) == {"b@example.net", "c@example.net"}
    assert not error.is_transient


def test_end_of_data_refused_then_close_is_the_refusal(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(PLAIN_EHLO)
        for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
            peer.line()
            peer.send(reply)
        peer.take_data()
        peer.send(b"550 5.7.1 message refused\r\n")

    error = attempt(kind, hostile(play).port, content=CONTENT)
    assert isinstance(error, PermanentError), error
    assert error.reply.lines == ("5.7.1 message refused",)
    assert error.command == "end of data"


# -- a stage's timeout bounds its whole reply (RFC 5321 4.5.3.2) --------------------------


def test_a_greeting_trickled_a_byte_at_a_time_times_out_within_the_stage(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    """One byte every 0.4 s keeps each read short of a 2 s timeout; the reply is not."""
    sent = []

    def play(peer: Peer) -> None:
        peer.sock.settimeout(0.4)
        for byte in GREETING:  # 22 octets: 8.8 s at this pace
            try:
                peer.send(bytes([byte]))
            except OSError:
                return  # the client gave up and closed
            sent.append(byte)
            try:
                if peer.sock.recv(65536) == b"":
                    return  # the client closed
            except TimeoutError:
                pass  # the pace: nothing from the client for 0.4 s

    server = hostile(play)
    error = attempt(kind, server.port, timeout=2.0)
    assert isinstance(error, SMTPTimeout), error
    server.finished()
    assert len(sent) < len(GREETING), "the client waited for the whole trickled greeting"
