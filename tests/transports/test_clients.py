"""The four clients against a scripted loopback server that checks every byte.

Each test runs five times (sync, asyncio, trio, anyio on asyncio and on trio):
the body is one async function driving the ``Smtp`` facade of conftest.py,
and the script is an RFC-style S:/C: conversation the server enforces byte for
byte (see scripted_server.py). Unless a test is about TLS, the clients run
with ``tls="none"``, ``local_hostname="client.example"`` and a 5 s timeout, so
a client that waits where the script does not fails quickly.
"""

from __future__ import annotations

import asyncio
import email.policy
import io
import itertools
import signal
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

import anyio
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpcore import RemoteProtocolError, Reply
from smtpcore.session import (
    DSN,
    AuthenticationError,
    ConnectionLost,
    NotSupported,
    RecipientsRefused,
    SMTPError,
    SMTPTimeout,
    Timeouts,
    TLSError,
    TransientError,
)

from .conftest import Smtp, run, transport_module, wait_until
from .scripted_server import Expect, ScriptedServer, Send, Step, parse_script

GREETING: Final = """
    S: 220 mx.example ESMTP
    C: EHLO client.example
"""

MESSAGE: Final = b"Subject: hi\r\n\r\nline one\r\nline two\r\n"

CLASSIC: Final = """
    S: 220 mx.example ESMTP
    C: EHLO client.example
    S: 250 mx.example
    C: MAIL FROM:<a@x.org>
    S: 250 2.1.0 sender ok
    C: RCPT TO:<b@y.org>
    S: 250 2.1.5 recipient ok
    C: DATA
    S: 354 go ahead
    C: Subject: hi
    C:
    C: line one
    C: line two
    C: .
    S: 250 2.0.0 queued as 1234
    C: QUIT
    S: 221 2.0.0 bye
"""


def client(kind: str, server: ScriptedServer, **options: Any) -> Smtp:
    """A client of ``kind`` for ``server``: no TLS, client.example, 5 s unless overridden."""
    options.setdefault("tls", "none")
    options.setdefault("local_hostname", "client.example")
    options.setdefault("timeout", 5.0)
    return Smtp(kind, "127.0.0.1", server.port, **options)


# -- the classic conversation ----------------------------------------------------------


def test_classic_conversation_moves_exactly_these_bytes(kind: str, scripted: Any) -> None:
    server = scripted(CLASSIC)
    traced: list[tuple[str, bytes]] = []

    async def body() -> Any:
        trace = lambda direction, data: traced.append((direction, bytes(data)))  # noqa: E731
        async with client(kind, server, trace=trace) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)

    result = run(kind, body)
    server.check()
    assert dict(result.accepted) == {"b@y.org": Reply(250, ("2.1.5 recipient ok",))}
    assert dict(result.refused) == {}
    assert result.reply == Reply(250, ("2.0.0 queued as 1234",))
    assert dict(result.data_replies) == {"b@y.org": result.reply}
    # The trace shows every byte, each way, and nothing else.
    assert b"".join(d for w, d in traced if w == ">") == bytes(server.received)
    sent = b"".join(step.data for step in parse_script(CLASSIC) if isinstance(step, Send))
    assert b"".join(d for w, d in traced if w == "<") == sent
    assert {w for w, _ in traced} == {">", "<"}


def test_one_connection_serves_two_messages(kind: str, scripted: Any) -> None:
    server = scripted(
        GREETING
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: first
        C: .
        S: 250 first queued
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<c@y.org>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: second
        C: .
        S: 250 second queued
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> list[Any]:
        async with client(kind, server) as smtp:
            first = await smtp.sendmail("a@x.org", "b@y.org", b"first\r\n")
            second = await smtp.sendmail("a@x.org", ["c@y.org"], b"second\r\n")
            return [first, second]

    first, second = run(kind, body)
    server.check()
    assert first.reply == Reply(250, ("first queued",))
    assert second.reply == Reply(250, ("second queued",))


def test_send_message_takes_the_envelope_from_the_headers(kind: str, scripted: Any) -> None:
    msg = EmailMessage()
    msg["From"] = "a@x.org"
    msg["To"] = "b@y.org"
    msg["Cc"] = "c@y.org"
    msg["Subject"] = "hi"
    msg.set_content("hello\n")
    wire = msg.as_bytes(policy=email.policy.SMTP)
    steps: list[Step] = [
        *parse_script(
            GREETING
            + """
            S: 250 mx.example
            C: MAIL FROM:<a@x.org>
            S: 250 ok
            C: RCPT TO:<b@y.org>
            S: 250 ok
            C: RCPT TO:<c@y.org>
            S: 250 ok
            C: DATA
            S: 354 go ahead
            """
        ),
        Expect(wire + b".\r\n"),
        *parse_script(
            """
            S: 250 queued
            C: QUIT
            S: 221 bye
            """
        ),
    ]
    server = scripted(steps)

    async def body() -> Any:
        async with client(kind, server) as smtp:
            return await smtp.send_message(msg)

    result = run(kind, body)
    server.check()
    assert set(result.accepted) == {"b@y.org", "c@y.org"}


def test_ehlo_refused_falls_back_to_helo(kind: str, scripted: Any) -> None:
    """RFC 5321 3.2: a server that does not know EHLO gets HELO, and no extension."""
    server = scripted(
        GREETING
        + """
        S: 502 5.5.2 command not recognized
        C: HELO client.example
        S: 250 mx.example
        """
        + CLASSIC.split("S: 250 mx.example", 1)[1]
    )

    async def body() -> Any:
        async with client(kind, server) as smtp:
            assert len(smtp.extensions) == 0
            return await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)

    run(kind, body)
    server.check()


