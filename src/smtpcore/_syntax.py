"""RFC 5321 4.1.2 syntax: mailboxes, domains, ESMTP parameters, and xtext.

Every check here returns ``None`` when the text is good, or a short reason
when it is not, so the client can raise ``LocalProtocolError`` and the server
can answer 501/553/555 with the same words. Nothing here raises on bad input.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from ._errors import InvalidArgument

__all__ = [
    "domain_error",
    "ehlo_argument_error",
    "is_ascii",
    "is_plain_mailbox",
    "mailbox_error",
    "parameter_error",
    "xtext_decode",
    "xtext_encode",
    "xtext_error",
]

# Every non-ASCII character, which RFC 6531 3.3 allows in addresses; lone
# surrogates are not characters (they cannot be encoded) and stay out.
_UTF8: Final = r"\u0080-\ud7ff\ue000-\U0010ffff"
# RFC 5322 atext, with UTF-8.
_ATOM: Final = rf"[A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~{_UTF8}]+"
_DOT_STRING: Final = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# qtextSMTP and quoted-pairSMTP (RFC 5321 4.1.2), UTF-8 allowed by RFC 6531.
_QUOTED_STRING: Final = re.compile(rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"')
# sub-domain = Let-dig [Ldh-str]; RFC 6531 allows U-labels.
_LABEL: Final = rf"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9\-{_UTF8}]*[A-Za-z0-9{_UTF8}])?"
_DOMAIN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_GENERAL_LITERAL: Final = re.compile(r"[A-Za-z0-9\-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")
_IPV4: Final = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
)
_IPV4_LOOSE: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
# The common mailbox, all ASCII: a dot-atom, "@", and a domain of labels of at
# most 63 octets (RFC 1035 2.3.4). Whatever it matches the full check accepts
# too (bar the 255-octet domain limit, checked beside it); whatever it does not
# match (quoted strings, UTF-8, literals, mistakes) goes through the full check.
_ASCII_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_PLAIN_MAILBOX: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
    rf"@{_ASCII_LABEL}(?:\.{_ASCII_LABEL})*"
)
# RFC 5321 4.1.2: esmtp-keyword and esmtp-value.
_KEYWORD: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_VALUE: Final = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_VALUE_UTF8: Final = re.compile(rf"[\x21-\x3c\x3e-\x7e{_UTF8}]+")
# RFC 3461 4: xtext = *( xchar / hexchar ), hexchar = "+" 2(0-9 / A-F).
_XTEXT: Final = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_XTEXT_HEX: Final = re.compile(r"\+([0-9A-F]{2})")
_NOTIFY: Final = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_ADDR_TYPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")


def is_ascii(text: str) -> bool:
    """Whether ``text`` is plain ASCII (needs no SMTPUTF8)."""
    return text.isascii()


def _address_literal_error(literal: str) -> str | None:
    inner = literal[1:-1]
    if inner.lower().startswith("ipv6:"):
        if "%" in inner:  # ipaddress takes a zone id of any text; RFC 5321 4.1.3 has none
            return f"bad IPv6 address literal {literal!r}"
        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return f"bad IPv6 address literal {literal!r}"
        return None
    if _IPV4_LOOSE.fullmatch(inner):
        return None if _IPV4.fullmatch(inner) else f"bad IPv4 address literal {literal!r}"
    if _GENERAL_LITERAL.fullmatch(inner):
        return None
    return f"bad address literal {literal!r}"


def domain_error(domain: str) -> str | None:
    """Why ``domain`` is not a Domain or address-literal (RFC 5321 4.1.2), or None."""
    if not domain:
        return "empty domain"
    if domain.startswith("[") and domain.endswith("]"):
        return _address_literal_error(domain)
    if len(domain.encode("utf-8", "surrogatepass")) > 255:
        return "domain longer than 255 octets (RFC 5321 4.5.3.1.2)"
    if not _DOMAIN.fullmatch(domain):
        return f"bad domain {domain!r}"
    if any(len(label.encode("utf-8")) > 63 for label in domain.split(".")):
        return f"domain {domain!r} has a label longer than 63 octets (RFC 1035 2.3.4)"
    return None


def ehlo_argument_error(domain: str) -> str | None:
    """Why ``domain`` cannot follow EHLO, HELO or LHLO, or None.

    The argument is an ASCII Domain or an address-literal (RFC 5321 4.1.1.1);
    SMTPUTF8 is not yet known when it is sent.
    """
    if not domain.isascii():
        return f"non-ASCII EHLO argument {domain!r}"
    return domain_error(domain)


def is_plain_mailbox(mailbox: str) -> bool:
    """True for the usual Mailbox: an ASCII dot-atom, "@", an ASCII domain of 255 octets at most.

    Such a mailbox is valid (``mailbox_error`` is None for it) and holds no
    control character; anything else needs ``mailbox_error`` to say why.
    """
    return bool(_PLAIN_MAILBOX.fullmatch(mailbox)) and len(mailbox) - mailbox.rfind("@") <= 256


def mailbox_error(mailbox: str) -> str | None:
    """Why ``mailbox`` is not an RFC 5321 Mailbox (UTF-8 allowed, RFC 6531), or None.

    Whether UTF-8 may be used is the session's business (SMTPUTF8), not this
    check's.
    """
    if is_plain_mailbox(mailbox):
        return None
    if not mailbox:
        return "empty address"
    at = mailbox.rfind("@")
    if at <= 0:
        return f"address {mailbox!r} has no local part and domain"
    local, domain = mailbox[:at], mailbox[at + 1 :]
    if not (_DOT_STRING.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        return f"bad local part in {mailbox!r}"
    reason = domain_error(domain)
    if reason is not None:
        return f"{reason} in {mailbox!r}"
    return None


def xtext_encode(text: str) -> str:
    """Encode ``text`` as RFC 3461 xtext: "+", "=" and anything outside 33-126 become +XX.

    Non-ASCII characters are encoded octet by octet from their UTF-8 form.
    Raises ``ValueError`` (``UnicodeEncodeError``) for a lone surrogate.
    """
    out: list[str] = []
    for byte in text.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def xtext_error(text: str) -> str | None:
    """Why ``text`` is not RFC 3461 xtext, or None."""
    if _XTEXT.fullmatch(text):
        return None
    return f"{text!r} is not xtext (RFC 3461 4)"


def xtext_decode(text: str) -> str:
    """Decode RFC 3461 xtext. Raises ``InvalidArgument`` (a ``ValueError``) when it is not xtext.

    Octets that do not form UTF-8 are kept as U+FFFD replacement characters.
    """
    reason = xtext_error(text)
    if reason is not None:
        raise InvalidArgument(reason)
    raw = _XTEXT_HEX.sub(lambda m: "\x00" + m.group(1), text)
    data = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == "\x00":
            data.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            data.append(ord(raw[i]))
            i += 1
    return data.decode("utf-8", "replace")


def _orcpt_error(value: str) -> str | None:
    addr_type, sep, address = value.partition(";")
    if not sep or not _ADDR_TYPE.fullmatch(addr_type):
        return f"ORCPT {value!r} is not addr-type;xtext (RFC 3461 4.2)"
    if addr_type.lower() == "utf-8":
        # RFC 6533 3: utf-8-addr-xtext; printable UTF-8 without "+" "=" or controls.
        if any(ch in "+= " or ord(ch) < 33 or ord(ch) == 127 for ch in address):
            return f"ORCPT {value!r}: bad utf-8 address"
        return None
    if not address.isascii() or xtext_error(address):
        return f"ORCPT {value!r}: address is not xtext (RFC 3461 4.2)"
    return None


def parameter_error(name: str, value: str | None, *, utf8: bool = False) -> str | None:
    """Why ``name=value`` is not a valid MAIL/RCPT parameter, or None.

    Generic esmtp-param syntax (RFC 5321 4.1.2) for every name, and the
    value rules of the parameters this library knows: SIZE (RFC 1870), BODY
    (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET, ENVID, NOTIFY, ORCPT
    (RFC 3461), REQUIRETLS (RFC 8689), AUTH (RFC 4954). ``utf8`` allows UTF-8
    in values, as SMTPUTF8 does.
    """
    if not _KEYWORD.fullmatch(name) or not name.isascii():
        return f"bad parameter name {name!r}"
    if value is not None:
        pattern = _VALUE_UTF8 if utf8 else _VALUE
        if not pattern.fullmatch(value):
            return f"bad value {value!r} for parameter {name}"
    key = name.upper()
    if key in ("SMTPUTF8", "REQUIRETLS"):
        return None if value is None else f"{key} takes no value"
    if key in ("SIZE", "BODY", "RET", "ENVID", "NOTIFY", "ORCPT", "AUTH") and value is None:
        return f"{key} needs a value"
    if value is None:
        return None
    if key == "SIZE":
        if not (value.isascii() and value.isdigit()) or len(value) > 20:
            return f"SIZE value {value!r} is not a number of octets (RFC 1870)"
    elif key == "BODY":
        if value.upper() not in ("7BIT", "8BITMIME", "BINARYMIME"):
            return f"BODY value {value!r} is not 7BIT, 8BITMIME or BINARYMIME"
    elif key == "RET":
        if value.upper() not in ("FULL", "HDRS"):
            return f"RET value {value!r} is not FULL or HDRS (RFC 3461 4.3)"
    elif key == "ENVID":
        if xtext_error(value) or len(value) > 100:
            return f"ENVID value {value!r} is not xtext of at most 100 octets (RFC 3461 4.4)"
    elif key == "NOTIFY":
        items = value.upper().split(",")
        if items != ["NEVER"] and not (set(items) <= _NOTIFY and len(set(items)) == len(items)):
            return f"NOTIFY value {value!r} is not NEVER or a list of SUCCESS, FAILURE, DELAY"
    elif key == "ORCPT":
        return _orcpt_error(value)
    elif key == "AUTH" and value != "<>" and xtext_error(value):
        return f"AUTH value {value!r} is not xtext (RFC 4954 5)"
    return None
