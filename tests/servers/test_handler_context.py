"""Hooks that know their session: a ``Handler``'s hooks get a ``SessionContext`` first.

Over real sockets on every server: a relay policy decided at RCPT from the
peer, the authenticated identity and the sender; two messages streamed at
once and told apart in ``on_data_chunk``; a misspelled hook warned about
when the server starts.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from smtpcore import Reply
from smtpcore.session import Handler, ServerEnvelope, SessionContext
from transports.mailboxes import MaildirHandler
from transports.serving import UsersHandler

from .conftest import PASSWORD, USER, Raw, Starter, wait_for

DOMAINS = frozenset({"example.org"})
RELAY_DENIED = b"550 5.7.1 Relaying denied\r\n"


class Policy(Handler):
    """Only authenticated clients, or local ones sending as our domains, may relay."""

    def __init__(self, networks: tuple[str, ...] = ()) -> None:
        self.networks = [ipaddress.ip_network(n) for n in networks]
        self.seen: list[SessionContext] = []
        self.messages: list[tuple[SessionContext, ServerEnvelope]] = []

    def verdict(self, session: SessionContext, recipient: str) -> Reply | None:
        self.seen.append(session)
        if recipient.rpartition("@")[2] in DOMAINS or session.is_authenticated:
            return None
        local = any(ipaddress.ip_address(session.peer.host) in n for n in self.networks)
        if local and (session.sender or "").rpartition("@")[2] in DOMAINS:
            return None
        return Reply(550, ("5.7.1 Relaying denied",))

    def on_message(self, session: SessionContext, envelope: ServerEnvelope) -> None:
        self.messages.append((session, envelope))

    def authenticate(self, session: SessionContext, username: str, password: str) -> bool:
        return session.is_tls and (username, password) == (USER, PASSWORD)


class RelayPolicy(Policy):
    """The policy with a plain ``on_rcpt``."""

    def on_rcpt(
        self, session: SessionContext, recipient: str, params: Mapping[str, str | None]
    ) -> Reply | None:
        return self.verdict(session, recipient)


class AsyncRelayPolicy(Policy):
    """The policy with an ``async`` ``on_rcpt``: mypy takes both against ``Handler``."""

    async def on_rcpt(
        self, session: SessionContext, recipient: str, params: Mapping[str, str | None]
    ) -> Reply | None:
        return self.verdict(session, recipient)


def _talk(client: Raw, *lines: bytes) -> list[bytes]:
    replies = []
    for line in lines:
        client.send(line + b"\r\n")
        replies.append(client.reply())
    return replies


def _greet(client: Raw) -> None:
    assert client.reply().startswith(b"220 ")
    assert _talk(client, b"EHLO client.example")[0].startswith(b"250")


@pytest.mark.parametrize("policy", [RelayPolicy, AsyncRelayPolicy])
def test_relay_is_refused_at_rcpt_unless_authenticated(
    start: Starter,
    raw: Callable[[int], Raw],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    policy: type[Policy],
) -> None:
    handler = policy()
    server = start(handler, tls_context=server_tls)
    client = raw(server.port)
    _greet(client)
    replies = _talk(
        client,
        b"MAIL FROM:<mallory@spam.example>",
        b"RCPT TO:<victim@remote.example>",
        b"RCPT TO:<postmaster@example.org>",
        b"RSET",
    )
    assert replies == [
        b"250 2.1.0 Sender OK\r\n",
        RELAY_DENIED,
        b"250 2.1.5 Recipient OK\r\n",
        b"250 2.0.0 OK\r\n",
    ]
    assert _talk(client, b"STARTTLS") == [b"220 2.0.0 Ready to start TLS\r\n"]
    client.starttls(client_tls)
    assert _talk(client, b"EHLO client.example")[0].startswith(b"250")
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    replies = _talk(
        client,
        b"AUTH PLAIN " + token,
        b"MAIL FROM:<alice@example.org>",
        b"RCPT TO:<friend@remote.example>",
        b"DATA",
    )
    assert replies == [
        b"235 2.7.0 Authentication successful\r\n",
        b"250 2.1.0 Sender OK\r\n",
        b"250 2.1.5 Recipient OK\r\n",
        b"354 End data with <CR><LF>.<CR><LF>\r\n",
    ]
    client.send(b"Subject: hi\r\n\r\nhello\r\n.\r\n")
    assert client.reply().startswith(b"250 2.0.0 OK queued as ")
    refused, local, relayed = handler.seen
    assert (refused.sender, refused.auth_identity, refused.tls) == (
        "mallory@spam.example",
        None,
        None,
    )
    assert refused.peer.host == "127.0.0.1"
    assert refused.hello_domain == "client.example"
    assert refused.recipients == () and local.recipients == ()
    assert refused.message_id is None
    assert (relayed.sender, relayed.auth_identity) == ("alice@example.org", USER)
    assert relayed.tls is not None and relayed.tls.version.startswith("TLS")
    assert len({refused.session_id, local.session_id, relayed.session_id}) == 1
    assert wait_for(lambda: len(handler.messages) == 1)
    session, envelope = handler.messages[0]
    assert session.message_id == envelope.message_id
    assert session.session_id == envelope.session_id
    assert session.recipients == ("friend@remote.example",)


def test_local_clients_relay_only_as_our_domains(start: Starter, raw: Callable[[int], Raw]) -> None:
    server = start(RelayPolicy(networks=("127.0.0.0/8",)))
    client = raw(server.port)
    _greet(client)
    replies = _talk(
        client,
        b"MAIL FROM:<bob@example.org>",
        b"RCPT TO:<friend@remote.example>",
        b"RSET",
        b"MAIL FROM:<forged@elsewhere.example>",
        b"RCPT TO:<friend@remote.example>",
    )
    assert replies == [
        b"250 2.1.0 Sender OK\r\n",
        b"250 2.1.5 Recipient OK\r\n",
        b"250 2.0.0 OK\r\n",
        b"250 2.1.0 Sender OK\r\n",
        RELAY_DENIED,
    ]


class Streams(Handler):
    """Keeps each message's chunks by its id; holds the first chunks until both messages began."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chunks: dict[str, list[bytes]] = {}
        self.sessions: dict[str, str] = {}  # message id -> session id
        self.ended: dict[str, int] = {}  # message id -> envelope size

    def on_data_chunk(self, session: SessionContext, data: bytes) -> None:
        assert session.message_id is not None
        with self.lock:
            self.chunks.setdefault(session.message_id, []).append(data)
            self.sessions[session.message_id] = session.session_id

    def on_message(self, session: SessionContext, envelope: ServerEnvelope) -> None:
        assert session.message_id == envelope.message_id
        with self.lock:
            self.ended[envelope.message_id] = envelope.size

    def content(self, message_id: str) -> bytes:
        with self.lock:
            return b"".join(self.chunks[message_id])