def test_one_shot_send(kind: str, scripted: Any) -> None:
    msg = EmailMessage()
    msg["From"] = "a@x.org"
    msg["To"] = "b@y.org"
    msg["Subject"] = "hi"
    msg.set_content("hello\n")
    server = scripted(
        [
            *parse_script(CLASSIC.split("C: Subject: hi", 1)[0]),
            Expect(msg.as_bytes(policy=email.policy.SMTP) + b".\r\n"),
            *parse_script(CLASSIC.split("C: .", 1)[1]),
        ]
    )

    async def body() -> Any:
        result = transport_module(kind).send(
            msg,
            "127.0.0.1",
            server.port,
            tls="none",
            local_hostname="client.example",
            timeout=5.0,
        )
        return result if kind == "sync" else await result

    result = run(kind, body)
    server.check()
    assert result.reply == Reply(250, ("2.0.0 queued as 1234",))


# -- PIPELINING (RFC 2920) -------------------------------------------------------------


def test_pipelining_offered_sends_mail_rcpt_data_as_one_group(kind: str, scripted: Any) -> None:
    """RFC 2920 3.1: MAIL, the RCPTs and DATA go out together; the server has
    answered nothing when they all arrive, in a single read."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 PIPELINING
        ONE-READ
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: RCPT TO:<c@y.org>
        C: DATA
        S: 250 2.1.0 ok
        S: 250 2.1.5 ok
        S: 250 2.1.5 ok
        S: 354 go ahead
        C: Subject: hi
        C:
        C: line one
        C: line two
        C: .
        S: 250 2.0.0 queued
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org", "c@y.org"], MESSAGE)

    result = run(kind, body)
    server.check()
    assert set(result.accepted) == {"b@y.org", "c@y.org"}


def test_without_pipelining_each_command_waits_for_its_reply(kind: str, scripted: Any) -> None:
    """RFC 2920 3.1: without the PIPELINING keyword, one command at a time: the
    server stays quiet after each command and the client must send nothing more."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 8BITMIME
        C: MAIL FROM:<a@x.org>
        QUIET 0.1
        S: 250 ok
        C: RCPT TO:<b@y.org>
        QUIET 0.1
        S: 250 ok
        C: RCPT TO:<c@y.org>
        QUIET 0.1
        S: 250 ok
        C: DATA
        QUIET 0.1
        S: 354 go ahead
        C: Subject: hi
        C:
        C: line one
        C: line two
        C: .
        S: 250 queued
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org", "c@y.org"], MESSAGE)

    run(kind, body)
    server.check()


# -- TLS -------------------------------------------------------------------------------

STARTTLS_OFFERED: Final = (
    GREETING
    + """
    S: 250-mx.example
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 2.0.0 ready to start TLS
"""
)


