"""RFC 5321 4.1.2 syntax checks and RFC 3461 xtext."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore import xtext_decode, xtext_encode
from smtpcore._syntax import domain_error, is_plain_mailbox, mailbox_error, parameter_error


@pytest.mark.parametrize(
    "address",
    [
        "a@example.org",
        "first.last+tag@sub.example.org",
        '"john doe"@example.org',
        '"quoted\\"inside"@example.org',
        "user@[192.0.2.1]",
        "user@[IPv6:2001:db8::1]",
        "user@[x-tag:anything]",
        "älice@exämple.org",
        "!#$%&'*+-/=?^_`{|}~@example.org",
    ],
)
def test_good_mailboxes(address: str) -> None:
    assert mailbox_error(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "",
        "postmaster",
        "@example.org",
        "a@",
        "a..b@example.org",
        ".a@example.org",
        "a.@example.org",
        "a b@example.org",
        "a@exa mple.org",
        "a@-example.org",
        "a@example-.org",
        "a@example..org",
        "a@[192.0.2.300]",
        "a@[IPv6:not-an-address]",
        "a@[]",
        '"unterminated@example.org',
        "a<b@example.org",
    ],
)
def test_bad_mailboxes(address: str) -> None:
    assert mailbox_error(address) is not None


@given(st.text(alphabet='aZ9.@-_+"\r\n\x00 [];:ä\ud800', max_size=40))
def test_a_plain_mailbox_is_a_good_one_with_no_control_character(address: str) -> None:
    # The fast path that events take before the full check: it may say "not
    # plain" of a good address, never "plain" of a bad or unsafe one.
    if is_plain_mailbox(address):
        assert mailbox_error(address) is None
        assert address.isascii() and address.isprintable()


def test_plain_mailboxes() -> None:
    assert is_plain_mailbox("first.last+tag@sub.example.org")
    assert not is_plain_mailbox("a@example.org\r\n")
    assert not is_plain_mailbox("a@example.org\n")
    assert not is_plain_mailbox('"john doe"@example.org')  # good, but the long way
    assert not is_plain_mailbox("a@" + ".".join(["a" * 63] * 4) + ".b")  # domain too long


def test_domain_length_limit() -> None:
    assert domain_error(".".join(["a" * 63] * 4)) is None  # 255 octets
    assert domain_error(".".join(["a" * 63] * 4) + ".b") is not None
    assert domain_error("a" * 64 + ".example") is not None


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("SIZE", "123", True),
        ("SIZE", "12a", False),
        ("SIZE", None, False),
        ("BODY", "8bitmime", True),
        ("BODY", "9BIT", False),
        ("SMTPUTF8", None, True),
        ("SMTPUTF8", "yes", False),
        ("RET", "HDRS", True),
        ("RET", "ALL", False),
        ("ENVID", "QQ314159", True),
        ("ENVID", "a+2Bb", True),
        ("ENVID", "a+2bb", False),
        ("ENVID", "x" * 101, False),
        ("NOTIFY", "NEVER", True),
        ("NOTIFY", "SUCCESS,DELAY", True),
        ("NOTIFY", "SUCCESS,SUCCESS", False),
        ("NOTIFY", "", False),
        ("ORCPT", "rfc822;bob+40example.org", True),
        ("ORCPT", "rfc822", False),
        ("ORCPT", "utf-8;b\u00f8b@example.org", True),
        ("AUTH", "<>", True),
        ("AUTH", "e+3Dmc2@example.com", True),
        ("X-FOO", "bar", True),
        ("X_FOO", "bar", False),
        ("X-FOO", "a=b", False),
        ("X-FOO", "a b", False),
    ],
)
def test_parameters(name: str, value: str | None, ok: bool) -> None:
    utf8 = value is not None and not value.isascii()
    assert (parameter_error(name, value, utf8=utf8) is None) is ok


def test_xtext_examples() -> None:
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_decode("a+2Bb+3Dc+20d") == "a+b=c d"
    with pytest.raises(ValueError, match="xtext"):
        xtext_decode("a+2")


@given(st.text(max_size=50))
def test_xtext_round_trips(text: str) -> None:
    encoded = xtext_encode(text)
    assert encoded.isascii()
    assert "=" not in encoded
    assert " " not in encoded
    assert xtext_decode(encoded) == text.encode("utf-8", "replace").decode("utf-8", "replace")


# The plain-ASCII fast path of mailbox_error must give the full check's verdict.
_MAILBOX_PIECES = st.sampled_from(
    ["a", "Z", "0", "-", ".", "@", "_", "+", '"', "[", "]", ":", " ", "\u00e9", "\r", "b" * 63]
)


@given(st.lists(_MAILBOX_PIECES, max_size=12).map("".join))
def test_the_fast_path_agrees_with_the_full_mailbox_check(mailbox: str) -> None:
    import re

    from smtpcore import _syntax

    fast = mailbox_error(mailbox)
    plain = _syntax._PLAIN_MAILBOX
    try:
        _syntax._PLAIN_MAILBOX = re.compile(r"(?!)")  # type: ignore[misc]
        full = mailbox_error(mailbox)
    finally:
        _syntax._PLAIN_MAILBOX = plain  # type: ignore[misc]
    assert fast == full


@pytest.mark.parametrize(
    ("mailbox", "valid"),
    [
        ("a@" + "b" * 63 + ".org", True),
        ("a@" + "b" * 64 + ".org", False),  # a label over 63 octets
        ("a@" + ".".join(["b" * 63] * 4), True),  # 255 octets: the most a domain has
        ("a@" + ".".join(["b" * 63] * 4) + ".b", False),  # 257 octets
        ("a@" + ".".join(["b" * 61] * 4) + ".bb", True),  # 250 octets
        ("a-@b-.org", False),  # a label ends with a hyphen
        ("a..b@x.org", False),
    ],
)
def test_the_plain_mailbox_limits(mailbox: str, valid: bool) -> None:
    assert (mailbox_error(mailbox) is None) is valid
