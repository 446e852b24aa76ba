"""ServerConnection: sequence, limits, DATA/BDAT, STARTTLS, LMTP (RFC 5321, 3030, 3207, 2033)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import (
    NEED_DATA,
    Auth,
    AuthResponse,
    Bdat,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfData,
    Event,
    Helo,
    InvalidCommand,
    Lhlo,
    Limits,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    StartTLS,
)
from smtpcore._server import ServerConfig, ServerConnection, ServerPhase
from tests.feeding import feed_every_way

OK = Reply(250, ("2.0.0 OK",))


class Auto:
    """A ServerConnection that answers every event at once, like a permissive session.

    InvalidCommand gets its own reply; DATA 354, QUIT 221, STARTTLS 220 (with
    ``handshake``, the handshake is then reported done), AUTH 535, EHLO/LHLO
    the EHLO reply, the rest 250.
    Every reply sent is kept in ``wire``.
    """

    def __init__(
        self, conn: ServerConnection, *, greet: bool = True, handshake: bool = False
    ) -> None:
        self.conn = conn
        self.handshake = handshake
        self.wire = b""
        if greet:
            self.wire += conn.send(conn.greeting_reply())

    def receive_data(self, data: bytes) -> None:
        self.conn.receive_data(data)

    def answer(self, event: object) -> None:
        conn = self.conn
        while conn.awaiting is not None:
            if isinstance(event, InvalidCommand):
                reply = event.reply
            elif isinstance(event, Data):
                reply = Reply(354, ("End data with <CR><LF>.<CR><LF>",))
            elif isinstance(event, Quit):
                reply = Reply(221, ("2.0.0 Bye",))
            elif isinstance(event, StartTLS):
                reply = Reply(220, ("2.0.0 Ready to start TLS",))
            elif isinstance(event, (Auth, AuthResponse)):
                reply = Reply(535, ("5.7.8 Authentication failed",))
            elif isinstance(event, (Ehlo, Lhlo)):
                reply = conn.ehlo_reply()
            else:
                reply = OK
            self.wire += conn.send(reply)
            if isinstance(event, StartTLS) and self.handshake:
                conn.tls_established()

    def next_event(self) -> object:
        event = self.conn.next_event()
        self.answer(event)
        return event


def server(**config: object) -> ServerConnection:
    limits = config.pop("limits", None)
    assert limits is None or isinstance(limits, Limits)
    return ServerConnection(ServerConfig(**config), limits)  # type: ignore[arg-type]


def run(wire: bytes, **config: object) -> list[Event]:
    return feed_every_way(lambda: Auto(server(**config)), wire)


def replies(wire: bytes, **config: object) -> bytes:
    auto = Auto(server(**config))
    auto.receive_data(wire)
    while auto.next_event() is not NEED_DATA:
        pass
    return auto.wire


def invalid(events: Sequence[object]) -> list[str]:
    """The first line of each InvalidCommand's reply."""
    return [str(e.reply) for e in events if isinstance(e, InvalidCommand)]


EHLO = b"EHLO c.example\r\n"
ENVELOPE = EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
HEAD = [Ehlo("c.example"), Mail("a@b.example"), Rcpt("c@d.example")]


def test_a_line_repeated_on_a_connection_is_parsed_once_and_means_the_same() -> None:
    message = b"MAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<c@d.example>\r\nDATA\r\nx\r\n.\r\n"
    auto = Auto(server())
    auto.receive_data(EHLO + message + message)
    events = []
    while (event := auto.next_event()) is not NEED_DATA:
        events.append(event)
    first, second = events[1:6], events[6:11]
    assert first == second == [
        Mail("a@b.example", {"SIZE": "10"}), Rcpt("c@d.example"), Data(),
        MessageData(b"x\r\n"), EndOfData(),
    ]  # fmt: skip
    assert second[0] is first[0] and second[1] is first[1]  # the same immutable values
    assert auto.wire.count(b"250 2.0.0 OK\r\n") == 6  # MAIL, RCPT, the end: twice
    assert auto.wire.count(b"354 ") == 2