def test_starttls_upgrades_then_says_ehlo_again(
    kind: str, scripted: Any, client_context: ssl.SSLContext
) -> None:
    """RFC 3207 4.2: after the handshake the client forgets what it knew and
    sends EHLO again; the mail goes over TLS."""
    server = scripted(
        STARTTLS_OFFERED
        + """
        TLS
        C: EHLO client.example
        S: 250-mx.example
        S: 250 8BITMIME
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: Subject: hi
        C:
        C: line one
        C: line two
        C: .
        S: 250 queued
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server, tls="starttls", ssl_context=client_context) as smtp:
            assert "8BITMIME" in smtp.extensions
            assert "STARTTLS" not in smtp.extensions
            return await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)

    run(kind, body)
    server.check()
    assert server.tls_version is not None
    clear = b"EHLO client.example\r\nSTARTTLS\r\n"
    assert bytes(server.received[: len(clear)]) == clear
    assert bytes(server.received_tls).startswith(b"EHLO client.example\r\nMAIL FROM:<a@x.org>")


def test_starttls_required_but_not_offered_fails_before_mail_and_auth(
    kind: str, scripted: Any, client_context: ssl.SSLContext
) -> None:
    """tls="starttls" (the default) is required TLS: no STARTTLS keyword, no mail."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 AUTH PLAIN LOGIN
        QUIT?
        """
    )

    async def body() -> None:
        smtp = client(
            kind,
            server,
            tls="starttls",
            ssl_context=client_context,
            username="test",
            password="secret",
        )
        with pytest.raises(TLSError):
            async with smtp:
                pytest.fail("the session opened without TLS")

    run(kind, body)
    server.check()
    assert b"MAIL" not in server.received
    assert b"AUTH" not in server.received


def test_bytes_behind_the_starttls_220_abort_the_session(
    kind: str, scripted: Any, client_context: ssl.SSLContext
) -> None:
    """RFC 3207 5 (response injection): anything after the 220 and before the
    handshake must not be trusted; the client gives up without TLS."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 STARTTLS
        C: STARTTLS
        S: 220 2.0.0 ready to start TLS
        S: 250-injected
        S: 250 AUTH PLAIN
        EOF
        """
    )

    async def body() -> None:
        smtp = client(kind, server, tls="starttls", ssl_context=client_context)
        with pytest.raises((SMTPError, RemoteProtocolError)):
            async with smtp:
                pytest.fail("the session went on after an injected reply")

    run(kind, body)
    server.check()
    assert server.tls_version is None


@pytest.mark.parametrize("reason", ["wrong-name", "expired", "untrusted-ca"])
def test_bad_certificate_fails_and_no_mail_crosses(
    kind: str,
    reason: str,
    scripted: Any,
    client_context: ssl.SSLContext,
    bad_server_contexts: dict[str, ssl.SSLContext],
) -> None:
    server = scripted(STARTTLS_OFFERED + "TLS-FAIL", tls_context=bad_server_contexts[reason])

    async def body() -> None:
        smtp = client(kind, server, tls="starttls", ssl_context=client_context)
        with pytest.raises(TLSError):
            async with smtp:
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)

    run(kind, body)
    server.check()
    assert server.handshake_error is not None
    assert server.received == b"EHLO client.example\r\nSTARTTLS\r\n"
    # The caller's context is used as given, not loosened.
    assert client_context.check_hostname
    assert client_context.verify_mode == ssl.CERT_REQUIRED


def test_implicit_tls_handshakes_before_the_greeting(
    kind: str, scripted: Any, client_context: ssl.SSLContext
) -> None:
    """RFC 8314 3.3: on the submissions port TLS starts at once."""
    server = scripted(
        """
        TLS
        S: 220 mx.example ESMTP
        C: EHLO client.example
        S: 250 mx.example
        C: NOOP
        S: 250 2.0.0 ok
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server, tls="implicit", ssl_context=client_context) as smtp:
            return await smtp.noop()

    assert run(kind, body) == Reply(250, ("2.0.0 ok",))
    server.check()
    assert server.tls_version is not None
    assert server.received_tls == server.received


def test_implicit_tls_without_a_local_hostname_delivers(
    kind: str, tls_server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """The EHLO name comes from the socket's own address, read before the handshake."""
    from transports.mailboxes import MemoryHandler
    from transports.sync import SMTPServer

    inbox = MemoryHandler()
    with SMTPServer(
        inbox, "127.0.0.1", 0, tls_context=tls_server_context, implicit_tls=True
    ) as srv:

        async def body() -> Any:
            smtp = Smtp(kind, "127.0.0.1", srv.port, tls="implicit", ssl_context=client_context,
                        timeout=5.0)  # fmt: skip
            async with smtp:
                assert smtp.client.tls_info is not None
                return await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)

        result = run(kind, body)
        assert wait_for_messages(inbox, 1)
    assert list(result.accepted) == ["b@y.org"]
    assert inbox.messages[0].is_tls


def wait_for_messages(inbox: Any, count: int) -> bool:
    deadline = time.monotonic() + 5
    while len(inbox.messages) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- AUTH (RFC 4954) -------------------------------------------------------------------

