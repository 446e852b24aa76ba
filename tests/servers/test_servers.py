"""The four servers (five runs) driven by real clients: smtplib, aiosmtplib, swaks.

Each stored message is compared byte for byte with what the client sent,
after the Received header the server put in front.
"""

from __future__ import annotations

import asyncio
import contextvars
import mailbox
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from smtpcore import Limits, Reply, ServerConfig
from transports.mailboxes import MaildirHandler, MboxHandler, MemoryHandler

from .conftest import PASSWORD, USER, Memory, Raw, Starter, wait_for

CONTENT = b"From: a@x.example\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"
RECEIVED = re.compile(
    rb"Received: from (\S+) \(\[127\.0\.0\.1\]\)\r\n"
    rb"\tby (\S+) with ([A-Z0-9]+) id ([0-9A-F]{16});?\r\n"
    rb"\t(for <[^>]+>; )?[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n"
)


def received_protocol(content: bytes) -> bytes:
    match = RECEIVED.match(content)
    assert match is not None, content[:300]
    return match.group(3)


def test_smtplib_plain_message_is_stored_byte_for_byte(start: Starter) -> None:
    handler = Memory()
    server = start(handler, hostname="mx.test")
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        refused = client.sendmail("a@x.example", ["b@y.example", "c@y.example"], CONTENT)
    assert refused == {}
    assert wait_for(lambda: len(handler.messages) == 1)
    envelope = handler.messages[0]
    assert envelope.sender == "a@x.example"
    assert envelope.recipients == ("b@y.example", "c@y.example")
    assert envelope.original_content == CONTENT
    assert envelope.content == envelope.received_header + CONTENT
    assert received_protocol(envelope.content) == b"ESMTP"
    assert b"by mx.test" in envelope.received_header
    assert b"for <" not in envelope.received_header  # two recipients: none named
    assert envelope.peer.host == "127.0.0.1" and not envelope.is_tls


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtplib_starttls_then_auth(
    start: Starter, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, mechanism: str
) -> None:
    handler = Memory()
    server = start(handler, tls_context=server_tls)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        assert not client.has_extn("auth")  # RFC 4954 4: no AUTH before TLS by default
        client.starttls(context=client_tls)
        client.ehlo()
        assert client.has_extn("auth")
        client.user, client.password = USER, PASSWORD
        method = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login}.get(
            mechanism, client.auth_cram_md5
        )
        code, _ = client.auth(mechanism, method)
        assert code == 235
        client.sendmail("a@x.example", ["b@y.example"], CONTENT)
    assert wait_for(lambda: len(handler.messages) == 1)
    envelope = handler.messages[0]
    assert envelope.original_content == CONTENT
    assert envelope.is_tls and envelope.tls is not None and envelope.tls.version
    assert envelope.auth_identity == USER
    assert received_protocol(envelope.content) == b"ESMTPSA"
    assert b"\tfor <b@y.example>; " in envelope.received_header