def test_the_parsed_lines_a_connection_keeps_are_bounded() -> None:
    auto = Auto(server())
    auto.receive_data(EHLO + b"".join(b"NOOP %d\r\n" % n for n in range(100)))
    while auto.next_event() is not NEED_DATA:
        assert len(auto.conn._parsed) <= 16


def test_classic_conversation_exact_bytes() -> None:
    wire = ENVELOPE + b"DATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n"
    assert run(wire, hostname="mx.example") == [
        *HEAD,
        Data(),
        MessageData(b"Subject: hi\r\n\r\n.dot\r\n"),
        EndOfData(),
        Quit(),
    ]
    assert replies(wire, hostname="mx.example") == (
        b"220 mx.example ESMTP\r\n"
        b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
        b"250 ENHANCEDSTATUSCODES\r\n"
        b"250 2.0.0 OK\r\n250 2.0.0 OK\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"
    )


def test_ehlo_reply_lists_the_configured_extensions() -> None:
    conn = server(
        hostname="mx.example",
        size=1000,
        smtputf8=True,
        chunking=True,
        binarymime=True,
        dsn=True,
        etrn=True,
        starttls=True,
        auth_mechanisms=("plain", "LOGIN"),
        requiretls=True,
    )
    assert conn.ehlo_reply().lines == (
        "mx.example",
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
        "BINARYMIME",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "ETRN",
        "STARTTLS",
    )
    tls = ServerConnection(conn.config, tls=True)
    assert tls.ehlo_reply().lines[-3:] == ("ETRN", "AUTH PLAIN LOGIN", "REQUIRETLS")
    early = ServerConnection(ServerConfig(auth_mechanisms=("PLAIN",), auth_before_tls=True))
    assert "AUTH PLAIN" in early.ehlo_reply().lines


@pytest.mark.parametrize(
    ("wire", "reply"),
    [
        (
            b"MAIL FROM:<a@b.example>\r\n",
            "503 5.5.1 Bad sequence of commands: send EHLO or HELO first",
        ),
        (
            EHLO + b"RCPT TO:<c@d.example>\r\n",
            "503 5.5.1 Bad sequence of commands: need MAIL before RCPT",
        ),
        (EHLO + b"DATA\r\n", "503 5.5.1 Bad sequence of commands: need MAIL and RCPT before DATA"),
        (
            EHLO + b"MAIL FROM:<a@b.example>\r\nDATA\r\n",
            "503 5.5.1 Bad sequence of commands: need RCPT before DATA",
        ),
        (
            EHLO + b"MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n",
            "503 5.5.1 Bad sequence of commands: nested MAIL command",
        ),
        (b"FOO\r\n", "500 5.5.1 Command FOO unrecognized"),
        (b"LHLO x.example\r\n", "500 5.5.1 Command LHLO unrecognized"),
        (b"EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname"),
        (EHLO + b"EXPN staff\r\n", "502 5.5.1 Command EXPN not implemented"),
        (EHLO + b"TURN\r\n", "502 5.5.1 Command TURN not implemented"),
        (EHLO + b"SEND FROM:<a@b.example>\r\n", "502 5.5.1 Command SEND not implemented"),
        (EHLO + b"ETRN example.org\r\n", "502 5.5.1 Command ETRN not implemented"),
        (EHLO + b"STARTTLS\r\n", "502 5.5.1 Command STARTTLS not implemented"),
        (EHLO + b"AUTH PLAIN\r\n", "502 5.5.1 Command AUTH not implemented"),
        (
            EHLO + b"MAIL FROM:<a@b.example> FOO=BAR\r\n",
            "555 5.5.4 Parameter FOO not recognized or not implemented",
        ),
        (
            EHLO + b"MAIL FROM:<a@b.example> SMTPUTF8\r\n",
            "555 5.5.4 Parameter SMTPUTF8 not recognized or not implemented",
        ),
        (
            EHLO + b"MAIL FROM:<a@b.example> RET=FULL\r\n",
            "555 5.5.4 Parameter RET not recognized or not implemented",
        ),
        (
            b"HELO c.example\r\nMAIL FROM:<a@b.example> SIZE=10\r\n",
            "555 5.5.4 Parameter SIZE not recognized or not implemented",
        ),
        (
            ENVELOPE + b"RCPT TO:<e@d.example> NOTIFY=NEVER\r\n",
            "555 5.5.4 Parameter NOTIFY not recognized or not implemented",
        ),
        (
            EHLO + b"MAIL FROM:<\xc3\xa9@b.example>\r\n",
            "553 5.6.7 Non-ASCII sender address needs SMTPUTF8",
        ),
        (
            EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<\xc3\xa9@d.example>\r\n",
            "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8",
        ),
        (EHLO + b"BDAT 3 LAST\r\nabc", "502 5.5.1 Command BDAT not implemented"),
    ],
)
def test_invalid_commands_carry_their_reply(wire: bytes, reply: str) -> None:
    assert invalid(run(wire)) == [reply]