AUTH_EXCHANGES: Final = {
    # RFC 4616: authzid NUL authcid NUL password, sent as the initial response.
    "PLAIN": """
        C: AUTH PLAIN AHRlc3QAc2VjcmV0
        S: 235 2.7.0 authenticated
    """,
    # The LOGIN mechanism: two 334 challenges, "Username:" and "Password:".
    "LOGIN": """
        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: dGVzdA==
        S: 334 UGFzc3dvcmQ6
        C: c2VjcmV0
        S: 235 2.7.0 authenticated
    """,
}


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_after_starttls_exact_bytes(
    kind: str, mechanism: str, scripted: Any, client_context: ssl.SSLContext
) -> None:
    server = scripted(
        STARTTLS_OFFERED
        + f"""
        TLS
        C: EHLO client.example
        S: 250-mx.example
        S: 250 AUTH {mechanism}
        """
        + AUTH_EXCHANGES[mechanism]
        + """
        C: NOOP
        S: 250 ok
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> None:
        async with client(
            kind,
            server,
            tls="starttls",
            ssl_context=client_context,
            username="test",
            password="secret",
        ) as smtp:
            await smtp.noop()

    run(kind, body)
    server.check()
    assert b"AUTH" in server.received_tls


def test_auth_in_clear_only_when_allowed(kind: str, scripted: Any) -> None:
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 AUTH PLAIN
        """
        + AUTH_EXCHANGES["PLAIN"]
        + """
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> None:
        async with client(kind, server, username="test", password="secret", auth_in_clear=True):
            pass

    run(kind, body)
    server.check()


def test_auth_refused_over_a_clear_channel(kind: str, scripted: Any) -> None:
    """Opportunistic TLS found no STARTTLS: the password must not cross in clear."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 AUTH PLAIN LOGIN
        QUIT?
        """
    )

    async def body() -> None:
        smtp = client(kind, server, tls="opportunistic", username="test", password="secret")
        with pytest.raises(SMTPError):
            async with smtp:
                pytest.fail("authenticated over a clear channel")

    run(kind, body)
    server.check()
    assert b"AUTH" not in server.received
    assert b"MAIL" not in server.received


def test_auth_rejected_raises_authentication_error(kind: str, scripted: Any) -> None:
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 AUTH PLAIN
        C: AUTH PLAIN AHRlc3QAc2VjcmV0
        S: 535 5.7.8 authentication credentials invalid
        QUIT?
        """
    )

    async def body() -> Any:
        smtp = client(kind, server, username="test", password="secret", auth_in_clear=True)
        with pytest.raises(AuthenticationError) as caught:
            async with smtp:
                pytest.fail("the session opened after a 535")
        return caught.value

    error = run(kind, body)
    server.check()
    assert error.reply == Reply(535, ("5.7.8 authentication credentials invalid",))
    assert "authentication credentials invalid" in str(error)


# -- SIZE (RFC 1870) -------------------------------------------------------------------


def test_message_over_the_servers_size_is_refused_before_mail(kind: str, scripted: Any) -> None:
    """RFC 1870 6: a message larger than the SIZE the server announced is not sent;
    the connection stays usable."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 SIZE 1000
        C: NOOP
        S: 250 still here
        C: QUIT
        S: 221 bye
        """
    )
    big = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 62  # 4976 octets

    async def body() -> Any:
        async with client(kind, server) as smtp:
            with pytest.raises(NotSupported):
                await smtp.sendmail("a@x.org", ["b@y.org"], big)
            return await smtp.noop()

    assert run(kind, body) == Reply(250, ("still here",))
    server.check()
    assert b"MAIL" not in server.received


@pytest.mark.parametrize(
    ("sender", "content"),
    [
        pytest.param("älice@x.org", MESSAGE, id="utf8-address-without-SMTPUTF8"),
        pytest.param(
            "a@x.org", "Subject: grüße\r\n\r\nhé\r\n".encode(), id="8bit-without-8BITMIME"
        ),
    ],
)
def test_what_the_server_lacks_is_refused_before_mail(
    kind: str, sender: str, content: bytes, scripted: Any
) -> None:
    """RFC 6531 3.2 and RFC 6152 3: a UTF-8 address needs SMTPUTF8, raw 8-bit
    octets need 8BITMIME; without them nothing is sent, and the session lives on."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 PIPELINING
        C: NOOP
        S: 250 still here
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server) as smtp:
            with pytest.raises(NotSupported):
                await smtp.sendmail(sender, ["b@y.org"], content)
            return await smtp.noop()

    assert run(kind, body) == Reply(250, ("still here",))
    server.check()


# -- refused recipients ----------------------------------------------------------------


def test_one_refused_recipient_does_not_stop_the_others(kind: str, scripted: Any) -> None:
    server = scripted(
        GREETING
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<gone@y.org>
        S: 550 5.1.1 no such user
        C: RCPT TO:<b@y.org>
        S: 250 2.1.5 ok
        C: DATA
        S: 354 go ahead
        C: Subject: hi
        C:
        C: line one
        C: line two
        C: .
        S: 250 2.0.0 queued
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["gone@y.org", "b@y.org"], MESSAGE)

    result = run(kind, body)
    server.check()
    assert dict(result.accepted) == {"b@y.org": Reply(250, ("2.1.5 ok",))}
    assert dict(result.refused) == {"gone@y.org": Reply(550, ("5.1.1 no such user",))}
    assert dict(result.data_replies) == {"b@y.org": Reply(250, ("2.0.0 queued",))}


@pytest.mark.parametrize(
    ("second_code", "transient"), [(550, False), (450, False), (451, True)], ids=str
)
def test_all_recipients_refused_raises_and_resets(
    kind: str, scripted: Any, second_code: int, transient: bool
) -> None:
    """No recipient accepted: no DATA, RecipientsRefused naming each refusal, and
    RSET so the connection can serve the next message (RFC 5321 4.1.1.5)."""
    first_code = 450 if transient else 550
    server = scripted(
        GREETING
        + f"""
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: {first_code} first refusal
        C: RCPT TO:<c@y.org>
        S: {second_code} second refusal
        C: RSET
        S: 250 flushed
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server) as smtp:
            with pytest.raises(RecipientsRefused) as caught:
                await smtp.sendmail("a@x.org", ["b@y.org", "c@y.org"], MESSAGE)
            return caught.value

    error = run(kind, body)
    server.check()
    assert error.refused == {
        "b@y.org": Reply(first_code, ("first refusal",)),
        "c@y.org": Reply(second_code, ("second refusal",)),
    }
    assert error.reply == Reply(first_code, ("first refusal",))
    assert error.is_transient is transient
    assert b"DATA" not in server.received


