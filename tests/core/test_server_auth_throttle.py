"""Password guessing: a delay after each failed AUTH, and a failure budget per client address."""

from __future__ import annotations

import base64
import datetime

import pytest

from smtpcore import ServerConfig
from smtpcore.session import AuthBudget, Notice, Pause
from smtpcore.session._effects import Close, Handshake, Write
from smtpcore.session._server import (
    CallHook,
    Clock,
    HookFailed,
    NewId,
    Now,
    Peer,
    Receive,
    ServerOptions,
    TLSInfo,
)

MOMENT = datetime.datetime(2026, 11, 29, 9, 0, tzinfo=datetime.timezone.utc)
ATTACKER = Peer("192.0.2.66", 40000)
OTHER = Peer("198.51.100.1", 40000)
WRONG = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess") + b"\r\n"
RIGHT = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0pencil") + b"\r\n"
INVALID = b"535 5.7.8 Authentication credentials invalid\r\n"
REFUSED = (
    b"421 mx.test 4.7.0 Too many failed authentication attempts from 192.0.2.66,"
    b" try again later\r\n"
)


class Users:
    def authenticate(self, username: str, password: str) -> bool:
        return (username, password) == ("alice", "pencil")


class Driver:
    """Runs one session at a fixed clock; records every effect and the bytes written."""

    def __init__(self, chunks: list[bytes], now: float = 1000.0) -> None:
        self.chunks = iter(chunks)
        self.now = now
        self.effects: list[object] = []
        self.wire = b""

    def run(self, options: ServerOptions, peer: Peer = ATTACKER) -> bytes:
        procedure = options.session(peer, "S1", tls=TLSInfo())
        answer: object = None
        while True:
            try:
                effect = procedure.send(answer)
            except StopIteration:
                return self.wire
            answer = None
            self.effects.append(effect)
            if isinstance(effect, Write):
                self.wire += effect.data
            elif isinstance(effect, Receive):
                answer = next(self.chunks, b"")
            elif isinstance(effect, CallHook):
                try:
                    answer = getattr(Users(), effect.name)(*effect.args)
                except Exception as error:  # pragma: no cover - the hooks above do not raise
                    answer = HookFailed(error)
            elif isinstance(effect, Handshake):  # pragma: no cover - no STARTTLS here
                answer = TLSInfo()
            elif isinstance(effect, Now):
                answer = MOMENT
            elif isinstance(effect, Clock):
                answer = self.now
            elif isinstance(effect, NewId):
                answer = "ID1"
            else:
                assert isinstance(effect, (Pause, Notice, Close)), effect


def options(**kwargs: object) -> ServerOptions:
    config = ServerConfig(hostname="mx.test", auth_mechanisms=("PLAIN",))
    return ServerOptions.create(Users(), config=config, **kwargs)  # type: ignore[arg-type]


# -- the delay (Postfix smtpd_error_sleep_time) ---------------------------------------


def test_a_failed_auth_pauses_one_second_before_its_reply_by_default() -> None:
    driver = Driver([b"EHLO c\r\n" + WRONG + RIGHT + b"QUIT\r\n"])
    driver.run(options())
    pauses = [e for e in driver.effects if isinstance(e, Pause)]
    assert pauses == [Pause(1.0)]
    # The 535 is written only after the pause; the EHLO reply before it.
    at = driver.effects.index(Pause(1.0))
    before = b"".join(e.data for e in driver.effects[:at] if isinstance(e, Write))
    after = b"".join(e.data for e in driver.effects[at:] if isinstance(e, Write))
    assert INVALID not in before and after.startswith(INVALID)
    assert b"235 2.7.0 Authentication successful\r\n" in after


def test_the_delay_is_configurable_and_zero_means_none() -> None:
    driver = Driver([b"EHLO c\r\n" + WRONG + b"QUIT\r\n"])
    driver.run(options(auth_failure_delay=0.25))
    assert [e for e in driver.effects if isinstance(e, Pause)] == [Pause(0.25)]
    driver = Driver([b"EHLO c\r\n" + WRONG + b"QUIT\r\n"])
    driver.run(options(auth_failure_delay=0))
    assert not [e for e in driver.effects if isinstance(e, Pause)]
    assert INVALID in driver.wire
    with pytest.raises(ValueError, match="auth_failure_delay"):
        options(auth_failure_delay=-1)


