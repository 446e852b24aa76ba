"""From an ``email.message.Message`` to what SMTP carries: an envelope and bytes.

How this works: ``prepare_message`` reads the envelope from the headers the way
``smtplib.SMTP.send_message`` documents it (RFC 5322 3.6.6 for the Resent-
fields), works on a deep copy of the message (the generator would otherwise
set a missing multipart boundary on the caller's object), drops Bcc and
Resent-Bcc, and serialises with ``BytesGenerator`` into memory with CRLF line
ends. It then says what the transaction needs: SMTPUTF8 (RFC 6531) when an
address is not ASCII, BODY=8BITMIME (RFC 6152) when the body has octets above
127. Every header field is checked as it is written: one whose value would
end the header block or start a field of its own is refused, whatever the
message's policy. ``to_7bit`` re-encodes a message so that neither is needed for the body.

The stdlib ``email`` package is used for parsing and generation only; nothing
here opens a file or a socket.
"""

from __future__ import annotations

import base64
import binascii
import copy
import email.errors
import functools
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._errors import LocalProtocolError

if TYPE_CHECKING:
    from email.generator import BytesGenerator
    from email.message import Message

# email.message, .generator, .policy and .utils import socket (for
# make_msgid); they are imported where used, so that ``import smtpcore``
# leaves socket out of sys.modules.

__all__ = ["PreparedMessage", "content_is_8bit", "prepare_message", "to_7bit"]

# Header fields whose values are address lists (RFC 5322 3.6.2, 3.6.3, 3.6.6).
# An address in one of them cannot be RFC 2047-encoded (RFC 2047 section 5
# forbids encoded-words in an addr-spec), so a non-ASCII one needs SMTPUTF8.
_ADDRESS_FIELDS: Final = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "resent-bcc",
    }
)

# Blind copies are envelope-only: smtplib and RFC 5322 3.6.3 agree they must
# not reach the recipients.
_BLIND_FIELDS: Final = ("Bcc", "Resent-Bcc")

# Every line break in any of its three spellings, for the final CRLF pass.
_LINE_BREAK: Final = re.compile(rb"\r\n|\r|\n")

# Transfer encodings under which the payload is stored as it will be sent.
_IDENTITY_CTES: Final = frozenset({"7bit", "8bit", "binary"})

# RFC 5321 4.5.3.1.6: a text line is at most 998 octets before its CRLF.
_MAX_TEXT_LINE: Final = 998

# RFC 5322 2.2 and 3.6.8: a field name is printable US-ASCII but the colon.
_FIELD_NAME: Final = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A message ready for one SMTP transaction.

    ``sender`` is the reverse-path ("" for a bounce, RFC 5321 4.5.5);
    ``recipients`` the forward-paths in header order without duplicates;
    ``content`` the message with CRLF line ends only and no Bcc/Resent-Bcc
    fields. ``needs_smtputf8`` asks for MAIL FROM's SMTPUTF8 parameter
    (RFC 6531 3.4); ``body_8bit`` asks for BODY=8BITMIME (RFC 6152 3).
    """

    sender: str
    recipients: tuple[str, ...]
    content: bytes
    needs_smtputf8: bool
    body_8bit: bool

    @property
    def size(self) -> int:
        """Octets of ``content``: the value for MAIL FROM's SIZE= (RFC 1870 3)."""
        return len(self.content)


def content_is_8bit(data: bytes) -> bool:
    """True when any octet of ``data`` is above 127 (RFC 6152 needs BODY=8BITMIME)."""
    return not data.isascii()


