"""ClientConnection: sequence, pipelining, extensions, STARTTLS, LMTP, BDAT, errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpcore import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    ClientConnection,
    ClientPhase,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfData,
    Etrn,
    Expn,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
    Turn,
    Vrfy,
)
from tests.feeding import feed_every_way

EHLO_REPLY = (
    b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-DSN\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-ETRN\r\n"
    b"250-REQUIRETLS\r\n250 AUTH PLAIN LOGIN\r\n"
)


def reply(conn: ClientConnection, wire: bytes) -> Reply:
    conn.receive_data(wire)
    event = conn.next_event()
    assert isinstance(event, Reply), event
    return event


def greeted(*, lmtp: bool = False) -> ClientConnection:
    conn = ClientConnection(lmtp=lmtp)
    reply(conn, b"220 mx.example ESMTP\r\n")
    return conn


def ready(ehlo_reply: bytes = EHLO_REPLY, *, lmtp: bool = False) -> ClientConnection:
    conn = greeted(lmtp=lmtp)
    conn.send(Lhlo("client.example") if lmtp else Ehlo("client.example"))
    reply(conn, ehlo_reply)
    assert conn.phase is ClientPhase.READY
    return conn


def in_mail() -> ClientConnection:
    conn = ready()
    conn.send(Mail("a@example.org"))
    reply(conn, b"250 ok\r\n")
    return conn


def in_rcpt() -> ClientConnection:
    conn = in_mail()
    conn.send(Rcpt("b@example.net"))
    reply(conn, b"250 ok\r\n")
    return conn


def in_data() -> ClientConnection:
    conn = in_rcpt()
    conn.send(Data())
    reply(conn, b"354 go ahead\r\n")
    return conn


def in_bdat() -> ClientConnection:
    conn = in_rcpt()
    conn.send(Bdat(3))
    conn.send(MessageData(b"abc"))
    reply(conn, b"250 3 octets\r\n")
    return conn


def in_auth() -> ClientConnection:
    conn = ready()
    conn.send(Auth("LOGIN"))
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    return conn


def in_tls() -> ClientConnection:
    conn = ready()
    conn.send(StartTLS())
    reply(conn, b"220 go ahead\r\n")
    return conn


def refused() -> ClientConnection:
    conn = ClientConnection()
    reply(conn, b"554 no service here\r\n")
    return conn


def closed() -> ClientConnection:
    conn = ready()
    conn.send(Quit())
    reply(conn, b"221 bye\r\n")
    return conn


PHASES: dict[ClientPhase, Callable[[], ClientConnection]] = {
    ClientPhase.GREETING: ClientConnection,
    ClientPhase.REFUSED: refused,
    ClientPhase.HELLO: greeted,
    ClientPhase.READY: ready,
    ClientPhase.MAIL: in_mail,
    ClientPhase.RCPT: in_rcpt,
    ClientPhase.DATA: in_data,
    ClientPhase.BDAT: in_bdat,
    ClientPhase.AUTH: in_auth,
    ClientPhase.TLS: in_tls,
    ClientPhase.CLOSED: closed,
}

COMMANDS: list[Command] = [
    Helo("client.example"),
    Ehlo("client.example"),
    Mail("a@example.org"),
    Rcpt("b@example.net"),
    Data(),
    Bdat(0, last=True),
    Rset(),
    Noop(),
    Quit(),
    Vrfy("user"),
    Expn("list"),
    Help(),
    Send("a@example.org"),
    Soml("a@example.org"),
    Saml("a@example.org"),
    Turn(),
    Etrn("example.org"),
    StartTLS(),
    Auth("PLAIN", b"\x00u\x00p"),
    AuthResponse(b"user"),
    AuthCancel(),
]

ANYTIME = {Noop, Rset, Quit, Vrfy, Expn, Help}
ALLOWED: dict[ClientPhase, set[type[Command]]] = {
    ClientPhase.REFUSED: {Quit},
    ClientPhase.HELLO: ANYTIME | {Ehlo, Helo},
    ClientPhase.READY: ANYTIME | {Ehlo, Helo, Mail, Send, Soml, Saml, StartTLS, Auth, Etrn, Turn},
    ClientPhase.MAIL: ANYTIME | {Rcpt},
    ClientPhase.RCPT: ANYTIME | {Rcpt, Data, Bdat},
    ClientPhase.BDAT: {Bdat, Rset, Noop, Quit},
    ClientPhase.AUTH: {AuthResponse, AuthCancel},
}


@pytest.mark.parametrize("phase", list(PHASES), ids=lambda p: p.name)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_phase_and_command(phase: ClientPhase, command: Command) -> None:
    """The table allows a command, or send raises and changes nothing."""
    conn = PHASES[phase]()
    assert conn.phase is phase
    if type(command) in ALLOWED.get(phase, set()):
        assert conn.send(command) == command.to_bytes()
        assert conn.pending == (command,)
    else:
        with pytest.raises(LocalProtocolError):
            conn.send(command)
        assert conn.phase is phase
        assert conn.pending == ()


def test_a_refused_command_leaves_the_session_usable() -> None:
    conn = in_rcpt()
    with pytest.raises(LocalProtocolError):
        conn.send(Mail("x@example.org"))
    with pytest.raises(LocalProtocolError):
        conn.send(Rcpt("bad address"))
    assert conn.send(Rcpt("c@example.net")) == b"RCPT TO:<c@example.net>\r\n"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Mail("a@example.org\r\nRCPT TO:<x@y>"),
        lambda: Mail("a@example.org", {"SIZE": "1\r\n"}),
        lambda: Rcpt("b@example.net\n"),
        lambda: Ehlo("client.example\r\nMAIL FROM:<x@y>"),
        lambda: Helo("x\x00y"),
        lambda: Vrfy("user\rDATA"),
        lambda: Noop("a\nb"),
        lambda: Etrn("x\ry"),
        lambda: Mail("a<b>@example.org"),
        lambda: Mail("a@example.org", {"BODY": "9BIT"}),
        lambda: Mail("a@example.org", {"SIZE": "-1"}),
        lambda: Mail("a@example.org", {"SIZE": "1", "size": "2"}),
        lambda: Rcpt("b@example.net", {"NOTIFY": "NEVER,SUCCESS"}),
        lambda: Rcpt("b@example.net", {"ORCPT": "rfc822;a b"}),
        lambda: Mail("a@example.org", {"ENVID": "a=b"}),
        lambda: Auth("plain lower"),
        lambda: Bdat(-1),
    ],
)
def test_bad_arguments_are_refused_before_any_byte(make: Callable[[], Command]) -> None:
    with pytest.raises(LocalProtocolError):
        make()


def test_classic_conversation_byte_exact() -> None:
    conn = ClientConnection()
    sent = []
    assert reply(conn, b"220 mx.example ESMTP\r\n").code == 220
    sent.append(conn.send(Helo("client.example")))
    assert reply(conn, b"250 mx.example\r\n").command == Helo("client.example")
    sent.append(conn.send(Mail("alice@example.org")))
    reply(conn, b"250 2.1.0 Ok\r\n")
    sent.append(conn.send(Rcpt("bob@example.net")))
    reply(conn, b"250 2.1.5 Ok\r\n")
    sent.append(conn.send(Data()))
    assert reply(conn, b"354 End data with <CR><LF>.<CR><LF>\r\n").code == 354
    sent.append(conn.send(MessageData(b"Subject: Hello\r\n\r\nFirst line.\r\nSecond line.\r\n")))
    sent.append(conn.send(EndOfData()))
    final = reply(conn, b"250 2.0.0 Ok: queued as 1234\r\n")
    assert isinstance(final.command, EndOfData)
    sent.append(conn.send(Quit()))
    reply(conn, b"221 2.0.0 Bye\r\n")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert b"".join(sent) == (
        b"HELO client.example\r\n"
        b"MAIL FROM:<alice@example.org>\r\n"
        b"RCPT TO:<bob@example.net>\r\n"
        b"DATA\r\n"
        b"Subject: Hello\r\n\r\nFirst line.\r\nSecond line.\r\n"
        b".\r\n"
        b"QUIT\r\n"
    )


def test_pipelined_group_replies_match_their_commands() -> None:
    conn = ready()
    wire = b"".join(
        [
            conn.send(Mail("a@example.org", {"SIZE": "1234", "BODY": "8BITMIME"})),
            conn.send(Rcpt("b@example.net", {"NOTIFY": "SUCCESS,FAILURE"})),
            conn.send(Rcpt("gone@example.net")),
            conn.send(Data()),
        ]
    )
    assert wire == (
        b"MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME\r\n"
        b"RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE\r\n"
        b"RCPT TO:<gone@example.net>\r\nDATA\r\n"
    )
    conn.receive_data(b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n")
    replies = [conn.next_event() for _ in range(4)]
    assert [type(r.command).__name__ for r in replies if isinstance(r, Reply)] == [
        "Mail",
        "Rcpt",
        "Rcpt",
        "Data",
    ]
    assert conn.phase is ClientPhase.DATA


def test_surplus_reply_after_a_pipelined_group_is_never_matched() -> None:
    """RFC 2920 3.2: the surplus reply is refused on arrival, before anything more is sent."""
    conn = ready()
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("b@example.net"))
    with pytest.raises(RemoteProtocolError, match="no command waiting"):
        conn.receive_data(b"250 ok\r\n250 ok\r\n250 surplus\r\n")
    with pytest.raises(RemoteProtocolError, match="earlier error"):
        conn.next_event()
    with pytest.raises(LocalProtocolError, match="earlier error"):
        conn.send(Noop())


def test_no_pipelining_without_the_extension() -> None:
    conn = ready(b"250-opensmtpd.example\r\n250 8BITMIME\r\n")
    conn.send(Mail("a@example.org"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Rcpt("b@example.net"))
    reply(conn, b"250 ok\r\n")
    assert conn.send(Rcpt("b@example.net")) == b"RCPT TO:<b@example.net>\r\n"


@pytest.mark.parametrize("first", [Noop(), Vrfy("u"), Ehlo("client.example"), Data()])
def test_group_enders_must_be_last(first: Command) -> None:
    conn = in_rcpt() if isinstance(first, Data) else ready()
    conn.send(first)
    with pytest.raises(LocalProtocolError, match="RFC 2920"):
        conn.send(Rset())


def test_negative_mail_reply_recomputes_the_assumed_phase() -> None:
    conn = ready()
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("b@example.net"))
    reply(conn, b"550 sender refused\r\n")
    reply(conn, b"503 need MAIL first\r\n")
    assert conn.phase is ClientPhase.READY
    with pytest.raises(LocalProtocolError):
        conn.send(Data())
    assert conn.send(Mail("c@example.org")).startswith(b"MAIL")


def test_next_mail_may_follow_the_end_of_data_in_one_group() -> None:
    conn = in_data()
    conn.send(MessageData(b"x"))
    conn.send(EndOfData())
    with pytest.raises(LocalProtocolError):
        conn.send(MessageData(b"more"))
    assert conn.send(Mail("a@example.org", {"SMTPUTF8": None})).startswith(b"MAIL")
    assert conn.send(Rcpt("bø@example.net")) == "RCPT TO:<bø@example.net>\r\n".encode()
    reply(conn, b"250 queued\r\n")
    assert conn.phase is ClientPhase.READY
    reply(conn, b"250 ok\r\n")
    reply(conn, b"250 ok\r\n")
    assert conn.phase is ClientPhase.RCPT


def test_message_data_before_354_is_refused() -> None:
    conn = in_rcpt()
    with pytest.raises(LocalProtocolError):
        conn.send(MessageData(b"early"))
    conn.send(Data())
    with pytest.raises(LocalProtocolError):
        conn.send(MessageData(b"early"))
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfData())


@pytest.mark.parametrize(
    ("command", "offered", "message"),
    [
        (Mail("a@example.org", {"SIZE": "1"}), b"250 8BITMIME\r\n", "SIZE"),
        (Mail("a@example.org", {"BODY": "8BITMIME"}), b"250 SIZE\r\n", "8BITMIME"),
        (Mail("a@example.org", {"BODY": "BINARYMIME"}), b"250 8BITMIME\r\n", "BINARYMIME"),
        (Mail("a@example.org", {"SMTPUTF8": None}), b"250 8BITMIME\r\n", "SMTPUTF8"),
        (Mail("a@example.org", {"RET": "HDRS"}), b"250 8BITMIME\r\n", "DSN"),
        (Mail("a@example.org", {"ENVID": "x"}), b"250 8BITMIME\r\n", "DSN"),
        (Mail("a@example.org", {"REQUIRETLS": None}), b"250 8BITMIME\r\n", "REQUIRETLS"),
        (Mail("a@example.org", {"REQUIRETLS": None}), b"250 REQUIRETLS\r\n", "TLS"),
        (Mail("a@example.org", {"HOLDFOR": "10"}), b"250 8BITMIME\r\n", "HOLDFOR"),
        (Mail("ä@example.org"), b"250 SMTPUTF8\r\n", "SMTPUTF8"),
        (StartTLS(), b"250 8BITMIME\r\n", "STARTTLS"),
        (Auth("PLAIN"), b"250 AUTH LOGIN\r\n", "AUTH PLAIN"),
        (Etrn("example.org"), b"250 8BITMIME\r\n", "ETRN"),
    ],
)
def test_what_the_server_did_not_offer_is_refused_locally(
    command: Command, offered: bytes, message: str
) -> None:
    conn = ready(b"250-mx.example\r\n" + offered)
    with pytest.raises(LocalProtocolError, match=message):
        conn.send(command)
    assert conn.pending == ()


def test_non_ascii_recipient_needs_smtputf8_in_the_transaction() -> None:
    conn = ready()
    conn.send(Mail("a@example.org"))
    reply(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        conn.send(Rcpt("bøb@example.net"))


def test_over_long_lines_are_refused_locally() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError, match="command_line"):
        conn.send(Vrfy("x" * 510))
    with pytest.raises(LocalProtocolError, match="parameter_line"):
        conn.send(Mail(f"{'a' * 2048}@example.org", {"SIZE": "1"}))
    assert conn.send(Mail(f"{'a' * 300}@example.org")).startswith(b"MAIL")


def test_starttls_then_ehlo_again_and_extensions_forgotten() -> None:
    conn = in_tls()
    assert conn.phase is ClientPhase.TLS
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("client.example"))
    conn.tls_established()
    assert conn.is_tls
    assert conn.phase is ClientPhase.HELLO
    assert len(conn.extensions) == 0
    with pytest.raises(LocalProtocolError):
        conn.send(Mail("a@example.org"))
    conn.send(Ehlo("client.example"))
    reply(conn, b"250-mx.example\r\n250 AUTH PLAIN\r\n")
    assert conn.extensions.auth == {"PLAIN"}
    with pytest.raises(LocalProtocolError, match="already TLS"):
        conn.send(StartTLS())


@pytest.mark.parametrize(
    "behind",
    [b"250 injected\r\n", b"2", b"250-a\r\n250 b\r\n", b"\r\n"],
)
def test_bytes_behind_the_starttls_220_are_an_injection(behind: bytes) -> None:
    """Whole: the 220 itself is refused, so no handshake starts on a dirty buffer.

    Cut after the 220: the 220 comes out and the late bytes are refused on
    arrival. Either way nothing reaches ``tls_established``.
    """
    wire = b"220 go ahead\r\n" + behind
    for cut in range(1, len(wire) + 1):
        conn = ready()
        conn.send(StartTLS())
        events: list[object] = []
        with pytest.raises(RemoteProtocolError, match="response injection"):
            conn.receive_data(wire[:cut])
            events.append(conn.next_event())
            conn.receive_data(wire[cut:])
            events.append(conn.next_event())
        assert conn.phase is ClientPhase.ERROR
        assert events in ([], [NEED_DATA], [Reply(220, ("go ahead",))])
        with pytest.raises(LocalProtocolError):
            conn.tls_established()


def test_bytes_arriving_later_before_the_handshake_are_an_injection() -> None:
    conn = in_tls()
    with pytest.raises(RemoteProtocolError, match="response injection"):
        conn.receive_data(b"250 late\r\n")


def test_tls_established_outside_its_moment_is_local_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        ready().tls_established()


def test_421_at_any_moment_closes() -> None:
    conn = ready()
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("b@example.net"))
    closing = reply(conn, b"421 4.3.2 shutting down\r\n")
    assert closing.command == Mail("a@example.org")
    assert conn.phase is ClientPhase.CLOSED
    assert conn.pending == ()
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_unsolicited_421_is_accepted() -> None:
    conn = ready()
    event = reply(conn, b"421 idle timeout\r\n")
    assert event.command is None
    assert conn.phase is ClientPhase.CLOSED


def test_close_in_the_middle_of_a_reply_is_an_error() -> None:
    conn = ready()
    conn.send(Noop())
    conn.receive_data(b"250-partial\r\n")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a reply"):
        conn.next_event()


def test_intermediate_reply_to_the_wrong_command_is_an_error() -> None:
    conn = ready()
    conn.send(Mail("a@example.org"))
    conn.receive_data(b"354 go\r\n")
    with pytest.raises(RemoteProtocolError, match="intermediate reply 354 to MAIL"):
        conn.next_event()


def test_greeting_554_allows_only_quit() -> None:
    conn = refused()
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("client.example"))
    assert conn.send(Quit()) == b"QUIT\r\n"


def test_ehlo_refused_then_helo() -> None:
    conn = greeted()
    conn.send(Ehlo("client.example"))
    assert reply(conn, b"502 5.5.1 EHLO not supported\r\n").is_permanent
    assert conn.phase is ClientPhase.HELLO
    conn.send(Helo("client.example"))
    reply(conn, b"250 mx.example\r\n")
    assert conn.phase is ClientPhase.READY
    with pytest.raises(LocalProtocolError, match="SIZE"):
        conn.send(Mail("a@example.org", {"SIZE": "10"}))


def test_auth_exchange() -> None:
    conn = in_auth()
    assert conn.send(AuthResponse(b"user")) == b"dXNlcg==\r\n"
    reply(conn, b"334 UGFzc3dvcmQ6\r\n")
    assert conn.send(AuthResponse(b"secret")) == b"c2VjcmV0\r\n"
    assert reply(conn, b"235 2.7.0 ok\r\n").is_positive
    assert conn.is_authenticated
    assert conn.phase is ClientPhase.READY
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        conn.send(Auth("PLAIN", b""))


def test_auth_cancel_and_failure_return_to_ready() -> None:
    conn = in_auth()
    assert conn.send(AuthCancel()) == b"*\r\n"
    reply(conn, b"501 5.7.0 cancelled\r\n")
    assert conn.phase is ClientPhase.READY
    assert not conn.is_authenticated
    assert conn.send(Auth("PLAIN", b"\x00u\x00p")) == b"AUTH PLAIN AHUAcA==\r\n"
    reply(conn, b"535 5.7.8 no\r\n")
    assert conn.phase is ClientPhase.READY


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    conn = ready(b"250-lmtp.example\r\n250 PIPELINING\r\n", lmtp=True)
    with pytest.raises(LocalProtocolError, match="LHLO"):
        conn.send(Ehlo("client.example"))
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("u1@example.test"))
    conn.send(Rcpt("gone@example.test"))
    conn.send(Rcpt("u2@example.test"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n")
    for _ in range(5):
        conn.next_event()
    conn.send(MessageData(b"Subject: x\r\n\r\nbody\r\n"))
    conn.send(EndOfData())
    conn.receive_data(b"250 2.0.0 <u1@example.test> Saved\r\n451 4.2.0 <u2@example.test> err\r\n")
    first, second = conn.next_event(), conn.next_event()
    assert isinstance(first, Reply)
    assert isinstance(second, Reply)
    assert isinstance(first.command, EndOfData)
    assert isinstance(second.command, EndOfData)
    assert second.is_transient
    assert conn.phase is ClientPhase.READY
    assert conn.pending == ()


def test_bdat_chunks_exact_octets() -> None:
    conn = in_rcpt()
    assert conn.send(Bdat(5)) == b"BDAT 5\r\n"
    with pytest.raises(LocalProtocolError, match="5 left"):
        conn.send(MessageData(b"123456"))
    assert conn.send(MessageData(b".\r\n")) == b".\r\n"
    with pytest.raises(LocalProtocolError, match="2 octets"):
        conn.send(Bdat(1))
    assert conn.send(MessageData(b"x\r")) == b"x\r"
    assert conn.send(Bdat(2, last=True)) == b"BDAT 2 LAST\r\n"
    conn.send(MessageData(b"\nk"))
    reply(conn, b"250 5 octets\r\n")
    assert conn.phase is ClientPhase.BDAT
    reply(conn, b"250 message accepted\r\n")
    assert conn.phase is ClientPhase.READY


def test_refused_bdat_chunk_ends_the_transaction() -> None:
    conn = in_rcpt()
    conn.send(Bdat(1))
    conn.send(MessageData(b"x"))
    reply(conn, b"552 too big\r\n")
    assert conn.phase is ClientPhase.READY


def test_binarymime_needs_bdat() -> None:
    conn = ready(EHLO_REPLY.replace(b"250-ETRN", b"250-BINARYMIME"))
    conn.send(Mail("a@example.org", {"BODY": "BINARYMIME"}))
    conn.send(Rcpt("b@example.net"))
    with pytest.raises(LocalProtocolError, match="BINARYMIME"):
        conn.send(Data())
    assert conn.send(Bdat(0, last=True)) == b"BDAT 0 LAST\r\n"


def test_send_failed_makes_the_connection_unusable() -> None:
    conn = ready()
    conn.send(Noop())
    conn.send_failed()
    assert conn.phase is ClientPhase.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_whole_session_replies_at_any_cut() -> None:
    def make() -> ClientConnection:
        conn = greeted()
        conn.send(Ehlo("client.example"))
        return conn

    events = feed_every_way(make, EHLO_REPLY)
    assert len(events) == 1
    assert isinstance(events[0], Reply)
    assert events[0].lines[-1] == "AUTH PLAIN LOGIN"


def test_lmtp_last_bdat_chunk_gets_one_reply_per_recipient() -> None:
    conn = ready(b"250-lmtp.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n", lmtp=True)
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("u1@example.test"))
    conn.send(Rcpt("u2@example.test"))
    conn.receive_data(b"250 ok\r\n250 ok\r\n250 ok\r\n")
    for _ in range(3):
        conn.next_event()
    conn.send(Bdat(2))
    conn.send(MessageData(b"ab"))
    conn.send(Bdat(1, last=True))  # pipelined behind the first chunk (RFC 3030 4.2)
    conn.send(MessageData(b"c"))
    conn.receive_data(b"250 2 octets\r\n250 <u1> saved\r\n452 <u2> full\r\n")
    first = conn.next_event()
    assert isinstance(first, Reply)
    assert first.command == Bdat(2)
    assert conn.phase is ClientPhase.BDAT
    finals = [conn.next_event(), conn.next_event()]
    assert [r.code for r in finals if isinstance(r, Reply)] == [250, 452]
    assert all(isinstance(r, Reply) and r.command == Bdat(1, last=True) for r in finals)
    assert conn.phase is ClientPhase.READY
    assert conn.pending == ()


def test_lmtp_last_bdat_waits_for_the_rcpt_replies() -> None:
    conn = ready(b"250-lmtp.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n", lmtp=True)
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("u1@example.test"))
    with pytest.raises(LocalProtocolError, match="RCPT replies"):
        conn.send(Bdat(1, last=True))
    assert conn.send(Bdat(1)) == b"BDAT 1\r\n"  # a chunk that is not the last may go


def bdat_transaction(params: dict[str, str | None] | None = None) -> ClientConnection:
    conn = ready(EHLO_REPLY.replace(b"250-ETRN", b"250-BINARYMIME"))
    conn.send(Mail("a@example.org", params or {}))
    reply(conn, b"250 ok\r\n")
    conn.send(Rcpt("b@example.net"))
    reply(conn, b"250 ok\r\n")
    return conn


@pytest.mark.parametrize(
    "pieces",
    [
        [b"a\nb\r\n"],  # bare LF
        [b"a\rb\r\n"],  # bare CR
        [b"ab\r", b"x\r\n"],  # a CR the next piece does not complete
        [b"ab\r\n\r"],  # the message would end in a bare CR
        [b"\n\r\n"],  # LF at the very start
    ],
    ids=["bare-lf", "bare-cr", "cr-then-no-lf", "ends-in-cr", "leading-lf"],
)
def test_bdat_content_with_bare_line_ends_is_refused_before_any_byte(
    pieces: list[bytes],
) -> None:
    """RFC 5321 2.3.8: without BODY=BINARYMIME, lines end in CRLF, in BDAT as in DATA."""
    conn = bdat_transaction()
    size = sum(map(len, pieces))
    conn.send(Bdat(size, last=True))
    sent = b""
    with pytest.raises(LocalProtocolError, match="bare CR or LF"):
        for piece in pieces:
            sent += conn.send(MessageData(piece))
    assert b"\r\r" not in sent and sent == b"".join(pieces)[: len(sent)]
    assert conn.chunk_left == size - len(sent)


def test_bdat_crlf_may_be_split_between_pieces_and_chunks() -> None:
    conn = bdat_transaction()
    assert conn.send(Bdat(4)) == b"BDAT 4\r\n"
    assert conn.send(MessageData(b"ab\r")) == b"ab\r"
    assert conn.send(MessageData(b"")) == b""
    assert conn.send(MessageData(b"\n")) == b"\n"
    reply(conn, b"250 4 octets\r\n")
    conn.send(Bdat(3))
    conn.send(MessageData(b"cd\r"))
    reply(conn, b"250 3 octets\r\n")
    with pytest.raises(LocalProtocolError, match="bare CR"):
        conn.send(Bdat(0, last=True))  # the content would end in CR
    assert conn.send(Bdat(1, last=True)) == b"BDAT 1 LAST\r\n"
    assert conn.send(MessageData(b"\n")) == b"\n"
    assert reply(conn, b"250 stored\r\n").is_positive


def test_bdat_binarymime_content_goes_as_it_is() -> None:
    conn = bdat_transaction({"BODY": "BINARYMIME"})
    conn.send(Bdat(5, last=True))
    assert conn.send(MessageData(b"\n\r\x00\r\r")) == b"\n\r\x00\r\r"
    assert reply(conn, b"250 stored\r\n").is_positive
    # The next transaction, without BINARYMIME, is checked again.
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("b@example.net"))
    conn.send(Bdat(2, last=True))
    with pytest.raises(LocalProtocolError, match="bare CR or LF"):
        conn.send(MessageData(b"a\n"))


@pytest.mark.parametrize("make", [Vrfy, Expn], ids=["VRFY", "EXPN"])
def test_non_ascii_vrfy_expn_needs_smtputf8(make: Callable[[str], Command]) -> None:
    """RFC 6531 3.7.4.2: a UTF-8 argument only to a server that offers SMTPUTF8."""
    without = ready(EHLO_REPLY.replace(b"250-SMTPUTF8\r\n", b""))
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        without.send(make("j\u00f6rg"))
    assert without.pending == ()
    assert without.send(make("jorg")).endswith(b" jorg\r\n")
    assert ready().send(make("j\u00f6rg")).endswith(" j\u00f6rg\r\n".encode())


@pytest.mark.parametrize("wire", [b"250 ok\r\n", b"221 bye\r\n", b"235 ok\r\n"])
def test_only_354_opens_the_data_phase(wire: bytes) -> None:
    """RFC 5321 4.3.2: DATA is answered 354 or refused; a 2xx is the server's error."""
    conn = in_rcpt()
    conn.send(Data())
    conn.receive_data(wire)
    with pytest.raises(RemoteProtocolError, match="only 354 opens the data phase"):
        conn.next_event()
    assert conn.phase is ClientPhase.ERROR
    with pytest.raises(LocalProtocolError, match="unusable"):
        conn.send(MessageData(b"x\r\n"))