def test_two_messages_streamed_at_once_are_told_apart(
    start: Starter, raw: Callable[[int], Raw]
) -> None:
    handler = Streams()
    server = start(handler)
    clients = [raw(server.port), raw(server.port)]
    for number, client in enumerate(clients):
        _greet(client)
        replies = _talk(
            client,
            f"MAIL FROM:<sender{number}@example.org>".encode(),
            f"RCPT TO:<rcpt{number}@example.org>".encode(),
            b"DATA",
        )
        assert replies[-1] == b"354 End data with <CR><LF>.<CR><LF>\r\n"
    # Both messages are open; their content arrives interleaved.
    for number, client in enumerate(clients):
        client.send(f"Subject: {number}\r\n\r\n".encode())
    assert wait_for(lambda: sum(len(c) for c in handler.chunks.values()) >= 4)
    for number, client in enumerate(clients):
        client.send(f"body of message {number}\r\n".encode())
    for client in clients:
        client.send(b".\r\n")
    ids = []
    for client in clients:
        reply = client.reply()
        assert reply.startswith(b"250 2.0.0 OK queued as ")
        ids.append(reply.split()[-1].decode())
    assert ids[0] != ids[1]
    assert wait_for(lambda: len(handler.ended) == 2)
    for number, message_id in enumerate(ids):
        content = handler.content(message_id)
        assert content.startswith(b"Received: from client.example")
        assert f"\tfor <rcpt{number}@example.org>; ".encode() in content
        assert content.endswith(f"Subject: {number}\r\n\r\nbody of message {number}\r\n".encode())
    assert handler.sessions[ids[0]] != handler.sessions[ids[1]]


class Misspelled:
    """``on_rcpt_to`` is no hook: without the warning it would let every recipient through."""

    def on_rcpt_to(self, recipient: str, params: object) -> Reply:
        return Reply(550, ("5.1.1 No",))

    def on_message(self, envelope: ServerEnvelope) -> None:
        del envelope


def test_an_unknown_on_attribute_is_warned_about_at_start(
    start: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="smtpcore.server")
    start(Misspelled())
    warnings = [r.getMessage() for r in caplog.records if r.name == "smtpcore.server"]
    assert len(warnings) == 1
    assert "Misspelled has a method on_rcpt_to, which is no hook" in warnings[0]


def test_known_hooks_are_not_warned_about(start: Starter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="smtpcore.server")
    start(RelayPolicy())
    assert not [r for r in caplog.records if r.name == "smtpcore.server"]


def test_the_users_table_handler_authenticates_and_stores(
    start: Starter,
    raw: Callable[[int], Raw],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    handler = UsersHandler(MaildirHandler(tmp_path / "mail"), {USER: PASSWORD})
    server = start(handler, tls_context=server_tls)
    client = raw(server.port)
    _greet(client)
    assert _talk(client, b"STARTTLS") == [b"220 2.0.0 Ready to start TLS\r\n"]
    client.starttls(client_tls)
    assert _talk(client, b"EHLO client.example")[0].startswith(b"250")
    wrong = base64.b64encode(f"\0{USER}\0guess".encode())
    right = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    replies = _talk(client, b"AUTH PLAIN " + wrong, b"AUTH PLAIN " + right)
    assert replies == [
        b"535 5.7.8 Authentication credentials invalid\r\n",
        b"235 2.7.0 Authentication successful\r\n",
    ]
    _talk(client, b"MAIL FROM:<alice@example.org>", b"RCPT TO:<bob@example.org>", b"DATA")
    client.send(b"Subject: stored\r\n\r\nhello\r\n.\r\n")
    assert client.reply().startswith(b"250 2.0.0 OK queued as ")
    stored = list((tmp_path / "mail" / "new").iterdir())
    assert len(stored) == 1
    assert stored[0].read_bytes().endswith(b"Subject: stored\n\nhello\n")
