"""The client session procedures, against S:/C: transcripts and no socket."""

from __future__ import annotations

import base64
import itertools
from email.message import EmailMessage
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore import (
    ClientConnection,
    Etrn,
    Expn,
    Help,
    Limits,
    Noop,
    RemoteProtocolError,
    Reply,
    Turn,
    Vrfy,
)
from smtpcore._message import prepare_message, to_7bit
from smtpcore.driver import hello_name, is_reusable
from smtpcore.session import (
    DSN,
    AuthenticationError,
    ClientOptions,
    ConnectionLost,
    Envelope,
    NextChunk,
    NotSupported,
    PermanentError,
    Procedure,
    Read,
    RecipientsRefused,
    SendResult,
    StageClock,
    Timeouts,
    TLSError,
    TransientError,
    Write,
    deliver,
    deliver_message,
    open_session,
    quit,
    simple_command,
)
from smtpcore.session._effects import next_reply

from ..transcript import Record, load, run_transcript

MESSAGE: Final = b"Subject: hi\r\n\r\nline one\r\nline two\r\n"
NONCE: Final = "rOprNGfwEbeRWgbNEkqO"  # RFC 7677 3's client nonce

GREETED: Final = """
S: 220 mx.example ESMTP
C: EHLO client.example
"""


def options(**overrides: Any) -> ClientOptions:
    overrides.setdefault("tls", "none")
    return ClientOptions(host="mx.example", **overrides)


def connection(opts: ClientOptions) -> ClientConnection:
    return ClientConnection(lmtp=opts.lmtp, tls=opts.tls == "implicit", limits=opts.limits)


def session(
    opts: ClientOptions, *envelopes: Envelope, conn: ClientConnection | None = None
) -> Procedure[list[SendResult]]:
    """Open, send each envelope, QUIT: what a transport's ``with`` block does."""
    conn = conn or connection(opts)
    yield from open_session(conn, opts, hello="client.example", nonce=NONCE)
    results = []
    for envelope in envelopes:
        results.append((yield from deliver(conn, opts, envelope)))
    yield from quit(conn, opts.timeouts)
    return results


def envelope(recipients: tuple[str, ...] = ("b@y.org",), **kw: Any) -> Envelope:
    kw.setdefault("content", MESSAGE)
    return Envelope.build("a@x.org", recipients, **kw)


# -- the conversation ------------------------------------------------------------------


def test_classic_conversation_with_helo_after_refused_ehlo() -> None:
    """RFC 5321 3.2: a 5xx to EHLO means an old server; HELO works and nothing is assumed."""
    record = Record([], [], [])
    [result] = run_transcript(session(options(), envelope()), "classic", record=record)
    assert result.accepted == {"b@y.org": Reply(250, ("2.1.5 recipient ok",))}
    assert result.reply == Reply(250, ("2.0.0 queued as 1234",))
    assert result.data_replies == {"b@y.org": result.reply}
    assert result.refused == {}
    # No PIPELINING: one command per write; the content and its dot in one.
    assert record.writes == [
        b"EHLO client.example\r\n",
        b"HELO client.example\r\n",
        b"MAIL FROM:<a@x.org>\r\n",
        b"RCPT TO:<b@y.org>\r\n",
        b"DATA\r\n",
        MESSAGE + b".\r\n",
        b"QUIT\r\n",
    ]


def test_pipelined_group_is_one_write() -> None:
    record = Record([], [], [])
    job = session(options(), envelope(("b@y.org", "c@y.org")))
    [result] = run_transcript(job, "pipelined", record=record)
    assert set(result.accepted) == {"b@y.org", "c@y.org"}
    assert record.writes[1] == (
        b"MAIL FROM:<a@x.org> SIZE=35\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"
    )


def test_without_pipelining_every_write_is_one_command() -> None:
    """OpenSMTPD drops a client that pipelines without PIPELINING (RFC 2920 3.1)."""
    record = Record([], [], [])
    job = session(options(), envelope(("b@y.org", "c@y.org")))
    run_transcript(job, "no_pipelining", record=record)
    commands = [w for w in record.writes if w != MESSAGE + b".\r\n"]
    assert all(w.count(b"\r\n") == 1 for w in commands), commands


def test_reads_carry_the_timeout_of_their_stage() -> None:
    """RFC 5321 4.5.3.2: each wait has its own limit."""
    timeouts = Timeouts(
        greeting=1, ehlo=2, mail=3, rcpt=4, data_initiation=5, data_termination=6, quit=7
    )
    record = Record([], [], [])
    run_transcript(session(options(timeouts=timeouts), envelope()), "classic", record=record)
    assert record.reads == [1, 2, 2, 3, 4, 5, 6, 7]


def test_writes_carry_the_time_their_stage_allows() -> None:
    """A command goes within its stage's time; content within the data block time."""
    timeouts = Timeouts(
        greeting=1, ehlo=2, mail=3, rcpt=4, data_initiation=5, data_block=8, data_termination=6,
        quit=7,
    )  # fmt: skip
    record = Record([], [], [])
    run_transcript(session(options(timeouts=timeouts), envelope()), "classic", record=record)
    # EHLO, HELO, MAIL, RCPT, DATA, the content with its dot, QUIT.
    assert record.write_timeouts == [2, 2, 3, 4, 5, 8, 7]