def test_a_refused_data_leaves_the_transaction_open_for_rset() -> None:
    conn = in_rcpt()
    conn.send(Data())
    assert reply(conn, b"554 5.7.1 no thanks\r\n").is_permanent
    assert conn.phase is ClientPhase.RCPT
    with pytest.raises(LocalProtocolError):
        conn.send(MessageData(b"x\r\n"))
    assert conn.send(Rset()) == b"RSET\r\n"
    reply(conn, b"250 flushed\r\n")
    assert conn.phase is ClientPhase.READY


def test_a_surplus_reply_with_the_greeting_never_answers_ehlo() -> None:
    """RFC 5321 4.3.1: a reply nothing asked for; it would put every later reply one off."""
    for cut in range(1, 30):
        wire = b"220 mx.example ESMTP\r\n250 surplus\r\n"
        conn = ClientConnection()
        events: list[object] = []
        with pytest.raises(RemoteProtocolError, match="no command waiting"):
            conn.receive_data(wire[:cut])
            events.append(conn.next_event())
            conn.receive_data(wire[cut:])
            events.append(conn.next_event())
        assert events in ([], [NEED_DATA], [Reply(220, ("mx.example ESMTP",))])
        assert conn.phase is ClientPhase.ERROR
        with pytest.raises(LocalProtocolError):
            conn.send(Ehlo("client.example"))


