"""smtpcore.codes: reply codes and enhanced status codes in words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore.codes import ReplyCode, describe, enhanced_meaning, reply_meaning

# RFC 5321 4.2.2 and 4.2.3, every code, with a word its text must contain.
RFC5321_CODES = {
    211: "System status",
    214: "Help message",
    220: "Service ready",
    221: "closing transmission channel",
    250: "okay, completed",
    251: "User not local; will forward",
    252: "Cannot VRFY user",
    354: "Start mail input",
    421: "Service not available",
    450: "mailbox unavailable",
    451: "local error in processing",
    452: "insufficient system storage",
    455: "unable to accommodate parameters",
    500: "command unrecognized",
    501: "Syntax error in parameters or arguments",
    502: "Command not implemented",
    503: "Bad sequence of commands",
    504: "Command parameter not implemented",
    550: "mailbox unavailable",
    551: "User not local; please try",
    552: "exceeded storage allocation",
    553: "mailbox name not allowed",
    554: "Transaction failed",
    555: "MAIL FROM/RCPT TO parameters not recognized",
}

EXTENSION_CODES = {
    235: "Authentication succeeded",  # RFC 4954
    334: "challenge",  # RFC 4954
    432: "password transition",  # RFC 4954
    454: "Temporary authentication failure",  # RFC 4954, RFC 3207
    530: "Authentication required",  # RFC 4954, RFC 3207
    534: "too weak",  # RFC 4954
    535: "credentials invalid",  # RFC 4954
    538: "Encryption required",  # RFC 4954
    253: "Pending messages for the node started",  # RFC 1985
    458: "Unable to queue messages",  # RFC 1985
    459: "Node not allowed",  # RFC 1985
    521: "Host does not accept mail",  # RFC 7504
    556: "Domain does not accept mail",  # RFC 7504
}


@pytest.mark.parametrize(("code", "words"), sorted({**RFC5321_CODES, **EXTENSION_CODES}.items()))
def test_every_listed_code_has_its_own_text(code: int, words: str) -> None:
    assert words in reply_meaning(code)
    assert ReplyCode(code) == code


def test_reply_code_members_are_named_by_meaning() -> None:
    assert ReplyCode(220) is ReplyCode.SERVICE_READY
    assert ReplyCode(550) is ReplyCode.MAILBOX_UNAVAILABLE
    assert ReplyCode(354) is ReplyCode.START_MAIL_INPUT
    assert ReplyCode(535) is ReplyCode.AUTH_CREDENTIALS_INVALID
    assert ReplyCode(556) is ReplyCode.DOMAIN_DOES_NOT_ACCEPT_MAIL


def test_every_member_has_a_listed_text() -> None:
    """No member falls through to the digit fallback, which has parentheses of its own."""
    for member in ReplyCode:
        assert not reply_meaning(member).startswith(
            ("Positive", "Transient", "Permanent", "Not an SMTP")
        ), member


def test_exact_texts() -> None:
    assert reply_meaning(550) == "Requested action not taken: mailbox unavailable"
    assert reply_meaning(354) == "Start mail input; end with <CRLF>.<CRLF>"
    assert reply_meaning(ReplyCode.SERVICE_NOT_AVAILABLE) == (
        "Service not available, closing transmission channel"
    )


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (219, "Positive completion reply (information)"),
        (200, "Positive completion reply (syntax)"),
        (320, "Positive intermediate reply (connections)"),
        (439, "Transient negative completion reply (unspecified)"),
        (541, "Permanent negative completion reply (unspecified)"),
        (559, "Permanent negative completion reply (mail system)"),
        (469, "Transient negative completion reply (unspecified)"),  # x6z: none defined
        (599, "Permanent negative completion reply (unspecified)"),
        (150, "Positive preliminary reply, unused in SMTP (mail system)"),
        (99, "Not an SMTP reply code (99)"),
        (600, "Not an SMTP reply code (600)"),
        (-250, "Not an SMTP reply code (-250)"),
    ],
)
def test_unlisted_codes_fall_back_to_their_digits(code: int, text: str) -> None:
    """RFC 5321 4.2.1: the first digit says how it went, the second what about."""
    assert reply_meaning(code) == text


@given(st.integers())
def test_reply_meaning_never_raises(code: int) -> None:
    assert reply_meaning(code)


# Every enhanced code listed in smtpcore.codes, with its registered summary.
REGISTERED = {
    "0.0": "Other undefined status",
    "1.0": "Other address status",
    "1.1": "Bad destination mailbox address",
    "1.2": "Bad destination system address",
    "1.3": "Bad destination mailbox address syntax",
    "1.4": "Destination mailbox address ambiguous",
    "1.5": "Destination address valid",
    "1.6": "Destination mailbox has moved, no forwarding address",
    "1.7": "Bad sender's mailbox address syntax",
    "1.8": "Bad sender's system address",
    "1.9": "Message relayed to non-compliant mailer",
    "1.10": "Recipient address has null MX",
    "2.0": "Other or undefined mailbox status",
    "2.1": "Mailbox disabled, not accepting messages",
    "2.2": "Mailbox full",
    "2.3": "Message length exceeds administrative limit",
    "2.4": "Mailing list expansion problem",
    "3.0": "Other or undefined mail system status",
    "3.1": "Mail system full",
    "3.2": "System not accepting network messages",
    "3.3": "System not capable of selected features",
    "3.4": "Message too big for system",
    "3.5": "System incorrectly configured",
    "3.6": "Requested priority was changed",
    "4.0": "Other or undefined network or routing status",
    "4.1": "No answer from host",
    "4.2": "Bad connection",
    "4.3": "Directory server failure",
    "4.4": "Unable to route",
    "4.5": "Mail system congestion",
    "4.6": "Routing loop detected",
    "4.7": "Delivery time expired",
    "5.0": "Other or undefined protocol status",
    "5.1": "Invalid command",
    "5.2": "Syntax error",
    "5.3": "Too many recipients",
    "5.4": "Invalid command arguments",
    "5.5": "Wrong protocol version",
    "5.6": "Authentication exchange line is too long",
    "6.0": "Other or undefined media error",
    "6.1": "Media not supported",
    "6.2": "Conversion required and prohibited",
    "6.3": "Conversion required but not supported",
    "6.4": "Conversion with loss performed",
    "6.5": "Conversion failed",
    "6.6": "Message content not available",
    "6.7": "Non-ASCII addresses not permitted for that sender/recipient",
    "6.8": "UTF-8 string reply is required, but not permitted by the SMTP client",
    "6.9": "UTF-8 header message cannot be transferred to one or more recipients",
    "6.10": "Deprecated duplicate of X.6.8 (UTF-8 reply required but not permitted)",
    "7.0": "Other or undefined security status",
    "7.1": "Delivery not authorized, message refused",
    "7.2": "Mailing list expansion prohibited",
    "7.3": "Security conversion required but not possible",
    "7.4": "Security features not supported",
    "7.5": "Cryptographic failure",
    "7.6": "Cryptographic algorithm not supported",
    "7.7": "Message integrity failure",
    "7.8": "Authentication credentials invalid",
    "7.9": "Authentication mechanism is too weak",
    "7.10": "Encryption needed",
    "7.11": "Encryption required for requested authentication mechanism",
    "7.12": "A password transition is needed",
    "7.13": "User account disabled",
    "7.14": "Trust relationship required",
    "7.15": "Priority level is too low",
    "7.16": "Message is too big for the specified priority",
    "7.17": "Mailbox owner has changed",
    "7.18": "Domain owner has changed",
    "7.19": "RRVS test cannot be completed",
    "7.20": "No passing DKIM signature found",
    "7.21": "No acceptable DKIM signature found",
    "7.22": "No valid author-matched DKIM signature found",
    "7.23": "SPF validation failed",
    "7.24": "SPF validation error",
    "7.25": "Reverse DNS validation failed",
    "7.26": "Multiple authentication checks failed",
    "7.27": "Sender address has null MX",
    "7.28": "Mail flood detected",
    "7.29": "ARC validation failure",
    "7.30": "REQUIRETLS support required",
}


@pytest.mark.parametrize(("tail", "text"), sorted(REGISTERED.items()))
@pytest.mark.parametrize("klass", ["2", "4", "5"])
def test_registered_enhanced_codes(klass: str, tail: str, text: str) -> None:
    assert enhanced_meaning(f"{klass}.{tail}") == text


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("5.0.99", "Other or undefined status"),
        ("4.1.11", "Addressing status"),
        ("5.2.999", "Mailbox status"),
        ("4.3.7", "Mail system status"),
        ("5.4.8", "Network and routing status"),
        ("2.5.7", "Mail delivery protocol status"),
        ("5.6.11", "Message content or media status"),
        ("5.7.31", "Security or policy status"),
        ("2.8.0", "Success"),
        ("4.999.1", "Persistent transient failure"),
        ("5.10.10", "Permanent failure"),
    ],
)
def test_unregistered_details_fall_back_to_subject_then_class(code: str, text: str) -> None:
    assert enhanced_meaning(code) == text


@pytest.mark.parametrize(
    "code",
    [
        "",
        "5",
        "5.1",
        "5.1.",
        ".1.1",
        "3.1.1",  # class is 2, 4 or 5 (RFC 3463 3.1)
        "1.1.1",
        "0.0.0",
        "5.01.1",  # no leading zeros (RFC 3463 2)
        "5.1.01",
        "5.1000.1",  # at most three digits
        "5.1.1000",
        "5.1.1.1",
        " 5.1.1",
        "5.1.1 ",
        "5 .1.1",
        "5.1.1\n",
        "5,1,1",
        "5.a.1",
        "5.-1.1",
        "5.+1.1",
        "５.1.1",  # a full-width digit is not a digit here
        "5.١.1",  # Arabic-Indic one
    ],
)
def test_malformed_enhanced_codes_give_none(code: str) -> None:
    assert enhanced_meaning(code) is None


@given(st.text(max_size=12))
def test_enhanced_meaning_never_raises(code: str) -> None:
    result = enhanced_meaning(code)
    assert result is None or result


@given(
    st.sampled_from("245"),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=0, max_value=999),
)
def test_every_well_formed_code_has_a_meaning(klass: str, subject: int, detail: int) -> None:
    assert enhanced_meaning(f"{klass}.{subject}.{detail}")


def test_describe_combines_both() -> None:
    assert describe(550, "5.1.1") == (
        "550 5.1.1: Requested action not taken: mailbox unavailable; "
        "Bad destination mailbox address"
    )


def test_describe_without_enhanced_code() -> None:
    assert describe(421) == "421: Service not available, closing transmission channel"


def test_describe_leaves_out_a_malformed_enhanced_code() -> None:
    assert describe(250, "2.0") == "250: Requested mail action okay, completed"


def test_describe_an_unlisted_code() -> None:
    assert describe(559, "5.7.99") == (
        "559 5.7.99: Permanent negative completion reply (mail system); Security or policy status"
    )


def test_describe_takes_a_member() -> None:
    assert describe(ReplyCode.AUTH_CREDENTIALS_INVALID, "5.7.8") == (
        "535 5.7.8: Authentication credentials invalid; Authentication credentials invalid"
    )
