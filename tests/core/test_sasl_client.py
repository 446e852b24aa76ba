"""Client mechanisms: what the server may get wrong, what we may get wrong, the chooser."""

from __future__ import annotations

import base64

import pytest

from smtpcore import LocalProtocolError, RemoteProtocolError
from smtpcore.sasl import (
    ClientMechanism,
    CramMD5Client,
    LoginClient,
    OAuthBearerClient,
    PlainClient,
    ScramSHA1Client,
    ScramSHA256Client,
    XOAuth2Client,
    choose_client_mechanism,
    client_mechanism,
    decode_challenge,
)

NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
GOOGLE_ERROR = b'{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}\n'


# --- decode_challenge -------------------------------------------------------


def test_decode_challenge() -> None:
    assert decode_challenge("VXNlcm5hbWU6") == b"Username:"
    assert decode_challenge("") == b""


@pytest.mark.parametrize("text", ["VXNlcm5hbWU", "VXNl cm5h", "=", "!!!!", "VXNlcm5hbWU6\u00e9"])
def test_decode_challenge_refuses_bad_base64(text: str) -> None:
    with pytest.raises(RemoteProtocolError, match="not valid base64"):
        decode_challenge(text)


# --- PLAIN, LOGIN, CRAM-MD5 --------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "authzid"),
    [
        ("ti\0m", "pw", ""),
        ("tim", "p\0w", ""),
        ("tim", "pw", "a\0z"),
        ("", "pw", ""),
        ("t", "", ""),
    ],
)
def test_plain_refuses_nul_and_empty_fields(username: str, password: str, authzid: str) -> None:
    with pytest.raises(LocalProtocolError, match="RFC 4616"):
        PlainClient(username, password, authzid=authzid)


def test_plain_refuses_a_challenge_after_its_message() -> None:
    client = PlainClient("tim", "pw")
    assert client.respond(b"") == b"\0tim\0pw"  # server asked with an empty 334
    assert client.is_complete
    with pytest.raises(RemoteProtocolError, match="after the exchange was complete"):
        client.respond(b"")


def test_plain_refuses_a_nonempty_first_challenge() -> None:
    with pytest.raises(RemoteProtocolError, match="client speaks first"):
        PlainClient("tim", "pw").respond(b"hello")


def test_initial_response_twice_is_local_error() -> None:
    client = PlainClient("tim", "pw")
    client.initial_response()
    with pytest.raises(LocalProtocolError):
        client.initial_response()


def test_login_answers_by_order_not_by_text() -> None:
    client = LoginClient("tim", "secret")
    assert client.initial_response() is None
    assert client.respond(b"Password:") == b"tim"  # a confused prompt still gets the username
    assert not client.is_complete
    assert client.respond(b"") == b"secret"
    assert client.is_complete
    with pytest.raises(RemoteProtocolError, match="third challenge"):
        client.respond(b"Username:")


def test_cram_md5_refuses_second_and_empty_challenges() -> None:
    with pytest.raises(RemoteProtocolError, match="empty challenge"):
        CramMD5Client("tim", "pw").respond(b"")
    client = CramMD5Client("tim", "pw")
    client.respond(b"<1.2@host>")
    with pytest.raises(RemoteProtocolError, match="second challenge"):
        client.respond(b"<1.2@host>")


def test_success_before_the_end_is_remote_error() -> None:
    client = LoginClient("tim", "pw")
    client.respond(b"Username:")
    with pytest.raises(RemoteProtocolError, match="before the exchange was complete"):
        client.verify_success()


# --- SCRAM ------------------------------------------------------------------


def _scram_after_first() -> ScramSHA256Client:
    client = ScramSHA256Client("user", "pencil", NONCE)
    client.initial_response()
    client.respond(SERVER_FIRST)
    return client


def test_scram_mismatching_server_signature_is_an_error() -> None:
    client = _scram_after_first()
    wrong = base64.b64encode(bytes(32)).decode()
    with pytest.raises(RemoteProtocolError, match="server signature does not match"):
        client.respond(f"v={wrong}".encode())
    assert not client.is_complete
    with pytest.raises(RemoteProtocolError):
        client.verify_success()


@pytest.mark.parametrize("final", [b"", b"x=abc", b"vv=abc", b"v"])
def test_scram_missing_verifier_is_an_error(final: bytes) -> None:
    client = _scram_after_first()
    with pytest.raises(RemoteProtocolError, match="no verifier"):
        client.respond(final)
    assert not client.is_complete


def test_scram_bad_base64_verifier_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="does not match"):
        _scram_after_first().respond(b"v=not base64!")


def test_scram_server_error_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="'invalid-proof'"):
        _scram_after_first().respond(b"e=invalid-proof")


def test_scram_success_without_server_final_is_an_error() -> None:
    """RFC 5802 5: a 235 that skipped the server signature proves nothing."""
    with pytest.raises(RemoteProtocolError, match="before the exchange was complete"):
        _scram_after_first().verify_success()


def test_scram_challenge_after_verification_is_an_error() -> None:
    client = ScramSHA1Client("user", "pencil", "fyko+d2lbbFgONRv9qkxdawL")
    client.initial_response()
    client.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    client.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
    with pytest.raises(RemoteProtocolError, match="after the exchange was complete"):
        client.respond(b"")