def test_a_successful_or_cancelled_auth_does_not_pause() -> None:
    driver = Driver([b"EHLO c\r\nAUTH PLAIN\r\n", b"*\r\n" + RIGHT + b"QUIT\r\n"])
    driver.run(options())
    assert not [e for e in driver.effects if isinstance(e, Pause)]


# -- the budget per client address, across sessions -------------------------------------


def test_failures_from_one_address_across_sessions_end_in_421_and_a_notice() -> None:
    shared = options(auth_failure_delay=0, auth_failures_per_address=3)
    first = Driver([b"EHLO c\r\n" + WRONG * 2 + b"QUIT\r\n"]).run(shared)
    assert first.count(INVALID) == 2
    second = Driver([b"EHLO c\r\n" + WRONG + b"NOOP\r\n"])
    assert second.run(shared).endswith(b"250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN\r\n" + REFUSED)
    assert (
        Notice("AUTH refused to 192.0.2.66 for up to 600 s: 3 failed attempts within 600 s")
        in second.effects
    )
    # A new session from that address is refused at AUTH, before any password is tried.
    third = Driver([b"EHLO c\r\n" + RIGHT + b"NOOP\r\n"])
    assert third.run(shared).endswith(REFUSED)
    assert not [e for e in third.effects if isinstance(e, CallHook) and e.name == "authenticate"]
    # Another address is not affected.
    assert b"235 " in Driver([b"EHLO c\r\n" + RIGHT + b"QUIT\r\n"]).run(shared, OTHER)


def test_the_budget_recovers_when_the_window_has_passed() -> None:
    shared = options(auth_failure_delay=0, auth_failures_per_address=2, auth_failure_window=60)
    Driver([b"EHLO c\r\n" + WRONG * 2 + b"QUIT\r\n"], now=1000.0).run(shared)
    assert Driver([b"EHLO c\r\n" + RIGHT], now=1059.0).run(shared).endswith(REFUSED)
    assert b"235 " in Driver([b"EHLO c\r\n" + RIGHT], now=1060.5).run(shared)


def test_no_budget_when_asked_for_none() -> None:
    shared = options(auth_failure_delay=0, auth_failures_per_address=None)
    assert shared.auth_budget is None
    for _ in range(10):
        assert Driver([b"EHLO c\r\n" + WRONG + b"QUIT\r\n"]).run(shared).count(INVALID) == 1


def test_each_server_options_has_its_own_budget() -> None:
    assert options().auth_budget is not options().auth_budget
    assert options().auth_budget is not None and options().auth_budget.failures == 20  # type: ignore[union-attr]


# -- AuthBudget alone --------------------------------------------------------------------


def test_budget_counts_per_address_in_a_sliding_window() -> None:
    budget = AuthBudget(failures=3, window=10.0)
    assert not budget.fail("a", 0.0) and not budget.fail("a", 5.0)
    assert not budget.exhausted("a", 5.0)
    assert budget.fail("a", 9.0) and budget.exhausted("a", 9.5)
    assert not budget.exhausted("b", 9.5)
    assert not budget.exhausted("a", 10.0)  # the failure at 0.0 has expired
    assert budget.count("a", 15.0) == 1


def test_budget_memory_is_bounded() -> None:
    budget = AuthBudget(failures=2, window=100.0, addresses=3)
    for n in range(1000):
        budget.fail(f"192.0.2.{n % 250}.{n}", float(n % 50))
    assert len(budget._failures) == 3
    assert all(len(times) <= 2 for times in budget._failures.values())
    for _ in range(100):
        budget.fail("x", 1.0)
    assert len(budget._failures["x"]) == 2


def test_an_ipv6_client_counts_by_its_64_network() -> None:
    """One host usually holds a /64: stepping through it must not reset the count."""
    budget = AuthBudget(failures=2, window=10.0)
    assert not budget.fail("2001:db8:1:2::1", 0.0)
    assert budget.fail("2001:db8:1:2:ffff::7", 1.0)
    assert budget.exhausted("2001:db8:1:2:abcd::99", 2.0)
    assert not budget.exhausted("2001:db8:1:3::1", 2.0)
    assert AuthBudget.key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert AuthBudget.key("fe80::1%eth0") == "fe80::/64"
    assert AuthBudget.key("192.0.2.1") == "192.0.2.1"
    assert AuthBudget.key("not:an:address:") == "not:an:address:"


@pytest.mark.parametrize("bad", [{"failures": 0}, {"addresses": 0}, {"window": 0.0}])
def test_budget_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="AuthBudget"):
        AuthBudget(**bad)  # type: ignore[arg-type]
