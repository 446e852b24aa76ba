"""The command-line parser: lines, verbs, paths, parameters (RFC 5321 4.1, 4.5.3.1)."""

from __future__ import annotations

import dataclasses

import pytest

from smtpcore import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Data,
    Ehlo,
    Etrn,
    Event,
    Expn,
    Helo,
    Help,
    InvalidCommand,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
    Turn,
    Vrfy,
)
from smtpcore._commands import LineReader, Refusal, parse_auth_response, parse_command
from tests.feeding import feed_every_way


class Lines:
    """LineReader + parse_command as a connection; too long lines become InvalidCommand."""

    def __init__(self, limit: int = 16) -> None:
        self.reader = LineReader()
        self.limit = limit

    def receive_data(self, data: bytes) -> None:
        self.reader.buffer += data

    def next_event(self) -> object:
        line = self.reader.take_line(lambda start: self.limit)
        if line is None:
            return NEED_DATA
        if isinstance(line, int):
            return InvalidCommand("too long", Reply(500))
        parsed = parse_command(line)
        if isinstance(parsed, Refusal):
            return InvalidCommand(parsed.text, Reply(parsed.code, (parsed.status,)))
        return parsed


def lines(wire: bytes, limit: int = 16) -> list[Event]:
    return feed_every_way(lambda: Lines(limit), wire)


TOO_LONG = InvalidCommand("too long", Reply(500))


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"HELO client.example", Helo("client.example")),
        (b"ehlo [192.0.2.1]", Ehlo("[192.0.2.1]")),
        (b"LHLO lmtp.example", Lhlo("lmtp.example")),
        (b"MAIL FROM:<a@b.example>", Mail("a@b.example")),
        (b"mail from:<>", Mail("")),
        (b"MAIL FROM: <a@b.example>", Mail("a@b.example")),
        (b"MAIL FROM:<@x.example,@y.example:a@b.example>", Mail("a@b.example")),
        (
            b"MAIL FROM:<a@b.example> SIZE=100 body=8bitmime",
            Mail("a@b.example", {"SIZE": "100", "BODY": "8bitmime"}),
        ),
        (b"MAIL FROM:<a@b.example>  SMTPUTF8 ", Mail("a@b.example", {"SMTPUTF8": None})),
        (b'MAIL FROM:<"a>b"@c.example>', Mail('"a>b"@c.example')),
        (b"MAIL FROM:<\xc3\xa9@b.example> SMTPUTF8", Mail("é@b.example", {"SMTPUTF8": None})),
        (b"RCPT TO:<c@d.example>", Rcpt("c@d.example")),
        (b"RCPT TO:<Postmaster>", Rcpt("postmaster")),
        (
            b"RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.example",
            Rcpt("c@d.example", {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;c@d.example"}),
        ),
        (b"DATA", Data()),
        (b"data ", Data()),
        (b"BDAT 0 LAST", Bdat(0, last=True)),
        (b"BDAT 14", Bdat(14)),
        (b"bdat 99999999999999999999 last", Bdat(99999999999999999999, last=True)),
        (b"RSET", Rset()),
        (b"NOOP", Noop()),
        (b"NOOP whatever you like", Noop("whatever you like")),
        (b"QUIT", Quit()),
        (b"VRFY smith", Vrfy("smith")),
        (b"EXPN list", Expn("list")),
        (b"HELP", Help()),
        (b"HELP MAIL", Help("MAIL")),
        (b"SEND FROM:<a@b.example>", Send("a@b.example")),
        (b"SOML FROM:<a@b.example>", Soml("a@b.example")),
        (b"SAML FROM:<>", Saml("")),
        (b"TURN", Turn()),
        (b"ETRN @example.org", Etrn("@example.org")),
        (b"STARTTLS", StartTLS()),
        (b"AUTH PLAIN", Auth("PLAIN")),
        (b"auth plain AGEAYg==", Auth("PLAIN", b"\x00a\x00b")),
        (b"AUTH EXTERNAL =", Auth("EXTERNAL", b"")),
    ],
)
def test_commands_parse(line: bytes, command: Event) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize(
    "line",
    [
        b"MAIL FROM:<a@b.example>",
        b"MAIL FROM:<>",
        b"mail from: <a@b.example> size=10 body=8bitmime",
        b'MAIL FROM:<"a>b"@b.example> SMTPUTF8',
        b"MAIL FROM:<@r.example,@s.example:a@b.example> RET=HDRS ENVID=x+2By",
        "MAIL FROM:<j\u00f6rg@b.example> SMTPUTF8".encode(),
        b"RCPT TO:<a@b.example>",
        b"RCPT TO:<PostMaster>",
        b"rcpt to:<a@[192.0.2.1]> notify=never orcpt=rfc822;a@b.example",
        "RCPT TO:<\u00e4@b.example>".encode(),
    ],
)
def test_parsed_mail_and_rcpt_pass_their_constructor(line: bytes) -> None:
    """The parser builds MAIL and RCPT without their constructor's checks: it checks no less."""
    command = parse_command(line)
    assert isinstance(command, (Mail, Rcpt)), command
    assert dataclasses.replace(command) == command
    assert dict(command.params) == {k.upper(): v for k, v in command.params.items()}
    with pytest.raises(TypeError):
        command.params["X"] = None  # type: ignore[index]