def prepare_message(
    msg: Message,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
) -> PreparedMessage:
    """Build the envelope and the wire content of ``msg``; ``msg`` is not changed.

    Without ``sender``, the reverse-path is the first address of Sender, else
    From; without ``recipients``, the forward-paths are every address of To,
    Cc and Bcc. When the message carries one Resent- block (one Resent-Date),
    Resent-Sender/Resent-From and Resent-To/Resent-Cc/Resent-Bcc are used
    instead (RFC 5322 3.6.6). ``sender=""`` asks for the null reverse-path.

    The content is generated with ``msg.policy`` cloned to CRLF line ends.
    When SMTPUTF8 is needed, header fields are written in raw UTF-8 as RFC 6532
    allows; otherwise the policy RFC 2047-encodes non-ASCII text, so a message
    whose only non-ASCII is a Subject or a display name goes to any server.

    Raises ``LocalProtocolError`` when the message has several Resent- blocks
    and the envelope is not given, no sender can be found, no recipient is
    left, an address field holds octets that are not UTF-8, a header field
    (of the message or of a MIME part) would not stay one field on the wire
    (its value holds an empty line, a line of white space alone, or a line
    that does not begin with white space, whatever the policy let in; or its
    name is not printable ASCII), or the email
    package cannot serialise the message (for example a compat32 payload of
    non-ASCII ``str`` without a charset).
    """
    resent = "" if sender is not None and recipients is not None else _resent_prefix(msg)
    if sender is None:
        sender = _envelope_sender(msg, resent)
    if recipients is None:
        found = _addresses(msg, (resent + "To", resent + "Cc", resent + "Bcc"))
    else:
        if isinstance(recipients, str):
            # A lone string would be taken letter by letter.
            raise LocalProtocolError("recipients must be a sequence of addresses, not one str")
        found = list(recipients)
    unique = tuple(dict.fromkeys(found))
    if not unique:
        where = "given" if recipients is not None else f"in {resent}To, {resent}Cc or {resent}Bcc"
        raise LocalProtocolError(f"no recipient {where}: SMTP needs at least one RCPT")

    smtputf8 = not _all_ascii((sender, *unique)) or _has_non_ascii_address_field(msg)
    content = _generate(msg, utf8=smtputf8)
    head, _, body = content.partition(b"\r\n\r\n")
    # A header section with raw 8-bit octets (a parsed header is written back
    # as it came, whatever the policy) is only legal under SMTPUTF8 (RFC 6532
    # 3.2); say so rather than send what a 7-bit server must refuse.
    smtputf8 = smtputf8 or content_is_8bit(head)
    return PreparedMessage(
        sender=sender,
        recipients=unique,
        content=content,
        needs_smtputf8=smtputf8,
        body_8bit=content_is_8bit(body),
    )


def to_7bit(msg: Message) -> Message:
    """A copy of ``msg`` whose body fits a server without 8BITMIME.

    Every leaf part whose content has octets above 127, or lines longer than
    998 octets (RFC 5321 4.5.3.1.6), is re-encoded: quoted-printable for
    text/*, base64 for the rest, and its Content-Transfer-Encoding updated.
    Containers marked 8bit or binary become 7bit (RFC 2046 5.2.1, 5.1). RFC 6152
    3 leaves the client two choices for such a message: convert or bounce; this
    is the conversion. Header fields are left alone: an EmailMessage's
    non-ASCII text is RFC 2047-encoded by the generator anyway, and raw 8-bit
    octets in a parsed header (or a non-ASCII address) cannot be downgraded
    without loss, so ``prepare_message`` reports them as needing SMTPUTF8.
    ``msg`` is not changed.
    """
    result = copy.deepcopy(msg)
    for part in result.walk():
        if part.is_multipart():
            if _cte(part) in ("8bit", "binary"):
                part.replace_header("Content-Transfer-Encoding", "7bit")
            continue
        if _cte(part) not in _IDENTITY_CTES:
            continue  # already quoted-printable or base64
        data = _leaf_bytes(part)
        if data.isascii() and not _has_long_line(data):
            continue
        if part.get_content_maintype() == "text":
            text = _LINE_BREAK.sub(b"\n", data)
            encoded, cte = binascii.b2a_qp(text, quotetabs=False, istext=True), "quoted-printable"
        else:
            encoded, cte = base64.encodebytes(data), "base64"
        part.set_payload(encoded.decode("ascii"))
        if "Content-Transfer-Encoding" in part:
            part.replace_header("Content-Transfer-Encoding", cte)
        else:
            part["Content-Transfer-Encoding"] = cte
    return result


def _resent_prefix(msg: Message) -> str:
    """The prefix of the fields that hold the envelope: "Resent-" or ""."""
    dates = msg.get_all("Resent-Date") or []
    if len(dates) > 1:
        # smtplib refuses this too: with several blocks, which one is ours is a
        # guess (RFC 5322 3.6.6 only says each resend prepends a block).
        raise LocalProtocolError(
            f"message has {len(dates)} Resent-Date fields (several Resent- blocks); "
            "pass sender and recipients explicitly"
        )
    return "Resent-" if dates else ""


def _envelope_sender(msg: Message, resent: str) -> str:
    """The first address of (Resent-)Sender, else of (Resent-)From."""
    for name in (resent + "Sender", resent + "From"):
        addresses = _addresses(msg, (name,))
        if addresses:
            return addresses[0]
    raise LocalProtocolError(
        f"message has no {resent}Sender or {resent}From address; pass sender explicitly"
    )


def _addresses(msg: Message, names: Iterable[str]) -> list[str]:
    """Every address in the fields ``names``, field by field, empties dropped."""
    from email.utils import getaddresses

    items = [(key.lower(), value) for key, value in msg.raw_items()]
    values = [_header_text(value) for name in names for key, value in items if key == name.lower()]
    return [address for _, address in getaddresses(values) if address]


def _header_text(value: object) -> str:
    """A header value as text, whatever policy stored it.

    compat32 parsing keeps raw 8-bit octets as surrogate escapes; RFC 6532
    says they are UTF-8, so they are decoded as such.
    """
    text = str(value)
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError as exc:
        raise LocalProtocolError(
            f"header value {text!r} has octets that are not UTF-8 (RFC 6532 3.2)"
        ) from exc