def test_wrong_password_is_535_and_session_goes_on(
    start: Starter, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    server = start(Memory(), tls_context=server_tls)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.starttls(context=client_tls)
        client.ehlo()
        client.user, client.password = USER, "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.auth("PLAIN", client.auth_plain)
        assert failed.value.args == (535, b"5.7.8 Authentication credentials invalid")
        assert client.noop()[0] == 250


def test_third_failed_login_is_421_and_close(
    start: Starter, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """smtplib's login() tries CRAM-MD5, PLAIN, LOGIN: Limits.auth_failures (3) ends it."""
    server = start(Memory(), tls_context=server_tls)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.starttls(context=client_tls)
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login(USER, "wrong")
        assert failed.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_send_message_with_bcc_reaches_every_recipient(start: Starter) -> None:
    handler = Memory()
    server = start(handler)
    message = EmailMessage()
    message["From"] = "a@x.example"
    message["To"] = "b@y.example"
    message["Bcc"] = "hidden@z.example"
    message["Subject"] = "bcc"
    message.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.send_message(message)
    assert wait_for(lambda: len(handler.messages) == 1)
    envelope = handler.messages[0]
    assert envelope.recipients == ("b@y.example", "hidden@z.example")
    del message["Bcc"]
    assert envelope.original_content == message.as_bytes(
        policy=message.policy.clone(linesep="\r\n")
    )
    assert b"hidden" not in envelope.content


def test_smtputf8_addresses_and_content(start: Starter) -> None:
    handler = Memory()
    server = start(handler)
    content = "From: dörte@exämple.org\r\nSubject: grüße\r\n\r\nnaïve\r\n".encode()
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail(
            "dörte@exämple.org", ["jürgen@exämple.org"], content, mail_options=["SMTPUTF8"]
        )
    assert wait_for(lambda: len(handler.messages) == 1)
    envelope = handler.messages[0]
    assert envelope.sender == "dörte@exämple.org"
    assert envelope.recipients == ("jürgen@exämple.org",)
    assert envelope.original_content == content
    assert received_protocol(envelope.content) == b"UTF8SMTP"


def test_refused_recipient_and_hook_failure(start: Starter) -> None:
    handler = Memory()
    handler.fail_rcpt.add("boom@y.example")
    server = start(handler)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        refused = client.sendmail(
            "a@x.example", ["nobody@y.example", "boom@y.example", "b@y.example"], CONTENT
        )
    assert refused == {
        "nobody@y.example": (550, b"5.1.1 No such user"),
        "boom@y.example": (451, b"4.3.0 Requested action aborted: local error"),
    }
    assert wait_for(lambda: len(handler.messages) == 1)
    assert handler.messages[0].recipients == ("b@y.example",)


class AsyncHooks:
    """Hooks written as coroutines: every server awaits them (sync: in a fresh loop)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def on_mail(self, sender: str, params: object) -> Reply | None:
        if sender == "spam@x.example":
            return Reply(550, ("5.7.1 Go away",))
        return None

    async def on_message(self, envelope: object) -> Reply:
        self.messages.append(envelope.original_content)  # type: ignore[attr-defined]
        return Reply(250, ("2.0.0 Stored by a coroutine",))


def test_async_hooks_are_awaited(start: Starter) -> None:
    handler = AsyncHooks()
    server = start(handler)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("spam@x.example", ["b@y.example"], CONTENT)
        client.rset()
        client.mail("a@x.example")
        client.rcpt("b@y.example")
        assert client.data(CONTENT) == (250, b"2.0.0 Stored by a coroutine")
    assert handler.messages == [CONTENT]


_SENDER_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("sender_seen")


class TaskHooks:
    """Async hooks that need a task (a timeout) and share the session's context variables."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    async def on_mail(self, sender: str, params: object) -> None:
        _SENDER_SEEN.set(sender)

    async def on_rcpt(self, recipient: str, params: object) -> None:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(5):  # needs the current task
                await asyncio.sleep(0)
        self.seen.append((_SENDER_SEEN.get("?"), asyncio.current_task() is not None))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout; tasks given a context")
@pytest.mark.parametrize("kind", ["asyncio", "anyio-asyncio"])
def test_an_async_hook_runs_in_a_task_and_in_the_sessions_context(
    start: Starter, raw: Callable[[int], Raw]
) -> None:
    handler = TaskHooks()
    client = raw(start(handler, hook_threads=0).port)
    assert client.reply().startswith(b"220 ")
    client.send(b"HELO c.example\r\n")
    assert client.reply().startswith(b"250 ")
    client.send(b"MAIL FROM:<a@x.example>\r\n")
    assert client.reply() == b"250 2.1.0 Sender OK\r\n"
    client.send(b"RCPT TO:<b@y.example>\r\n")
    assert client.reply() == b"250 2.1.5 Recipient OK\r\n"
    assert handler.seen == [("a@x.example", True)]


def test_aiosmtplib_plain_starttls_and_auth(
    start: Starter, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    handler = Memory()
    server = start(handler, tls_context=server_tls)

    async def send() -> None:
        await aiosmtplib.send(
            CONTENT,
            sender="a@x.example",
            recipients=["b@y.example"],
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
        )
        await aiosmtplib.send(
            CONTENT,
            sender="a@x.example",
            recipients=["c@y.example"],
            hostname="127.0.0.1",
            port=server.port,
            start_tls=True,
            tls_context=client_tls,
            username=USER,
            password=PASSWORD,
        )

    asyncio.run(send())
    assert wait_for(lambda: len(handler.messages) == 2)
    plain, secure = handler.messages
    assert plain.original_content == CONTENT == secure.original_content
    assert not plain.is_tls and plain.auth_identity is None
    assert secure.is_tls and secure.auth_identity == USER


def test_maildir_handler_stores_after_the_rename(start: Starter, tmp_path: Path) -> None:
    server = start(MaildirHandler(tmp_path / "Maildir"))
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("a@x.example", ["b@y.example"], CONTENT)
    box = mailbox.Maildir(tmp_path / "Maildir", create=False)
    keys = box.keys()
    assert len(keys) == 1
    stored = box.get_bytes(keys[0])
    assert stored.endswith(CONTENT.replace(b"\r\n", b"\n"))
    assert stored.startswith(b"Received: from ")
    assert os.listdir(tmp_path / "Maildir" / "tmp") == []


def test_maildir_failure_is_451_never_a_loss(start: Starter, tmp_path: Path) -> None:
    handler = MaildirHandler(tmp_path / "Maildir")
    shutil.rmtree(tmp_path / "Maildir" / "tmp")  # the store now fails
    server = start(handler)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        client.mail("a@x.example")
        client.rcpt("b@y.example")
        code, text = client.data(CONTENT)
    assert (code, text) == (451, b"4.3.0 Requested action aborted: local error")


def test_mbox_handler_appends_messages(start: Starter, tmp_path: Path) -> None:
    server = start(MboxHandler(tmp_path / "mbox"))
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("a@x.example", ["b@y.example"], CONTENT)
        client.sendmail("", ["b@y.example"], CONTENT)
    data = (tmp_path / "mbox").read_bytes()
    assert data.startswith(b"From a@x.example ")
    assert data.count(b"\nFrom MAILER-DAEMON ") == 1
    box = mailbox.mbox(tmp_path / "mbox")
    stored = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(stored) == 2
    assert all(message.endswith(CONTENT.replace(b"\r\n", b"\n")) for message in stored)


def test_memory_handler_keeps_envelopes(start: Starter) -> None:
    handler = MemoryHandler()
    server = start(handler, config=ServerConfig(chunking=True, size=1000))
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("a@x.example", ["b@y.example"], CONTENT)
    assert wait_for(lambda: len(handler.messages) == 1)
    assert handler.messages[0].original_content == CONTENT


def test_max_connections_turns_the_next_one_away(start: Starter) -> None:
    server = start(Memory(), max_connections=1, hostname="mx.test")
    with smtplib.SMTP("127.0.0.1", server.port) as first:
        assert first.noop()[0] == 250
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", server.port)
        assert refused.value.smtp_code == 421
        assert b"Too many connections" in refused.value.smtp_error
        assert first.noop()[0] == 250


def test_many_connections_at_once(start: Starter) -> None:
    handler = Memory()
    server = start(handler)
    clients = [smtplib.SMTP("127.0.0.1", server.port) for _ in range(8)]
    for number, client in enumerate(clients):
        client.sendmail("a@x.example", [f"r{number}@y.example"], CONTENT)
    for client in clients:
        client.quit()
    assert wait_for(lambda: len(handler.messages) == 8)
    assert sorted(m.recipients[0] for m in handler.messages) == sorted(
        f"r{n}@y.example" for n in range(8)
    )


SWAKS = shutil.which("swaks")


def _swaks(*args: str) -> str:
    if SWAKS is None:
        if os.environ.get("CI"):
            pytest.fail("swaks is not installed, and CI is set")
        pytest.skip("swaks is not installed")
    done = subprocess.run(
        [SWAKS, "--silent", "1", *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("extra", [[], ["--pipeline"], ["--tls"], ["--tls", "--auth", "PLAIN"]])
def test_swaks(
    start: Starter, server_tls: ssl.SSLContext, extra: list[str], tmp_path: Path
) -> None:
    handler = Memory()
    server = start(handler, tls_context=server_tls)
    body = tmp_path / "body"
    body.write_bytes(CONTENT.removesuffix(b"\r\n"))  # swaks adds the last CRLF itself
    args = ["--server", "127.0.0.1", "--port", str(server.port)]
    args += ["--from", "a@x.example", "--to", "b@y.example", "--data", str(body)]
    if "--auth" in extra:
        args += ["--auth-user", USER, "--auth-password", PASSWORD]
    _swaks(*args, *extra)
    assert wait_for(lambda: len(handler.messages) == 1)
    envelope = handler.messages[0]
    assert envelope.original_content == CONTENT
    assert envelope.is_tls == ("--tls" in extra)
    assert envelope.auth_identity == (USER if "--auth" in extra else None)


def test_graceful_shutdown_finishes_the_message_in_flight(start: Starter) -> None:
    from .conftest import Raw

    handler = Memory()
    server = start(handler, grace=3.0, hostname="mx.test")
    busy = Raw(server.port)
    idle = Raw(server.port)
    try:
        for client in (busy, idle):
            client.reply()
            client.send(b"EHLO c.example\r\n")
            client.reply()
        busy.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
        assert [busy.reply() for _ in range(3)][2].startswith(b"354")
        busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        import threading

        stopper = threading.Thread(target=server.close)
        stopper.start()
        # The idle session is told at once; the busy one may finish its message.
        assert idle.reply() == b"421 mx.test 4.3.2 Service shutting down, closing connection\r\n"
        late = Raw(server.port)
        assert late.reply() == b"421 mx.test 4.3.2 Service shutting down, try again later\r\n"
        late.close()
        busy.send(b"second half\r\n.\r\n")
        assert busy.reply().startswith(b"250 2.0.0 OK queued as ")
        assert busy.reply() == b"421 mx.test 4.3.2 Service shutting down, closing connection\r\n"
        stopper.join(10)
        assert [m.original_content for m in handler.messages] == [
            b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"
        ]
    finally:
        busy.close()
        idle.close()


def test_limits_reach_the_server(start: Starter) -> None:
    server = start(Memory(), limits=Limits(recipients=2))
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        client.mail("a@x.example")
        assert client.rcpt("b@y.example")[0] == 250
        assert client.rcpt("c@y.example")[0] == 250
        assert client.rcpt("d@y.example") == (452, b"4.5.3 Too many recipients (limit 2)")


def test_implicit_tls(
    start: Starter, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    handler = Memory()
    server = start(handler, tls_context=server_tls, implicit_tls=True)
    with smtplib.SMTP_SSL("127.0.0.1", server.port, context=client_tls) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login(USER, PASSWORD)
        client.sendmail("a@x.example", ["b@y.example"], CONTENT)
    assert wait_for(lambda: len(handler.messages) == 1)
    envelope = handler.messages[0]
    assert envelope.original_content == CONTENT
    assert envelope.is_tls and envelope.tls is not None and envelope.tls.version
    assert received_protocol(envelope.content) == b"ESMTPSA"


def _addresses(count: int) -> list[str]:
    return [f"r{n}@y.example" for n in range(count)]


@pytest.mark.parametrize("count", [150, 5000])
def test_smtplib_many_recipients_the_message_reaches_the_accepted_ones(
    start: Starter, count: int
) -> None:
    """RFC 5321 4.5.3.1.10: past the limit (1000, as Postfix) the client gets 452
    and goes on; the message is stored for the recipients that were accepted."""
    handler = Memory()
    server = start(handler)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        refused = client.sendmail("a@x.example", _addresses(count), CONTENT)
    accepted = min(count, 1000)
    assert len(refused) == count - accepted
    assert all(reply[0] == 452 for reply in refused.values())
    assert wait_for(lambda: len(handler.messages) == 1)
    assert handler.messages[0].recipients == tuple(_addresses(accepted))
    assert handler.messages[0].original_content == CONTENT


@pytest.mark.parametrize("count", [150, 5000])
def test_our_clients_many_recipients_the_message_reaches_the_accepted_ones(
    start: Starter, count: int
) -> None:
    from transports.asyncio import SMTPClient as AsyncClient
    from transports.sync import SMTPClient

    handler = Memory()
    server = start(handler)
    accepted = min(count, 1000)
    with SMTPClient("127.0.0.1", server.port, tls="none", timeout=30) as client:
        result = client.sendmail("a@x.example", _addresses(count), CONTENT)
    assert len(result.accepted) == accepted and len(result.refused) == count - accepted
    assert all(reply.code == 452 for reply in result.refused.values())

    async def send() -> int:
        async with AsyncClient("127.0.0.1", server.port, tls="none", timeout=30) as client:
            result = await client.sendmail("a@x.example", _addresses(count), CONTENT)
        return len(result.accepted)

    assert asyncio.run(send()) == accepted
    assert wait_for(lambda: len(handler.messages) == 2)
    for message in handler.messages:
        assert message.recipients == tuple(_addresses(accepted))
        assert message.original_content == CONTENT
