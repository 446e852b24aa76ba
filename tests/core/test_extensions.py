"""The EHLO reply as a typed Extensions view."""

from __future__ import annotations

from smtpcore import Extensions


def ext(*lines: str) -> Extensions:
    return Extensions.from_reply_lines(("mx.example greets you", *lines))


def test_postfix_ehlo() -> None:
    e = ext(
        "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS", "ENHANCEDSTATUSCODES",
        "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING",
    )  # fmt: skip
    assert e.domain == "mx.example"
    assert e.size == 10240000
    assert e.pipelining and e.starttls and e.enhanced_status_codes and e.eightbitmime
    assert e.dsn and e.smtputf8 and e.chunking and e.etrn
    assert not e.binarymime and not e.requiretls
    assert e.auth == frozenset()
    assert "vrfy" in e
    assert e["size"] == "10240000"


def test_size_forms() -> None:
    assert ext("8BITMIME").size is None
    assert ext("SIZE").size == 0
    assert ext("SIZE 0").size == 0
    assert ext("SIZE lots").size == 0
    assert ext("SIZE \u0661\u0662").size == 0


def test_auth_both_forms_merge() -> None:
    e = ext("AUTH PLAIN LOGIN", "AUTH=LOGIN CRAM-MD5")
    assert e.auth == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert ext("AUTH=PLAIN").auth == {"PLAIN"}
    assert ext("auth scram-sha-256").auth == {"SCRAM-SHA-256"}


def test_unknown_keywords_keep_their_parameters_and_junk_is_ignored() -> None:
    e = ext("X-EXPS GSSAPI NTLM", "", "-BAD", "XCLIENT NAME ADDR", "MT-PRIORITY MIXER")
    assert e["X-EXPS"] == "GSSAPI NTLM"
    assert e["xclient"] == "NAME ADDR"
    assert "MT-PRIORITY" in e
    assert "" not in e
    assert "-BAD" not in e
    assert len(e) == 3


def test_first_occurrence_wins_and_equality() -> None:
    assert ext("SIZE 10", "SIZE 20").size == 10
    assert ext("SIZE 10") == ext("size 10")
    assert ext("SIZE 10") != ext("SIZE 11")
