"""Server mechanisms: malformed messages give Failure, misuse raises, order is enforced."""

from __future__ import annotations

import base64
import hashlib

import pytest

from smtpcore import LocalProtocolError
from smtpcore.sasl import (
    SERVER_MECHANISMS,
    Challenge,
    CramMD5Server,
    Failure,
    LoginServer,
    NeedSecret,
    PlainServer,
    ScramCredentials,
    ScramSHA1Server,
    ScramSHA256Server,
    ServerStep,
    Success,
    VerifyPassword,
    derive_scram_credentials,
    scram_salt,
    server_mechanism,
)

SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CREDENTIALS = derive_scram_credentials("pencil", SALT, 4096)
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
CLIENT_FINAL = b"c=biws,r=" + NONCE.encode() + b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


def _scram_at_final() -> ScramSHA256Server:
    server = ScramSHA256Server("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    server.start(CLIENT_FIRST)
    server.supply_secret(CREDENTIALS)
    return server


# --- PLAIN ------------------------------------------------------------------


def test_plain_without_initial_response_asks_with_empty_challenge() -> None:
    server = PlainServer()
    assert server.start(None) == Challenge(b"")
    assert server.receive(b"\0tim\0pw") == VerifyPassword("tim", "pw")
    assert server.password_checked(False) == Failure("invalid credentials")
    assert server.is_done


@pytest.mark.parametrize(
    "message",
    [b"", b"tim\0pw", b"a\0b\0c\0d", b"\0\0pw", b"\0tim\0", b"\0t\xffim\0pw"],
)
def test_plain_malformed_message_fails(message: bytes) -> None:
    step = PlainServer().start(message)
    assert isinstance(step, Failure)
    assert step.malformed


# --- LOGIN ------------------------------------------------------------------


def test_login_prompts_in_order() -> None:
    server = LoginServer()
    assert server.start(None) == Challenge(b"Username:")
    assert server.receive(b"tim") == Challenge(b"Password:")
    assert server.receive(b"secret") == VerifyPassword("tim", "secret")
    assert server.password_checked(True) == Success("tim")


def test_login_initial_response_is_the_username() -> None:
    server = LoginServer()
    assert server.start(b"tim") == Challenge(b"Password:")
    assert server.receive(b"secret") == VerifyPassword("tim", "secret")


@pytest.mark.parametrize("username", [b"", b"\xff"])
def test_login_bad_username_fails(username: bytes) -> None:
    server = LoginServer()
    server.start(None)
    step = server.receive(username)
    assert isinstance(step, Failure)
    assert step.malformed


# --- CRAM-MD5 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        b"tim",
        b"tim B913A602C7EDA7A495B4E6E7334D3890",  # upper case hex: RFC 2195 says lower
        b"tim b913a602c7eda7a495b4e6e7334d389",
        b" b913a602c7eda7a495b4e6e7334d3890",
        b"t\xffm b913a602c7eda7a495b4e6e7334d3890",
    ],
)
def test_cram_md5_malformed_response_fails(response: bytes) -> None:
    server = CramMD5Server("<1.2@host>")
    server.start(None)
    step = server.receive(response)
    assert isinstance(step, Failure)
    assert step.malformed


def test_cram_md5_refuses_initial_response() -> None:
    assert isinstance(CramMD5Server("<1.2@host>").start(b"tim x"), Failure)


def test_cram_md5_unknown_user_and_wrong_secret_kind() -> None:
    server = CramMD5Server("<1.2@host>")
    server.start(None)
    assert server.receive(b"tim b913a602c7eda7a495b4e6e7334d3890") == NeedSecret("CRAM-MD5", "tim")
    with pytest.raises(LocalProtocolError, match="needs the password"):
        server.supply_secret(CREDENTIALS)
    assert server.supply_secret(None) == Failure("no such user")


@pytest.mark.parametrize("msg_id", ["", "1.2@host", "<>", "<a b@host>"])
def test_cram_md5_bad_msg_id_is_local_error(msg_id: str) -> None:
    with pytest.raises(LocalProtocolError):
        CramMD5Server(msg_id)


# --- SCRAM ------------------------------------------------------------------


