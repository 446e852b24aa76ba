"""The reply parser, through ClientConnection: every cut gives the same replies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore import NEED_DATA, ClientConnection, Ehlo, Limits, Reply
from smtpcore._events import _Need
from smtpcore._replies import ReplyParser
from tests.feeding import Receiver, error_every_way, feed_every_way

RFC5321_CODES = [211, 214, 220, 221, 250, 251, 252, 354, 421, 450, 451, 452, 455]
RFC5321_CODES += [500, 501, 502, 503, 504, 550, 551, 552, 553, 554, 555]


def greeted(limits: Limits | None = None) -> ClientConnection:
    """A client that has its 220 and has sent NOOP-free EHLO: one reply is expected."""
    conn = ClientConnection(limits=limits)
    conn.receive_data(b"220 mx.example ESMTP\r\n")
    conn.next_event()
    conn.send(Ehlo("client.example"))
    return conn


def fresh() -> ClientConnection:
    return ClientConnection()


def one_reply(make: Callable[[], Receiver], wire: bytes) -> Reply:
    [reply] = feed_every_way(make, wire)
    assert isinstance(reply, Reply)
    return reply


class BareParser:
    """The reply parser alone, with the connection's receiving half."""

    def __init__(self) -> None:
        self.parser = ReplyParser(Limits())

    def receive_data(self, data: bytes) -> None:
        self.parser.receive_data(data)

    def next_event(self) -> Reply | _Need:
        parsed = self.parser.next_reply()
        return NEED_DATA if parsed is None else Reply(*parsed)


def test_greeting_single_line() -> None:
    assert feed_every_way(fresh, b"220 mx.example ESMTP Postfix\r\n") == [
        Reply(220, ("mx.example ESMTP Postfix",))
    ]


def test_multiline_reply_any_cut() -> None:
    wire = b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n"
    assert feed_every_way(greeted, wire) == [
        Reply(250, ("mx.example", "PIPELINING", "SIZE 10240000"))
    ]


def test_bare_code_line_has_one_empty_line() -> None:
    assert feed_every_way(greeted, b"250\r\n") == [Reply(250, ("",))]
    assert feed_every_way(greeted, b"250-mx\r\n250\r\n") == [Reply(250, ("mx", ""))]


def test_empty_last_line_of_smtp_sink() -> None:
    """smtp-sink ends its EHLO reply with "250 " (an empty last line)."""
    assert feed_every_way(greeted, b"250-sink\r\n250-PIPELINING\r\n250 \r\n") == [
        Reply(250, ("sink", "PIPELINING", ""))
    ]


@pytest.mark.parametrize("code", RFC5321_CODES)
def test_every_rfc5321_code_parses_and_formats(code: int) -> None:
    reply = Reply(code, ("text here",))
    assert reply.to_bytes() == f"{code} text here\r\n".encode()
    assert feed_every_way(BareParser, reply.to_bytes()) == [reply]


@pytest.mark.parametrize(
    ("wire", "quoted"),
    [
        (b"2x0 bad\r\n", "2x0 bad"),
        (b"25\r\n", "25"),
        (b"650 six\r\n", "650 six"),
        (b"260 second digit six\r\n", "260"),
        (b"150 one\r\n", "150 one"),
        (b"2_5 underscore\r\n", "2_5"),
        (b"+25 plus\r\n", "+25"),
        ("2\u0665\u0660 arabic digits\r\n".encode(), "arabic"),
        (b"\xef\xbc\x92\xef\xbc\x95\xef\xbc\x90 fullwidth\r\n", "fullwidth"),
        (b"250_ok\r\n", "'_'"),
        (b"250-mx\r\n251 changed\r\n", "from 250 to 251"),
        (b"250 nul\x00inside\r\n", "NUL"),
        (b"250 bare\rcr\r\n", "bare CR"),
        (b"250 bare lf\n", "bare LF"),
        (b"\r\n", "three digits"),
    ],
)
def test_malformed_replies_are_remote_errors_that_quote(wire: bytes, quoted: str) -> None:
    error = error_every_way(fresh, wire)
    assert error.startswith("RemoteProtocolError")
    assert quoted in error


def test_line_beyond_limit_with_or_without_its_end() -> None:
    limits = Limits(reply_line=64)
    ok = b"220 " + b"x" * 58 + b"\r\n"  # exactly 64 octets
    assert one_reply(lambda: ClientConnection(limits=limits), ok).code == 220
    long = b"220 " + b"x" * 59 + b"\r\n"
    assert "reply_line" in error_every_way(lambda: ClientConnection(limits=limits), long)
    endless = b"220 " + b"x" * 500
    assert "reply_line" in error_every_way(lambda: ClientConnection(limits=limits), endless)


def test_default_reply_line_takes_long_real_world_texts() -> None:
    text = "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.example; " * 12
    wire = f"554 {text.strip()}\r\n".encode()
    assert len(wire) > 512
    assert one_reply(fresh, wire).code == 554


def test_endless_continuation_lines_are_bounded() -> None:
    wire = b"220-hello\r\n" * 100 + b"220 end\r\n"
    assert "reply_lines" in error_every_way(fresh, wire)
    wire = b"220-hello\r\n" * 99 + b"220 end\r\n"
    assert len(one_reply(fresh, wire).lines) == 100


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert feed_every_way(fresh, b"220 caf\xe9 \xc3\xa9t\xc3\xa9\r\n") == [
        Reply(220, ("caf\ufffd été",))
    ]


def test_reply_properties() -> None:
    reply = Reply(550, ("5.1.1 <x@y>: Recipient address rejected", "second"))
    assert reply.enhanced == "5.1.1"
    assert reply.text == "5.1.1 <x@y>: Recipient address rejected\nsecond"
    assert reply.is_permanent and not reply.is_transient
    assert not reply.is_positive and not reply.is_intermediate
    assert Reply(451, ("4.3.0 try later",)).is_transient
    assert Reply(354, ("go",)).is_intermediate
    assert Reply(250, ("2.0.0 Ok",)).is_positive
    assert Reply(550, ("2.0.0 class mismatch",)).enhanced is None
    assert Reply(250, ("2.0.0",)).enhanced == "2.0.0"
    assert Reply(250, ("2.0.0x",)).enhanced is None


@pytest.mark.parametrize("code", [199, 600, 260, 1000, -250])
def test_reply_rejects_codes_outside_the_grammar(code: int) -> None:
    from smtpcore import LocalProtocolError

    with pytest.raises(LocalProtocolError):
        Reply(code)


reply_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x00"), max_size=40
)


@given(
    code=st.integers(200, 599).filter(lambda c: (c // 10) % 10 <= 5),
    lines=st.lists(reply_text, min_size=1, max_size=5),
)
def test_format_then_parse_round_trips(code: int, lines: list[str]) -> None:
    reply = Reply(code, tuple(lines))
    parser = BareParser()
    parser.receive_data(reply.to_bytes())
    assert parser.next_event() == reply


@given(st.binary(max_size=300), st.integers(1, 7))
def test_arbitrary_bytes_same_verdict_at_any_cut(data: bytes, step: int) -> None:
    from tests.feeding import feed

    whole = feed(fresh, [data])
    pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    cut = feed(fresh, pieces)
    assert whole[0] == cut[0]
    assert (whole[1] is None) == (cut[1] is None)
