"""Message preparation: envelope from headers, CRLF content, SMTPUTF8/8BITMIME, to_7bit."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage, Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore._errors import LocalProtocolError
from smtpcore._message import PreparedMessage, content_is_8bit, prepare_message, to_7bit

BARE_LINE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def simple(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hi.\n")
    return msg


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def assert_crlf_only(content: bytes) -> None:
    assert BARE_LINE_BREAK.search(content) is None
    assert content.endswith(b"\r\n")


def test_plain_ascii_message_exact_bytes() -> None:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = "bob@example.net"
    msg["Subject"] = "Hello"
    msg.set_content("Hi Bob.\n.\nBye\n")
    prepared = prepare_message(msg)
    assert prepared == PreparedMessage(
        sender="alice@example.org",
        recipients=("bob@example.net",),
        content=(
            b"From: Alice <alice@example.org>\r\n"
            b"To: bob@example.net\r\n"
            b"Subject: Hello\r\n"
            b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: 7bit\r\n"
            b"MIME-Version: 1.0\r\n"
            b"\r\n"
            b"Hi Bob.\r\n"
            b".\r\n"  # dot-stuffing is the data layer's job, not ours
            b"Bye\r\n"
        ),
        needs_smtputf8=False,
        body_8bit=False,
    )
    assert prepared.size == len(prepared.content) == 184


def test_folded_bcc_is_removed_with_its_continuation_lines() -> None:
    msg = parse(
        b"From: a@example.org\r\n"
        b"Bcc: c@example.com,\r\n"
        b"  d@example.com\r\n"
        b"To: b@example.net\r\n"
        b"Subject: s\r\n"
        b"\r\n"
        b"body\r\n"
    )
    prepared = prepare_message(msg)
    assert prepared.content == (
        b"From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\n\r\nbody\r\n"
    )
    assert prepared.recipients == ("b@example.net", "c@example.com", "d@example.com")


def test_resent_bcc_is_removed_too() -> None:
    msg = simple(
        From="a@example.org",
        To="b@example.net",
        Resent_Date="Mon, 1 Jan 2024 00:00:00 +0000",
        Resent_From="r@example.org",
        Resent_To="t@example.net",
        Resent_Bcc="hidden@example.com",
    )
    content = prepare_message(msg).content
    assert b"hidden" not in content
    assert b"Resent-To: t@example.net\r\n" in content


def test_recipients_from_to_cc_and_bcc_without_duplicates() -> None:
    msg = simple(
        From="a@example.org",
        To="B <b@example.net>, c@example.net",
        Cc="c@example.net, d@example.net",
        Bcc="b@example.net, e@example.net",
    )
    assert prepare_message(msg).recipients == (
        "b@example.net",
        "c@example.net",
        "d@example.net",
        "e@example.net",
    )


def test_every_to_field_counts() -> None:
    """A message with two To fields (RFC 5322 allows one) still reaches both lists."""
    msg = parse(b"From: a@x.org\r\nTo: b@y.org\r\nTo: c@y.org\r\n\r\nx\r\n")
    assert prepare_message(msg).recipients == ("b@y.org", "c@y.org")


def test_group_without_members_adds_no_recipient() -> None:
    msg = simple(From="a@example.org", To="undisclosed-recipients:;", Bcc="b@example.net")
    prepared = prepare_message(msg)
    assert prepared.recipients == ("b@example.net",)
    assert b"To: undisclosed-recipients:;\r\n" in prepared.content


def test_sender_field_wins_over_from() -> None:
    msg = simple(From="Author <author@example.org>", Sender="sec@example.org", To="b@x.net")
    assert prepare_message(msg).sender == "sec@example.org"


def test_first_from_address_when_there_are_several() -> None:
    msg = simple(From="one@example.org, two@example.org", To="b@x.net")
    assert prepare_message(msg).sender == "one@example.org"


def test_one_resent_block_gives_the_envelope() -> None:
    """RFC 5322 3.6.6: a resent message goes to the Resent- recipients."""
    msg = simple(
        From="author@example.org",
        To="first@example.net",
        Cc="firstcc@example.net",
        Bcc="firstbcc@example.net",
        Resent_Date="Mon, 1 Jan 2024 00:00:00 +0000",
        Resent_From="forwarder@example.org",
        Resent_To="second@example.net",
        Resent_Cc="secondcc@example.net",
        Resent_Bcc="secondbcc@example.net",
    )
    prepared = prepare_message(msg)
    assert prepared.sender == "forwarder@example.org"
    assert prepared.recipients == (
        "second@example.net",
        "secondcc@example.net",
        "secondbcc@example.net",
    )
    assert b"firstbcc" not in prepared.content
    assert b"secondbcc" not in prepared.content


def test_resent_sender_wins_over_resent_from() -> None:
    msg = simple(
        From="author@example.org",
        To="b@example.net",
        Resent_Date="Mon, 1 Jan 2024 00:00:00 +0000",
        Resent_From="forwarder@example.org",
        Resent_Sender="assistant@example.org",
        Resent_To="c@example.net",
    )
    assert prepare_message(msg).sender == "assistant@example.org"


def test_several_resent_blocks_are_refused() -> None:
    msg = simple(From="a@example.org", To="b@example.net")
    msg["Resent-Date"] = "Mon, 1 Jan 2024 00:00:00 +0000"
    msg["Resent-To"] = "c@example.net"
    msg["Resent-Date"] = "Tue, 2 Jan 2024 00:00:00 +0000"
    msg["Resent-To"] = "d@example.net"
    with pytest.raises(LocalProtocolError, match="2 Resent-Date"):
        prepare_message(msg)
    # The caller can still say what is meant.
    assert prepare_message(msg, recipients=["d@example.net"], sender="a@example.org").recipients


def test_explicit_envelope_overrides_the_headers() -> None:
    msg = simple(From="a@example.org", To="b@example.net", Bcc="c@example.net")
    prepared = prepare_message(msg, sender="bounce@example.org", recipients=["z@example.com"])
    assert prepared.sender == "bounce@example.org"
    assert prepared.recipients == ("z@example.com",)
    assert b"Bcc" not in prepared.content


def test_null_sender_for_a_bounce() -> None:
    prepared = prepare_message(simple(From="MAILER-DAEMON@example.org", To="b@x.net"), sender="")
    assert prepared.sender == ""


def test_explicit_recipients_are_deduplicated_in_order() -> None:
    msg = simple(From="a@example.org")
    prepared = prepare_message(msg, recipients=["c@x.org", "b@x.org", "c@x.org"])
    assert prepared.recipients == ("c@x.org", "b@x.org")


def test_a_single_string_is_not_a_recipient_list() -> None:
    with pytest.raises(LocalProtocolError, match="not one str"):
        prepare_message(simple(From="a@example.org"), recipients="b@example.net")


def test_no_recipient_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="no recipient"):
        prepare_message(simple(From="a@example.org"))
    with pytest.raises(LocalProtocolError, match="no recipient"):
        prepare_message(simple(From="a@example.org", To="b@example.net"), recipients=[])


def test_no_sender_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="no Sender or From"):
        prepare_message(simple(To="b@example.net"))


def test_utf8_address_needs_smtputf8_and_keeps_raw_utf8_headers() -> None:
    """RFC 6531 3.4 for the envelope; RFC 6532 3.2 lets the header carry UTF-8 as is."""
    msg = EmailMessage()
    msg["From"] = "Jörg <jörg@example.org>"
    msg["To"] = "bob@example.net"
    msg["Subject"] = "Grüße"
    msg.set_content("Hi.\n")
    prepared = prepare_message(msg)
    assert prepared.sender == "jörg@example.org"
    assert prepared.needs_smtputf8
    assert not prepared.body_8bit
    assert prepared.content.startswith(
        "From: Jörg <jörg@example.org>\r\nTo: bob@example.net\r\nSubject: Grüße\r\n".encode()
    )


def test_utf8_recipient_given_explicitly_needs_smtputf8() -> None:
    msg = simple(From="a@example.org", To="b@example.net")
    assert prepare_message(msg, recipients=["bø@example.net"]).needs_smtputf8


def test_utf8_address_in_a_header_alone_needs_smtputf8() -> None:
    """An addr-spec cannot be RFC 2047-encoded (RFC 2047 5), so only SMTPUTF8 carries it."""
    msg = simple(From="a@example.org", To="b@example.net", Reply_To="jörg@example.org")
    prepared = prepare_message(msg)
    assert prepared.needs_smtputf8
    assert "Reply-To: jörg@example.org\r\n".encode() in prepared.content


def test_non_ascii_subject_alone_is_encoded_not_smtputf8() -> None:
    msg = simple(From="Jörg <j@example.org>", To="b@example.net", Subject="Grüße")
    prepared = prepare_message(msg)
    assert not prepared.needs_smtputf8
    assert prepared.content.isascii()
    assert b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\n" in prepared.content
    assert b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" in prepared.content


def test_8bit_body_is_detected() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_content("Grüße\n")  # the default policy chooses 8bit
    prepared = prepare_message(msg)
    assert prepared.body_8bit
    assert not prepared.needs_smtputf8
    assert prepared.content.endswith(b"\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n")


def test_content_is_8bit() -> None:
    assert not content_is_8bit(b"")
    assert not content_is_8bit(bytes(range(128)))
    assert content_is_8bit(b"abc\x80")
    assert content_is_8bit(b"\xff")


def test_to_7bit_text_plain_is_quoted_printable_exact_bytes() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_content("Grüße aus Köln \nzweite Zeile\n")
    prepared = prepare_message(to_7bit(msg))
    assert prepared.content == (
        b"From: a@example.org\r\n"
        b"To: b@example.net\r\n"
        b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"MIME-Version: 1.0\r\n"
        b"\r\n"
        b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln=20\r\n"  # trailing space encoded (RFC 2045 6.7)
        b"zweite Zeile\r\n"
    )
    assert not prepared.body_8bit
    # The original still says 8bit.
    assert msg["Content-Transfer-Encoding"] == "8bit"


def test_to_7bit_multipart_with_8bit_parts() -> None:
    msg = parse(
        b"From: a@example.org\r\n"
        b"To: b@example.net\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"--B\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"\xc3\xa9t\xc3\xa9\r\n"
        b"--B\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n"
        b"\x00\xff\xfe\r\n"
        b"--B\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"plain\r\n"
        b"--B--\r\n"
    )
    prepared = prepare_message(to_7bit(msg))
    assert prepared.content == (
        b"From: a@example.org\r\n"
        b"To: b@example.net\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n'
        b"Content-Transfer-Encoding: 7bit\r\n"
        b"\r\n"
        b"--B\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        b"=C3=A9t=C3=A9\r\n"
        b"--B\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n"
        b"AP/+\r\n"
        b"\r\n"  # base64's own final line break, then the delimiter's CRLF
        b"--B\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"plain\r\n"
        b"--B--\r\n"
    )
    assert not prepared.body_8bit
    assert prepare_message(msg).body_8bit


def test_to_7bit_splits_an_over_long_7bit_line() -> None:
    """RFC 5321 4.5.3.1.6: no text line over 998 octets; quoted-printable soft breaks fix it."""
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_content("x" * 1200 + "\n", cte="7bit")
    content = prepare_message(to_7bit(msg)).content
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in content
    assert max(len(line) for line in content.split(b"\r\n")) <= 76


def test_to_7bit_leaves_ascii_and_encoded_parts_alone() -> None:
    msg = simple(From="a@example.org", To="b@example.net")
    assert prepare_message(to_7bit(msg)).content == prepare_message(msg).content


def test_to_7bit_does_not_change_the_original() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg.set_content("Grüße\n")
    before = msg.as_bytes()
    to_7bit(msg)
    assert msg.as_bytes() == before


def test_legacy_compat32_message() -> None:
    raw = (
        b"From: Old <old@example.org>\n"
        b"To: b@example.net\n"
        b"Cc: c@example.net\n"
        b"Bcc: hidden@example.com\n"
        b"Subject: legacy\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"caf\xe9\n"
    )
    msg = email.message_from_bytes(raw)
    assert type(msg) is Message
    prepared = prepare_message(msg)
    assert prepared.sender == "old@example.org"
    assert prepared.recipients == ("b@example.net", "c@example.net", "hidden@example.com")
    assert prepared.content == (
        b"From: Old <old@example.org>\r\n"
        b"To: b@example.net\r\n"
        b"Cc: c@example.net\r\n"
        b"Subject: legacy\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"caf\xe9\r\n"
    )
    assert prepared.body_8bit
    assert not prepared.needs_smtputf8
    seven = prepare_message(to_7bit(msg)).content
    assert seven.endswith(b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n")


def test_legacy_raw_utf8_headers_need_smtputf8() -> None:
    """compat32 writes parsed 8-bit header octets as they came: only SMTPUTF8 allows that."""
    msg = email.message_from_bytes(
        b"From: a@example.org\nTo: b@example.net\nSubject: Gr\xc3\xbc\xc3\x9fe\n\nx\n"
    )
    prepared = prepare_message(msg)
    assert prepared.needs_smtputf8
    assert b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n" in prepared.content


def test_legacy_raw_utf8_address_is_decoded() -> None:
    msg = email.message_from_bytes(b"From: j\xc3\xb6rg@example.org\nTo: b@example.net\n\nx\n")
    prepared = prepare_message(msg)
    assert prepared.sender == "jörg@example.org"
    assert prepared.needs_smtputf8


def test_legacy_address_that_is_not_utf8_is_refused() -> None:
    msg = email.message_from_bytes(b"From: j\xf6rg@example.org\nTo: b@example.net\n\nx\n")
    with pytest.raises(LocalProtocolError, match="not UTF-8"):
        prepare_message(msg)


def test_legacy_message_built_by_hand() -> None:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_payload("line one\nline two")  # no final newline
    assert prepare_message(msg).content == (
        b"From: a@example.org\r\nTo: b@example.net\r\n\r\nline one\r\nline two\r\n"
    )


def test_the_callers_message_is_unchanged() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg["Bcc"] = "c@example.net"
    msg.set_content("text\n")
    msg.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream")
    assert msg.get_boundary() is None
    before = [
        (part.items(), part.get_payload() if not part.is_multipart() else None)
        for part in msg.walk()
    ]
    prepare_message(msg)
    after = [
        (part.items(), part.get_payload() if not part.is_multipart() else None)
        for part in msg.walk()
    ]
    assert after == before
    assert msg["Bcc"] == "c@example.net"
    # The generator picks a boundary; it must have done so on a copy.
    assert msg.get_boundary() is None


def test_bare_cr_and_lf_in_a_legacy_payload_become_crlf() -> None:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_payload("one\rtwo\nthree\r\nfour\n\rfive")
    content = prepare_message(msg).content
    assert content.endswith(b"\r\n\r\none\r\ntwo\r\nthree\r\nfour\r\n\r\nfive\r\n")


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_every_line_ends_in_crlf(body: str) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_content(body)
    prepared = prepare_message(msg)
    assert_crlf_only(prepared.content)
    assert prepared.body_8bit == content_is_8bit(prepared.content.partition(b"\r\n\r\n")[2])
    assert_crlf_only(prepare_message(to_7bit(msg)).content)
    assert not prepare_message(to_7bit(msg)).body_8bit


@given(st.binary(max_size=300))
def test_every_line_ends_in_crlf_for_legacy_bytes(body: bytes) -> None:
    msg = email.message_from_bytes(b"From: a@x.org\nTo: b@y.org\n\n" + body)
    assert_crlf_only(prepare_message(msg).content)


def test_legacy_non_ascii_str_payload_cannot_be_serialised() -> None:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_payload("Grüße\n")  # compat32 with no charset: the generator cannot encode it
    with pytest.raises(LocalProtocolError, match="cannot be serialised"):
        prepare_message(msg)
    assert prepare_message(to_7bit(msg)).content.endswith(
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n"
    )


# -- header fields that would not stay one field ------------------------------------------

POLICIES = {
    "compat32": email.policy.compat32,
    "default": email.policy.default,
    "SMTP": email.policy.SMTP,
    "SMTPUTF8": email.policy.SMTPUTF8,
    "strict": email.policy.strict,
}

# A value with an empty line ends the header block early; one with a line
# that does not begin with white space starts a field of its own; a line of
# white space alone reads as the end of the block to lenient parsers.
INJECTED_VALUES = {
    "empty line": "hi\n\nX-Evil: yes",
    "empty line, no colon": "hi\n\nevil line",
    "unfolded line": "hi\nX-Evil: yes",
    "white space line": "hi\n \nmore",
    "bare CR": "hi\r\rX-Evil: yes",
    "trailing line break": "hi\r\n",
}


def message_with_subject(policy_name: str, value: str) -> Message:
    """A message whose Subject is ``value``, stored as the policy lets a caller store it."""
    policy = POLICIES[policy_name]
    msg = Message(policy=policy) if policy_name == "compat32" else EmailMessage(policy=policy)
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    try:
        msg["Subject"] = value
    except ValueError:
        msg.set_raw("Subject", value)  # the new policies refuse it here, but not in set_raw
    msg["X-After"] = "still a header"
    msg.set_payload("body\n")
    return msg


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("value", INJECTED_VALUES.values(), ids=INJECTED_VALUES)
def test_a_header_value_that_breaks_the_header_block_is_refused(
    policy_name: str, value: str
) -> None:
    msg = message_with_subject(policy_name, value)
    if policy_name == "compat32" and value == "hi\r\n":
        # compat32 folds a trailing line break away: the block stays as built.
        assert prepare_message(msg).content == (
            b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n"
            b"X-After: still a header\r\n\r\nbody\r\n"
        )
        return
    # Ours names the field; the stdlib's own check (compat32, "\nName:") says why.
    with pytest.raises(LocalProtocolError, match="'Subject'|embedded header"):
        prepare_message(msg)


def test_compat32_empty_line_in_a_value_is_refused_naming_the_field() -> None:
    """The stdlib generator catches ``\\nName:`` but not an empty line before any text."""
    msg = message_with_subject("compat32", "hi\n\nevil line")
    with pytest.raises(LocalProtocolError, match="header field 'Subject'"):
        prepare_message(msg)


def test_an_invalid_field_name_is_refused() -> None:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg["X-Evil\nInjected"] = "yes"
    msg.set_payload("body\n")
    with pytest.raises(LocalProtocolError, match="header field name"):
        prepare_message(msg)


@pytest.mark.parametrize("policy_name", POLICIES)
def test_a_long_header_folded_by_the_policy_still_goes(policy_name: str) -> None:
    msg = message_with_subject(policy_name, " ".join(["word"] * 60))
    content = prepare_message(msg).content
    head = content.partition(b"\r\n\r\n")[0]
    assert b"\r\n " in head or b"\r\n\t" in head  # folded
    assert head.count(b"word") == 60


def test_a_parsed_message_with_folded_fields_still_goes() -> None:
    raw = b"From: a@example.org\nTo: b@example.net\nSubject: one\n two\n\tthree\n\nbody\n"
    for msg in (email.message_from_bytes(raw), parse(raw)):
        assert b"Subject: one\r\n two\r\n\tthree\r\n" in prepare_message(msg).content


def test_an_injected_header_in_a_mime_part_is_refused() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg.set_content("text\n")
    msg.add_attachment(b"data", maintype="application", subtype="octet-stream")
    (part,) = msg.iter_attachments()
    part.set_raw("X-Note", "hi\n\nContent-Type: text/html")
    with pytest.raises(LocalProtocolError, match="'X-Note'"):
        prepare_message(msg)