# -- DSN, LMTP, BDAT, the old verbs ---------------------------------------------------


def test_dsn_and_size_parameters_exact_bytes(kind: str, scripted: Any) -> None:
    """RFC 1870 3 (SIZE), RFC 3461 4 (RET, ENVID as xtext; NOTIFY, ORCPT). A 7-bit
    message gets no BODY parameter even where 8BITMIME is offered."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250-SIZE 10000
        S: 250-8BITMIME
        S: 250 DSN
        C: MAIL FROM:<a@x.org> SIZE=35 RET=HDRS ENVID=id+2B1+20x
        S: 250 ok
        C: RCPT TO:<b@y.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.org
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: Subject: hi
        C:
        C: line one
        C: line two
        C: .
        S: 250 queued
        C: QUIT
        S: 221 bye
        """
    )
    dsn = DSN(ret="HDRS", envid="id+1 x", notify=("SUCCESS", "FAILURE"), orcpt=True)

    async def body() -> Any:
        async with client(kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE, dsn=dsn)

    assert len(MESSAGE) == 35
    run(kind, body)
    server.check()


def test_lmtp_gives_one_final_reply_per_recipient(kind: str, scripted: Any) -> None:
    """RFC 2033 4.2: after the data, one reply for each accepted recipient."""
    server = scripted(
        """
        S: 220 lmtp.example LMTP
        C: LHLO client.example
        S: 250 lmtp.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: RCPT TO:<c@y.org>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: Subject: hi
        C:
        C: line one
        C: line two
        C: .
        S: 250 2.0.0 <b@y.org> saved
        S: 452 4.2.2 <c@y.org> mailbox full
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> Any:
        async with client(kind, server, lmtp=True) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org", "c@y.org"], MESSAGE)

    result = run(kind, body)
    server.check()
    assert dict(result.data_replies) == {
        "b@y.org": Reply(250, ("2.0.0 <b@y.org> saved",)),
        "c@y.org": Reply(452, ("4.2.2 <c@y.org> mailbox full",)),
    }
    assert result.reply == Reply(452, ("4.2.2 <c@y.org> mailbox full",))


def test_bdat_sends_the_content_unstuffed_when_chunking_is_chosen(kind: str, scripted: Any) -> None:
    """RFC 3030 2: BDAT carries the octets as they are: no dot-stuffing, no end dot."""
    content = b"Subject: hi\r\n\r\n.dot\r\n"
    server = scripted(
        [
            *parse_script(
                GREETING
                + """
                S: 250-mx.example
                S: 250 CHUNKING
                C: MAIL FROM:<a@x.org>
                S: 250 ok
                C: RCPT TO:<b@y.org>
                S: 250 ok
                """
            ),
            Expect(b"BDAT 21 LAST\r\n" + content),
            *parse_script(
                """
                S: 250 2.0.0 21 octets queued
                C: QUIT
                S: 221 bye
                """
            ),
        ]
    )

    async def body() -> Any:
        async with client(kind, server, chunking=True) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org"], content)

    assert run(kind, body).reply == Reply(250, ("2.0.0 21 octets queued",))
    server.check()


def test_etrn_turn_and_send_old(kind: str, scripted: Any) -> None:
    """ETRN (RFC 1985, only when offered) and TURN return their reply; SEND (RFC 821)
    is a transaction like MAIL."""
    server = scripted(
        GREETING
        + """
        S: 250-mx.example
        S: 250 ETRN
        C: ETRN example.org
        S: 250 queuing started
        C: TURN
        S: 502 5.5.1 not implemented
        C: SEND FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: Subject: hi
        C:
        C: line one
        C: line two
        C: .
        S: 250 delivered to the terminal
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> list[Any]:
        async with client(kind, server) as smtp:
            return [
                await smtp.etrn("example.org"),
                await smtp.turn(),
                await smtp.send_old("SEND", "a@x.org", ["b@y.org"], MESSAGE),
            ]

    etrn, turn, sent = run(kind, body)
    server.check()
    assert etrn == Reply(250, ("queuing started",))
    assert turn == Reply(502, ("5.5.1 not implemented",))
    assert sent.reply == Reply(250, ("delivered to the terminal",))


# -- 421, lost connections, timeouts ---------------------------------------------------


def test_421_mid_session_raises_transient_error_and_closes(kind: str, scripted: Any) -> None:
    """RFC 5321 3.8: 421 means the server is closing; the client says nothing more."""
    server = scripted(
        GREETING
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 421 4.3.2 shutting down
        EOF
        """
    )

    async def body() -> Any:
        async with client(kind, server) as smtp:
            with pytest.raises(TransientError) as caught:
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)
            return caught.value

    error = run(kind, body)
    server.check()
    assert error.reply == Reply(421, ("4.3.2 shutting down",))
    assert error.command.startswith("MAIL FROM:<a@x.org>")
    assert "shutting down" in str(error)


def test_421_to_a_reply_command_raises_too(kind: str, scripted: Any) -> None:
    """NOOP and friends return any reply, except 421, which closes the session."""
    server = scripted(
        GREETING
        + """
        S: 250 mx.example
        C: NOOP
        S: 421 4.4.2 idle too long
        EOF
        """
    )

    async def body() -> None:
        async with client(kind, server) as smtp:
            with pytest.raises(TransientError):
                await smtp.noop()

    run(kind, body)
    server.check()


@pytest.mark.parametrize("how", ["CLOSE", "RESET"])
def test_server_closing_mid_transaction_raises_connection_lost(
    kind: str, how: str, scripted: Any
) -> None:
    server = scripted(
        GREETING
        + f"""
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        {how}
        """
    )

    async def body() -> None:
        async with client(kind, server) as smtp:
            with pytest.raises(ConnectionLost):
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)

    run(kind, body)
    server.check()


def test_silent_server_times_out_on_the_greeting(kind: str, scripted: Any) -> None:
    server = scripted("EOF")

    async def body() -> float:
        start = time.monotonic()
        with pytest.raises(SMTPTimeout) as caught:
            async with client(kind, server, timeout=0.5):
                pytest.fail("greeted by a silent server")
        assert isinstance(caught.value, TimeoutError)
        return time.monotonic() - start

    elapsed = run(kind, body)
    server.check()
    assert 0.4 < elapsed < 2.0
    assert server.received == b""


def test_server_that_never_answers_mail_times_out_and_closes(kind: str, scripted: Any) -> None:
    server = scripted(
        GREETING
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        EOF
        """
    )

    async def body() -> float:
        async with client(kind, server, timeout=0.5) as smtp:
            start = time.monotonic()
            with pytest.raises(SMTPTimeout):
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)
            return time.monotonic() - start

    elapsed = run(kind, body)
    server.check()
    assert 0.4 < elapsed < 2.0


