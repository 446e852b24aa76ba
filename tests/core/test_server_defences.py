"""Server defences, in-process: deadlines, greeting pause, cancelled AUTH, junk commands.

The session procedure runs against ``Timed``, a driver with a fake
monotonic clock: each scripted read says how long the client took, and a
read that would take longer than the procedure's ``Receive`` timeout comes
back as ``TIMED_OUT``. Every effect is recorded, so the tests can show when
the procedure asks for the time and when it does not.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import (
    NEED_DATA,
    Ehlo,
    InvalidCommand,
    Limits,
    MessageData,
    Noop,
    Reply,
    ServerConfig,
    StartTLS,
)
from smtpcore._server import ServerConnection, ServerPhase
from smtpcore.session import Clock
from smtpcore.session._effects import Close, Handshake, Write
from smtpcore.session._server import (
    MIN_DATA_RATE,
    SHUT_DOWN,
    TIMED_OUT,
    CallHook,
    HookFailed,
    Interrupted,
    NewId,
    Now,
    Peer,
    Receive,
    ServerEnvelope,
    ServerOptions,
    TLSInfo,
)
from tests.core.test_server import Auto, server
from tests.feeding import feed_every_way

MOMENT = datetime.datetime(2026, 11, 29, 9, 0, tzinfo=datetime.timezone.utc)
PEER = Peer("192.0.2.7", 40000)
GREETING = b"220 mx.test ESMTP\r\n"
HELO = b"HELO c.example\r\n"
ENVELOPE = b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
OK = b"250 2.0.0 OK\r\n"
ERROR_LIMIT = b"421 4.7.0 mx.test Error limit reached, closing\r\n"

# One scripted read: (seconds the client takes, what it sends). A read that
# takes at least the Receive timeout answers TIMED_OUT after that timeout.
Step = tuple[float, "bytes | Interrupted"]


class Keep:
    def __init__(self) -> None:
        self.messages: list[ServerEnvelope] = []

    def on_message(self, envelope: ServerEnvelope) -> None:
        self.messages.append(envelope)


class Timed:
    """Drives a server procedure with a fake clock; records effects and writes."""

    def __init__(self, handler: object, steps: Sequence[Step], *, hook_seconds: float = 0.0):
        self.handler = handler
        self.steps = list(steps)
        self.hook_seconds = hook_seconds  # how long each hook takes (not the client's fault)
        self.now = 1000.0
        self.wire = b""
        self.closed = False
        self.effects: list[object] = []
        self.timeouts: list[float] = []

    def run(self, options: ServerOptions, *, tls: TLSInfo | None = None) -> int:
        procedure = options.session(PEER, "S1", tls=tls)
        answer: object = None
        while True:
            try:
                effect = procedure.send(answer)
            except StopIteration as done:
                return int(done.value)
            answer = None
            assert not self.closed, f"{effect} after Close"
            self.effects.append(effect)
            if isinstance(effect, Write):
                self.wire += effect.data
            elif isinstance(effect, Receive):
                self.timeouts.append(effect.timeout)
                answer = self.receive(effect.timeout)
            elif isinstance(effect, Clock):
                answer = self.now
            elif isinstance(effect, CallHook):
                self.now += self.hook_seconds
                try:
                    answer = getattr(self.handler, effect.name)(*effect.args)
                except Exception as error:
                    answer = HookFailed(error)
            elif isinstance(effect, Handshake):
                answer = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384")
            elif isinstance(effect, Now):
                answer = MOMENT
            elif isinstance(effect, NewId):
                answer = "ID1"
            elif isinstance(effect, Close):
                self.closed = True

    def receive(self, timeout: float) -> bytes | Interrupted:
        if not self.steps:
            return b""
        seconds, data = self.steps[0]
        if seconds >= timeout:
            self.steps[0] = (seconds - timeout, data)
            self.now += timeout
            return TIMED_OUT
        del self.steps[0]
        self.now += seconds
        return data

    @property
    def clocks(self) -> int:
        return sum(isinstance(e, Clock) for e in self.effects)


def options(handler: object, limits: Limits | None = None, **kwargs: Any) -> ServerOptions:
    config = ServerConfig(
        hostname="mx.test", chunking=True, auth_mechanisms=("LOGIN", "PLAIN"), etrn=True
    )
    return ServerOptions.create(handler, config=config, limits=limits, **kwargs)


def fast(*reads: bytes) -> list[Step]:
    return [(0.0, data) for data in reads]


def trickle(data: bytes, seconds: float) -> list[Step]:
    return [(seconds, data[i : i + 1]) for i in range(len(data))]


# -- slowloris: a command line has idle_timeout to be complete ------------------


def test_whole_commands_never_ask_for_the_time() -> None:
    """The fast path: a read that completes each command costs no Clock effect."""
    handler = Keep()
    timed = Timed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", b"hi\r\n.\r\n", b"QUIT\r\n"))
    assert timed.run(options(handler, idle_timeout=10)) == 1
    assert timed.clocks == 0
    assert timed.timeouts == [10.0] * 5
    assert timed.wire.endswith(b"221 2.0.0 mx.test closing connection\r\n")


def test_a_trickled_line_gets_421_command_timeout_after_idle_timeout() -> None:
    # One byte every 4 s with idle_timeout 10: each wait is fine on its own,
    # but the line may take 10 s of waiting after its first byte.
    timed = Timed(Keep(), trickle(b"HELO c.example\r\n", 4.0))
    timed.run(options(Keep(), idle_timeout=10))
    assert timed.wire == GREETING + b"421 mx.test 4.4.2 Command timeout, closing connection\r\n"
    assert timed.closed
    # The first byte came after a plain idle wait; then 10, 6, 2 seconds were left.
    assert timed.timeouts == [10.0, 10.0, 6.0, 2.0]
    assert timed.now == pytest.approx(1000 + 4 + 10)


def test_a_line_completed_in_time_is_served_and_the_next_starts_afresh() -> None:
    steps = [*trickle(b"NOOP\r\n", 1.9), *trickle(b"NOOP\r\n", 1.9)]
    timed = Timed(Keep(), steps)
    timed.run(options(Keep(), idle_timeout=10))
    assert timed.wire == GREETING + b"250 2.0.0 OK\r\n" * 2
    # Each line: its first byte is free, the five others cost 9.5 s < 10 s.
    assert timed.timeouts[:6] == pytest.approx([10, 10, 8.1, 6.2, 4.3, 2.4])


def test_a_read_returning_late_past_the_deadline_ends_at_once() -> None:
    class Late(Timed):
        def receive(self, timeout: float) -> bytes | Interrupted:
            self.timeouts.append(-1.0)  # marks a read that overslept its timeout
            self.now += timeout + 0.5
            return b"x"

    timed = Late(Keep(), [])
    timed.run(options(Keep(), idle_timeout=10))
    assert timed.wire.endswith(b"421 mx.test 4.4.2 Command timeout, closing connection\r\n")
    assert timed.timeouts.count(-1.0) == 2  # first byte, then one read that overslept


def test_a_pipelined_partial_line_starts_its_deadline_at_the_wait() -> None:
    steps = [(0.0, HELO + b"NO"), (6.0, b"O"), (6.0, b"P\r\n")]
    timed = Timed(Keep(), steps)
    timed.run(options(Keep(), idle_timeout=10))
    assert timed.wire == GREETING + b"250 mx.test\r\n" + (
        b"421 mx.test 4.4.2 Command timeout, closing connection\r\n"
    )
    assert timed.timeouts == [10.0, 10.0, 4.0]


def test_a_silent_client_still_gets_the_idle_timeout() -> None:
    timed = Timed(Keep(), [(99.0, b"")])
    timed.run(options(Keep(), idle_timeout=10))
    assert timed.wire == GREETING + b"421 mx.test 4.4.2 Idle timeout, closing connection\r\n"
    assert timed.clocks == 0


def test_a_trickled_sasl_response_is_a_command_line_too() -> None:
    steps = [*fast(b"EHLO c\r\nAUTH LOGIN\r\n"), *trickle(b"dXNlcg==\r\n", 3.0)]
    timed = Timed(Keep(), steps)
    timed.run(options(Keep(), idle_timeout=10), tls=TLSInfo())
    assert timed.wire.endswith(
        b"334 VXNlcm5hbWU6\r\n421 mx.test 4.4.2 Command timeout, closing connection\r\n"
    )


# -- message content: idle_timeout + octets / min_data_rate ------------------------


def data_session(*content: Step) -> list[Step]:
    return [*fast(HELO, ENVELOPE, b"DATA\r\n"), *content]


def test_content_slower_than_min_data_rate_gets_421_data_rate_too_low() -> None:
    # 100 octets/s: 1000 octets buy 10 s on top of idle_timeout 10.
    steps = data_session((1.0, b"x" * 998 + b"\r\n"), (9.0, b"y"), (9.0, b"z"), (9.0, b"w"))
    timed = Timed(Keep(), steps)
    timed.run(options(Keep(), idle_timeout=10, min_data_rate=100))
    assert timed.wire.endswith(
        b"354 End data with <CR><LF>.<CR><LF>\r\n"
        b"421 mx.test 4.4.2 Data rate too low, closing connection\r\n"
    )
    # 20 s budget; 9 s waited (+0.01) -> 11.01 -> still idle-bound; 9 s (+0.01) -> 2.02.
    assert timed.timeouts[-3:] == pytest.approx([10.0, 10.0, 2.02])


def test_content_at_the_minimum_rate_is_accepted() -> None:
    handler = Keep()
    line = b"z" * 98 + b"\r\n"  # 100 octets every 0.9 s: over 100 octets/s
    steps = data_session(*[(0.9, line)] * 30, (0.9, b".\r\n"))
    timed = Timed(handler, steps)
    timed.run(options(handler, idle_timeout=2, min_data_rate=100))
    assert timed.wire.endswith(b"250 2.0.0 OK queued as ID1\r\n")
    assert len(handler.messages) == 1


def test_silence_inside_content_is_still_an_idle_timeout() -> None:
    """Before the rate binds, plain silence is named for what it is."""
    timed = Timed(Keep(), data_session((0.0, b"Subject: half"), (60.0, b"")))
    timed.run(options(Keep(), idle_timeout=10))
    assert timed.wire.endswith(b"421 mx.test 4.4.2 Idle timeout, closing connection\r\n")


def test_time_our_hooks_take_is_not_charged_to_the_client() -> None:
    class Slow(Keep):
        def on_data_chunk(self, data: bytes) -> None:
            del data

    handler = Slow()
    # 4 octets a second at 1 octet/s: 3 s gained a read. Were the 5 s each
    # chunk hook takes charged too, 2 s would be lost a read instead.
    steps = data_session(*[(1.0, b"ab\r\n")] * 12, (1.0, b".\r\n"))
    timed = Timed(handler, steps, hook_seconds=5.0)
    timed.run(options(handler, idle_timeout=10, min_data_rate=1))
    assert timed.wire.endswith(b"250 2.0.0 OK queued as ID1\r\n")


def test_a_slow_bdat_chunk_gets_421_data_rate_too_low() -> None:
    steps = [
        *fast(b"EHLO c\r\n", ENVELOPE, b"BDAT 100 LAST\r\n"),
        *[(4.0, b"x" * 10)] * 10,
    ]
    timed = Timed(Keep(), steps)
    timed.run(options(Keep(), idle_timeout=10, min_data_rate=10))
    # 10 s + 1 s per 10 octets: 4 s per 10 octets loses 3 s a read.
    assert timed.wire.endswith(b"421 mx.test 4.4.2 Data rate too low, closing connection\r\n")


def test_content_in_one_read_asks_for_no_time() -> None:
    handler = Keep()
    timed = Timed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", b"a\r\n" * 100 + b".\r\n"))
    timed.run(options(handler))
    assert timed.clocks == 0 and len(handler.messages) == 1


def test_content_over_several_reads_asks_twice_per_later_read() -> None:
    handler = Keep()
    timed = Timed(handler, fast(HELO, ENVELOPE, b"DATA\r\n", b"a\r\n", b"b\r\n", b".\r\n"))
    timed.run(options(handler))
    assert timed.clocks == 4 and len(handler.messages) == 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0.0, 6.0), min_size=1, max_size=5))
def test_a_line_is_served_exactly_when_its_waits_fit_the_timeout(waits: list[float]) -> None:
    """Property: after its first byte, the waits for the rest of a line must sum below 10 s."""
    line = b"NOOP\r\n"
    first = len(line) - len(waits)
    rest = [line[i : i + 1] for i in range(first, len(line))]
    steps: list[Step] = [(0.0, line[:first]), *zip(waits, rest, strict=True)]
    timed = Timed(Keep(), steps)
    timed.run(options(Keep(), idle_timeout=10))
    served = sum(waits) < 10
    expected = OK if served else b"421 mx.test 4.4.2 Command timeout, closing connection\r\n"
    assert timed.wire == GREETING + expected


def test_a_clock_answering_nonsense_is_a_type_error() -> None:
    procedure = options(Keep(), idle_timeout=10).session(PEER, "S1")
    effect = procedure.send(None)
    while not isinstance(effect, Receive):
        effect = procedure.send(None)
    effect = procedure.send(b"NO")
    while not isinstance(effect, Clock):
        effect = procedure.send(None)
    with pytest.raises(TypeError, match="answered Clock with str"):
        procedure.send("soon")


# -- greeting pause ------------------------------------------------------------------


def test_greeting_delay_waits_before_the_220() -> None:
    timed = Timed(Keep(), [(5.0, b"QUIT\r\n")])
    timed.run(options(Keep(), greeting_delay=3.0))
    assert isinstance(timed.effects[0], Receive) and timed.effects[0].interruptible
    assert timed.timeouts[0] == 3.0
    assert timed.wire == GREETING + b"221 2.0.0 mx.test closing connection\r\n"


def test_a_client_talking_during_the_greeting_delay_gets_554_and_is_closed() -> None:
    timed = Timed(Keep(), [(1.0, b"EHLO bot.example\r\nMAIL FROM:<spam@x>\r\n")])
    timed.run(options(Keep(), greeting_delay=3.0))
    assert timed.wire == GREETING + b"554 5.5.0 Protocol error: data sent before the greeting\r\n"
    assert timed.closed
    assert timed.timeouts == [3.0]  # nothing read after the verdict


def test_a_client_gone_during_the_greeting_delay_gets_nothing() -> None:
    timed = Timed(Keep(), [(1.0, b"")])
    timed.run(options(Keep(), greeting_delay=3.0))
    assert timed.wire == b"" and timed.closed


def test_a_shutdown_during_the_greeting_delay_is_421() -> None:
    timed = Timed(Keep(), [(1.0, SHUT_DOWN)])
    timed.run(options(Keep(), greeting_delay=3.0))
    assert timed.wire == b"421 mx.test 4.3.2 Service shutting down, closing connection\r\n"


def test_no_greeting_delay_greets_at_once() -> None:
    timed = Timed(Keep(), fast(b"QUIT\r\n"))
    timed.run(options(Keep()))
    assert timed.effects[0] == Write(GREETING, 300.0)


def test_a_refusing_on_connect_is_not_delayed() -> None:
    class Refuse(Keep):
        def on_connect(self, info: object) -> Reply:
            return Reply(554, ("mx.test No service for you",))

    timed = Timed(Refuse(), fast(b"QUIT\r\n"))
    timed.run(options(Refuse(), greeting_delay=3.0))
    assert timed.effects[1] == Write(b"554 mx.test No service for you\r\n", 300.0)


# -- cancelled AUTH counts toward Limits.auth_failures ------------------------------------


def test_cancelled_auth_exchanges_end_in_421() -> None:
    timed = Timed(Keep(), fast(b"EHLO c\r\n", *[b"AUTH LOGIN\r\n", b"*\r\n"] * 4))
    timed.run(options(Keep(), Limits(auth_failures=3)), tls=TLSInfo())
    cancelled = b"334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication cancelled\r\n"
    assert timed.wire.endswith(
        cancelled * 2
        + b"334 VXNlcm5hbWU6\r\n"
        + b"421 mx.test 4.7.0 Too many failed authentication attempts, closing\r\n"
    )
    assert timed.closed


def test_cancelled_and_failed_exchanges_add_up() -> None:
    class Nobody(Keep):
        def authenticate(self, username: str, password: str) -> bool:
            return False

    wrong = b"AUTH PLAIN " + base64.b64encode(b"\0u\0p") + b"\r\n"
    timed = Timed(Nobody(), fast(b"EHLO c\r\n", b"AUTH LOGIN\r\n", b"*\r\n", wrong, wrong))
    timed.run(options(Nobody(), Limits(auth_failures=3)), tls=TLSInfo())
    assert timed.wire.endswith(
        b"501 5.7.0 Authentication cancelled\r\n"
        b"535 5.7.8 Authentication credentials invalid\r\n"
        b"421 mx.test 4.7.0 Too many failed authentication attempts, closing\r\n"
    )


# -- junk commands: beyond Limits.junk_commands each is an error ---------------------------


def test_junk_beyond_the_limit_counts_as_errors_then_421() -> None:
    timed = Timed(Keep(), fast(b"NOOP\r\n" * 10))
    timed.run(options(Keep(), Limits(junk_commands=3, errors=2)))
    # 3 free, 2 errors still answered, the 6th is one error too many.
    assert timed.wire == GREETING + OK * 5 + ERROR_LIMIT
    assert timed.closed


def test_every_junk_verb_counts() -> None:
    wire = b"EHLO c\r\nNOOP\r\nRSET\r\nVRFY bob\r\nHELP\r\nETRN x.example\r\nNOOP\r\n"
    limits = Limits(junk_commands=4, errors=1)
    events = feed_every_way(
        lambda: Auto(server(hostname="mx.test", etrn=True, limits=limits)), wire
    )
    assert [type(e).__name__ for e in events] == [
        "Ehlo", "Noop", "Rset", "Vrfy", "Help", "Etrn", "InvalidCommand",
    ]  # fmt: skip
    # ETRN was the fifth junk command (one error, allowed); NOOP the second error.
    last = events[-1]
    assert isinstance(last, InvalidCommand)
    assert last.reply == Reply(421, ("4.7.0 mx.test Error limit reached, closing",))
    assert last.reason == ("NOOP beyond Limits.junk_commands (4) reached Limits.errors (1)")


def test_an_accepted_message_resets_the_junk_count() -> None:
    handler = Keep()
    message = [HELO, ENVELOPE, b"DATA\r\n", b"x\r\n.\r\n"]
    timed = Timed(handler, fast(b"NOOP\r\n" * 3, *message, b"NOOP\r\n" * 3, b"QUIT\r\n"))
    timed.run(options(handler, Limits(junk_commands=3, errors=1)))
    assert timed.wire.count(OK) == 6 and b"421" not in timed.wire
    assert len(handler.messages) == 1


def test_without_a_message_the_same_junk_ends_the_session() -> None:
    timed = Timed(Keep(), fast(b"NOOP\r\n" * 3, HELO, b"NOOP\r\n" * 3, b"QUIT\r\n"))
    timed.run(options(Keep(), Limits(junk_commands=3, errors=1)))
    assert timed.wire.endswith(b"250 mx.test\r\n" + OK + ERROR_LIMIT)


def test_refused_junk_counts_once_as_an_error_not_twice() -> None:
    conn = ServerConnection(ServerConfig(expn=False), Limits(junk_commands=1, errors=2))
    auto = Auto(conn)
    auto.receive_data(b"EXPN a\r\nEXPN b\r\nNOOP\r\n")
    events = [auto.next_event() for _ in range(3)]
    assert [str(e.reply) for e in events if isinstance(e, InvalidCommand)] == [
        "502 5.5.1 Command EXPN not implemented",
        "502 5.5.1 Command EXPN not implemented",
    ]
    assert events[2] == Noop()


@pytest.mark.parametrize("hello", [b"EHLO c.example\r\n", b"HELO c.example\r\n"])
def test_repeated_hellos_are_junk_and_end_the_session(hello: bytes) -> None:
    """EHLO again and again moves no mail: past the first, each one is junk."""
    timed = Timed(Keep(), fast(hello * 5000))
    timed.run(options(Keep(), Limits(junk_commands=3, errors=2)))
    assert timed.wire.count(b"250") == 1 + 3 + 2 or timed.wire.count(b"250 ") == 1 + 3 + 2
    assert timed.wire.endswith(ERROR_LIMIT)
    assert timed.closed


def test_hello_after_starttls_is_not_junk() -> None:
    conn = ServerConnection(ServerConfig(starttls=True), Limits(junk_commands=1, errors=1))
    auto = Auto(conn, handshake=True)
    auto.receive_data(b"EHLO c\r\nSTARTTLS\r\n")
    assert [type(auto.next_event()) for _ in range(2)] == [Ehlo, StartTLS]
    auto.receive_data(b"EHLO c\r\nEHLO c\r\nEHLO c\r\n")
    events = [auto.next_event() for _ in range(3)]
    assert [type(e) for e in events] == [Ehlo, Ehlo, Ehlo]  # the last is the one error allowed


def test_empty_bdat_chunks_are_junk_and_end_the_session() -> None:
    """``BDAT 0`` (not LAST) carries nothing: 5,000 of them end the session."""
    timed = Timed(Keep(), fast(HELO.replace(b"HELO", b"EHLO") + ENVELOPE + b"BDAT 0\r\n" * 5000))
    timed.run(options(Keep(), Limits(junk_commands=3, errors=2)))
    assert timed.wire.count(b"250 2.0.0 Chunk received\r\n") == 3 + 2
    assert timed.wire.endswith(ERROR_LIMIT)
    assert timed.closed


def test_bdat_0_last_is_not_junk() -> None:
    handler = Keep()
    chunks = b"BDAT 2\r\nhiBDAT 0 LAST\r\n"
    timed = Timed(handler, fast(b"EHLO c\r\n" + (ENVELOPE + chunks) * 3 + b"QUIT\r\n"))
    timed.run(options(handler, Limits(junk_commands=1, errors=1)))
    assert len(handler.messages) == 3 and b"421" not in timed.wire


def test_a_refused_bdat_chunk_over_the_skip_limit_is_answered_then_closed() -> None:
    """Reading a refused chunk of gigabytes only to drop it is the attacker's game:
    past ``Limits.skipped_chunk`` octets the server answers and hangs up, as Postfix does."""
    conn = ServerConnection(ServerConfig(chunking=True), Limits(skipped_chunk=1000))
    auto = Auto(conn)
    auto.receive_data(b"EHLO c\r\nBDAT 1001\r\n" + b"x" * 1001 + b"NOOP\r\n")
    assert type(auto.next_event()) is Ehlo
    refused = auto.next_event()
    assert isinstance(refused, InvalidCommand)
    assert str(refused.reply).startswith("503 5.5.1 Bad sequence")
    assert conn.phase is ServerPhase.CLOSED


def test_a_refused_bdat_chunk_within_the_skip_limit_is_read_and_dropped() -> None:
    conn = ServerConnection(ServerConfig(chunking=True), Limits(skipped_chunk=1000))
    auto = Auto(conn)
    auto.receive_data(b"EHLO c\r\nBDAT 1000\r\n" + b"x" * 1000 + b"NOOP\r\n")
    events = [auto.next_event() for _ in range(3)]
    assert type(events[1]) is InvalidCommand and events[2] == Noop()


def test_an_oversized_bdat_chunk_over_the_skip_limit_is_552_then_closed() -> None:
    conn = ServerConnection(ServerConfig(chunking=True, size=10), Limits(skipped_chunk=100))
    auto = Auto(conn)
    auto.receive_data(b"EHLO c\r\n" + ENVELOPE + b"BDAT 99999999999999999999 LAST\r\n" + b"x" * 99)
    events = [auto.next_event() for _ in range(4)]
    assert str(events[3].reply) == "552 5.3.4 Message size exceeds fixed limit of 10 octets"  # type: ignore[attr-defined]
    assert conn.phase is ServerPhase.CLOSED


def test_default_skipped_chunk_is_one_mebibyte() -> None:
    assert Limits().skipped_chunk == 1024 * 1024


def test_junk_commands_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="Limits.junk_commands"):
        Limits(junk_commands=0)


# -- what the connection tells the procedure ---------------------------------------------


def test_partial_command_and_content_predicates() -> None:
    auto = Auto(ServerConnection(ServerConfig()))
    conn = auto.conn
    assert not conn.has_partial_command and not conn.is_receiving_content
    auto.receive_data(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA")
    while auto.next_event() is not NEED_DATA:
        pass
    assert conn.has_partial_command and not conn.is_receiving_content
    auto.receive_data(b"TA\r\nhalf")
    while auto.next_event() is not NEED_DATA:
        pass
    assert conn.phase is ServerPhase.DATA
    assert conn.is_receiving_content and not conn.has_partial_command
    auto.receive_data(b"\r\n.\r\n")
    assert conn.next_event() == MessageData(b"\r\n")  # "half" came out before
    assert conn.is_receiving_content is False  # the end was found, before its event


# -- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("greeting_delay", -1.0), ("min_data_rate", 0.0), ("min_data_rate", float("nan"))],
)
def test_options_out_of_range_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        kwargs: dict[str, Any] = {name: value}
        ServerOptions.create(Keep(), **kwargs)


def test_option_defaults() -> None:
    made = ServerOptions.create(Keep())
    assert (made.greeting_delay, made.min_data_rate) == (0.0, MIN_DATA_RATE) == (0.0, 500.0)
    assert Limits().junk_commands == 100


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=40), st.floats(0.0, 1.0))
def test_a_prompt_client_gets_the_same_replies_however_its_bytes_are_cut(
    cuts: list[int], share: float
) -> None:
    """Property: all waits together under idle_timeout: cut anyhow, no deadline fires."""
    wire = (
        b"EHLO c\r\nNOOP\r\nNOOP\r\nNOOP\r\n"
        + ENVELOPE
        + b"DATA\r\nSubject: cut\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n"
    )
    pieces, at = [], 0
    for size in cuts * (len(wire) // sum(cuts) + 1):
        if at >= len(wire):
            break
        pieces.append(wire[at : at + size])
        at += size
    whole = Timed(Keep(), fast(wire))
    whole.run(options(Keep(), Limits(junk_commands=2), idle_timeout=10, min_data_rate=500))
    wait = share * 9.9 / len(pieces)
    cut = Timed(Keep(), [(wait, piece) for piece in pieces])
    cut.run(options(Keep(), Limits(junk_commands=2), idle_timeout=10, min_data_rate=500))
    assert cut.wire == whole.wire
    assert whole.wire.endswith(b"250 2.0.0 OK\r\n221 2.0.0 mx.test closing connection\r\n")
