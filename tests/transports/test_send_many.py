"""``send_many`` on every client: scripted servers, our own server and aiosmtpd."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from typing import Any, Final

from smtpcore.session import ConnectionLost, RecipientsRefused
from transports.mailboxes import MemoryHandler
from transports.sync import SMTPServer

from .conftest import Smtp, run
from .test_clients import client, wait_for_messages

BODY: Final = b"Subject: hi\r\n\r\nbody\r\n"

PIPELINED: Final = """
    S: 220 mx.example ESMTP
    C: EHLO client.example
    S: 250-mx.example
    S: 250 PIPELINING
    C: MAIL FROM:<a@x.org>
    C: RCPT TO:<one@y.org>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 354 go
    C: Subject: hi
    C:
    C: body
    C: .
    C: MAIL FROM:<a@x.org>
    C: RCPT TO:<two@y.org>
    C: DATA
    S: 250 queued 1
    S: 250 ok
    S: 550 no such user
    S: 554 no valid recipients
    C: RSET
    C: MAIL FROM:<a@x.org>
    C: RCPT TO:<three@y.org>
    C: DATA
    S: 250 reset
    S: 250 ok
    S: 250 ok
    S: 354 go
    C: Subject: hi
    C:
    C: body
    C: .
    S: 250 queued 3
    C: QUIT
    S: 221 bye
"""


def three() -> list[Any]:
    return [("a@x.org", [f"{n}@y.org"], BODY) for n in ("one", "two", "three")]


def test_pipelined_across_messages_exact_bytes(kind: str, scripted: Any) -> None:
    server = scripted(PIPELINED)
    writes: list[bytes] = []

    async def body() -> list[Any]:
        trace = lambda way, data: writes.append(bytes(data)) if way == ">" else None  # noqa: E731
        async with client(kind, server, trace=trace) as smtp:
            return await smtp.send_many(three())

    outcomes = run(kind, body)
    server.check()
    assert [o.status for o in outcomes] == ["accepted", "refused", "accepted"]
    assert isinstance(outcomes[1].error, RecipientsRefused)
    # One write per message after the first group: its content and the next envelope.
    assert BODY + b".\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<two@y.org>\r\nDATA\r\n" in writes


def test_without_pipelining_each_command_waits(kind: str, scripted: Any) -> None:
    server = scripted("""
        S: 220 mx.example ESMTP
        C: EHLO client.example
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<one@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        S: 250 queued 1
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<two@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        S: 250 queued 2
        C: QUIT
        S: 221 bye
    """)

    async def body() -> list[Any]:
        async with client(kind, server) as smtp:
            return await smtp.send_many(three()[:2])

    outcomes = run(kind, body)
    server.check()
    assert [o.status for o in outcomes] == ["accepted", "accepted"]


def test_chunking_puts_transactions_in_flight(kind: str, scripted: Any) -> None:
    """BDAT needs no 354: the second transaction goes before the first one's replies."""
    server = scripted(f"""
        S: 220 mx.example ESMTP
        C: EHLO client.example
        S: 250-mx.example
        S: 250-PIPELINING
        S: 250 CHUNKING
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: BDAT {len(BODY)} LAST
        C: Subject: hi
        C:
        C: body
        C: RSET
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<two@y.org>
        C: BDAT {len(BODY)} LAST
        C: Subject: hi
        C:
        C: body
        S: 250 ok
        S: 250 ok
        S: 250 queued 1
        S: 250 reset
        S: 250 ok
        S: 250 ok
        S: 250 queued 2
        C: QUIT
        S: 221 bye
    """)

    async def body() -> list[Any]:
        async with client(kind, server, chunking=True) as smtp:
            return await smtp.send_many(three()[:2])

    outcomes = run(kind, body)
    server.check()
    assert [o.result.reply.lines[0] for o in outcomes] == ["queued 1", "queued 2"]


def test_a_lost_connection_says_unknown_then_unsent(kind: str, scripted: Any) -> None:
    """The end of data went out and no reply came: not guessed; the rest were not sent."""
    server = scripted("""
        S: 220 mx.example ESMTP
        C: EHLO client.example
        S: 250-mx.example
        S: 250 PIPELINING
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<two@y.org>
        C: DATA
        RESET
    """)
    many = three() * 30  # more than one batch: the later batches are unsent too

    async def body() -> list[Any]:
        async with client(kind, server) as smtp:
            return await smtp.send_many(many)

    outcomes = run(kind, body)
    server.check()
    assert [o.status for o in outcomes] == ["unknown"] + ["unsent"] * (len(many) - 1)
    assert all(isinstance(o.error, ConnectionLost) for o in outcomes)


def message(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.net", f"n{number}"
    msg.set_content(f"This is message {number}.\n")
    return msg


def test_our_server_gets_every_message_in_order(kind: str) -> None:
    """Our server offers PIPELINING; 150 messages span several batches."""
    inbox = MemoryHandler()
    with SMTPServer(inbox, "127.0.0.1", 0) as server:

        async def body() -> list[Any]:
            async with Smtp(kind, "127.0.0.1", server.port, tls="none", timeout=5.0) as smtp:
                return await smtp.send_many(message(n) for n in range(150))

        outcomes = run(kind, body)
        assert wait_for_messages(inbox, 150)
    assert all(o.status == "accepted" for o in outcomes)
    subjects = [e.original_content.split(b"Subject: ")[1].split(b"\r\n")[0] for e in inbox.messages]
    assert subjects == [f"n{n}".encode() for n in range(150)]


def test_aiosmtpd_gets_them_and_refuses_one(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    server = aiosmtpd_server(refuse={"two@y.org"})

    async def body() -> list[Any]:
        smtp = Smtp(kind, "127.0.0.1", server.port, ssl_context=client_context, timeout=5.0)
        async with smtp:
            return await smtp.send_many(three())

    outcomes = run(kind, body)
    assert [o.status for o in outcomes] == ["accepted", "refused", "accepted"]
    assert [m.rcpt_tos for m in server.handler.messages] == [["one@y.org"], ["three@y.org"]]