def test_per_phase_timeouts_apply_to_their_phase(kind: str, scripted: Any) -> None:
    """RFC 5321 4.5.3.2.6: the wait after the final dot has its own timeout."""
    server = scripted(SLOW_DATA_REPLY)
    timeouts = Timeouts(data_termination=0.5)

    async def body() -> float:
        async with client(kind, server, timeout=timeouts) as smtp:
            start = time.monotonic()
            with pytest.raises(SMTPTimeout):
                await smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE)
            return time.monotonic() - start

    elapsed = run(kind, body)
    server.check()
    assert 0.4 < elapsed < 2.0


# -- streaming content -----------------------------------------------------------------

#: Leading dots, bare LF, CRLF, and no newline at the end.
RAW: Final = b"Subject: dots\n\n.leading dot\r\n..two dots\n.\nbare LF line\nlast, no newline"
#: What must cross: every line ends in CRLF, leading dots doubled (RFC 5321 4.5.2).
STREAMED: Final = """
    S: 220 mx.example ESMTP
    C: EHLO client.example
    S: 250 mx.example
    C: MAIL FROM:<a@x.org>
    S: 250 ok
    C: RCPT TO:<b@y.org>
    S: 250 ok
    C: DATA
    S: 354 go ahead
    C: Subject: dots
    C:
    C: ..leading dot
    C: ...two dots
    C: ..
    C: bare LF line
    C: last, no newline
    C: .
    S: 250 queued
    C: QUIT
    S: 221 bye
"""
#: RAW cut where a stuffer or normaliser could go wrong: between CR and LF,
#: between LF and a dot, a lone dot.
PIECES: Final = (
    b"Subject: dots\n",
    b"\n.",
    b"leading dot\r",
    b"\n.",
    b".two dots\n",
    b".",
    b"\nbare LF line\n",
    b"last,",
    b" no newline",
)


