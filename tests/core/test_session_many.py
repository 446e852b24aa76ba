"""``deliver_many``: many messages on one connection, against transcripts and no socket."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any, Final

import pytest

from smtpcore import ClientConnection, Reply
from smtpcore.session import (
    DSN,
    ClientOptions,
    ConnectionLost,
    Envelope,
    NotSupported,
    Outcome,
    Outgoing,
    PermanentError,
    Procedure,
    RecipientsRefused,
    TransientError,
    deliver_many,
    open_session,
    quit,
)

from ..transcript import Record, run_transcript

BODY: Final = b"Subject: hi\r\n\r\nbody\r\n"

EHLO_PIPELINING: Final = """
S: 220 mx.example ESMTP
C: EHLO client.example
S: 250-mx.example
S: 250 PIPELINING
"""
EHLO_PLAIN: Final = """
S: 220 mx.example ESMTP
C: EHLO client.example
S: 250 mx.example
"""
EHLO_CHUNKING: Final = """
S: 220 mx.example ESMTP
C: EHLO client.example
S: 250-mx.example
S: 250-PIPELINING
S: 250 CHUNKING
"""


def options(**overrides: Any) -> ClientOptions:
    overrides.setdefault("tls", "none")
    return ClientOptions(host="mx.example", **overrides)


def batch(
    opts: ClientOptions, messages: list[Outgoing], *, bye: bool = True
) -> Procedure[list[Outcome]]:
    conn = ClientConnection(lmtp=opts.lmtp, limits=opts.limits)
    yield from open_session(conn, opts, hello="client.example", nonce="n")
    outcomes = yield from deliver_many(conn, opts, messages)
    if bye:
        yield from quit(conn, opts.timeouts)
    return outcomes


def three() -> list[Outgoing]:
    return [("a@x.org", [f"{n}@y.org"], BODY) for n in ("one", "two", "three")]


def test_pipelined_one_round_trip_per_message() -> None:
    """RFC 2920 3.1: the content and its end go with the next group, in one write."""
    record = Record([], [], [])
    script = (
        EHLO_PIPELINING
        + """
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
        S: 250 ok
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<three@y.org>
        C: DATA
        S: 250 queued 2
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
    )
    outcomes = run_transcript(batch(options(), three()), script, record=record)
    assert [o.status for o in outcomes] == ["accepted"] * 3
    assert [o.result.reply.lines[0] for o in outcomes if o.result] == [
        "queued 1",
        "queued 2",
        "queued 3",
    ]
    group = b"MAIL FROM:<a@x.org>\r\nRCPT TO:<two@y.org>\r\nDATA\r\n"
    assert record.writes[2] == BODY + b".\r\n" + group
    assert len(record.writes) == 1 + 4 + 1  # EHLO, three groups and the last end, QUIT


def test_without_pipelining_every_command_waits() -> None:
    record = Record([], [], [])
    script = (
        EHLO_PLAIN
        + """
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
        S: 550 no such user
        C: RSET
        S: 250 reset
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RCPT TO:<three@y.org>
        S: 250 ok
        C: DATA
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        S: 250 queued 3
        C: QUIT
        S: 221 bye
    """
    )
    outcomes = run_transcript(batch(options(), three()), script, record=record)
    assert [o.status for o in outcomes] == ["accepted", "refused", "accepted"]
    assert isinstance(outcomes[1].error, RecipientsRefused)
    assert all(w.count(b"\r\n") == 1 for w in record.writes if BODY not in w)