def test_a_reply_begun_before_its_command_was_sent_is_not_its_reply() -> None:
    conn = greeted()
    conn.receive_data(b"25")  # nothing is owed: this is no reply to what comes next
    conn.send(Ehlo("client.example"))
    with pytest.raises(RemoteProtocolError, match="no command waiting"):
        conn.receive_data(b"0 mx.example\r\n")


def test_a_fourth_reply_to_a_pipelined_group_is_not_the_end_of_data_reply() -> None:
    """RFC 2920 3.2: it came before any content was sent, so it answers nothing."""
    conn = ready()
    group = conn.send(Mail("a@example.org")) + conn.send(Rcpt("b@example.net"))
    group += conn.send(Data())
    assert group.endswith(b"DATA\r\n")
    with pytest.raises(RemoteProtocolError, match="no command waiting"):
        conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(MessageData(b"x\r\n"))
    # The same replies, the fourth only after the content: all in order.
    conn = ready()
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert [conn.next_event().code for _ in range(3)] == [250, 250, 354]  # type: ignore[union-attr]
    conn.send(MessageData(b"x\r\n"))
    conn.send(EndOfData())
    assert reply(conn, b"250 2.0.0 queued\r\n").command == EndOfData()


def test_replies_owed_are_counted_across_reads_and_lmtp() -> None:
    conn = ready(b"250-lmtp.example\r\n250 PIPELINING\r\n", lmtp=True)
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("u1@example.test"))
    conn.send(Rcpt("u2@example.test"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n25")
    conn.receive_data(b"0 ok\r\n354 go\r\n")
    assert [conn.next_event().code for _ in range(4)] == [250, 250, 250, 354]  # type: ignore[union-attr]
    conn.send(MessageData(b"x\r\n"))
    conn.send(EndOfData())
    conn.receive_data(b"250 u1 done\r\n250 u2 done\r\n")
    assert [conn.next_event().code for _ in range(2)] == [250, 250]  # type: ignore[union-attr]
    with pytest.raises(RemoteProtocolError, match="no command waiting"):
        conn.receive_data(b"250 one too many\r\n")


def test_a_malformed_reply_comes_after_the_good_ones_before_it() -> None:
    conn = ready()
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("b@example.net"))
    conn.receive_data(b"250 ok\r\n2x0 bad\r\n")
    assert conn.next_event() == Reply(250, ("ok",))
    with pytest.raises(RemoteProtocolError, match="three digits"):
        conn.next_event()