def test_timeouts_default_to_rfc_5321() -> None:
    t = Timeouts()
    assert (t.greeting, t.mail, t.rcpt, t.data_initiation, t.data_block, t.data_termination) == (
        300,
        300,
        300,
        120,
        180,
        600,
    )
    assert Timeouts.uniform(5) == Timeouts(5, 5, 5, 5, 5, 5, 5, 5, 5)
    with pytest.raises(ValueError, match="Timeouts.mail"):
        Timeouts(mail=0)


def test_one_connection_serves_two_messages() -> None:
    script = (
        GREETED
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: one
        C: .
        S: 250 first
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: two
        C: .
        S: 250 second
        C: QUIT
        S: 221 bye
        EOF
        """
    )
    job = session(options(), envelope(content=b"one"), envelope(content=b"two\r\n"))
    results = run_transcript(job, script)
    assert [r.reply.text for r in results] == ["first", "second"]


def test_refused_greeting_quits_and_raises() -> None:
    """RFC 5321 3.1: after a 554 greeting the client sends QUIT."""
    script = """
        S: 554 5.7.1 go away
        C: QUIT
        S: 221 bye
        EOF
    """
    with pytest.raises(PermanentError, match="go away") as caught:
        run_transcript(session(options()), script)
    assert caught.value.command == "the greeting"


def test_ehlo_refused_with_4xx_is_transient_and_no_helo() -> None:
    script = GREETED + "S: 454 4.7.0 try later"
    with pytest.raises(TransientError) as caught:
        run_transcript(session(options()), script)
    assert caught.value.command == "EHLO client.example"


def test_lhlo_in_lmtp_mode_and_one_final_reply_per_recipient() -> None:
    job = session(options(lmtp=True), envelope(("b@y.org", "gone@y.org", "c@y.org")))
    [result] = run_transcript(job, "lmtp")
    assert list(result.accepted) == ["b@y.org", "c@y.org"]
    assert result.refused == {"gone@y.org": Reply(550, ("5.1.1 no such user",))}
    assert result.data_replies == {
        "b@y.org": Reply(250, ("2.0.0 <b@y.org> delivered",)),
        "c@y.org": Reply(452, ("4.2.2 <c@y.org> mailbox full",)),
    }
    assert result.reply == Reply(452, ("4.2.2 <c@y.org> mailbox full",))
    assert options(lmtp=True).port == 24


def test_lmtp_all_final_replies_negative_raises() -> None:
    script = """
        S: 220 lmtp.example LMTP
        C: LHLO client.example
        S: 250 lmtp.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: x
        C: .
        S: 452 4.2.2 full
    """
    with pytest.raises(TransientError, match="full"):
        run_transcript(session(options(lmtp=True), envelope(content=b"x")), script)


# -- TLS -------------------------------------------------------------------------------


def test_starttls_required_but_not_offered_raises_before_mail_and_auth() -> None:
    record = Record([], [], [])
    opts = options(tls="starttls", username="test", password="secret")
    with pytest.raises(TLSError, match="did not offer STARTTLS"):
        run_transcript(session(opts, envelope()), "starttls_missing", record=record)
    assert record.writes == [b"EHLO client.example\r\n"]


def test_starttls_then_ehlo_again_then_auth() -> None:
    record = Record([], [], [])
    opts = options(tls="starttls", username="test", password="secret")
    conn = connection(opts)
    job = open_session(conn, opts, hello="client.example", nonce=NONCE)
    ext = run_transcript(job, "starttls", record=record)
    assert conn.is_tls and conn.is_authenticated
    assert "8BITMIME" in ext and "STARTTLS" not in ext
    assert record.handshakes[0].server_hostname == "mx.example"


def test_opportunistic_goes_on_in_clear_when_starttls_is_refused() -> None:
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 STARTTLS
        C: STARTTLS
        S: 454 4.7.0 TLS not available
        """
    )
    conn = connection(options(tls="opportunistic"))
    job = open_session(conn, options(tls="opportunistic"), hello="client.example", nonce="n")
    run_transcript(job, script)
    assert not conn.is_tls and is_reusable(conn)
    conn = connection(options(tls="starttls"))
    with pytest.raises(TLSError, match="refused"):
        run_transcript(
            open_session(conn, options(tls="starttls"), hello="client.example", nonce="n"),
            script,
        )


def test_opportunistic_without_starttls_sends_in_clear() -> None:
    script = GREETED + "S: 250 mx.example"
    conn = connection(options(tls="opportunistic"))
    run_transcript(
        open_session(conn, options(tls="opportunistic"), hello="client.example", nonce="n"), script
    )
    assert is_reusable(conn)