def test_enhanced_codes_only_when_configured() -> None:
    assert invalid(run(b"FOO\r\n", enhanced_status_codes=False)) == ["500 Command FOO unrecognized"]


def test_size_above_the_limit_is_refused_at_mail() -> None:
    """RFC 1870 6.1."""
    wire = EHLO + b"MAIL FROM:<a@b.example> SIZE=1001\r\nMAIL FROM:<a@b.example> SIZE=1000\r\n"
    events = run(wire, size=1000)
    assert invalid(events) == ["552 5.3.4 Message size exceeds fixed limit of 1000 octets"]
    assert events[-1] == Mail("a@b.example", {"SIZE": "1000"})


def test_smtputf8_transaction_allows_utf8_addresses() -> None:
    wire = EHLO + "MAIL FROM:<é@b.example> SMTPUTF8\r\nRCPT TO:<ü@d.example>\r\n".encode()
    events = run(wire, smtputf8=True)
    assert events[1:] == [Mail("é@b.example", {"SMTPUTF8": None}), Rcpt("ü@d.example")]


def test_too_many_recipients_gives_452() -> None:
    """RFC 5321 4.5.3.1.10."""
    wire = EHLO + b"MAIL FROM:<a@b.example>\r\n" + b"RCPT TO:<c@d.example>\r\n" * 3
    events = run(wire, limits=Limits(recipients=2))
    assert events[2:4] == [Rcpt("c@d.example"), Rcpt("c@d.example")]
    assert invalid(events) == ["452 4.5.3 Too many recipients (limit 2)"]


def test_recipients_over_the_limit_are_not_errors() -> None:
    """RFC 5321 4.5.3.1.10: after 452 the client goes on with the recipients accepted.

    The 452s are no fault of the client, so they do not count toward
    ``Limits.errors``: the message still gets its DATA and its 250.
    """
    wire = (
        EHLO
        + b"MAIL FROM:<a@b.example>\r\n"
        + b"RCPT TO:<c@d.example>\r\n" * 150
        + b"DATA\r\nhi\r\n.\r\nQUIT\r\n"
    )
    out = replies(wire, limits=Limits(recipients=100, errors=20))
    assert out.count(b"452 4.5.3 Too many recipients (limit 100)\r\n") == 50
    assert b"421" not in out
    assert out.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK\r\n221 2.0.0 Bye\r\n")


def test_recipients_far_over_the_limit_become_errors() -> None:
    """Beyond ``Limits.recipient_overshoot`` excess recipients, each 452 is an error
    (Postfix smtpd_recipient_overshoot_limit): endless RCPTs are not free."""
    wire = EHLO + b"MAIL FROM:<a@b.example>\r\n" + b"RCPT TO:<c@d.example>\r\n" * 20
    out = replies(wire, limits=Limits(recipients=2, recipient_overshoot=5, errors=3))
    assert out.count(b"452 4.5.3") == 5 + 3
    assert out.endswith(b"421 4.7.0 localhost Error limit reached, closing\r\n")


def test_default_recipient_limit_is_postfix_s_1000() -> None:
    assert Limits().recipients == 1000


