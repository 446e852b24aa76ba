"""Our client against our server, for every mechanism both sides have."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smtpcore import RemoteProtocolError
from smtpcore.sasl import (
    SERVER_MECHANISMS,
    Challenge,
    ClientMechanism,
    Failure,
    NeedSecret,
    SaslprepError,
    ScramCredentials,
    ServerMechanism,
    Success,
    VerifyPassword,
    client_mechanism,
    derive_scram_credentials,
    saslprep,
    server_mechanism,
)

SALT = b"\x01\x02salt\xff"
ITERATIONS = 8  # small: the hypothesis runs derive many keys


def _secret(mechanism: str, password: str) -> str | ScramCredentials:
    if mechanism == "CRAM-MD5":
        return password
    hash_name = "sha1" if mechanism == "SCRAM-SHA-1" else "sha256"
    return derive_scram_credentials(password, SALT, ITERATIONS, hash_name)


def exchange(
    client: ClientMechanism, server: ServerMechanism, username: str, password: str
) -> Success | Failure:
    """Run one exchange as a session would; the application knows (username, password)."""
    step = server.start(client.initial_response())
    for _ in range(10):
        match step:
            case Challenge(data):
                step = server.receive(client.respond(data))
            case VerifyPassword(user, given_password, _):
                ok = user == username and hmac.compare_digest(
                    given_password.encode(), password.encode()
                )
                step = server.password_checked(ok)
            case NeedSecret(mechanism, user, _):
                step = server.supply_secret(
                    _secret(mechanism, password) if user == username else None
                )
            case Success():
                client.verify_success()
                return step
            case Failure():
                return step
    raise AssertionError("exchange did not end")


def _pair(name: str, username: str, password: str) -> tuple[ClientMechanism, ServerMechanism]:
    client = client_mechanism(name, username=username, password=password, nonce="cl1ent")
    return client, server_mechanism(name, nonce="s3rver.123", hostname="mx.example")


@pytest.mark.parametrize("name", SERVER_MECHANISMS)
def test_right_password_succeeds(name: str) -> None:
    client, server = _pair(name, "tim", "tanstaaf")
    assert exchange(client, server, "tim", "tanstaaf") == Success("tim")
    assert client.is_complete


@pytest.mark.parametrize("name", SERVER_MECHANISMS)
def test_wrong_password_fails(name: str) -> None:
    client, server = _pair(name, "tim", "wrong")
    step = exchange(client, server, "tim", "tanstaaf")
    assert step == Failure("invalid credentials")
    assert not step.malformed


@pytest.mark.parametrize("name", SERVER_MECHANISMS)
def test_unknown_user_fails(name: str) -> None:
    client, server = _pair(name, "bob", "tanstaaf")
    assert isinstance(exchange(client, server, "tim", "tanstaaf"), Failure)


@pytest.mark.parametrize("name", ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_authzid_reaches_the_server(name: str) -> None:
    client = client_mechanism(name, username="tim", password="pw", nonce="c", authzid="boss")
    server = server_mechanism(name, nonce="s")
    assert exchange(client, server, "tim", "pw") == Success("tim", "boss")


@pytest.mark.parametrize("name", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_scram_username_with_comma_and_equals(name: str) -> None:
    client = client_mechanism(name, username="a=b,c", password="pw", nonce="c")
    assert exchange(client, server_mechanism(name, nonce="s"), "a=b,c", "pw") == Success("a=b,c")


# Printable text without NUL (PLAIN, LOGIN), surrogates or control characters.
_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn")), min_size=1, max_size=20
)


def _sasl_ok(text: str) -> bool:
    try:
        return bool(saslprep(text))
    except SaslprepError:
        return False


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(name=st.sampled_from(SERVER_MECHANISMS), username=_text, password=_text)
def test_any_credentials_round_trip(name: str, username: str, password: str) -> None:
    if name.startswith("SCRAM"):
        # SCRAM sends the SASLprep'd name; the application stores it that way.
        assume(_sasl_ok(username) and _sasl_ok(password))
        stored_username = saslprep(username)
    else:
        stored_username = username
    client, server = _pair(name, username, password)
    assert exchange(client, server, stored_username, password) == Success(stored_username)
    wrong = "wrong!" if password != "wrong!" else "wrong?"
    client, server = _pair(name, username, wrong)
    assert exchange(client, server, stored_username, password) == Failure("invalid credentials")


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(SERVER_MECHANISMS), junk=st.lists(st.binary(max_size=40), max_size=4))
def test_junk_from_the_client_never_raises(name: str, junk: list[bytes]) -> None:
    """Whatever the client sends, the server answers with a step, never an exception."""
    server = server_mechanism(name, nonce="s3rver")
    step = server.start(junk[0] if junk else None)
    for data in junk[1:]:
        match step:
            case Challenge():
                step = server.receive(data)
            case NeedSecret(mechanism):
                step = server.supply_secret(_secret(mechanism, "pw"))
            case VerifyPassword():
                step = server.password_checked(False)
            case Success() | Failure():
                break
    assert isinstance(step, Challenge | NeedSecret | VerifyPassword | Success | Failure)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(SERVER_MECHANISMS),
    which=st.integers(0, 3),
    cut=st.integers(0, 200),
    insert=st.binary(max_size=6),
)
def test_damaged_client_messages_never_raise(
    name: str, which: int, cut: int, insert: bytes
) -> None:
    """A client message damaged in flight gives a step; never an exception."""
    client, server = _pair(name, "tim", "pencil")
    first = client.initial_response()
    sent = 0

    def damage(message: bytes) -> bytes:
        nonlocal sent
        sent += 1
        if sent - 1 != which:
            return message
        return message[:cut] + insert + message[cut + len(insert) :]

    step = server.start(None if first is None else damage(first))
    for _ in range(10):
        match step:
            case Challenge(data):
                try:
                    answer = client.respond(data)
                except RemoteProtocolError:  # e.g. the damage hit our own nonce
                    return
                step = server.receive(damage(answer))
            case VerifyPassword(user, given_password, _):
                step = server.password_checked(user == "tim" and given_password == "pencil")
            case NeedSecret(mechanism, user, _):
                step = server.supply_secret(_secret(mechanism, "pencil") if user == "tim" else None)
            case Success() | Failure():
                break
    assert isinstance(step, Success | Failure)