@pytest.mark.parametrize(
    ("line", "code", "status"),
    [
        (b"FOO", 500, "5.5.1"),
        (b"", 500, "5.5.1"),
        (b" MAIL FROM:<a@b>", 500, "5.5.1"),
        (b"MA1L FROM:<a@b>", 500, "5.5.1"),
        (b"RSET\nMAIL FROM:<a@b.example>", 500, "5.5.1"),
        (b"HELO", 501, "5.5.4"),
        (b"EHLO bad_host!", 501, "5.5.4"),
        (b"EHLO h\xc3\xa9.example", 501, "5.5.4"),
        (b"MAIL TO:<a@b.example>", 501, "5.5.4"),
        (b"MAIL FROM:a@b.example", 501, "5.5.4"),
        (b"MAIL FROM:  <a@b.example>", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example>SIZE=1", 501, "5.5.4"),
        (b"MAIL FROM:<a@@b>", 501, "5.1.7"),
        (b"MAIL FROM:<a@b.example> SIZE=x", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example> BODY=9BIT", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example> =x", 501, "5.5.4"),
        (b"MAIL FROM:<a@b.example> \xff", 501, "5.5.2"),
        (b"MAIL FROM:<a@b.example>\x00", 501, "5.5.2"),
        (b"MAIL FROM:<" + b"a" * 250 + b"@b.example>", 501, "5.1.7"),
        (b"RCPT TO:<>", 501, "5.1.3"),
        (b"RCPT TO:<nobody>", 501, "5.1.3"),
        (b"RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),
        (b"DATA now", 501, "5.5.4"),
        (b"QUIT please", 501, "5.5.4"),
        (b"STARTTLS x", 501, "5.5.4"),
        (b"VRFY", 501, "5.5.4"),
        (b"BDAT", 501, "5.5.4"),
        (b"BDAT +14", 501, "5.5.4"),
        (b"BDAT -1", 501, "5.5.4"),
        (b"BDAT 1e3", 501, "5.5.4"),
        (b"BDAT 123456789012345678901", 501, "5.5.4"),
        (b"BDAT \xd9\xa1\xd9\xa2", 501, "5.5.4"),  # Arabic-Indic digits
        (b"BDAT 14 LASTLY", 501, "5.5.4"),
        (b"BDAT 14  LAST", 501, "5.5.4"),
        (b"AUTH", 501, "5.5.4"),
        (b"AUTH PLAIN abc", 501, "5.5.2"),
        (b"AUTH PLAIN ab!=", 501, "5.5.2"),
        (b"AUTH PLAIN AGEAYg== x", 501, "5.5.4"),
        (b"ETRN a b", 501, "5.5.4"),
        (b"SEND FROM:<a@b.example> SIZE=1", 501, "5.5.4"),
    ],
)
def test_bad_lines_are_refused(line: bytes, code: int, status: str) -> None:
    refusal = parse_command(line)
    assert isinstance(refusal, Refusal), refusal
    assert (refusal.code, refusal.status) == (code, status)


def test_auth_responses() -> None:
    assert parse_auth_response(b"*") == AuthCancel()
    assert parse_auth_response(b"") == AuthResponse(b"")
    assert parse_auth_response(b"=") == AuthResponse(b"")
    assert parse_auth_response(b"dXNlcg==") == AuthResponse(b"user")
    for bad in (b"dXNlcg=", b"\xff", b"** ", b"dX Nl"):
        refusal = parse_auth_response(bad)
        assert isinstance(refusal, Refusal)
        assert (refusal.code, refusal.status) == (501, "5.5.2")


def test_pipelined_lines_come_out_in_order() -> None:
    assert lines(b"RSET\r\nNOOP\r\nquit\r\n") == [Rset(), Noop(), Quit()]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    # 14 octets + CRLF = 16 = the limit.
    assert lines(b"NOOP 123456789\r\nQUIT\r\n") == [Noop("123456789"), Quit()]


def test_line_one_over_the_limit_is_skipped_whole() -> None:
    assert lines(b"NOOP 1234567890\r\nQUIT\r\n") == [TOO_LONG, Quit()]


def test_rest_of_a_long_line_never_becomes_a_command() -> None:
    """The tail of a cut line looks like a command and an end of data; both are skipped."""
    wire = b"NOOP xxxxxxxxxxxRSET\r\n.\r\nQUIT\r\n"
    assert lines(wire) == [
        TOO_LONG,
        InvalidCommand("Command unrecognized", Reply(500, ("5.5.1",))),
        Quit(),
    ]
    wire = b"NOOP " + b"x" * 100 + b"\rQUIT\r\r\nRSET\r\n"
    assert lines(wire) == [TOO_LONG, Rset()]


def test_cr_at_the_cut_of_a_skipped_line_is_kept_for_its_lf() -> None:
    wire = b"X" * 40 + b"\r\nRSET\r\n"
    for cut in range(1, len(wire)):
        conn = Lines()
        events = []
        for piece in (wire[:cut], wire[cut:]):
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(event)
        assert events == [TOO_LONG, Rset()], cut


def test_bare_lf_does_not_end_a_command_line() -> None:
    """RFC 5321 2.3.8: only CRLF ends a line."""
    events = lines(b"NOOP\nQUIT\r\n", limit=64)
    assert len(events) == 1
    assert isinstance(events[0], InvalidCommand)
    assert events[0].reply == Reply(500, ("5.5.1",))