def test_error_limit_gives_421_and_closes() -> None:
    auto = Auto(server(limits=Limits(errors=2)))
    auto.receive_data(b"FOO\r\nFOO\r\nFOO\r\nNOOP\r\n")
    events = [auto.next_event() for _ in range(3)]
    assert invalid(events)[-1] == "421 4.7.0 localhost Error limit reached, closing"
    assert auto.conn.phase is ServerPhase.CLOSED
    assert auto.next_event() is NEED_DATA
    auto.receive_data(b"")
    assert auto.next_event() == ConnectionClosed()


def test_line_too_long_is_500_and_its_rest_is_skipped() -> None:
    """RFC 5321 4.5.3.1.4: 512 octets; the tail would read "QUIT" and "." otherwise."""
    long = b"NOOP " + b"x" * 600 + b"\r\nQUIT\r\n.\r\n"
    events = run(EHLO + long[:-10] + b"QUIT" + long[-10:].replace(b"QUIT\r\n", b""))
    assert invalid(events) == ["500 5.5.2 Line too long (limit 512 octets)"]
    ok = b"NOOP " + b"x" * 505 + b"\r\n"  # 512 octets with its CRLF
    assert run(ok) == [Noop("x" * 505)]
    assert invalid(run(b"NOOP " + b"x" * 506 + b"\r\nRSET\r\n")) == [
        "500 5.5.2 Line too long (limit 512 octets)"
    ]


def test_limits_given_to_a_running_connection_bound_its_next_line() -> None:
    auto = Auto(server())
    auto.receive_data(EHLO + b"NOOP " + b"x" * 95 + b"\r\n")
    assert auto.next_event() == Ehlo("c.example")
    assert auto.next_event() == Noop("x" * 95)  # 102 octets: within 512
    auto.conn.limits = Limits(command_line=100, parameter_line=100, auth_line=100)
    auto.receive_data(b"NOOP " + b"x" * 95 + b"\r\nNOOP " + b"x" * 93 + b"\r\n")
    assert invalid([auto.next_event()]) == ["500 5.5.2 Line too long (limit 100 octets)"]
    assert auto.next_event() == Noop("x" * 93)  # 100 octets with its CRLF


def test_mail_lines_may_be_parameter_line_long() -> None:
    wire = (
        EHLO + b"MAIL FROM:<a@b.example> ENVID=" + b"x" * 100 + b" RET=HDRS" + b" " * 600 + b"\r\n"
    )
    events = run(wire, dsn=True)
    assert events[1] == Mail("a@b.example", {"ENVID": "x" * 100, "RET": "HDRS"})


@pytest.mark.parametrize(
    "content",
    [b"a\n.\nb", b"a\r.\rb", b"a\r\n.\rb", b"a\n.\r\nb", b"a\r.\nb", b"a\r\n.\nb", b"a\r.\r\nb"],
)
@pytest.mark.parametrize("bare_lf", ["reject", "normalise"])
def test_smuggling_gives_one_message_and_a_refusal(content: bytes, bare_lf: str) -> None:
    """Only CRLF.CRLF ends DATA under both policies: one message, refused or normalised.

    A bare CR is refused under both; a bare LF only under ``reject``."""
    wire = ENVELOPE + b"DATA\r\n" + content + b"\r\n.\r\nRSET\r\n"
    events = run(wire, bare_lf=bare_lf)
    kept = content.replace(b"\r\n.", b"\r\n") + b"\r\n"
    bare_cr = b"\r" in content.replace(b"\r\n", b"")
    if bare_lf == "normalise":
        kept = re.sub(rb"(?<!\r)\n", b"\r\n", kept)
    end: Event = EndOfData()
    if bare_lf == "reject" or bare_cr:
        end = InvalidCommand(
            "bare CR or LF in the message content",
            Reply(550, ("5.5.2 Message refused: bare CR or LF in the content (RFC 5321 2.3.8)",)),
        )
    assert events[3:] == [Data(), MessageData(kept), end, Rset()]


def test_the_default_is_to_normalise_bare_lf() -> None:
    assert ServerConfig().bare_lf == "normalise"
    with pytest.raises(ValueError, match="bare_lf"):
        ServerConfig(bare_lf="refuse")  # type: ignore[arg-type]


