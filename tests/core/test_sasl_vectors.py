"""The published examples of each mechanism, byte for byte, in both roles."""

from __future__ import annotations

import base64

from smtpcore.sasl import (
    Challenge,
    CramMD5Client,
    CramMD5Server,
    NeedSecret,
    OAuthBearerClient,
    PlainClient,
    PlainServer,
    ScramSHA1Client,
    ScramSHA1Server,
    ScramSHA256Client,
    ScramSHA256Server,
    Success,
    VerifyPassword,
    XOAuth2Client,
    derive_scram_credentials,
)

# RFC 5802 5
SHA1_CLIENT_FIRST = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
SHA1_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
SHA1_CLIENT_FINAL = (
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
)
SHA1_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

# RFC 7677 3
SHA256_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SHA256_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
SHA256_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SHA256_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

CRAM_CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"


def test_plain_rfc4616_examples() -> None:
    assert PlainClient("tim", "tanstaaftanstaaf").initial_response() == b"\0tim\0tanstaaftanstaaf"
    assert (
        PlainClient("Kurt", "xipj3plmq", authzid="Ursel").initial_response()
        == b"Ursel\0Kurt\0xipj3plmq"
    )


def test_plain_server_rfc4616_example() -> None:
    server = PlainServer()
    assert server.start(b"Ursel\0Kurt\0xipj3plmq") == VerifyPassword("Kurt", "xipj3plmq", "Ursel")
    assert server.password_checked(True) == Success("Kurt", "Ursel")


def test_cram_md5_rfc2195_example() -> None:
    client = CramMD5Client("tim", "tanstaaftanstaaf")
    assert client.initial_response() is None
    assert client.respond(CRAM_CHALLENGE) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    assert client.is_complete


def test_cram_md5_server_rfc2195_example() -> None:
    server = CramMD5Server(CRAM_CHALLENGE.decode())
    assert server.start(None) == Challenge(CRAM_CHALLENGE)
    assert server.receive(b"tim b913a602c7eda7a495b4e6e7334d3890") == NeedSecret("CRAM-MD5", "tim")
    assert server.supply_secret("tanstaaftanstaaf") == Success("tim")


def test_scram_sha1_client_rfc5802_example() -> None:
    client = ScramSHA1Client("user", "pencil", "fyko+d2lbbFgONRv9qkxdawL")
    assert client.initial_response() == SHA1_CLIENT_FIRST
    assert client.respond(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
    assert not client.is_complete
    assert client.respond(SHA1_SERVER_FINAL) == b""
    assert client.is_complete
    client.verify_success()


def test_scram_sha1_server_rfc5802_example() -> None:
    server = ScramSHA1Server("3rfcNHYJY1ZVvWVs7j")
    assert server.start(SHA1_CLIENT_FIRST) == NeedSecret("SCRAM-SHA-1", "user")
    salt = base64.b64decode("QSXCR+Q6sek8bf92")
    credentials = derive_scram_credentials("pencil", salt, 4096, "sha1")
    assert server.supply_secret(credentials) == Challenge(SHA1_SERVER_FIRST)
    assert server.receive(SHA1_CLIENT_FINAL) == Challenge(SHA1_SERVER_FINAL)
    assert server.receive(b"") == Success("user")
    assert server.is_done


def test_scram_sha256_client_rfc7677_example() -> None:
    client = ScramSHA256Client("user", "pencil", "rOprNGfwEbeRWgbNEkqO")
    assert client.initial_response() == SHA256_CLIENT_FIRST
    assert client.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL
    assert client.respond(SHA256_SERVER_FINAL) == b""
    assert client.is_complete


def test_scram_sha256_server_rfc7677_example() -> None:
    server = ScramSHA256Server("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert server.start(SHA256_CLIENT_FIRST) == NeedSecret("SCRAM-SHA-256", "user")
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    assert server.supply_secret(derive_scram_credentials("pencil", salt, 4096)) == Challenge(
        SHA256_SERVER_FIRST
    )
    assert server.receive(SHA256_CLIENT_FINAL) == Challenge(SHA256_SERVER_FINAL)
    assert server.receive(b"") == Success("user")


def test_scram_client_first_when_server_asks_with_empty_challenge() -> None:
    """AUTH without an initial response: the server sends "334 " and the client starts."""
    client = ScramSHA256Client("user", "pencil", "rOprNGfwEbeRWgbNEkqO")
    assert client.respond(b"") == SHA256_CLIENT_FIRST
    assert client.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL


def test_xoauth2_google_example() -> None:
    client = XOAuth2Client("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    first = client.initial_response()
    assert first == (
        b"user=someuser@example.com\x01auth=Bearer "
        b"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )
    assert base64.b64encode(first) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        b"YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )
    assert client.is_complete


def test_oauthbearer_rfc7628_example() -> None:
    client = OAuthBearerClient(
        "user@example.com",
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        host="server.example.com",
        port=143,
    )
    assert client.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_without_host_and_port() -> None:
    client = OAuthBearerClient("a,b=c", "tok")
    assert client.initial_response() == b"n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01"