def test_bytes_behind_the_starttls_220_are_refused() -> None:
    """RFC 3207 5: a reply injected before the handshake must not be trusted."""
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 STARTTLS
        C: STARTTLS
        S: 220 go ahead
        S: 250 AUTH PLAIN
        """
    )
    with pytest.raises(RemoteProtocolError, match="injection"):
        run_transcript(session(options(tls="starttls")), script)


def test_implicit_tls_skips_starttls_and_allows_auth() -> None:
    opts = options(tls="implicit", username="test", password="secret")
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 AUTH PLAIN
        C: AUTH PLAIN AHRlc3QAc2VjcmV0
        S: 235 ok
        """
    )
    conn = connection(opts)
    run_transcript(open_session(conn, opts, hello="client.example", nonce="n"), script)
    assert conn.is_authenticated and opts.port == 465


# -- AUTH ------------------------------------------------------------------------------


def _auth_script(offered: str, exchange: str) -> str:
    return GREETED + f"S: 250-mx.example\nS: 250 AUTH {offered}\n" + exchange


def _open(opts: ClientOptions, script: str) -> ClientConnection:
    conn = connection(opts)
    run_transcript(open_session(conn, opts, hello="client.example", nonce=NONCE), script)
    return conn


def test_auth_plain_is_chosen_over_login() -> None:
    opts = options(tls="implicit", username="test", password="secret")
    script = _auth_script("LOGIN PLAIN", "C: AUTH PLAIN AHRlc3QAc2VjcmV0\nS: 235 2.7.0 ok")
    assert _open(opts, script).is_authenticated


def test_auth_login_answers_two_challenges() -> None:
    opts = options(tls="implicit", username="test", password="secret")
    exchange = """
        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: dGVzdA==
        S: 334 UGFzc3dvcmQ6
        C: c2VjcmV0
        S: 235 2.7.0 ok
    """
    assert _open(opts, _auth_script("LOGIN", exchange)).is_authenticated


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SERVER_FIRST: Final = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL: Final = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL: Final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_auth_scram_sha_256_is_preferred_and_verifies_the_server() -> None:
    """RFC 7677 3's exchange; the server's signature comes as a last 334."""
    opts = options(tls="implicit", username="user", password="pencil")
    exchange = f"""
        C: AUTH SCRAM-SHA-256 {b64("n,,n=user,r=" + NONCE)}
        S: 334 {b64(SERVER_FIRST)}
        C: {b64(CLIENT_FINAL)}
        S: 334 {b64(SERVER_FINAL)}
        C:
        S: 235 2.7.0 ok
    """
    assert _open(opts, _auth_script("PLAIN SCRAM-SHA-256 LOGIN", exchange)).is_authenticated


def test_auth_scram_235_before_the_server_signature_is_an_error() -> None:
    """RFC 5802 5: the client MUST verify the server signature."""
    opts = options(tls="implicit", username="user", password="pencil")
    exchange = f"""
        C: AUTH SCRAM-SHA-256 {b64("n,,n=user,r=" + NONCE)}
        S: 334 {b64(SERVER_FIRST)}
        C: {b64(CLIENT_FINAL)}
        S: 235 2.7.0 trust me
    """
    with pytest.raises(RemoteProtocolError, match="before the exchange was complete"):
        _open(opts, _auth_script("SCRAM-SHA-256", exchange))


def test_auth_scram_wrong_server_signature_cancels() -> None:
    opts = options(tls="implicit", username="user", password="pencil")
    exchange = f"""
        C: AUTH SCRAM-SHA-256 {b64("n,,n=user,r=" + NONCE)}
        S: 334 {b64(SERVER_FIRST)}
        C: {b64(CLIENT_FINAL)}
        S: 334 {b64("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")}
        C: *
        S: 501 5.0.0 cancelled
    """
    with pytest.raises(RemoteProtocolError):
        _open(opts, _auth_script("SCRAM-SHA-256", exchange))


def test_endless_challenges_are_bounded_by_limits() -> None:
    opts = options(tls="implicit", username="test", password="secret", limits=Limits(sasl_rounds=1))
    exchange = """
        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: dGVzdA==
        S: 334 UGFzc3dvcmQ6
        C: *
        S: 501 5.0.0 cancelled
    """
    with pytest.raises(RemoteProtocolError, match="Limits.sasl_rounds"):
        _open(opts, _auth_script("LOGIN", exchange))


def test_oauth_token_uses_xoauth2() -> None:
    opts = options(tls="implicit", username="u@x.org", oauth_token="tok")
    first = b64("user=u@x.org\x01auth=Bearer tok\x01\x01")
    script = _auth_script("PLAIN XOAUTH2", f"C: AUTH XOAUTH2 {first}\nS: 235 ok")
    assert _open(opts, script).is_authenticated


def test_auth_refused_in_clear_sends_nothing() -> None:
    record = Record([], [], [])
    opts = options(tls="opportunistic", username="test", password="secret")
    with pytest.raises(TLSError, match="clear channel"):
        run_transcript(session(opts), _auth_script("PLAIN", "").rstrip() + "\n", record=record)
    assert record.writes == [b"EHLO client.example\r\n"]