def test_smuggled_commands_stay_content_when_normalised() -> None:
    wire = ENVELOPE + b"DATA\r\nx\n.\nMAIL FROM:<evil@x.example>\r\n.\r\nNOOP\r\n"
    events = run(wire)
    assert events[3:] == [
        Data(),
        MessageData(b"x\r\n.\r\nMAIL FROM:<evil@x.example>\r\n"),
        EndOfData(),
        Noop(),
    ]


def test_oversize_message_is_read_to_its_end_then_552() -> None:
    wire = ENVELOPE + b"DATA\r\n" + b"x" * 50 + b"\r\n" + b"y" * 50 + b"\r\n.\r\nNOOP\r\n"
    events = run(wire, limits=Limits(message_size=60))
    assert invalid(events) == ["552 5.3.4 Message size exceeds fixed limit of 60 octets"]
    assert events[-1] == Noop()
    auto = Auto(server(limits=Limits(message_size=60)))
    auto.receive_data(wire)
    while auto.next_event() is not NEED_DATA:
        pass
    assert auto.conn.phase is ServerPhase.READY


def test_bdat_payload_that_looks_like_commands_is_content() -> None:
    wire = ENVELOPE + b"BDAT 15\r\nRCPT TO:<x@y>\r\nBDAT 4 LAST\r\nQUIT\r\nQUIT\r\n"
    assert run(wire, chunking=True) == [
        *HEAD,
        Bdat(15),
        MessageData(b"RCPT TO:<x@y>\r\n"),
        EndOfChunk(),
        Bdat(4, last=True),
        MessageData(b"QUIT"),
        EndOfData(),
        InvalidCommand("Command unrecognized", Reply(500, ("5.5.1 Command unrecognized",))),
        Quit(),
    ]


def test_bdat_without_transaction_is_503_and_its_octets_are_consumed() -> None:
    wire = EHLO + b"BDAT 15\r\nRCPT TO:<x@y>\r\nNOOP\r\n"
    events = run(wire, chunking=True)
    assert invalid(events) == ["503 5.5.1 Bad sequence of commands: need MAIL and RCPT before BDAT"]
    assert events[-1] == Noop()
    assert len(events) == 3


def test_malformed_bdat_size_is_501_and_closes() -> None:
    auto = Auto(server(chunking=True))
    auto.receive_data(ENVELOPE + b"BDAT +4\r\nQUIT")
    events = [auto.next_event() for _ in range(4)]
    assert invalid(events) == ["501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)"]
    assert auto.conn.phase is ServerPhase.CLOSED


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"BDAT " + b"9" * 3000, "500 5.5.2 Line too long (limit 512 octets)"),
        (b"bdat " + b"1" * 600 + b" LAST", "500 5.5.2 Line too long (limit 512 octets)"),
        (b"BDAT", "501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)"),
        (b"BDAT   ", "501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)"),
        (b"BDAT x LAST", "501 5.5.4 Syntax: BDAT chunk-size [LAST] (RFC 3030 2)"),
    ],
    ids=["3000-digits", "600-digits-last", "no-size", "spaces", "not-a-number"],
)
def test_bdat_whose_size_cannot_be_read_is_answered_then_closed(line: bytes, reply: str) -> None:
    """RFC 3030 2: the chunk's octets follow at once; without a size we cannot skip
    them, and reading on would take them for commands. Reply and close."""
    wire = ENVELOPE + line + b"\r\n" + b"RSET\r\nNOOP\r\n"
    events = run(wire, chunking=True)
    assert invalid(events) == [reply]
    assert events[-1] == ConnectionClosed() or isinstance(events[-1], InvalidCommand)
    assert not any(isinstance(e, (Rset, Noop)) for e in events)
    auto = Auto(server(chunking=True))
    auto.receive_data(wire)
    while auto.next_event() is not NEED_DATA and auto.conn.phase is not ServerPhase.CLOSED:
        pass
    assert auto.conn.phase is ServerPhase.CLOSED