def test_scram_without_initial_response_asks_with_empty_challenge() -> None:
    server = ScramSHA256Server("srv")
    assert server.start(None) == Challenge(b"")
    assert server.receive(CLIENT_FIRST) == NeedSecret("SCRAM-SHA-256", "user")


def test_scram_authzid_and_escaped_username() -> None:
    server = ScramSHA1Server("srv")
    step = server.start(b"n,a=x=2Cy,n=a=3Db=2Cc,r=abc")
    assert step == NeedSecret("SCRAM-SHA-1", "a=b,c", "x,y")


def test_scram_channel_binding_request_fails() -> None:
    step = ScramSHA256Server("srv").start(b"p=tls-unique,,n=user,r=abc")
    assert isinstance(step, Failure)
    assert "channel binding" in step.reason


@pytest.mark.parametrize(
    "client_first",
    [
        b"",
        b"n",
        b"x,,n=user,r=abc",
        b"n,b=x,n=user,r=abc",
        b"n,,r=abc,n=user",
        b"n,,n=user",
        b"n,,n=,r=abc",
        b"n,,n=us=er,r=abc",
        b"n,,n=user,r=",
        b"n,,m=ext,n=user,r=abc",
        b"n,,n=user,r=a\xffb",
        b"n,,garbage",
    ],
)
def test_scram_malformed_client_first_fails(client_first: bytes) -> None:
    step = ScramSHA256Server("srv").start(client_first)
    assert isinstance(step, Failure)


def test_scram_y_flag_is_accepted() -> None:
    """RFC 5802 6: "y" means the client could bind but thinks we cannot; fine here."""
    assert ScramSHA256Server("srv").start(b"y,,n=user,r=abc") == NeedSecret("SCRAM-SHA-256", "user")


def test_scram_wrong_proof_fails() -> None:
    server = _scram_at_final()
    proof = base64.b64encode(bytes(32))
    step = server.receive(b"c=biws,r=" + NONCE.encode() + b",p=" + proof)
    assert step == Failure("invalid credentials")


@pytest.mark.parametrize(
    "client_final",
    [
        CLIENT_FINAL.replace(b"r=rOpr", b"r=XOpr"),  # wrong nonce
        CLIENT_FINAL.replace(b"c=biws", b"c=eSws"),  # "y,," instead of "n,,"
        CLIENT_FINAL.replace(b"c=biws,", b""),
        CLIENT_FINAL.split(b",p=")[0],  # no proof
        CLIENT_FINAL[:-4],  # truncated proof
        b"garbage",
        b"c=biws,r=" + NONCE.encode() + b",p=\xff",
    ],
)
def test_scram_malformed_client_final_fails(client_final: bytes) -> None:
    step = _scram_at_final().receive(client_final)
    assert isinstance(step, Failure)
    assert step.malformed


def test_scram_nonempty_answer_to_server_final_fails() -> None:
    server = _scram_at_final()
    assert server.receive(CLIENT_FINAL) == Challenge(
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )
    assert isinstance(server.receive(b"x"), Failure)


def test_scram_unknown_user_fails_and_wrong_secret_kind_raises() -> None:
    server = ScramSHA256Server("srv")
    server.start(CLIENT_FIRST)
    with pytest.raises(LocalProtocolError, match="needs ScramCredentials"):
        server.supply_secret("pencil")
    sha1 = derive_scram_credentials("pencil", SALT, 1, "sha1")
    with pytest.raises(LocalProtocolError, match="20 octets"):
        server.supply_secret(sha1)
    assert server.supply_secret(None) == Failure("no such user")


def test_scram_credentials_validation() -> None:
    with pytest.raises(LocalProtocolError, match="below 1"):
        derive_scram_credentials("pw", b"salt", 0)
    with pytest.raises(LocalProtocolError, match="below 1"):
        ScramCredentials(b"salt", 0, b"", b"")
    with pytest.raises(LocalProtocolError, match="salt"):
        ScramCredentials(b"", 1, b"", b"")
    with pytest.raises(LocalProtocolError, match="sha1 or sha256"):
        derive_scram_credentials("pw", b"salt", 1, "md5")


@pytest.mark.parametrize("nonce", ["", "a,b", "sp ace"])
def test_scram_bad_server_nonce_is_local_error(nonce: str) -> None:
    with pytest.raises(LocalProtocolError, match="nonce"):
        ScramSHA256Server(nonce)


