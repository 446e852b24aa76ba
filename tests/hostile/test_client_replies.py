"""Replies that do not fit the conversation, from a server on a real socket, to every client.

Each test plays the server's side and checks what the caller learns (the
server's own refusal when it gave one, a protocol error when it broke SMTP)
and what went on the wire (no content after a reply that did not open the
data phase).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpcore import RemoteProtocolError

from .conftest import Hostile, Peer
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