def _bdat_message(content: bytes, cut: int) -> bytes:
    first, second = content[:cut], content[cut:]
    return (
        ENVELOPE
        + b"BDAT %d\r\n" % len(first)
        + first
        + b"BDAT %d LAST\r\n" % len(second)
        + second
        + b"NOOP\r\n"
    )


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4, 5])
def test_bdat_content_bare_lf_is_normalised_across_chunks(cut: int) -> None:
    """RFC 3030 3: BDAT content other than BINARYMIME is CRLF text, as with DATA;
    a CR at the end of one chunk may meet its LF in the next."""
    events = run(_bdat_message(b"a\nb\r\nc", cut), chunking=True)
    content = b"".join(e.data for e in events if isinstance(e, MessageData))
    assert content == b"a\r\nb\r\nc"
    assert EndOfData() in events and events[-1] == Noop()


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    ("content", "bare_lf"),
    [(b"a\rb\r\nc", "normalise"), (b"a\nb\r\nc", "reject"), (b"ab\r\nc\r", "normalise")],
)
def test_bdat_content_bare_cr_or_rejected_lf_is_550(cut: int, content: bytes, bare_lf: str) -> None:
    events = run(_bdat_message(content, cut), chunking=True, bare_lf=bare_lf)
    assert invalid(events) == [
        "550 5.5.2 Message refused: bare CR or LF in the content (RFC 5321 2.3.8)"
    ]
    assert EndOfData() not in events and events[-1] == Noop()


@pytest.mark.parametrize(
    ("config", "chunk"),
    [({"size": 2}, b"BDAT 3 LAST\r\nabc"), ({}, b"BDAT 3 LAST\r\na\rb")],
    ids=["oversize", "bare-cr"],
)
def test_lmtp_refused_last_chunk_gets_one_reply_per_recipient(
    config: dict[str, object], chunk: bytes
) -> None:
    """RFC 2033 4.2 with RFC 3030: the client waits for one reply per recipient after LAST."""
    wire = (
        b"LHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
        b"RCPT TO:<e@d.example>\r\n" + chunk + b"NOOP\r\n"
    )
    out = replies(wire, lmtp=True, chunking=True, **config)
    refusal = out.split(b"\r\n")[-4]
    assert refusal.startswith((b"552 ", b"550 "))
    assert out.endswith((refusal + b"\r\n") * 2 + b"250 2.0.0 OK\r\n")


def test_binarymime_bdat_content_is_octets_not_lines() -> None:
    wire = (
        EHLO
        + b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n"
        + b"BDAT 6 LAST\r\na\rb\nc\r"
    )
    events = run(wire, chunking=True, binarymime=True, bare_lf="reject")
    assert b"".join(e.data for e in events if isinstance(e, MessageData)) == b"a\rb\nc\r"
    assert events[-1] == EndOfData()


def test_bdat_beyond_the_size_limit_is_read_and_dropped() -> None:
    wire = ENVELOPE + b"BDAT 20 LAST\r\n" + b"z" * 20 + b"NOOP\r\n"
    events = run(wire, chunking=True, size=10)
    assert invalid(events) == ["552 5.3.4 Message size exceeds fixed limit of 10 octets"]
    assert events[-1] == Noop()
    assert not any(isinstance(e, MessageData) for e in events)


def test_data_after_bdat_is_503() -> None:
    wire = ENVELOPE + b"BDAT 1\r\nxDATA\r\n"
    assert invalid(run(wire, chunking=True)) == [
        "503 5.5.1 Bad sequence of commands: DATA between BDAT chunks (RFC 3030 2)"
    ]


def test_starttls_injection_is_discarded() -> None:
    """RFC 3207 5, CVE-2011-0411: nothing pipelined behind STARTTLS is executed."""
    wire = EHLO + b"STARTTLS\r\nRSET\r\nMAIL FROM:<x@y.example>\r\n"
    events = run(wire, starttls=True)
    assert events == [Ehlo("c.example"), StartTLS()]
    # After the handshake, EHLO again; MAIL before it is refused.
    auto = Auto(server(starttls=True), handshake=True)
    auto.receive_data(wire)
    while auto.next_event() is not NEED_DATA:
        pass
    assert auto.conn.is_tls
    assert auto.conn.phase is ServerPhase.HELLO
    auto.receive_data(b"MAIL FROM:<x@y.example>\r\nEHLO c.example\r\n")
    after = [auto.next_event(), auto.next_event()]
    assert invalid(after) == ["503 5.5.1 Bad sequence of commands: send EHLO or HELO first"]
    assert after[1] == Ehlo("c.example")
    assert "STARTTLS" not in auto.conn.ehlo_reply().lines