def _content(source: str, tmp_path: Path) -> Any:
    if source == "bytes":
        return RAW
    if source == "str":
        return RAW.decode("ascii")
    if source == "bytesio":
        return io.BytesIO(RAW)
    if source == "file":
        path = tmp_path / "message.eml"
        path.write_bytes(RAW)
        return path.open("rb")
    if source == "iterator":
        return iter(PIECES)
    raise AssertionError(source)


def test_pieces_are_the_raw_content() -> None:
    assert b"".join(PIECES) == RAW


@pytest.mark.parametrize("source", ["bytes", "str", "bytesio", "file", "iterator"])
def test_content_is_stuffed_and_crlf_normalised(
    kind: str, source: str, scripted: Any, tmp_path: Path
) -> None:
    server = scripted(STREAMED)
    content = _content(source, tmp_path)

    async def body() -> Any:
        async with client(kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org"], content)

    run(kind, body)
    server.check()
    if hasattr(content, "close"):
        content.close()


def test_async_iterator_content_is_streamed(async_kind: str, scripted: Any) -> None:
    server = scripted(STREAMED)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in PIECES:
            yield piece

    async def body() -> Any:
        async with client(async_kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org"], pieces())

    run(async_kind, body)
    server.check()


def test_the_blocking_client_refuses_an_async_iterator_before_sending() -> None:
    """The blocking client cannot await an async iterable's pieces: it says so at once,
    rather than reading them with no event loop halfway through DATA."""
    from smtpcore.session import NotSupported
    from transports.sync import SMTPClient

    async def pieces() -> AsyncIterator[bytes]:
        yield b"Subject: x\r\n\r\nbody\r\n"

    with pytest.raises(NotSupported, match="cannot send content of type async_generator"):
        SMTPClient("mx.example").sendmail("a@x.org", ["b@y.org"], pieces())


def test_empty_pieces_do_not_end_the_content(kind: str, scripted: Any) -> None:
    """An iterable may yield b"" (a generator with nothing to say yet); that is
    not the end of the message, and nothing after it may be lost."""
    server = scripted(STREAMED)
    with_gaps = [b"", *(p for piece in PIECES for p in (piece, b""))]

    async def body() -> Any:
        async with client(kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org"], iter(with_gaps))

    run(kind, body)
    server.check()


def test_empty_pieces_of_an_async_iterator_do_not_end_the_content(
    async_kind: str, scripted: Any
) -> None:
    server = scripted(STREAMED)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in PIECES:
            yield b""
            yield piece

    async def body() -> Any:
        async with client(async_kind, server) as smtp:
            return await smtp.sendmail("a@x.org", ["b@y.org"], pieces())

    run(async_kind, body)
    server.check()


def stuffed(content: bytes) -> bytes:
    """What DATA must carry for ``content`` with LF or CRLF line ends (RFC 5321 4.5.2).

    Written independently of the core: every line ends in CRLF, a line that
    starts with a dot gets one more, and the end is CRLF . CRLF.
    """
    lines = content.replace(b"\r\n", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." if line[:1] == b"." else b"") + line + b"\r\n" for line in lines) + (
        b".\r\n"
    )


@st.composite
def cut_content(draw: st.DrawFn) -> list[bytes]:
    """Content made of dots, letters, LF and CRLF, cut into pieces at random points."""
    atoms = draw(st.lists(st.sampled_from([b"a", b".", b"..", b"\n", b"\r\n", b" "]), max_size=40))
    content = b"".join(atoms)
    cuts = sorted(draw(st.sets(st.integers(0, len(content)), max_size=8)))
    edges = [0, *cuts, len(content)]
    return [content[a:b] for a, b in itertools.pairwise(edges)]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pieces=cut_content())
def test_any_cut_of_the_content_crosses_stuffed_and_normalised(
    kind: str, pieces: list[bytes]
) -> None:
    """However the source cuts the content (between CR and LF, before a dot),
    the wire carries the same dot-stuffed CRLF text."""
    content = b"".join(pieces)
    server = ScriptedServer(
        [
            *parse_script(STREAMED.split("C: Subject: dots", 1)[0]),
            Expect(stuffed(content)),
            *parse_script(STREAMED.split("C: .\n", 1)[1]),
        ]
    )
    try:

        async def body() -> Any:
            async with client(kind, server) as smtp:
                return await smtp.sendmail("a@x.org", ["b@y.org"], iter(pieces))

        run(kind, body)
        server.check()
    finally:
        server.stop()


def test_reference_stuffing() -> None:
    assert stuffed(b"") == b".\r\n"
    assert stuffed(b".a\nb") == b"..a\r\nb\r\n.\r\n"
    assert stuffed(b"a\r\n\n.\r\n") == b"a\r\n\r\n..\r\n.\r\n"


# -- commands that return their reply -------------------------------------------------


def test_noop_rset_vrfy_expn_help_return_their_replies(kind: str, scripted: Any) -> None:
    """VRFY's 252 or EXPN's 550 is an answer, not an error (RFC 5321 3.5)."""
    server = scripted(
        GREETING
        + """
        S: 250 mx.example
        C: NOOP
        S: 250 2.0.0 ok
        C: RSET
        S: 250 2.0.0 flushed
        C: VRFY b@y.org
        S: 252 2.1.5 cannot verify, will try
        C: EXPN staff
        S: 550 5.1.1 no such list
        C: HELP
        S: 214-commands:
        S: 214 EHLO MAIL RCPT DATA
        C: HELP MAIL
        S: 214 MAIL FROM:<address>
        C: QUIT
        S: 221 bye
        """
    )

    async def body() -> list[Any]:
        async with client(kind, server) as smtp:
            return [
                await smtp.noop(),
                await smtp.rset(),
                await smtp.vrfy("b@y.org"),
                await smtp.expn("staff"),
                await smtp.help(),
                await smtp.help("MAIL"),
            ]

    assert run(kind, body) == [
        Reply(250, ("2.0.0 ok",)),
        Reply(250, ("2.0.0 flushed",)),
        Reply(252, ("2.1.5 cannot verify, will try",)),
        Reply(550, ("5.1.1 no such list",)),
        Reply(214, ("commands:", "EHLO MAIL RCPT DATA")),
        Reply(214, ("MAIL FROM:<address>",)),
    ]
    server.check()


def test_explicit_quit_and_close(kind: str, scripted: Any) -> None:
    server = scripted(
        GREETING
        + """
        S: 250 mx.example
        C: QUIT
        S: 221 2.0.0 bye
        """
    )

    async def body() -> Any:
        smtp = client(kind, server)
        await smtp.connect()
        reply = await smtp.quit()
        await smtp.close()
        await smtp.close()  # closing twice is harmless
        return reply

    assert run(kind, body) == Reply(221, ("2.0.0 bye",))
    server.check()


# -- cancellation ----------------------------------------------------------------------

SLOW_DATA_REPLY: Final = """
    S: 220 mx.example ESMTP
    C: EHLO client.example
    S: 250 mx.example
    C: MAIL FROM:<a@x.org>
    S: 250 ok
    C: RCPT TO:<b@y.org>
    S: 250 ok
    C: DATA
    S: 354 go ahead
    C: Subject: hi
    C:
    C: line one
    C: line two
    C: .
    EOF
"""


async def interrupt_after(kind: str, seconds: float, call: Callable[[], Awaitable[Any]]) -> None:
    """Interrupt ``call()`` after ``seconds`` the way each kind is interrupted.

    sync: SIGINT (KeyboardInterrupt); asyncio: Task.cancel(); trio and anyio:
    a cancel scope's deadline. Fails if the call was not interrupted.
    """
    if kind == "sync":
        main = threading.main_thread().ident
        assert main is not None
        assert threading.get_ident() == main, "SIGINT goes to the main thread"
        timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                await call()
        finally:
            timer.cancel()
            timer.join()
    elif kind == "asyncio":
        task = asyncio.ensure_future(call())
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif kind == "trio":
        with trio.move_on_after(seconds) as trio_scope:
            await call()
        assert trio_scope.cancelled_caught
    else:
        with anyio.move_on_after(seconds) as anyio_scope:
            await call()
        assert anyio_scope.cancelled_caught


def test_cancelled_while_waiting_for_the_data_reply_closes_the_socket(
    kind: str, scripted: Any
) -> None:
    """Cancelled with the message sent but not acknowledged, the client cannot
    know the outcome: it must close the connection at once (no QUIT, no RSET),
    tell the caller, and leave no task behind."""
    server = scripted(SLOW_DATA_REPLY)

    async def body() -> None:
        async with client(kind, server, timeout=30.0) as smtp:
            await interrupt_after(kind, 0.3, lambda: smtp.sendmail("a@x.org", ["b@y.org"], MESSAGE))
            closed = await wait_until(kind, server.eof.is_set, 2.0)
            assert closed, "the socket is still open after the cancellation"
            if kind.endswith("asyncio"):
                assert asyncio.all_tasks() == {asyncio.current_task()}

    run(kind, body)
    server.check()
