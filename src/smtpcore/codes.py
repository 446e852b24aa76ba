"""What SMTP reply codes and enhanced status codes mean, in words for people.

Reply codes (``ReplyCode``, ``reply_meaning``) come from RFC 5321 4.2.2 and
4.2.3 and from the extensions that add their own: AUTH (RFC 4954), STARTTLS
(RFC 3207), ETRN (RFC 1985) and the null-MX codes of RFC 7504. A code no RFC
lists still has a meaning by its digits (RFC 5321 4.2.1).

Enhanced status codes (``enhanced_meaning``) follow RFC 3463: class.subject.
detail, with the details registered at IANA's "SMTP Enhanced Status Codes"
registry (RFC 5248). An unregistered detail falls back to its subject.

``describe`` puts both together for a log line or an error message.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Final

__all__ = ["ReplyCode", "describe", "enhanced_meaning", "reply_meaning"]


class ReplyCode(enum.IntEnum):
    """The reply codes the RFCs define, named by meaning.

    A code some extensions reuse with their own text (454 for STARTTLS and
    AUTH, 250-252 for ETRN) has one member; ``reply_meaning`` gives the text.
    """

    # RFC 5321 4.2.2 and 4.2.3
    SYSTEM_STATUS = 211
    HELP_MESSAGE = 214
    SERVICE_READY = 220
    SERVICE_CLOSING = 221
    OK = 250
    USER_NOT_LOCAL_WILL_FORWARD = 251
    CANNOT_VRFY_USER = 252
    START_MAIL_INPUT = 354
    SERVICE_NOT_AVAILABLE = 421
    MAILBOX_BUSY = 450
    LOCAL_ERROR = 451
    INSUFFICIENT_STORAGE = 452
    PARAMETERS_NOT_ACCOMMODATED = 455
    SYNTAX_ERROR = 500
    PARAMETER_SYNTAX_ERROR = 501
    COMMAND_NOT_IMPLEMENTED = 502
    BAD_SEQUENCE = 503
    PARAMETER_NOT_IMPLEMENTED = 504
    MAILBOX_UNAVAILABLE = 550
    USER_NOT_LOCAL = 551
    EXCEEDED_STORAGE = 552
    MAILBOX_NAME_NOT_ALLOWED = 553
    TRANSACTION_FAILED = 554
    MAIL_RCPT_PARAMETERS_NOT_RECOGNIZED = 555
    # RFC 4954 (AUTH)
    AUTH_SUCCEEDED = 235
    AUTH_CHALLENGE = 334
    PASSWORD_TRANSITION_NEEDED = 432
    TEMPORARY_AUTH_FAILURE = 454
    AUTH_REQUIRED = 530
    AUTH_MECHANISM_TOO_WEAK = 534
    AUTH_CREDENTIALS_INVALID = 535
    ENCRYPTION_REQUIRED_FOR_AUTH = 538
    # RFC 1985 (ETRN)
    ETRN_MESSAGES_STARTED = 253
    ETRN_UNABLE_TO_QUEUE = 458
    ETRN_NODE_NOT_ALLOWED = 459
    # RFC 7504
    HOST_DOES_NOT_ACCEPT_MAIL = 521
    DOMAIN_DOES_NOT_ACCEPT_MAIL = 556


# The texts of RFC 5321 4.2.2, shortened where they name a placeholder, and of
# the extension RFCs. A code used by two RFCs gives both readings.
_REPLY_TEXT: Final[Mapping[int, str]] = {
    211: "System status, or system help reply",
    214: "Help message",
    220: "Service ready",
    221: "Service closing transmission channel",
    235: "Authentication succeeded",  # RFC 4954 6
    250: "Requested mail action okay, completed",
    # After ETRN, 251 and 252 say whether the node had mail queued (RFC 1985 5).
    251: "User not local; will forward (after ETRN: no messages waiting for the node)",
    252: (
        "Cannot VRFY user, but will accept message and attempt delivery"
        " (after ETRN: pending messages for the node started)"
    ),
    253: "Pending messages for the node started",  # RFC 1985 5 (ETRN)
    334: "Authentication challenge: continue the exchange",  # RFC 4954 4
    354: "Start mail input; end with <CRLF>.<CRLF>",
    421: "Service not available, closing transmission channel",
    432: "A password transition is needed",  # RFC 4954 6
    450: "Requested mail action not taken: mailbox unavailable",
    451: "Requested action aborted: local error in processing",
    452: "Requested action not taken: insufficient system storage",
    # RFC 4954 6 (AUTH) and RFC 3207 4 (STARTTLS) both use 454.
    454: "Temporary authentication failure, or TLS not available for a temporary reason",
    455: "Server unable to accommodate parameters",
    458: "Unable to queue messages for the node",  # RFC 1985 5 (ETRN)
    459: "Node not allowed",  # RFC 1985 5 (ETRN)
    # RFC 5321 4.2.2 counts "command line too long" here; with 5.5.6 it is an
    # AUTH response line over the server's limit (RFC 4954 6).
    500: "Syntax error, command unrecognized (or line too long)",
    501: "Syntax error in parameters or arguments",
    502: "Command not implemented",
    503: "Bad sequence of commands",
    504: "Command parameter not implemented",
    521: "Host does not accept mail",  # RFC 7504 3
    # RFC 4954 6 (AUTH) and RFC 3207 4 (STARTTLS) both use 530.
    530: "Authentication required, or STARTTLS required first",
    534: "Authentication mechanism is too weak",  # RFC 4954 6
    535: "Authentication credentials invalid",  # RFC 4954 6
    538: "Encryption required for requested authentication mechanism",  # RFC 4954 6
    550: "Requested action not taken: mailbox unavailable",
    551: "User not local; please try another path",
    552: "Requested mail action aborted: exceeded storage allocation",
    553: "Requested action not taken: mailbox name not allowed",
    554: "Transaction failed",
    555: "MAIL FROM/RCPT TO parameters not recognized or not implemented",
    556: "Domain does not accept mail",  # RFC 7504 3
}

# RFC 5321 4.2.1: the first digit says how it went, the second what it is about.
_FIRST_DIGIT: Final[Mapping[int, str]] = {
    1: "Positive preliminary reply, unused in SMTP",
    2: "Positive completion reply",
    3: "Positive intermediate reply",
    4: "Transient negative completion reply",
    5: "Permanent negative completion reply",
}
_SECOND_DIGIT: Final[Mapping[int, str]] = {
    0: "syntax",
    1: "information",
    2: "connections",
    3: "unspecified",
    4: "unspecified",
    5: "mail system",
}


def reply_meaning(code: int) -> str:
    """A short English text for a reply code.

    A code the RFCs define gets its text (RFC 5321 4.2.2, RFC 4954, RFC 3207,
    RFC 1985, RFC 7504); any other three-digit code gets the meaning of its
    first and second digits (RFC 5321 4.2.1). A number outside 100-599 is
    said to be no SMTP reply code. Never raises.
    """
    text = _REPLY_TEXT.get(code)
    if text is not None:
        return text
    if not 100 <= code <= 599:
        return f"Not an SMTP reply code ({code})"
    first, second = code // 100, code // 10 % 10
    about = _SECOND_DIGIT.get(second, "unspecified")
    return f"{_FIRST_DIGIT[first]} ({about})"


# RFC 3463 section 3 (classes and subjects).
_CLASS_TEXT: Final[Mapping[int, str]] = {
    2: "Success",
    4: "Persistent transient failure",
    5: "Permanent failure",
}
_SUBJECT_TEXT: Final[Mapping[int, str]] = {
    0: "Other or undefined status",
    1: "Addressing status",
    2: "Mailbox status",
    3: "Mail system status",
    4: "Network and routing status",
    5: "Mail delivery protocol status",
    6: "Message content or media status",
    7: "Security or policy status",
}

# IANA "SMTP Enhanced Status Codes", Enumerated Status Codes, by subject and
# detail. The summaries are the registry's, with its capitals made plain.
_DETAIL_TEXT: Final[Mapping[tuple[int, int], str]] = {
    # RFC 3463 3.1-3.8
    (0, 0): "Other undefined status",
    (1, 0): "Other address status",
    (1, 1): "Bad destination mailbox address",
    (1, 2): "Bad destination system address",
    (1, 3): "Bad destination mailbox address syntax",
    (1, 4): "Destination mailbox address ambiguous",
    (1, 5): "Destination address valid",
    (1, 6): "Destination mailbox has moved, no forwarding address",
    (1, 7): "Bad sender's mailbox address syntax",
    (1, 8): "Bad sender's system address",
    (2, 0): "Other or undefined mailbox status",
    (2, 1): "Mailbox disabled, not accepting messages",
    (2, 2): "Mailbox full",
    (2, 3): "Message length exceeds administrative limit",
    (2, 4): "Mailing list expansion problem",
    (3, 0): "Other or undefined mail system status",
    (3, 1): "Mail system full",
    (3, 2): "System not accepting network messages",
    (3, 3): "System not capable of selected features",
    (3, 4): "Message too big for system",
    (3, 5): "System incorrectly configured",
    (4, 0): "Other or undefined network or routing status",
    (4, 1): "No answer from host",
    (4, 2): "Bad connection",
    (4, 3): "Directory server failure",
    (4, 4): "Unable to route",
    (4, 5): "Mail system congestion",
    (4, 6): "Routing loop detected",
    (4, 7): "Delivery time expired",
    (5, 0): "Other or undefined protocol status",
    (5, 1): "Invalid command",
    (5, 2): "Syntax error",
    (5, 3): "Too many recipients",
    (5, 4): "Invalid command arguments",
    (5, 5): "Wrong protocol version",
    (6, 0): "Other or undefined media error",
    (6, 1): "Media not supported",
    (6, 2): "Conversion required and prohibited",
    (6, 3): "Conversion required but not supported",
    (6, 4): "Conversion with loss performed",
    (6, 5): "Conversion failed",
    (7, 0): "Other or undefined security status",
    (7, 1): "Delivery not authorized, message refused",
    (7, 2): "Mailing list expansion prohibited",
    (7, 3): "Security conversion required but not possible",
    (7, 4): "Security features not supported",
    (7, 5): "Cryptographic failure",
    (7, 6): "Cryptographic algorithm not supported",
    (7, 7): "Message integrity failure",
    # RFC 3886, registered by RFC 5248
    (1, 9): "Message relayed to non-compliant mailer",
    # RFC 7505 (null MX)
    (1, 10): "Recipient address has null MX",
    (7, 27): "Sender address has null MX",
    # RFC 6710 (MT-PRIORITY)
    (3, 6): "Requested priority was changed",
    (7, 15): "Priority level is too low",
    (7, 16): "Message is too big for the specified priority",
    # RFC 4954 (AUTH)
    (5, 6): "Authentication exchange line is too long",
    (7, 8): "Authentication credentials invalid",
    (7, 9): "Authentication mechanism is too weak",
    (7, 11): "Encryption required for requested authentication mechanism",
    (7, 12): "A password transition is needed",
    # RFC 4468 (BURL)
    (6, 6): "Message content not available",
    # RFC 6531 (SMTPUTF8)
    (6, 7): "Non-ASCII addresses not permitted for that sender/recipient",
    (6, 8): "UTF-8 string reply is required, but not permitted by the SMTP client",
    (6, 9): "UTF-8 header message cannot be transferred to one or more recipients",
    (6, 10): "Deprecated duplicate of X.6.8 (UTF-8 reply required but not permitted)",
    # RFC 5248
    (7, 10): "Encryption needed",
    (7, 13): "User account disabled",
    (7, 14): "Trust relationship required",
    # RFC 7293 (RRVS)
    (7, 17): "Mailbox owner has changed",
    (7, 18): "Domain owner has changed",
    (7, 19): "RRVS test cannot be completed",
    # RFC 7372 (email authentication status codes)
    (7, 20): "No passing DKIM signature found",
    (7, 21): "No acceptable DKIM signature found",
    (7, 22): "No valid author-matched DKIM signature found",
    (7, 23): "SPF validation failed",
    (7, 24): "SPF validation error",
    (7, 25): "Reverse DNS validation failed",
    (7, 26): "Multiple authentication checks failed",
    # Registered at IANA without an RFC of its own
    (7, 28): "Mail flood detected",
    # RFC 8617 (ARC)
    (7, 29): "ARC validation failure",
    # RFC 8689 (REQUIRETLS)
    (7, 30): "REQUIRETLS support required",
}

# RFC 3463 2: class "2"/"4"/"5", subject and detail 1*3digit, no leading
# zero, no white space. [0-9] rather than \d: other scripts' digits are not
# digits here.
_ENHANCED: Final = re.compile(r"([245])\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})")


def enhanced_meaning(code: str) -> str | None:
    """The meaning of an enhanced status code such as ``"5.1.1"``, or None.

    A registered detail gets the IANA summary (RFC 5248); an unregistered
    detail under a known subject gets the subject's meaning (RFC 3463 3); an
    unknown subject gets the class's. ``None`` when ``code`` is not
    class.subject.detail by RFC 3463 2 (class 2, 4 or 5; subject and detail of
    one to three digits without leading zeros). Never raises.
    """
    match = _ENHANCED.fullmatch(code)
    if match is None:
        return None
    klass, subject, detail = (int(part) for part in match.groups())
    text = _DETAIL_TEXT.get((subject, detail))
    if text is not None:
        return text
    subject_text = _SUBJECT_TEXT.get(subject)
    if subject_text is not None:
        return subject_text
    return _CLASS_TEXT[klass]


def describe(code: int, enhanced: str | None = None) -> str:
    """One line for people: the code, the enhanced code if any, and what they mean.

    ``describe(550, "5.1.1")`` gives ``"550 5.1.1: Requested action not taken:
    mailbox unavailable; Bad destination mailbox address"``. An ``enhanced``
    that is not a valid RFC 3463 code is left out. Never raises.
    """
    code = int(code)  # a ReplyCode member prints as its number on every Python
    meaning = reply_meaning(code)
    detail = None if enhanced is None else enhanced_meaning(enhanced)
    if enhanced is None or detail is None:
        return f"{code}: {meaning}"
    return f"{code} {enhanced}: {meaning}; {detail}"