# --- order and construction -------------------------------------------------


def test_calls_out_of_order_raise_and_change_nothing() -> None:
    server = PlainServer()
    with pytest.raises(LocalProtocolError, match="receive\\(\\) called while expecting start"):
        server.receive(b"\0a\0b")
    with pytest.raises(LocalProtocolError):
        server.password_checked(True)
    with pytest.raises(LocalProtocolError):
        server.supply_secret("x")
    assert server.start(b"\0a\0b") == VerifyPassword("a", "b")
    with pytest.raises(LocalProtocolError, match="expecting password"):
        server.receive(b"")
    assert server.password_checked(True) == Success("a")
    with pytest.raises(LocalProtocolError, match="expecting done"):
        server.start(None)


def test_server_mechanism_by_name() -> None:
    assert SERVER_MECHANISMS == ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
    steps: dict[str, ServerStep] = {
        name: server_mechanism(name.lower(), nonce="1896.697170952", hostname="mx.example").start(
            None
        )
        for name in SERVER_MECHANISMS
    }
    assert steps["CRAM-MD5"] == Challenge(b"<1896.697170952@mx.example>")
    assert steps["LOGIN"] == Challenge(b"Username:")
    assert steps["PLAIN"] == steps["SCRAM-SHA-1"] == steps["SCRAM-SHA-256"] == Challenge(b"")
    with pytest.raises(LocalProtocolError, match="not supported"):
        server_mechanism("XOAUTH2")
    with pytest.raises(LocalProtocolError, match="nonce"):
        server_mechanism("SCRAM-SHA-256")


# --- SCRAM: no account oracle (RFC 5802 9) ------------------------------------

SECRET = b"server secret, 32 octets long...."


def _first_challenge(server: ScramSHA256Server | ScramSHA1Server, username: str) -> str:
    assert server.start(f"n,,n={username},r=abc".encode()) == NeedSecret(server.name, username)
    step = server.supply_secret(None)
    assert isinstance(step, Challenge), step
    return step.data.decode()


@pytest.mark.parametrize("cls", [ScramSHA256Server, ScramSHA1Server])
def test_scram_unknown_user_gets_a_challenge_then_fails_at_the_proof(
    cls: type[ScramSHA256Server],
) -> None:
    """An unknown user is answered like a known one, with a salt and an iteration
    count derived from the server's secret, and fails only at the proof."""
    server = cls("srv", secret=SECRET)
    first = _first_challenge(server, "nobody")
    nonce, salt, iterations = (part[2:] for part in first.split(","))
    assert nonce == "abcsrv" and iterations == "4096"
    assert len(base64.b64decode(salt)) == 16
    proof = base64.b64encode(bytes(hashlib.new(cls.hash_name).digest_size)).decode()
    step = server.receive(f"c=biws,r={nonce},p={proof}".encode())
    assert step == Failure("invalid credentials")


def test_scram_unknown_user_salt_is_stable_per_user_and_secret() -> None:
    """Asking twice must give the same salt, as for a stored account (RFC 5802 9)."""

    def salt(username: str, secret: bytes = SECRET) -> str:
        return _first_challenge(ScramSHA256Server("srv", secret=secret), username).split(",")[1]

    assert salt("nobody") == salt("nobody")
    assert salt("nobody") != salt("somebody")
    assert salt("nobody") != salt("nobody", b"another secret")
    assert salt("nobody") == "s=" + base64.b64encode(scram_salt(SECRET, "nobody")).decode()


def test_scram_without_a_secret_still_fails_unknown_users_at_once() -> None:
    server = ScramSHA256Server("srv")
    server.start(b"n,,n=nobody,r=abc")
    assert server.supply_secret(None) == Failure("no such user")


def test_scram_secret_must_not_be_empty() -> None:
    with pytest.raises(LocalProtocolError, match="secret"):
        ScramSHA256Server("srv", secret=b"")


def test_server_mechanism_passes_the_secret_to_scram() -> None:
    server = server_mechanism("SCRAM-SHA-256", nonce="srv", secret=SECRET)
    server.start(b"n,,n=nobody,r=abc")
    assert isinstance(server.supply_secret(None), Challenge)