def test_bytes_before_the_handshake_are_dropped() -> None:
    conn = server(starttls=True)
    conn.send(conn.greeting_reply())
    conn.receive_data(EHLO + b"STARTTLS\r\n")
    assert conn.next_event() == Ehlo("c.example")
    conn.send(conn.ehlo_reply())
    assert conn.next_event() == StartTLS()
    conn.send(Reply(220, ("Go ahead",)))
    conn.receive_data(b"QUIT\r\n")
    assert conn.next_event() is NEED_DATA
    conn.tls_established()
    assert conn.next_event() is NEED_DATA


def test_lmtp_needs_one_reply_per_recipient() -> None:
    """RFC 2033 4.2."""
    conn = server(lmtp=True)
    conn.send(conn.greeting_reply())
    conn.receive_data(
        b"LHLO c.example\r\nMAIL FROM:<a@b.example>\r\n"
        b"RCPT TO:<one@d.example>\r\nRCPT TO:<two@d.example>\r\nDATA\r\nhi\r\n.\r\n"
    )
    for _ in range(4):
        conn.next_event()
        conn.send(OK)
    assert conn.next_event() == Data()
    conn.send(Reply(354))
    assert conn.next_event() == MessageData(b"hi\r\n")
    assert conn.next_event() == EndOfData()
    assert conn.recipients == ("one@d.example", "two@d.example")
    assert conn.send(OK) == b"250 2.0.0 OK\r\n"
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.send(Reply(452, ("4.2.2 Mailbox full",)))
    assert conn.phase is ServerPhase.READY
    assert len(conn.recipients) == 0
    assert conn.next_event() is NEED_DATA


def test_lmtp_refuses_ehlo_and_helo() -> None:
    assert invalid(run(b"EHLO c.example\r\nHELO c.example\r\n", lmtp=True)) == [
        "500 5.5.1 Command EHLO unrecognized: use LHLO (RFC 2033 4.1)",
        "500 5.5.1 Command HELO unrecognized: use LHLO (RFC 2033 4.1)",
    ]