def _has_non_ascii_address_field(msg: Message) -> bool:
    """True when an address field holds a non-ASCII addr-spec."""
    from email.utils import getaddresses

    values = [
        _header_text(value) for key, value in msg.raw_items() if key.lower() in _ADDRESS_FIELDS
    ]
    return not _all_ascii(address for _, address in getaddresses(values))


def _all_ascii(texts: Iterable[str]) -> bool:
    return all(text.isascii() for text in texts)


def _generate(msg: Message, *, utf8: bool) -> bytes:
    """Serialise a Bcc-less copy of ``msg`` with CRLF line ends only."""
    from email.policy import EmailPolicy

    work = copy.deepcopy(msg)
    for name in _BLIND_FIELDS:
        del work[name]
    policy = work.policy.clone(linesep="\r\n")
    # compat32 has no utf8 switch: its headers are written as stored.
    if utf8 and isinstance(policy, EmailPolicy):
        policy = policy.clone(utf8=True)
    buffer = io.BytesIO()
    try:
        _checked_generator()(buffer, mangle_from_=False, policy=policy).flatten(work)
    except (email.errors.MessageError, UnicodeError) as exc:
        raise LocalProtocolError(f"the message cannot be serialised: {exc}") from exc
    # The generator keeps a bare CR or LF inside a line; SMTP has no way to
    # carry one (RFC 5321 2.3.8), so every break becomes CRLF, and the last
    # line gets its CRLF so that ``size`` is what goes on the wire.
    content = _LINE_BREAK.sub(b"\r\n", buffer.getvalue())
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content


@functools.cache
def _checked_generator() -> type[BytesGenerator]:
    """``BytesGenerator`` that refuses a header field which would not stay one field.

    Built on first use: ``email.generator`` imports socket.
    """
    from email.generator import BytesGenerator

    class CheckedGenerator(BytesGenerator):
        # Each part's header block is written here (the generator clones
        # itself for the parts of a multipart, so they are checked too).
        def _write_headers(self, msg: Message) -> None:
            policy = self.policy
            assert policy is not None  # flatten() set it
            out = self._fp  # type: ignore[attr-defined]
            for name, value in msg.raw_items():
                folded = policy.fold_binary(name, value)
                _check_folded(name, folded)
                out.write(folded)
            self.write(self._NL)  # type: ignore[attr-defined]

    return CheckedGenerator


def _check_folded(name: str, folded: bytes) -> None:
    """Raise ``LocalProtocolError`` unless ``folded`` is one header field, CRLF-ended.

    RFC 5322 2.2 and 2.2.3: a field is its name, a colon and a body whose
    every further line begins with white space (folding). A value with an
    empty line, or with a line that does not begin with white space, would
    end the header block early or start a field of its sender's choosing
    (every line break becomes CRLF on the wire); a line of white space
    alone is forbidden too (RFC 5322 3.2.2) and reads as the end of the
    header block to lenient parsers.
    """
    lines = _LINE_BREAK.split(folded)
    if lines and lines[-1] == b"":
        lines.pop()  # the field's own line end
    encoded = name.encode("utf-8", "surrogateescape")
    if not _FIELD_NAME.fullmatch(encoded):
        raise LocalProtocolError(f"header field name {name!r} is not printable ASCII without ':'")
    if not lines or not lines[0].startswith(encoded + b":"):
        raise LocalProtocolError(f"header field {name!r} does not begin with its name")
    for line in lines[1:]:
        if line[:1] not in (b" ", b"\t") or not line.strip(b" \t"):
            raise LocalProtocolError(
                f"header field {name!r} has a line that is empty or not folded white space"
                f" ({line[:40]!r}); it would change the header block"
            )


def _cte(part: Message) -> str:
    return str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()


def _leaf_bytes(part: Message) -> bytes:
    """The octets of a leaf part stored under an identity transfer encoding."""
    # get_payload() would decode 8-bit octets by the charset with "replace",
    # and get_payload(decode=True) would guess Latin-1 for text set as str;
    # the stored payload is the only faithful source.
    payload = getattr(part, "_payload", None)
    if isinstance(payload, bytes):
        return payload
    if not isinstance(payload, str):
        return b""
    # Parsed from bytes, 8-bit octets are surrogate escapes (as EmailMessage
    # set_content stores an 8bit body too); text set by hand as str is in the
    # part's charset.
    if any("\udc80" <= ch <= "\udcff" for ch in payload):
        return payload.encode("utf-8", "surrogateescape")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.encode(charset)
    except (LookupError, UnicodeError):
        return payload.encode("utf-8", "surrogatepass")


def _has_long_line(data: bytes) -> bool:
    return any(len(line) > _MAX_TEXT_LINE for line in _LINE_BREAK.split(data))
