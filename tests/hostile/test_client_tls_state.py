"""After STARTTLS our clients forget what the clear channel said (RFC 3207 4.2).

RFC 3207 4.2: "the client MUST discard any knowledge obtained from the
server, such as the list of SMTP service extensions, which was not obtained
from the TLS negotiation itself. The client SHOULD send an EHLO command as
the first command after a successful TLS negotiation." A man in the middle
can rewrite the clear EHLO reply, so nothing in it may steer what the client
does inside TLS: neither AUTH, PIPELINING, CHUNKING nor a SIZE limit.

A scripted server offers one set of extensions before TLS and another after;
``peer.clear`` and ``peer.encrypted`` hold what the client sent on each side.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

from smtpcore import Extensions
from smtpcore.session import NotSupported, PermanentError, SendResult

from .conftest import TIMEOUT, Hostile, Peer, Smtp, run

GREETING: Final = b"220 mx.example ESMTP\r\n"
HELLO: Final = b"EHLO client.example\r\n"
CLEAR: Final = HELLO + b"STARTTLS\r\n"  # all a client may say before the handshake here
RCPT: Final = b"RCPT TO:<b@example.net>\r\n"
CONTENT: Final = b"Subject: tls state\r\n\r\n" + b"x" * 60 + b"\r\n"  # 84 octets: over SIZE 10
RICH_CLEAR: Final = (
    b"250-mx.example\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n250-SIZE 10\r\n"
    b"250-PIPELINING\r\n250 CHUNKING\r\n"
)
BARE_CLEAR: Final = b"250-mx.example\r\n250 STARTTLS\r\n"
NOTHING: Final = b"250 mx.example\r\n"
RICH_TLS: Final = (
    b"250-mx.example\r\n250-AUTH PLAIN\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
)


@dataclass
class Seen:
    """What the scripted server noticed inside TLS."""

    alone: dict[bytes, bool] = field(default_factory=dict)  # command -> nothing came behind it
    quiet_after_ehlo: bool | None = None
    payload: bytes = b""


def handshake(peer: Peer, clear_ehlo: bytes) -> None:
    """Greeting, the clear EHLO reply, STARTTLS and the handshake."""
    peer.send(GREETING)
    peer.line()
    peer.send(clear_ehlo)
    if peer.line() != b"STARTTLS\r\n":
        return
    peer.send(b"220 2.0.0 go ahead\r\n")
    peer.starttls()


def finish(peer: Peer) -> None:
    """Answer QUIT (and say 502 to anything else) until the client leaves."""
    while line := peer.line():
        if line == b"QUIT\r\n":
            peer.send(b"221 2.0.0 bye\r\n")
            return
        peer.send(b"502 5.5.1 not in this script\r\n")


def attempt(
    kind: str, port: int, client_tls: ssl.SSLContext, *, size: int | None = None, **options: Any
) -> tuple[SendResult | BaseException, Extensions | None]:
    """Connect with STARTTLS required, send ``CONTENT`` (``size`` given or not).

    The outcome (result or error), and the extensions in force after ``connect``.
    """
    options.setdefault("timeout", TIMEOUT)

    async def body() -> tuple[SendResult | BaseException, Extensions | None]:
        extensions = None
        try:
            async with Smtp(
                kind,
                "127.0.0.1",
                port,
                tls="starttls",
                ssl_context=client_tls,
                local_hostname="client.example",
                **options,
            ) as smtp:
                extensions = smtp.extensions
                result = await smtp.sendmail("a@example.org", ["b@example.net"], CONTENT, size=size)
                return result, extensions
        except Exception as exc:
            return exc, extensions

    return run(kind, body)


# -- (a) offered only before TLS: nothing of it is used after -------------------------


def test_auth_offered_only_in_clear_is_not_attempted_inside_tls(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext
) -> None:
    def play(peer: Peer) -> None:
        handshake(peer, RICH_CLEAR)
        peer.line()  # EHLO
        peer.send(NOTHING)
        finish(peer)

    server = hostile(play)
    outcome, _ = attempt(kind, server.port, client_tls, username="u", password="p")
    peer = server.finished()
    assert isinstance(outcome, NotSupported), outcome
    assert "no AUTH mechanism shared with the server (it offers: none)" in str(outcome)
    assert peer.clear == CLEAR
    assert peer.encrypted == HELLO + b"QUIT\r\n"  # EHLO first; no AUTH, no MAIL


def test_pipelining_chunking_and_size_offered_only_in_clear_are_not_used_inside_tls(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext
) -> None:
    """MAIL, RCPT and DATA each go alone, DATA rather than BDAT, and no SIZE limit of 10."""
    seen = Seen()

    def play(peer: Peer) -> None:
        handshake(peer, RICH_CLEAR)
        peer.line()  # EHLO
        peer.send(NOTHING)
        for command, reply in (
            (b"MAIL", b"250 2.1.0 ok\r\n"),
            (b"RCPT", b"250 2.1.5 ok\r\n"),
            (b"DATA", b"354 go ahead\r\n"),
        ):
            if not peer.line().startswith(command):
                return
            seen.alone[command] = peer.quiet_for(0.1)
            peer.send(reply)
        seen.payload = peer.take_data()
        peer.send(b"250 2.0.0 queued\r\n")
        finish(peer)

    server = hostile(play)
    outcome, extensions = attempt(kind, server.port, client_tls, chunking=True)
    peer = server.finished()
    assert isinstance(outcome, SendResult), outcome
    assert extensions == Extensions({}, domain="mx.example")  # the clear list is gone
    assert seen.alone == {b"MAIL": True, b"RCPT": True, b"DATA": True}
    assert peer.clear == CLEAR
    assert peer.encrypted == (
        HELLO + b"MAIL FROM:<a@example.org>\r\n" + RCPT + b"DATA\r\n" + CONTENT + b".\r\nQUIT\r\n"
    )
    assert seen.payload == CONTENT + b".\r\n"


# -- (b) offered only after TLS: used after TLS ------------------------------------------


def test_auth_pipelining_chunking_and_size_offered_only_inside_tls_are_used(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext
) -> None:
    def play(peer: Peer) -> None:
        handshake(peer, BARE_CLEAR)
        peer.line()  # EHLO
        peer.send(RICH_TLS)
        if not peer.line().startswith(b"AUTH PLAIN"):
            return
        peer.send(b"235 2.7.0 ok\r\n")
        peer.line()  # MAIL
        peer.line()  # RCPT: read before MAIL is answered, so only a pipelining client gets on
        peer.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
        bdat = peer.line()
        if bdat.startswith(b"BDAT "):
            peer.take_octets(int(bdat.split()[1]))
            peer.send(b"250 2.0.0 queued\r\n")
        finish(peer)

    server = hostile(play)
    outcome, extensions = attempt(
        kind,
        server.port,
        client_tls,
        username="u",
        password="p",
        chunking=True,
        size=len(CONTENT),
    )
    peer = server.finished()
    assert isinstance(outcome, SendResult), outcome
    assert extensions is not None and extensions.auth == {"PLAIN"} and extensions.size == 1000
    assert peer.clear == CLEAR  # no AUTH before TLS
    assert peer.encrypted == (
        HELLO
        + b"AUTH PLAIN AHUAcA==\r\n"  # base64 of "\0u\0p" (RFC 4616)
        + b"MAIL FROM:<a@example.org> SIZE=84\r\n"
        + RCPT
        + b"BDAT 84 LAST\r\n"
        + CONTENT
        + b"QUIT\r\n"
    )


# -- (c) a SIZE limit of the clear channel does not bind inside TLS ---------------------

SIZE_CASES: Final = {
    "dropped": (b"250-mx.example\r\n250 PIPELINING\r\n", b"MAIL FROM:<a@example.org>\r\n"),
    "raised": (
        b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100000\r\n",
        b"MAIL FROM:<a@example.org> SIZE=84\r\n",
    ),
}


@pytest.mark.parametrize(("tls_ehlo", "mail"), SIZE_CASES.values(), ids=SIZE_CASES.keys())
def test_size_limit_announced_in_clear_does_not_limit_inside_tls(
    kind: str,
    hostile: Callable[..., Hostile],
    client_tls: ssl.SSLContext,
    tls_ehlo: bytes,
    mail: bytes,
) -> None:
    """The clear EHLO says SIZE 10; the message of 84 octets (its size given) must still go."""

    def play(peer: Peer) -> None:
        handshake(peer, b"250-mx.example\r\n250-SIZE 10\r\n250 STARTTLS\r\n")
        peer.line()  # EHLO
        peer.send(tls_ehlo)
        if not peer.line().startswith(b"MAIL"):
            return
        peer.line()
        peer.line()
        peer.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
        peer.take_data()
        peer.send(b"250 2.0.0 queued\r\n")
        finish(peer)

    server = hostile(play)
    outcome, _ = attempt(kind, server.port, client_tls, size=len(CONTENT))
    peer = server.finished()
    assert isinstance(outcome, SendResult), outcome
    assert peer.encrypted == HELLO + mail + RCPT + b"DATA\r\n" + CONTENT + b".\r\nQUIT\r\n"


def test_size_limit_announced_inside_tls_does_limit(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext
) -> None:
    """The other way round, so the test above can fail: SIZE 10 after TLS refuses 84 octets."""

    def play(peer: Peer) -> None:
        handshake(peer, b"250-mx.example\r\n250-SIZE 100000\r\n250 STARTTLS\r\n")
        peer.line()  # EHLO
        peer.send(b"250-mx.example\r\n250 SIZE 10\r\n")
        finish(peer)

    server = hostile(play)
    outcome, _ = attempt(kind, server.port, client_tls, size=len(CONTENT))
    peer = server.finished()
    assert isinstance(outcome, NotSupported), outcome
    assert "message of 84 octets exceeds the server's SIZE limit of 10" in str(outcome)
    assert peer.encrypted == HELLO + b"QUIT\r\n"


# -- (d) a 250 from before TLS is never taken for one after -----------------------------


def test_client_waits_for_the_new_ehlo_reply_and_follows_it(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext
) -> None:
    """The clear 250 to EHLO offered PIPELINING; inside TLS the server is slow to answer.

    A client reusing the old reply would go on (MAIL, or AUTH) during the
    silence, and pipeline; ours says nothing until the new 250, then
    sends MAIL alone, as the new reply (no PIPELINING) requires.
    """
    seen = Seen()

    def play(peer: Peer) -> None:
        handshake(peer, RICH_CLEAR)
        peer.line()  # EHLO
        seen.quiet_after_ehlo = peer.quiet_for(0.3)
        peer.send(NOTHING)
        if not peer.line().startswith(b"MAIL"):
            return
        seen.alone[b"MAIL"] = peer.quiet_for(0.1)
        peer.send(b"250 2.1.0 ok\r\n")
        peer.line()
        peer.send(b"250 2.1.5 ok\r\n")
        peer.line()
        peer.send(b"354 go ahead\r\n")
        peer.take_data()
        peer.send(b"250 2.0.0 queued\r\n")
        finish(peer)

    server = hostile(play)
    outcome, _ = attempt(kind, server.port, client_tls)
    peer = server.finished()
    assert isinstance(outcome, SendResult), outcome
    assert seen.quiet_after_ehlo is True
    assert seen.alone == {b"MAIL": True}
    assert peer.encrypted.startswith(HELLO + b"MAIL FROM:<a@example.org>\r\n" + RCPT + b"DATA\r\n")


def test_refused_ehlo_inside_tls_is_not_made_good_by_the_clear_250(
    kind: str, hostile: Callable[..., Hostile], client_tls: ssl.SSLContext
) -> None:
    """EHLO inside TLS gets 554, then HELO too (RFC 5321 3.2 fallback): no mail may follow."""

    def play(peer: Peer) -> None:
        handshake(peer, RICH_CLEAR)
        while line := peer.line():
            if line == b"QUIT\r\n":
                peer.send(b"221 2.0.0 bye\r\n")
                return
            peer.send(b"554 5.7.1 not you\r\n")

    server = hostile(play)
    outcome, _ = attempt(kind, server.port, client_tls)
    peer = server.finished()
    assert isinstance(outcome, PermanentError), outcome
    assert "554" in str(outcome)
    assert peer.encrypted == HELLO + b"HELO client.example\r\nQUIT\r\n"