def test_auth_in_clear_when_allowed() -> None:
    opts = options(username="test", password="secret", auth_in_clear=True)
    script = _auth_script("PLAIN", "C: AUTH PLAIN AHRlc3QAc2VjcmV0\nS: 235 ok")
    assert _open(opts, script).is_authenticated


def test_auth_rejected_raises_authentication_error() -> None:
    opts = options(tls="implicit", username="test", password="secret")
    script = _auth_script("PLAIN", "C: AUTH PLAIN AHRlc3QAc2VjcmV0\nS: 535 5.7.8 bad credentials")
    with pytest.raises(AuthenticationError, match="bad credentials") as caught:
        _open(opts, script)
    assert caught.value.command == "AUTH PLAIN"
    assert "AHRlc3Q" not in str(caught.value)


def test_no_shared_mechanism_is_not_supported() -> None:
    opts = options(tls="implicit", username="test", password="secret")
    with pytest.raises(NotSupported, match="GSSAPI"):
        _open(opts, _auth_script("GSSAPI", ""))


# -- the transaction -------------------------------------------------------------------


def test_size_over_the_servers_limit_raises_before_mail() -> None:
    record = Record([], [], [])
    script = GREETED + "S: 250-mx.example\nS: 250 SIZE 10"
    with pytest.raises(NotSupported, match="SIZE limit of 10"):
        run_transcript(session(options(), envelope()), script, record=record)
    assert not any(w.startswith(b"MAIL") for w in record.writes)


def test_one_refused_recipient_does_not_abort_the_others() -> None:
    job = session(options(), envelope(("gone@y.net", "b@y.net")))
    [result] = run_transcript(job, "one_rcpt_refused")
    assert set(result.refused) == {"gone@y.net"} and set(result.accepted) == {"b@y.net"}


def test_all_refused_but_354_ends_the_data_at_once() -> None:
    record = Record([], [], [])
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[None]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        yield from deliver(conn, opts, envelope(("b@y.org", "c@y.org")))

    with pytest.raises(RecipientsRefused) as caught:
        run_transcript(job(), "all_refused_354", record=record)
    assert record.writes[-1] == b".\r\n"
    assert caught.value.refused == {
        "b@y.org": Reply(550, ("5.1.1 no such user",)),
        "c@y.org": Reply(450, ("4.2.1 mailbox busy",)),
    }
    assert not caught.value.is_transient
    assert is_reusable(conn)


def test_all_refused_without_pipelining_resets() -> None:
    script = (
        GREETED
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 451 4.3.0 later
        C: RSET
        S: 250 flushed
        """
    )
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[None]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        yield from deliver(conn, opts, envelope())

    with pytest.raises(RecipientsRefused, match="RCPT TO:<b@y.org> refused: 451") as caught:
        run_transcript(job(), script)
    assert caught.value.is_transient
    assert is_reusable(conn)


def test_pipelined_refused_data_resets() -> None:
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 PIPELINING
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 554 5.7.1 no
        C: RSET
        S: 250 ok
        """
    )
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[None]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        yield from deliver(conn, opts, envelope())

    with pytest.raises(PermanentError, match="DATA refused: 554"):
        run_transcript(job(), script)


def test_refused_mail_raises_and_sends_nothing_more() -> None:
    script = GREETED + "S: 250 mx.example\nC: MAIL FROM:<a@x.org>\nS: 553 5.1.8 bad sender"
    with pytest.raises(PermanentError) as caught:
        run_transcript(session(options(), envelope()), script)
    assert caught.value.command == "MAIL FROM:<a@x.org>"


def test_data_refused_then_rset_keeps_the_connection_usable() -> None:
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[Reply]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        with pytest.raises(PermanentError, match="no thanks"):
            yield from deliver(conn, opts, envelope())
        return (yield from simple_command(conn, Noop(), 1))

    assert run_transcript(job(), "data_refused") == Reply(250, ("still here",))


def test_421_mid_session_raises_transient_and_closes() -> None:
    record = Record([], [], [])
    with pytest.raises(TransientError) as caught:
        run_transcript(session(options(), envelope()), "mid_session_421", record=record)
    assert caught.value.reply == Reply(421, ("4.3.2 shutting down",))
    assert caught.value.command == "MAIL FROM:<a@x.org>"


def test_server_closing_mid_transaction_is_connection_lost() -> None:
    script = GREETED + "S: 250 mx.example\nC: MAIL FROM:<a@x.org>"
    with pytest.raises(ConnectionLost, match="MAIL FROM"):
        run_transcript(session(options(), envelope()), script)