def test_a_refused_message_does_not_fail_the_batch() -> None:
    """No recipient, then a refused end of data: each ends its own message only."""
    script = (
        EHLO_PIPELINING
        + """
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: DATA
        S: 250 ok
        S: 550 no such user
        S: 554 no valid recipients
        C: RSET
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<two@y.org>
        C: DATA
        S: 250 reset
        S: 250 ok
        S: 250 ok
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<three@y.org>
        C: DATA
        S: 554 5.7.1 spam
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
    )
    outcomes = run_transcript(batch(options(), three()), script)
    assert [o.status for o in outcomes] == ["refused", "refused", "accepted"]
    assert isinstance(outcomes[0].error, RecipientsRefused)
    assert isinstance(outcomes[1].error, PermanentError)
    assert outcomes[1].error.reply == Reply(554, ("5.7.1 spam",))


def test_a_354_with_no_recipient_ends_the_empty_data() -> None:
    """RFC 2920 3.1: the server may accept DATA though every RCPT failed."""
    script = (
        EHLO_PIPELINING
        + """
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: DATA
        S: 250 ok
        S: 550 no
        S: 354 go
        C: .
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<two@y.org>
        C: DATA
        S: 554 no message
        S: 250 ok
        S: 250 ok
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        S: 250 queued 2
        C: QUIT
        S: 221 bye
    """
    )
    outcomes = run_transcript(batch(options(), three()[:2]), script)
    assert [o.status for o in outcomes] == ["refused", "accepted"]


def test_lost_after_the_end_of_data_is_unknown_and_the_rest_unsent() -> None:
    """A message whose end went out without a reply is never guessed delivered."""
    script = (
        EHLO_PIPELINING
        + """
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
        GONE
    """
    )
    outcomes = run_transcript(batch(options(), three(), bye=False), script)
    assert [o.status for o in outcomes] == ["unknown", "unsent", "unsent"]
    assert all(isinstance(o.error, ConnectionLost) for o in outcomes)


def test_a_421_to_the_end_of_data_refuses_it_and_the_rest_are_unsent() -> None:
    script = (
        EHLO_PIPELINING
        + """
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
        S: 421 4.3.2 shutting down
        EOF
    """
    )
    outcomes = run_transcript(batch(options(), three(), bye=False), script)
    assert [o.status for o in outcomes] == ["refused", "unsent", "unsent"]
    assert isinstance(outcomes[0].error, TransientError)


def test_a_421_to_the_next_group_leaves_the_delivered_one_delivered() -> None:
    script = (
        EHLO_PIPELINING
        + """
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
        S: 421 4.3.2 bye now
        EOF
    """
    )
    outcomes = run_transcript(batch(options(), three(), bye=False), script)
    assert [o.status for o in outcomes] == ["accepted", "unsent", "unsent"]


def test_lost_before_the_first_reply_leaves_everything_unsent() -> None:
    """A server that closed while idle: nothing of any message was taken."""
    script = (
        EHLO_PIPELINING
        + """
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: DATA
    """
    )
    outcomes = run_transcript(batch(options(), three(), bye=False), script)
    assert [o.status for o in outcomes] == ["unsent"] * 3
    assert isinstance(outcomes[0].error, ConnectionLost)


def test_chunking_puts_whole_transactions_in_flight() -> None:
    """RFC 3030 2 with RFC 2920: no 354 to wait for; the next ones go before the replies."""
    record = Record([], [], [])
    size = len(BODY)
    script = (
        EHLO_CHUNKING
        + f"""
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: BDAT {size} LAST
        C: Subject: hi
        C:
        C: body
        C: RSET
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<two@y.org>
        C: BDAT {size} LAST
        C: Subject: hi
        C:
        C: body
        C: RSET
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<three@y.org>
        C: BDAT {size} LAST
        C: Subject: hi
        C:
        C: body
        S: 250 ok
        S: 550 no such user
        S: 554 5.5.1 no valid recipients
        S: 250 reset
        S: 250 ok
        S: 250 ok
        S: 250 queued 2
        S: 250 reset
        S: 250 ok
        S: 250 ok
        S: 452 4.3.1 full
        C: QUIT
        S: 221 bye
    """
    )
    outcomes = run_transcript(batch(options(chunking=True), three()), script, record=record)
    assert [o.status for o in outcomes] == ["refused", "accepted", "refused"]
    assert isinstance(outcomes[0].error, RecipientsRefused)
    assert isinstance(outcomes[2].error, TransientError)
    assert outcomes[1].result is not None and outcomes[1].result.reply.lines == ("queued 2",)
    assert len(record.writes) == 1 + 3 + 1  # EHLO, one write per transaction, QUIT


def test_chunking_window_lost_leaves_every_transaction_in_flight_unknown() -> None:
    size = len(BODY)
    script = (
        EHLO_CHUNKING
        + f"""
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: BDAT {size} LAST
        C: Subject: hi
        C:
        C: body
        C: RSET
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<two@y.org>
        C: BDAT {size} LAST
        C: Subject: hi
        C:
        C: body
        S: 250 ok
        S: 250 ok
        S: 250 queued 1
        GONE
    """
    )
    outcomes = run_transcript(batch(options(chunking=True), three()[:2], bye=False), script)
    assert [o.status for o in outcomes] == ["accepted", "unknown"]


def test_chunking_window_is_bounded() -> None:
    """At most WINDOW transactions are written before the oldest one's replies are read."""
    from smtpcore.session._many import WINDOW

    size = len(BODY)
    one = f"""
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<n@y.org>
        C: BDAT {size} LAST
        C: Subject: hi
        C:
        C: body
    """
    replies = "S: 250 ok\nS: 250 ok\nS: 250 queued\n"
    script = EHLO_CHUNKING + one + ("C: RSET\n" + one) * (WINDOW - 1) + replies
    script += "C: RSET\n" + one + ("S: 250 reset\n" + replies) * WINDOW + "C: QUIT\nS: 221 bye"
    messages: list[Outgoing] = [("a@x.org", ["n@y.org"], BODY)] * (WINDOW + 1)
    outcomes = run_transcript(batch(options(chunking=True), messages), script)
    assert [o.status for o in outcomes] == ["accepted"] * (WINDOW + 1)


def test_lmtp_gets_one_final_reply_per_recipient() -> None:
    """RFC 2033 4.2: per-recipient replies to the end of data, read before the next group."""
    script = """
        S: 220 mx.example LMTP
        C: LHLO client.example
        S: 250-mx.example
        S: 250 PIPELINING
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: RCPT TO:<c@y.org>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 250 ok
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<b@y.org>
        C: DATA
        S: 250 b done
        S: 452 c over quota
        S: 250 ok
        S: 250 ok
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        S: 550 b gone
        C: QUIT
        S: 221 bye
    """
    messages: list[Outgoing] = [
        ("a@x.org", ["b@y.org", "c@y.org"], BODY),
        ("a@x.org", "b@y.org", BODY),
    ]
    outcomes = run_transcript(batch(options(lmtp=True), messages), script)
    assert outcomes[0].status == "accepted" and outcomes[0].result is not None
    assert outcomes[0].result.data_replies["c@y.org"].code == 452
    assert outcomes[1].status == "refused"


def test_email_messages_envelopes_and_needs_the_server_lacks() -> None:
    msg = EmailMessage()
    msg["From"] = "a@x.org"
    msg["To"] = "one@y.org"
    msg["Subject"] = "hi"
    msg.set_content("body")
    wide = Envelope.build("a@x.org", ["two@y.org"], "caf\u00e9\r\n")
    script = (
        EHLO_PIPELINING
        + """
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<one@y.org>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 354 go
    """
    )
    record = Record([], [], [])
    job = batch(options(), [wide, msg], bye=False)
    with pytest.raises(AssertionError, match="unexpected write"):
        run_transcript(job, script, record=record)
    assert record.writes[-1].startswith(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    # The 8-bit one is refused before any byte: the server lacks 8BITMIME.
    outcomes = run_transcript(batch(options(), [wide], bye=False), EHLO_PIPELINING)
    assert outcomes[0].status == "refused"
    assert isinstance(outcomes[0].error, NotSupported)


def test_a_batch_builds_each_repeated_command_once_and_sends_it_each_time() -> None:
    messages: list[Outgoing] = [
        ("a@x.org", ["one@y.org"], BODY),
        ("a@x.org", ["one@y.org"], BODY),
        ("a@x.org", ["two@y.org"], BODY),
    ]
    group = "C: MAIL FROM:<a@x.org>\nC: RCPT TO:<{}@y.org>\nC: DATA\n"
    sent = "C: Subject: hi\nC:\nC: body\nC: .\n"
    script = (
        EHLO_PIPELINING
        + group.format("one")
        + "S: 250 ok\nS: 250 ok\nS: 354 go\n"
        + sent
        + group.format("one")
        + "S: 250 queued 1\nS: 250 ok\nS: 250 ok\nS: 354 go\n"
        + sent
        + group.format("two")
        + "S: 250 queued 2\nS: 250 ok\nS: 250 ok\nS: 354 go\n"
        + sent
        + "S: 250 queued 3\n"
    )
    outcomes = run_transcript(batch(options(), messages, bye=False), script)
    first, second, third = (o.result.accepted for o in outcomes if o.result)
    # The RCPT reply names the command it answers: one value for the repeated recipient.
    assert first["one@y.org"].command is second["one@y.org"].command
    assert third["two@y.org"].command is not first["one@y.org"].command
    # Parameters are part of what a command is: the same addresses with DSN
    # parameters, then without, make other commands.
    dsn = DSN(ret="HDRS", notify=("SUCCESS",))
    messages = [
        Envelope.build("a@x.org", ["one@y.org"], BODY, dsn=dsn),
        ("a@x.org", ["one@y.org"], BODY),
    ]
    script = (
        EHLO_PIPELINING.replace("250 PIPELINING", "250-PIPELINING\nS: 250 DSN")
        + "C: MAIL FROM:<a@x.org> RET=HDRS\nC: RCPT TO:<one@y.org> NOTIFY=SUCCESS\nC: DATA\n"
        + "S: 250 ok\nS: 250 ok\nS: 354 go\n"
        + sent
        + group.format("one")
        + "S: 250 queued 1\nS: 250 ok\nS: 250 ok\nS: 354 go\n"
        + sent
        + "S: 250 queued 2\n"
    )
    outcomes = run_transcript(batch(options(), messages, bye=False), script)
    assert [o.status for o in outcomes] == ["accepted", "accepted"]


def test_wrong_items_raise_before_any_byte() -> None:
    with pytest.raises(TypeError, match="send_many takes"):
        run_transcript(batch(options(), [b"nope"], bye=False), EHLO_PIPELINING)  # type: ignore[list-item]


def test_a_bad_address_refuses_its_message_before_any_byte() -> None:
    messages: list[Outgoing] = [("a@x.org", ["not an address"], BODY), three()[1]]
    script = (
        EHLO_PIPELINING
        + """
        C: MAIL FROM:<a@x.org>
        C: RCPT TO:<two@y.org>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 354 go
        C: Subject: hi
        C:
        C: body
        C: .
        S: 250 queued
        C: QUIT
        S: 221 bye
    """
    )
    outcomes = run_transcript(batch(options(), messages), script)
    assert [o.status for o in outcomes] == ["refused", "accepted"]
    assert "no local part" in str(outcomes[0].error)


LONG: Final = "x" * 80 + "@y.org"


def test_a_line_over_the_limits_when_pipelining_settles_the_one_before_then_closes() -> None:
    """Its MAIL is counted as sent: the session is out of step, so it ends, nothing guessed."""
    from smtpcore import Limits

    messages: list[Outgoing] = [three()[0], ("a@x.org", [LONG], BODY), three()[2]]
    script = (
        EHLO_PIPELINING
        + """
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
        S: 250 queued 1
        EOF
    """
    )
    opts = options(limits=Limits(parameter_line=64))
    outcomes = run_transcript(batch(opts, messages, bye=False), script)
    assert [o.status for o in outcomes] == ["accepted", "refused", "unsent"]
    assert "parameter_line" in str(outcomes[1].error)
    assert isinstance(outcomes[2].error, ConnectionLost)


def test_a_line_over_the_limits_one_by_one_resets_and_goes_on() -> None:
    from smtpcore import Limits

    messages: list[Outgoing] = [("a@x.org", [LONG], BODY), three()[1]]
    script = (
        EHLO_PLAIN
        + """
        C: MAIL FROM:<a@x.org>
        S: 250 ok
        C: RSET
        S: 250 reset
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
        S: 250 queued
        C: QUIT
        S: 221 bye
    """
    )
    opts = options(limits=Limits(parameter_line=64))
    outcomes = run_transcript(batch(opts, messages), script)
    assert [o.status for o in outcomes] == ["refused", "accepted"]