@pytest.mark.parametrize(
    ("server_first", "message"),
    [
        (b"r=otherNonce123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not start"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "adds nothing"),
        (b"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOx,i=4096", "is not 'r=...,s="),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==", "is not 'r=...,s="),
        (b"m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=4096", "extension"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096", "salt"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=%%%,i=4096", "salt"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=0", "not a positive number"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=-5", "not a positive number"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=4e3", "not a positive number"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=1000001", "exceeds the maximum 1000000"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=" + b"9" * 400, "exceeds the maximum"),
        (b"garbage", "not an attribute"),
        (b"r=rOprNGfwEbeRWgbNEkqOx\xff,s=c2FsdA==,i=1", "UTF-8"),
    ],
)
def test_scram_bad_server_first_message(server_first: bytes, message: str) -> None:
    client = ScramSHA256Client("user", "pencil", NONCE)
    client.initial_response()
    with pytest.raises(RemoteProtocolError, match=message):
        client.respond(server_first)


def test_scram_iteration_bound_is_an_argument() -> None:
    client = ScramSHA256Client("user", "pencil", NONCE, max_iterations=1000)
    client.initial_response()
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum 1000"):
        client.respond(SERVER_FIRST)


def test_scram_extensions_after_iterations_are_ignored() -> None:
    client = ScramSHA256Client("user", "pencil", NONCE)
    client.initial_response()
    assert client.respond(SERVER_FIRST + b",x=future").startswith(b"c=biws,r=")


@pytest.mark.parametrize("nonce", ["", "a,b", "caf\u00e9", "sp ace"])
def test_scram_bad_client_nonce_is_local_error(nonce: str) -> None:
    with pytest.raises(LocalProtocolError, match="nonce"):
        ScramSHA256Client("user", "pencil", nonce)


def test_scram_escapes_username_and_authzid() -> None:
    client = ScramSHA1Client("a=b,c", "pencil", "n0nce", authzid="x,y")
    assert client.initial_response() == b"n,a=x=2Cy,n=a=3Db=2Cc,r=n0nce"


def test_scram_empty_username_after_saslprep_is_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="empty"):
        ScramSHA256Client("\u00ad", "pencil", "nonce")


# --- the OAuth mechanisms ---------------------------------------------------


def test_xoauth2_error_dance() -> None:
    client = XOAuth2Client("someuser@example.com", "ya29.token")
    client.initial_response()
    assert client.respond(GOOGLE_ERROR) == b""  # then the server sends 535
    assert client.server_error == GOOGLE_ERROR
    with pytest.raises(RemoteProtocolError, match="second error"):
        client.respond(GOOGLE_ERROR)


def test_oauthbearer_error_dance() -> None:
    client = OAuthBearerClient("user@example.com", "token", host="mx.example", port=587)
    client.initial_response()
    error = b'{"status":"invalid_token","scope":"mail"}'
    assert client.respond(error) == b"\x01"  # RFC 7628 3.2.3
    assert client.server_error == error
    with pytest.raises(RemoteProtocolError, match="success after an error"):
        client.verify_success()


@pytest.mark.parametrize(
    "make",
    [
        lambda: XOAuth2Client("user\x01x", "token"),
        lambda: XOAuth2Client("user", "to ken"),
        lambda: XOAuth2Client("user", ""),
        lambda: OAuthBearerClient("user", "tok\x01"),
        lambda: OAuthBearerClient("user", "tok", host="h\x01"),
        lambda: OAuthBearerClient("user", "tok", port=70000),
    ],
)
def test_oauth_bad_local_input(make: object) -> None:
    with pytest.raises(LocalProtocolError):
        make()  # type: ignore[operator]


# --- choosing ---------------------------------------------------------------


def _choose(offered: list[str], **credentials: str | None) -> ClientMechanism | None:
    arguments: dict[str, str | None] = {"username": "u", "password": None, "oauth_token": None}
    arguments.update(credentials)
    return choose_client_mechanism(
        offered,
        username=arguments["username"],
        password=arguments["password"],
        oauth_token=arguments["oauth_token"],
        nonce="n0nce",
    )


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["LOGIN", "PLAIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"], "SCRAM-SHA-256"),
        (["login", "plain", "scram-sha-1"], "SCRAM-SHA-1"),
        (["LOGIN", "PLAIN", "CRAM-MD5"], "CRAM-MD5"),
        (["LOGIN", "Plain"], "PLAIN"),
        (["LOGIN", "XOAUTH2"], "LOGIN"),
        (["GSSAPI", "NTLM"], None),
    ],
)
def test_choose_with_password(offered: list[str], expected: str | None) -> None:
    chosen = _choose(offered, password="pw")
    assert (chosen.name if chosen else None) == expected


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["XOAUTH2", "OAUTHBEARER", "PLAIN"], "OAUTHBEARER"),
        (["xoauth2", "PLAIN"], "XOAUTH2"),
        (["PLAIN"], None),
    ],
)
def test_choose_with_token(offered: list[str], expected: str | None) -> None:
    chosen = _choose(offered, oauth_token="tok")
    assert (chosen.name if chosen else None) == expected


def test_choose_without_username_gives_none() -> None:
    assert _choose(["PLAIN"], username=None, password="pw") is None


def test_client_mechanism_by_name() -> None:
    mechanism = client_mechanism("plain", username="u", password="p")
    assert isinstance(mechanism, PlainClient)
    assert mechanism.initial_response() == b"\0u\0p"
    with pytest.raises(LocalProtocolError, match="not supported"):
        client_mechanism("GSSAPI", username="u", password="p")
    with pytest.raises(LocalProtocolError, match="needs a password"):
        client_mechanism("LOGIN", username="u")
    with pytest.raises(LocalProtocolError, match="needs an OAuth token"):
        client_mechanism("XOAUTH2", username="u", password="p")
