"""Our five servers after STARTTLS: everything said in clear is forgotten (RFC 3207 4.2).

RFC 3207 4.2: "Upon completion of the TLS handshake, the SMTP protocol is
reset to the initial state (the state in SMTP after a server issues a 220
service ready greeting). The server MUST discard any knowledge obtained from
the client, such as the argument to the EHLO command, which was not obtained
from the TLS negotiation itself." And: "A server MUST NOT return the STARTTLS
extension in response to an EHLO command received after a TLS handshake has
completed."

A raw client speaks to each server and checks every reply byte for byte.
How ``ServerConfig`` says "AUTH only inside TLS": ``auth_mechanisms`` with
``auth_before_tls=False`` (the default); ``auth_before_tls=True`` offers it in
clear too.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Final

from smtpcore import ServerConfig

from .conftest import Memory, Raw, Running

Start = Callable[..., Running]

HELLO: Final = b"EHLO client.example\r\n"
MAIL: Final = b"MAIL FROM:<a@example.org>\r\n"
RCPT: Final = b"RCPT TO:<b@example.net>\r\n"
#: base64 of "\0alice\0wonderland": the Memory handler's user (RFC 4616).
AUTH: Final = b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"

AUTH_AFTER_TLS: Final = ServerConfig(hostname="mx.example", auth_mechanisms=("PLAIN",))
AUTH_IN_CLEAR: Final = ServerConfig(
    hostname="mx.example", auth_mechanisms=("PLAIN",), auth_before_tls=True
)

EXTENSIONS: Final = b"250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
EHLO_CLEAR: Final = b"250-mx.example\r\n" + EXTENSIONS + b"250 STARTTLS\r\n"
EHLO_CLEAR_WITH_AUTH: Final = (
    b"250-mx.example\r\n" + EXTENSIONS + b"250-STARTTLS\r\n250 AUTH PLAIN\r\n"
)
EHLO_TLS: Final = b"250-mx.example\r\n" + EXTENSIONS + b"250 AUTH PLAIN\r\n"  # no STARTTLS

NO_HELLO: Final = b"503 5.5.1 Bad sequence of commands: send EHLO or HELO first\r\n"
GO_AHEAD: Final = b"220 2.0.0 Ready to start TLS\r\n"
AUTH_OK: Final = b"235 2.7.0 Authentication successful\r\n"


def say(raw: Raw, line: bytes) -> bytes:
    """Send one command line; its whole reply."""
    raw.send(line)
    return raw.reply()


def connect(start: Start, config: ServerConfig, server_tls: ssl.SSLContext) -> tuple[Memory, Raw]:
    handler = Memory()
    server = start(handler, config=config, tls_context=server_tls)
    raw = Raw(server.port, timeout=3.0)
    assert raw.reply() == b"220 mx.example ESMTP\r\n"
    return handler, raw


def upgrade(raw: Raw, client_tls: ssl.SSLContext) -> None:
    assert say(raw, b"STARTTLS\r\n") == GO_AHEAD
    raw.starttls(client_tls)


def deliver(raw: Raw) -> None:
    """One transaction inside the session; every reply checked."""
    assert say(raw, MAIL) == b"250 2.1.0 Sender OK\r\n"
    assert say(raw, RCPT) == b"250 2.1.5 Recipient OK\r\n"
    assert say(raw, b"DATA\r\n") == b"354 End data with <CR><LF>.<CR><LF>\r\n"
    assert say(raw, b"Subject: x\r\n\r\nhi\r\n.\r\n").startswith(b"250 2.0.0 OK queued as ")


def leave(raw: Raw) -> None:
    assert say(raw, b"QUIT\r\n") == b"221 2.0.0 mx.example closing connection\r\n"
    raw.close()


def test_after_the_handshake_the_session_starts_again_from_the_greeting(
    start_server: Start, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    handler, raw = connect(start_server, AUTH_AFTER_TLS, server_tls)
    assert say(raw, HELLO) == EHLO_CLEAR
    assert say(raw, MAIL) == b"250 2.1.0 Sender OK\r\n"
    assert say(raw, RCPT) == b"250 2.1.5 Recipient OK\r\n"
    # Our servers take STARTTLS only outside a transaction, so the open one
    # is never carried into TLS: the client must RSET first.
    assert say(raw, b"STARTTLS\r\n") == (
        b"503 5.5.1 Bad sequence of commands: STARTTLS inside a mail transaction\r\n"
    )
    assert say(raw, b"RSET\r\n") == b"250 2.0.0 OK\r\n"
    upgrade(raw, client_tls)
    # The clear EHLO is forgotten: no MAIL, RCPT or DATA before a new one.
    assert say(raw, MAIL) == NO_HELLO
    assert say(raw, RCPT) == NO_HELLO
    assert say(raw, b"DATA\r\n") == NO_HELLO
    assert say(raw, HELLO) == EHLO_TLS  # AUTH now; STARTTLS no more
    assert say(raw, RCPT) == b"503 5.5.1 Bad sequence of commands: need MAIL before RCPT\r\n"
    assert say(raw, b"DATA\r\n") == (
        b"503 5.5.1 Bad sequence of commands: need MAIL and RCPT before DATA\r\n"
    )
    deliver(raw)
    leave(raw)
    [message] = handler.messages
    assert (message.sender, message.recipients) == ("a@example.org", ("b@example.net",))
    assert message.is_tls and message.auth_identity is None
    assert message.hello_domain == "client.example"


def test_auth_is_offered_and_taken_only_inside_tls(
    start_server: Start, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """RFC 4954 6: 538 when a mechanism needs an encrypted channel."""
    handler, raw = connect(start_server, AUTH_AFTER_TLS, server_tls)
    assert say(raw, HELLO) == EHLO_CLEAR  # no AUTH in clear
    assert say(raw, AUTH) == (
        b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    )
    upgrade(raw, client_tls)
    assert say(raw, AUTH) == NO_HELLO  # not even AUTH before the new EHLO
    assert say(raw, HELLO) == EHLO_TLS
    assert say(raw, AUTH) == AUTH_OK
    deliver(raw)
    leave(raw)
    [message] = handler.messages
    assert message.auth_identity == "alice" and message.is_tls
    assert b" with ESMTPSA id " in message.received_header  # RFC 3848: S for TLS, A for AUTH


def test_second_starttls_is_refused_with_503(
    start_server: Start, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """RFC 3207 4.2 forbids the client a second STARTTLS and names no reply code.

    Ours answers 503, "bad sequence of commands" (RFC 5321 4.2.3): before the
    new EHLO like any command but EHLO, HELO, NOOP, RSET, QUIT, VRFY, EXPN or
    HELP; after it "TLS already active". STARTTLS is no longer advertised,
    so 502 would also fit; 454 (TLS not available, temporary) would invite
    a retry that can never succeed. The session goes on after the refusal.
    """
    handler, raw = connect(start_server, AUTH_AFTER_TLS, server_tls)
    assert say(raw, HELLO) == EHLO_CLEAR
    upgrade(raw, client_tls)
    assert say(raw, b"STARTTLS\r\n") == NO_HELLO
    assert say(raw, HELLO) == EHLO_TLS
    assert say(raw, b"STARTTLS\r\n") == b"503 5.5.1 TLS already active\r\n"
    assert say(raw, b"NOOP\r\n") == b"250 2.0.0 OK\r\n"
    deliver(raw)
    leave(raw)
    assert len(handler.messages) == 1


def test_auth_completed_in_clear_is_forgotten_by_the_handshake(
    start_server: Start, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """AUTH in clear (``auth_before_tls=True``), then STARTTLS: the mail inside TLS is anonymous.

    The identity proven in clear may have been a man in the middle's
    session; RFC 3207 4.2 makes the server forget it. A second AUTH is then
    allowed again, where before the handshake it was 503 (RFC 4954 4).
    """
    handler, raw = connect(start_server, AUTH_IN_CLEAR, server_tls)
    assert say(raw, HELLO) == EHLO_CLEAR_WITH_AUTH
    assert say(raw, AUTH) == AUTH_OK
    assert say(raw, AUTH) == b"503 5.5.1 Already authenticated (RFC 4954 4)\r\n"
    upgrade(raw, client_tls)
    assert say(raw, HELLO) == EHLO_TLS
    deliver(raw)
    assert say(raw, AUTH) == AUTH_OK  # forgotten, so allowed again
    deliver(raw)
    leave(raw)
    anonymous, authenticated = handler.messages
    assert anonymous.is_tls and anonymous.auth_identity is None
    assert b" with ESMTPS id " in anonymous.received_header
    assert authenticated.is_tls and authenticated.auth_identity == "alice"
    assert b" with ESMTPSA id " in authenticated.received_header