def test_final_reply_refused_raises_without_rset() -> None:
    """After the reply to the final dot the transaction is over either way (RFC 5321 4.1.1.4)."""
    script = (
        GREETED
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: x
        C: .
        S: 452 4.3.1 out of storage
        """
    )
    with pytest.raises(TransientError, match="end of data refused: 452"):
        run_transcript(session(options(), envelope(content=b"x")), script)


def test_dsn_parameters_exact_bytes() -> None:
    dsn = DSN(ret="HDRS", envid="QQ+123=x", notify=("success", "FAILURE"), orcpt=True)
    job = session(options(), envelope(("b+tag@y.org",), dsn=dsn))
    run_transcript(job, "dsn")


def test_dsn_is_left_out_when_not_offered() -> None:
    """RFC 3461 needs the DSN keyword; without it the message goes without the requests."""
    script = load("pipelined").replace("250 SIZE 10240000", "250 8BITMIME")
    script = script.replace(" SIZE=35", "").replace("C: RCPT TO:<c@y.org>\n", "")
    script = script.replace("S: 250 2.1.5 ok\n", "", 1)
    dsn = DSN(ret="FULL", notify=("NEVER",), orcpt=True)
    run_transcript(session(options(), envelope(dsn=dsn)), script)


def test_dsn_values_are_checked() -> None:
    with pytest.raises(ValueError, match="notify"):
        DSN(notify=("NEVER", "SUCCESS"))
    with pytest.raises(ValueError, match="ret"):
        DSN(ret="ALL")  # type: ignore[arg-type]


def test_bdat_when_chunking_is_chosen() -> None:
    job = session(options(chunking=True), envelope(content=b"Subject: x\r\n\r\n.dot\r\n"))
    [result] = run_transcript(job, "bdat")
    assert result.reply.text == "2.0.0 queued"


def test_bdat_streamed_in_chunks_ends_with_bdat_0_last() -> None:
    line = b"x" * 998 + b"\r\n"
    pieces = [line] * 70  # 70000 octets: one full chunk, then nothing left
    body = "".join("C: " + "x" * 998 + "\n" for _ in range(66))
    rest = "".join("C: " + "x" * 998 + "\n" for _ in range(4))
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 CHUNKING
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: BDAT 66000
        """
        + body
        + "S: 250 2.0.0 66000 octets\nC: BDAT 4000 LAST\n"
        + rest
        + "S: 250 2.0.0 queued\nC: QUIT\nS: 221 bye\nEOF\n"
    )
    job = session(options(chunking=True), envelope(content=None))
    [result] = run_transcript(job, script, chunks=pieces)
    assert result.reply.text == "2.0.0 queued"
    script_zero = script.replace("C: BDAT 66000", "C: BDAT 70000").replace(
        "S: 250 2.0.0 66000 octets\nC: BDAT 4000 LAST\n" + rest,
        rest + "S: 250 2.0.0 70000 octets\nC: BDAT 0 LAST\n",
    )
    job = session(options(chunking=True), envelope(content=None))
    run_transcript(job, script_zero, chunks=[b"".join(pieces)])


def test_binarymime_uses_bdat_and_needs_it_offered() -> None:
    """RFC 3030 3: BINARYMIME content goes by BDAT, octets as they are."""
    content = "\x00bin é\r\n.x\r\n".encode()
    script = (
        GREETED
        + f"""
        S: 250-mx.example
        S: 250-CHUNKING
        S: 250 BINARYMIME
        C: MAIL FROM:<a@x.org> BODY=BINARYMIME
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: BDAT {len(content)} LAST
        C: \x00bin é
        C: .x
        S: 250 ok
        C: QUIT
        S: 221 bye
        """
    )
    record = Record([], [], [])
    job = session(options(), envelope(content=content, body="BINARYMIME"))
    run_transcript(job, script, record=record)
    assert record.writes[-2] == b"BDAT 13 LAST\r\n" + content
    with pytest.raises(NotSupported, match="BINARYMIME"):
        run_transcript(
            session(options(), envelope(content=b"\xff", body="BINARYMIME")),
            GREETED + "S: 250 mx.example",
        )


def test_streamed_content_is_stuffed_and_batched() -> None:
    pieces = [b"Subject: s\r\n\r\n.", b"dot\r", b"\n"] + [b"y" * 998 + b"\r\n"] * 70
    lines = "".join("C: " + "y" * 998 + "\n" for _ in range(70))
    script = (
        GREETED
        + """
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: Subject: s
        C:
        C: ..dot
        """
        + lines
        + "C: .\nS: 250 ok\nC: QUIT\nS: 221 bye\nEOF\n"
    )
    record = Record([], [], [])
    run_transcript(session(options(), envelope(content=None)), script, chunks=pieces, record=record)
    content_writes = record.writes[4:-1]
    assert len(content_writes) == 2
    assert len(content_writes[0]) >= 64 * 1024


def test_8bit_bytes_need_8bitmime() -> None:
    with pytest.raises(NotSupported, match="8BITMIME"):
        run_transcript(
            session(options(), envelope(content="Subject: é\r\n\r\né\r\n")),
            GREETED + "S: 250 mx.example",
        )
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 8BITMIME
        C: MAIL FROM:<a@x.org> BODY=8BITMIME
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: é
        C: .
        S: 250 ok
        C: QUIT
        S: 221 bye
        EOF
        """
    )
    run_transcript(session(options(), envelope(content="é")), script)


def test_stream_of_unknown_8bitness_follows_the_body_argument() -> None:
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 8BITMIME
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: x
        C: .
        S: 250 ok
        C: QUIT
        S: 221 bye
        EOF
        """
    )
    run_transcript(session(options(), envelope(content=None)), script, chunks=[b"x"])
    marked = script.replace("C: MAIL FROM:<a@x.org>", "C: MAIL FROM:<a@x.org> BODY=8BITMIME")
    run_transcript(
        session(options(), envelope(content=None, body="8BITMIME")), marked, chunks=[b"x"]
    )