def test_state_moves_on_positive_replies_only() -> None:
    conn = server()
    conn.send(conn.greeting_reply())
    conn.receive_data(EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
    conn.next_event()
    conn.send(conn.ehlo_reply())
    assert conn.next_event() == Mail("a@b.example")
    conn.send(Reply(550, ("5.7.1 No",)))
    assert conn.phase is ServerPhase.READY
    event = conn.next_event()  # RCPT without an accepted MAIL
    assert isinstance(event, InvalidCommand)
    assert event.reply.code == 503
    with pytest.raises(LocalProtocolError):
        conn.send(OK)  # an InvalidCommand cannot be accepted
    conn.send(event.reply)
    event = conn.next_event()
    assert isinstance(event, InvalidCommand)
    with pytest.raises(LocalProtocolError):
        conn.send(Reply(354))  # no DATA is waiting


def test_replies_out_of_turn_raise() -> None:
    conn = server()
    with pytest.raises(LocalProtocolError):
        conn.send(OK)  # the greeting is 220, 554 or 421
    conn.send(conn.greeting_reply())
    with pytest.raises(LocalProtocolError):
        conn.send(OK)  # nothing to answer
    conn.receive_data(b"NOOP\r\nNOOP\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.next_event()  # the first NOOP is not answered yet
    assert conn.send(Reply(421, ("4.3.2 Shutting down",))) == b"421 4.3.2 Shutting down\r\n"
    assert conn.phase is ServerPhase.CLOSED


def test_early_talker_gets_554_and_is_closed() -> None:
    auto = Auto(server(), greet=False)
    auto.receive_data(b"EHLO c.example\r\n")
    assert auto.conn.next_event() is NEED_DATA  # nothing before the greeting
    auto.wire += auto.conn.send(auto.conn.greeting_reply())
    events = [auto.next_event()]
    assert invalid(events) == ["554 5.5.0 Protocol error: data sent before the greeting"]
    assert auto.conn.phase is ServerPhase.CLOSED


def test_auth_exchange() -> None:
    conn = ServerConnection(ServerConfig(auth_mechanisms=("PLAIN", "LOGIN")), tls=True)
    conn.send(conn.greeting_reply())
    conn.receive_data(
        EHLO + b"AUTH LOGIN\r\ndXNlcg==\r\n*\r\nAUTH PLAIN AGEAYg==\r\nAUTH PLAIN\r\n"
    )
    conn.next_event()
    conn.send(conn.ehlo_reply())
    assert conn.next_event() == Auth("LOGIN")
    conn.send(Reply(334, ("VXNlcm5hbWU6",)))
    assert conn.next_event() == AuthResponse(b"user")
    conn.send(Reply(334, ("UGFzc3dvcmQ6",)))
    event = conn.next_event()
    conn.send(Reply(501, ("5.7.0 Cancelled",)))
    assert conn.phase is ServerPhase.READY
    assert conn.next_event() == Auth("PLAIN", b"\x00a\x00b")
    with pytest.raises(LocalProtocolError):
        conn.send(Reply(235, ("2.7.0 OK",)))  # authenticated() first
    conn.authenticated("a")
    conn.send(Reply(235, ("2.7.0 OK",)))
    assert conn.is_authenticated
    assert conn.identity == "a"
    event = conn.next_event()
    assert isinstance(event, InvalidCommand)
    assert str(event.reply) == "503 5.5.1 Already authenticated (RFC 4954 4)"


def test_auth_before_tls_is_538() -> None:
    assert invalid(run(EHLO + b"AUTH PLAIN\r\n", auth_mechanisms=("PLAIN",))) == [
        "538 5.7.11 Encryption required for requested authentication mechanism"
    ]


def test_helo_gives_no_extensions() -> None:
    events = run(b"HELO c.example\r\nMAIL FROM:<a@b.example>\r\n")
    assert events == [Helo("c.example"), Mail("a@b.example")]


def test_peer_close_mid_data_is_connection_closed() -> None:
    auto = Auto(server())
    auto.receive_data(ENVELOPE + b"DATA\r\npartial")
    auto.receive_data(b"")
    events = []
    while (event := auto.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, ConnectionClosed):
            break
    assert events[-2:] == [MessageData(b"partial"), ConnectionClosed()]


def test_rset_ends_the_transaction() -> None:
    auto = Auto(server())
    auto.receive_data(ENVELOPE + b"RSET\r\n")
    for _ in range(4):
        auto.next_event()
    assert auto.conn.sender is None
    assert auto.conn.recipients == ()
    assert auto.conn.phase is ServerPhase.READY


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"EHLO c.example\r\n",
                b"MAIL FROM:<a@b.example>\r\n",
                b"RCPT TO:<c@d.example>\r\n",
                b"DATA\r\n",
                b".\r\n",
                b"\r\n",
                b"\n",
                b"\r",
                b"BDAT 3\r\n",
                b"BDAT 2 LAST\r\n",
                b"STARTTLS\r\n",
                b"AUTH PLAIN\r\n",
                b"RSET\r\n",
                b"x" * 700,
                b"\xff\x00",
                b"QUIT\r\n",
            ]
        )
    ),
    st.binary(max_size=50),
)
def test_random_input_only_yields_events(pieces: list[bytes], noise: bytes) -> None:
    # Never empty: b"" means "closed", after which ConnectionClosed repeats.
    wire = b"".join(pieces) + noise + b"\r\n"
    config = {"chunking": True, "starttls": True, "auth_mechanisms": ("PLAIN",)}
    feed_every_way(lambda: Auto(server(**config)), wire, seeds=2)