def test_smtputf8_needed_but_not_offered_is_not_supported() -> None:
    with pytest.raises(NotSupported, match="SMTPUTF8"):
        run_transcript(
            session(options(), envelope(("bö@y.org",))),
            GREETED + "S: 250 mx.example",
        )
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 SMTPUTF8
        C: MAIL FROM:<a@x.org> SMTPUTF8
        S: 250 ok
        C: RCPT TO:<bö@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: x
        C: .
        S: 250 ok
        C: QUIT
        S: 221 bye
        EOF
        """
    )
    run_transcript(session(options(), envelope(("bö@y.org",), content=b"x")), script)


def test_requiretls_needs_tls() -> None:
    script = GREETED + "S: 250-mx.example\nS: 250 REQUIRETLS"
    with pytest.raises(NotSupported, match="REQUIRETLS"):
        run_transcript(session(options(), envelope(requiretls=True)), script)


def _message(body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "a@x.org"
    msg["To"] = "b@y.org"
    msg["Subject"] = "hi"
    msg.set_content(body, cte="8bit")
    return msg


def _script_for(content: bytes, mail: str) -> str:
    lines = content.decode("ascii").split("\r\n")[:-1]
    return (
        GREETED
        + f"S: 250 mx.example\nC: {mail}\nS: 250 ok\nC: RCPT TO:<b@y.org>\nS: 250 ok\n"
        + "C: DATA\nS: 354 go\n"
        + "".join(f"C: {line}\n" for line in lines)
        + "C: .\nS: 250 ok\n"
    )


def test_email_message_8bit_is_converted_for_a_server_without_8bitmime() -> None:
    msg = _message("café\n")
    expected = prepare_message(to_7bit(msg)).content
    assert b"quoted-printable" in expected
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[SendResult]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        return (yield from deliver_message(conn, opts, msg))

    result = run_transcript(job(), _script_for(expected, "MAIL FROM:<a@x.org>"))
    assert set(result.accepted) == {"b@y.org"}


# -- the other commands ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "line", "reply"),
    [
        (Vrfy("b@y.org"), "VRFY b@y.org", "252 2.1.5 cannot verify"),
        (Expn("staff"), "EXPN staff", "550 5.1.1 no such list"),
        (Help("MAIL"), "HELP MAIL", "214 MAIL FROM:<address>"),
        (Noop(), "NOOP", "250 ok"),
        (Etrn("y.org"), "ETRN y.org", "250 queuing started"),
        (Turn(), "TURN", "502 5.5.1 no"),
    ],
)
def test_simple_commands_return_any_reply(command: Any, line: str, reply: str) -> None:
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[Reply]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        return (yield from simple_command(conn, command, 1))

    script = GREETED + f"S: 250-mx.example\nS: 250 ETRN\nC: {line}\nS: {reply}\n"
    got = run_transcript(job(), script)
    assert f"{got.code} {got.text}" == reply


def test_421_to_a_simple_command_raises_and_closes() -> None:
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[Reply]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        return (yield from simple_command(conn, Noop(), 1))

    with pytest.raises(TransientError, match="idle"):
        run_transcript(job(), GREETED + "S: 250 mx.example\nC: NOOP\nS: 421 4.4.2 idle\nEOF")


def test_old_send_verb() -> None:
    script = (
        GREETED
        + """
        S: 250 mx.example
        C: SOML FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<b@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: x
        C: .
        S: 250 ok
        C: QUIT
        S: 221 bye
        EOF
        """
    )
    run_transcript(session(options(), envelope(content=b"x", verb="SOML")), script)


def test_quit_tolerates_a_server_that_just_closes() -> None:
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[Reply | None]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        return (yield from quit(conn, opts.timeouts))

    assert run_transcript(job(), GREETED + "S: 250 mx.example\nC: QUIT\nEOF") is None


# -- options ---------------------------------------------------------------------------


def test_port_defaults_by_mode() -> None:
    assert ClientOptions("h").port == 25
    assert ClientOptions("h", tls="implicit").port == 465
    assert ClientOptions("h", username="u", password="p").port == 587
    assert ClientOptions.build("h", 2525, timeout=3).timeouts == Timeouts.uniform(3)
    with pytest.raises(ValueError, match="tls"):
        ClientOptions("h", tls="always")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="username"):
        ClientOptions("h", password="p")


def test_hello_name_falls_back_to_an_address_literal() -> None:
    assert hello_name("host.example.org", "10.0.0.1") == "host.example.org"
    assert hello_name("localhost", "10.0.0.1") == "[10.0.0.1]"
    assert hello_name("bad_name", "::1") == "[IPv6:::1]"


# -- properties ------------------------------------------------------------------------


def _wire(envelope: Envelope, chunks: list[bytes]) -> bytes:
    """Every byte the session writes, against a server that accepts everything."""
    greeting, ehlo = b"220 mx\r\n", b"250-mx\r\n250 8BITMIME\r\n"
    replies = iter([greeting, ehlo, b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"])
    pieces = iter(chunks)
    opts = options()
    conn = connection(opts)

    def job() -> Procedure[SendResult]:
        yield from open_session(conn, opts, hello="client.example", nonce="n")
        return (yield from deliver(conn, opts, envelope))

    procedure = job()
    wire = bytearray()
    answer: bytes | None = None
    while True:
        try:
            effect = procedure.send(answer)
        except StopIteration:
            return bytes(wire)
        answer = None
        if isinstance(effect, Write):
            wire += effect.data
        elif isinstance(effect, Read):
            answer = next(replies)
        elif isinstance(effect, NextChunk):
            answer = next(pieces, b"")


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
def test_streamed_content_writes_what_content_in_hand_writes(
    content: bytes, cuts: list[int]
) -> None:
    """However the caller's source cuts the content, the same octets cross the wire."""
    bounds = [0, *sorted(min(c, len(content)) for c in cuts), len(content)]
    chunks = [content[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    whole = _wire(envelope(content=content, body="8BITMIME"), [])
    streamed = _wire(envelope(content=None, body="8BITMIME"), chunks)
    assert streamed == whole
    assert whole.endswith(b"\r\n.\r\n")
    assert b"\r\n.\r\n" not in whole[whole.index(b"DATA\r\n") + 6 : -5]


# -- replies that do not fit --------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
@pytest.mark.parametrize("answer", ["250 2.0.0 ok", "221 2.0.0 bye"])
def test_a_2xx_to_data_is_a_protocol_error_and_no_content_goes(
    pipelining: bool, answer: str
) -> None:
    """Only 354 opens the data phase (RFC 5321 4.3.2); the session ends unusable."""
    if pipelining:
        group = """
            S: 250-mx.example
            S: 250 PIPELINING
            C: MAIL FROM:<a@x.org>
            C: RCPT TO:<b@y.org>
            C: DATA
            S: 250 ok
            S: 250 ok
        """
    else:
        group = """
            S: 250 mx.example
            C: MAIL FROM:<a@x.org>
            S: 250 ok
            C: RCPT TO:<b@y.org>
            S: 250 ok
            C: DATA
        """
    conn = connection(options())
    record = Record([], [], [])
    with pytest.raises(RemoteProtocolError, match="only 354"):
        run_transcript(
            session(options(), envelope(), conn=conn),
            GREETED + group + f"S: {answer}",
            record=record,
        )
    assert not any(MESSAGE in w for w in record.writes)
    assert not is_reusable(conn)


def test_a_surplus_reply_with_the_greeting_fails_the_session_before_ehlo() -> None:
    record = Record([], [], [])
    script = """
        S: 220 mx.example ESMTP
        S: 250 surplus
    """
    with pytest.raises(RemoteProtocolError, match="no command waiting"):
        run_transcript(session(options(), envelope()), script, record=record)
    assert record.writes == []


def test_a_fourth_reply_to_the_pipelined_group_is_no_delivery() -> None:
    """RFC 2920 3.2: it came before the content, so it cannot be the end-of-data reply."""
    conn = connection(options())
    record = Record([], [], [])
    script = (
        GREETED
        + """
        S: 250-mx.example
        S: 250 PIPELINING
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 354 go ahead
        S: 250 2.0.0 queued as FAKE
        """
    )
    with pytest.raises(RemoteProtocolError, match="no command waiting"):
        run_transcript(session(options(), envelope(), conn=conn), script, record=record)
    assert not any(MESSAGE in w for w in record.writes)
    assert not is_reusable(conn)


# -- a server that replies and then closes -------------------------------------------------

PIPELINED_EHLO: Final = """
S: 250-mx.example
S: 250 PIPELINING
"""


@pytest.mark.parametrize("end", ["", "GONE"], ids=["closed", "reset"])
def test_a_554_greeting_then_close_is_the_permanent_refusal(end: str) -> None:
    """RFC 5321 3.1: the client says QUIT; its failure does not replace the 554."""
    script = f"""
        S: 554 5.7.1 go away
        {end or "C: QUIT"}
    """
    with pytest.raises(PermanentError, match="go away") as caught:
        run_transcript(session(options()), script)
    assert caught.value.reply == Reply(554, ("5.7.1 go away",))


@pytest.mark.parametrize("end", ["", "GONE"], ids=["closed", "reset"])
@pytest.mark.parametrize(
    ("answer", "error"),
    [("550 5.7.1 go away", PermanentError), ("451 4.7.1 later", TransientError)],
)
def test_mail_refused_then_close_within_the_pipelined_group_is_the_refusal(
    end: str, answer: str, error: type[Exception]
) -> None:
    """Exim's drop ACL: the reply to MAIL, then the close; RCPT and DATA get no reply."""
    script = (
        GREETED
        + PIPELINED_EHLO
        + f"""
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: DATA
        S: {answer}
        {end}
        """
    )
    with pytest.raises(error) as caught:
        run_transcript(session(options(), envelope()), script)
    assert caught.value.reply.code == int(answer[:3])  # type: ignore[attr-defined]
    assert caught.value.command == "MAIL FROM:<a@x.org>"  # type: ignore[attr-defined]


@pytest.mark.parametrize("end", ["", "GONE"], ids=["closed", "reset"])
def test_mail_refused_then_close_one_by_one_is_the_refusal(end: str) -> None:
    script = (
        GREETED
        + f"""
        S: 250 mx.example
        C: MAIL FROM:<a@x.org>
        S: 550 5.7.1 go away
        {end}
        """
    )
    with pytest.raises(PermanentError, match="go away"):
        run_transcript(session(options(), envelope()), script)


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
@pytest.mark.parametrize("end", ["C: RSET", "GONE"], ids=["closed", "reset"])
def test_every_recipient_refused_then_close_during_rset_is_recipients_refused(
    pipelining: bool, end: str
) -> None:
    """The RSET after the refusals fails on the closed connection; the refusals stand."""
    if pipelining:
        group = (
            PIPELINED_EHLO
            + """
            C: MAIL FROM:<a@x.org>
            C: RCPT TO:<b@y.org>
            C: RCPT TO:<c@y.org>
            C: DATA
            S: 250 ok
            S: 550 5.1.1 no such user
            S: 550 5.1.1 no such user
            S: 554 5.5.1 no valid recipients
            """
        )
    else:
        group = """
            S: 250 mx.example
            C: MAIL FROM:<a@x.org>
            S: 250 ok
            C: RCPT TO:<b@y.org>
            S: 550 5.1.1 no such user
            C: RCPT TO:<c@y.org>
            S: 550 5.1.1 no such user
        """
    conn = connection(options())
    job = session(options(), envelope(("b@y.org", "c@y.org")), conn=conn)
    with pytest.raises(RecipientsRefused) as caught:
        run_transcript(job, GREETED + group + end)
    assert set(caught.value.refused) == {"b@y.org", "c@y.org"}
    assert not is_reusable(conn)


def test_every_recipient_refused_then_close_within_the_group_is_recipients_refused() -> None:
    script = (
        GREETED
        + PIPELINED_EHLO
        + """
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: DATA
        S: 250 ok
        S: 450 4.2.1 try later
        """
    )
    with pytest.raises(RecipientsRefused) as caught:
        run_transcript(session(options(), envelope()), script)
    assert caught.value.is_transient


def test_a_close_before_any_refusal_is_connection_lost() -> None:
    script = (
        GREETED
        + PIPELINED_EHLO
        + """
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: DATA
        S: 250 ok
        """
    )
    with pytest.raises(ConnectionLost):
        run_transcript(session(options(), envelope()), script)


@pytest.mark.parametrize("end", ["", "GONE"], ids=["closed", "reset"])
def test_end_of_data_refused_then_close_is_the_refusal(end: str) -> None:
    script = (
        GREETED
        + f"""
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
        S: 550 5.7.1 message refused
        {end}
        """
    )
    with pytest.raises(PermanentError, match="message refused") as caught:
        run_transcript(session(options(), envelope()), script)
    assert caught.value.command == "end of data"


# -- the time of a stage (RFC 5321 4.5.3.2) -------------------------------------------------


def test_a_reply_read_in_pieces_runs_on_the_clock_of_its_first_read() -> None:
    """The stage's timeout bounds the whole reply: later Reads continue the first one's."""
    conn = connection(options())
    job = next_reply(conn, 7.0)
    effects = [next(job)]
    for piece in (b"220 mx", b".example", b" ESMTP\r\n"):
        try:
            effects.append(job.send(piece))
        except StopIteration as done:
            greeting = done.value
    assert greeting == Reply(220, ("mx.example ESMTP",))
    assert effects == [Read(7.0), Read(7.0, continued=True), Read(7.0, continued=True)]
    assert Read(7.0).continued is False
    # The next reply is a new stage, with a clock of its own.
    conn.send(Noop())
    job = next_reply(conn, 3.0)
    assert next(job) == Read(3.0)


def test_the_stage_clock_gives_a_continued_read_only_what_is_left() -> None:
    clock = StageClock()
    assert clock.wait_for(Read(2.0), now=100.0) == 2.0
    assert clock.wait_for(Read(2.0, continued=True), now=100.5) == 1.5
    assert clock.wait_for(Read(2.0, continued=True), now=101.9) == pytest.approx(0.1)
    with pytest.raises(TimeoutError, match="within 2.0 s"):
        clock.wait_for(Read(2.0, continued=True), now=102.0)
    assert clock.wait_for(Read(5.0), now=200.0) == 5.0  # a new stage, a new clock
