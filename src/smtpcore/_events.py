"""Events: what flows into and out of a connection.

The same classes serve both roles. A client ``send``s commands and receives
``Reply`` events; a server receives commands and ``send``s replies. Every
event is frozen and complete at birth: its constructor checks what can be
checked without knowing the session (CR, LF or NUL in an argument, address
syntax) and raises ``LocalProtocolError`` before any byte exists.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Final

from ._errors import LocalProtocolError
from ._syntax import ehlo_argument_error, is_plain_mailbox, mailbox_error, parameter_error

__all__ = [
    "NEED_DATA",
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Bdat",
    "Command",
    "ConnectionClosed",
    "Data",
    "Ehlo",
    "EndOfChunk",
    "EndOfData",
    "Etrn",
    "Event",
    "Expn",
    "Helo",
    "Help",
    "InvalidCommand",
    "Lhlo",
    "Mail",
    "MessageData",
    "Noop",
    "Quit",
    "Rcpt",
    "Reply",
    "Rset",
    "Saml",
    "Send",
    "Soml",
    "StartTLS",
    "Turn",
    "Vrfy",
]


class _Need(enum.Enum):
    NEED_DATA = enum.auto()


NEED_DATA: Final = _Need.NEED_DATA
"""Returned by ``next_event()`` when more bytes are needed (compare with ``is``)."""

_ENHANCED: Final = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?= |$)")
_SASL_MECH: Final = re.compile(r"[A-Z0-9\-_]{1,20}")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _refuse_line_breaks(name: str, value: str) -> None:
    """Raise LocalProtocolError when ``value`` could end or split a line, or not be encoded."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise LocalProtocolError(f"{name} {value!r} contains CR, LF or NUL")
    if not value.isascii() and _SURROGATE.search(value):
        raise LocalProtocolError(f"{name} {value!r} contains a lone surrogate (not UTF-8)")


def _refuse_controls(name: str, value: str) -> None:
    """Raise LocalProtocolError for any C0 control character or DEL in ``value``."""
    _refuse_line_breaks(name, value)
    if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
        raise LocalProtocolError(f"{name} {value!r} contains a control character")


_set: Final = object.__setattr__


class Event:
    """Base of everything that comes out of ``next_event()`` or goes into ``send()``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Reply(Event):
    """One complete reply: the code and its text lines, without the code prefixes.

    ``command`` is the command this reply answers (client side; ``None`` for
    the greeting and an unsolicited 421). A reply always has at least one
    line; a reply received in the bare-code form ``250`` has the single line
    ``""``, and is sent back as ``250 `` (the space always follows the code).
    Raises ``LocalProtocolError`` for a code outside RFC 5321 4.2's grammar
    (2-5, 0-5, 0-9) or a line with CR, LF or NUL.
    """

    code: int
    lines: tuple[str, ...] = ()
    command: Command | EndOfData | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.code, int)
            or not 200 <= self.code <= 599
            or (self.code // 10) % 10 > 5
        ):
            raise LocalProtocolError(f"reply code {self.code!r} is not 2xx-5xx (RFC 5321 4.2)")
        lines = tuple(self.lines) if self.lines else ("",)
        for line in lines:
            _refuse_line_breaks("reply text", line)
        object.__setattr__(self, "lines", lines)

    @classmethod
    def _parsed(
        cls, code: int, lines: tuple[str, ...], command: Command | EndOfData | None = None
    ) -> Reply:
        """A reply from the reply parser, which has already checked what ``__post_init__`` checks.

        The parser accepts only codes of RFC 5321 4.2's grammar and lines
        without CR, LF or NUL, and always gives at least one line; checking
        each received reply a second time would only cost time.
        """
        reply = object.__new__(cls)
        _set(reply, "code", code)
        _set(reply, "lines", lines)
        _set(reply, "command", command)
        return reply

    @property
    def text(self) -> str:
        """The text of all lines, joined with newlines."""
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 status code ``class.subject.detail`` the text starts with, if any.

        Only a code whose class matches the reply's first digit counts (RFC 2034 4).
        """
        match = _ENHANCED.match(self.lines[0])
        if match is None or int(match.group(1)) != self.code // 100:
            return None
        return match.group(0)

    @property
    def is_positive(self) -> bool:
        """2xx: the requested action was completed."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: accepted so far; more is expected (354 for DATA, 334 for AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: not done this time; the same request may succeed later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: refused; repeating the same request will fail again."""
        return 500 <= self.code < 600

    def to_bytes(self) -> bytes:
        """The reply as it goes on the wire (RFC 5321 4.2), UTF-8 encoded."""
        lines = self.lines
        if len(lines) == 1:  # most replies: no list, no join
            return f"{self.code} {lines[0]}\r\n".encode()
        code = str(self.code)
        last = len(lines) - 1
        out = []
        # The separator is always there, even before an empty text: RFC 4954 4
        # writes the AUTH continuation "334 SP [base64]", and clients (s-nail,
        # msmtp) wait for "334 " exactly; RFC 5321 4.2 allows it on every reply.
        for i, line in enumerate(self.lines):
            out.append(f"{code}-{line}\r\n" if i < last else f"{code} {line}\r\n")
        return "".join(out).encode("utf-8")

    def __str__(self) -> str:
        return f"{self.code} {' / '.join(self.lines)}".rstrip()


class Command(Event):
    """Base of the commands, one class per verb (RFC 5321 4.1.1)."""

    __slots__ = ()
    verb: ClassVar[str]

    def arguments(self) -> str:
        """What follows the verb on the command line, without the space."""
        return ""

    def to_bytes(self) -> bytes:
        """The command line as it goes on the wire, CRLF included."""
        args = self.arguments()
        line = f"{self.verb} {args}\r\n" if args else f"{self.verb}\r\n"
        return line.encode("utf-8")


#: The parameters of a command that has none: one shared read-only mapping.
_NO_PARAMS: Final[MappingProxyType[str, str | None]] = MappingProxyType({})


def _check_params(params: Mapping[str, str | None]) -> MappingProxyType[str, str | None]:
    if not params and (type(params) is dict or isinstance(params, Mapping)):
        return _NO_PARAMS
    checked: dict[str, str | None] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not (value is None or isinstance(value, str)):
            raise LocalProtocolError(f"parameter {name!r}={value!r} is not str=str|None")
        _refuse_line_breaks("parameter", name)
        if value is not None:
            _refuse_line_breaks(f"parameter {name}", value)
        reason = parameter_error(name, value, utf8=True)
        if reason is not None:
            raise LocalProtocolError(reason)
        key = name.upper()
        if key in checked:
            raise LocalProtocolError(f"parameter {key} given twice")
        checked[key] = value
    return MappingProxyType(checked)


def _format_params(params: Mapping[str, str | None]) -> str:
    if not params:
        return ""
    return "".join(f" {k}" if v is None else f" {k}={v}" for k, v in params.items())


class _Hello(Command):
    __slots__ = ()
    domain: str

    def __post_init__(self) -> None:
        _refuse_line_breaks(f"{self.verb} argument", self.domain)
        reason = ehlo_argument_error(self.domain)
        if reason is not None:
            raise LocalProtocolError(reason)

    def arguments(self) -> str:
        return self.domain


@dataclass(frozen=True, slots=True)
class Helo(_Hello):
    """HELO: greet the server, plain SMTP (RFC 5321 4.1.1.1)."""

    verb: ClassVar[str] = "HELO"
    domain: str


@dataclass(frozen=True, slots=True)
class Ehlo(_Hello):
    """EHLO: greet the server and ask for its extensions (RFC 5321 4.1.1.1)."""

    verb: ClassVar[str] = "EHLO"
    domain: str


@dataclass(frozen=True, slots=True)
class Lhlo(_Hello):
    """LHLO: the LMTP greeting, EHLO's counterpart (RFC 2033 4.1)."""

    verb: ClassVar[str] = "LHLO"
    domain: str


def _check_mailbox(what: str, address: str) -> None:
    if is_plain_mailbox(address):
        return  # the usual address: no line break, NUL or surrogate can be in it
    _refuse_line_breaks(what, address)
    reason = mailbox_error(address)
    if reason is not None:
        raise LocalProtocolError(f"{what}: {reason}")


@dataclass(frozen=True, slots=True)
class Mail(Command):
    """MAIL FROM: open a transaction (RFC 5321 4.1.1.2).

    ``sender`` is the mailbox without angle brackets; ``""`` is the null
    reverse-path ``<>`` of bounces. ``params`` are ESMTP parameters with their
    wire values (``{"SIZE": "1234", "SMTPUTF8": None}``); names are kept in
    upper case. Raises ``LocalProtocolError`` on bad syntax.
    """

    verb: ClassVar[str] = "MAIL"
    sender: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sender:
            _check_mailbox("sender", self.sender)
        object.__setattr__(self, "params", _check_params(self.params))

    @classmethod
    def _parsed(cls, sender: str, params: dict[str, str | None]) -> Mail:
        """A MAIL from the command parser, which has already checked what ``__post_init__`` does.

        The parser refuses a line with a control character (CR, LF and NUL
        among them) and one that is not UTF-8, checks the sender with
        ``mailbox_error`` and each parameter with ``parameter_error``,
        upper-cases the names and refuses one given twice: checking every
        received MAIL a second time would change no verdict.
        """
        mail = object.__new__(cls)
        _set(mail, "sender", sender)
        _set(mail, "params", MappingProxyType(params) if params else _NO_PARAMS)
        return mail

    def arguments(self) -> str:
        return f"FROM:<{self.sender}>{_format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class Rcpt(Command):
    """RCPT TO: name one recipient of the open transaction (RFC 5321 4.1.1.3).

    ``recipient`` is a mailbox without angle brackets, or ``postmaster``.
    """

    verb: ClassVar[str] = "RCPT"
    recipient: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.recipient.lower() != "postmaster":
            _check_mailbox("recipient", self.recipient)
        object.__setattr__(self, "params", _check_params(self.params))

    @classmethod
    def _parsed(cls, recipient: str, params: dict[str, str | None]) -> Rcpt:
        """An RCPT from the command parser, which has already checked what ``__post_init__`` does.

        As ``Mail._parsed``: the line has no control character and is UTF-8,
        the recipient passed ``mailbox_error`` (or is ``postmaster``), the
        parameters ``parameter_error``, with names upper-cased and none twice.
        """
        rcpt = object.__new__(cls)
        _set(rcpt, "recipient", recipient)
        _set(rcpt, "params", MappingProxyType(params) if params else _NO_PARAMS)
        return rcpt

    def arguments(self) -> str:
        return f"TO:<{self.recipient}>{_format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class Data(Command):
    """DATA: ask to send the message content, ended by CRLF.CRLF (RFC 5321 4.1.1.4)."""

    verb: ClassVar[str] = "DATA"


@dataclass(frozen=True, slots=True)
class Bdat(Command):
    """BDAT: announce a chunk of exactly ``size`` octets of content (RFC 3030 2).

    The chunk's octets follow as ``MessageData``, unstuffed. ``last`` marks the
    final chunk of the message.
    """

    verb: ClassVar[str] = "BDAT"
    size: int
    last: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise LocalProtocolError(f"BDAT size {self.size!r} is not an int >= 0")

    def arguments(self) -> str:
        return f"{self.size} LAST" if self.last else str(self.size)


@dataclass(frozen=True, slots=True)
class Rset(Command):
    """RSET: abort the open transaction, if any (RFC 5321 4.1.1.5)."""

    verb: ClassVar[str] = "RSET"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """NOOP: ask for a 250 and nothing else (RFC 5321 4.1.1.9)."""

    verb: ClassVar[str] = "NOOP"
    argument: str = ""

    def __post_init__(self) -> None:
        _refuse_controls("NOOP argument", self.argument)

    def arguments(self) -> str:
        return self.argument


@dataclass(frozen=True, slots=True)
class Quit(Command):
    """QUIT: ask the server to close the connection (RFC 5321 4.1.1.10)."""

    verb: ClassVar[str] = "QUIT"


class _StringCommand(Command):
    __slots__ = ()
    argument: str

    def __post_init__(self) -> None:
        _refuse_controls(f"{self.verb} argument", self.argument)
        if not self.argument.strip():
            raise LocalProtocolError(f"{self.verb} needs an argument")

    def arguments(self) -> str:
        return self.argument


@dataclass(frozen=True, slots=True)
class Vrfy(_StringCommand):
    """VRFY: ask whether the argument names a user or mailbox (RFC 5321 4.1.1.6)."""

    verb: ClassVar[str] = "VRFY"
    argument: str


@dataclass(frozen=True, slots=True)
class Expn(_StringCommand):
    """EXPN: ask for the members of a mailing list (RFC 5321 4.1.1.7)."""

    verb: ClassVar[str] = "EXPN"
    argument: str


@dataclass(frozen=True, slots=True)
class Help(Command):
    """HELP: ask for helpful text, optionally about a topic (RFC 5321 4.1.1.8)."""

    verb: ClassVar[str] = "HELP"
    argument: str = ""

    def __post_init__(self) -> None:
        _refuse_controls("HELP argument", self.argument)

    def arguments(self) -> str:
        return self.argument


class _OldMail(Command):
    __slots__ = ()
    sender: str

    def __post_init__(self) -> None:
        if self.sender:
            _check_mailbox("sender", self.sender)

    def arguments(self) -> str:
        return f"FROM:<{self.sender}>"


@dataclass(frozen=True, slots=True)
class Send(_OldMail):
    """SEND FROM: deliver to terminals instead of mailboxes (RFC 821 4.1.1; obsolete)."""

    verb: ClassVar[str] = "SEND"
    sender: str


@dataclass(frozen=True, slots=True)
class Soml(_OldMail):
    """SOML FROM: send to terminals, or mail where not logged in (RFC 821 4.1.1; obsolete)."""

    verb: ClassVar[str] = "SOML"
    sender: str


@dataclass(frozen=True, slots=True)
class Saml(_OldMail):
    """SAML FROM: send to terminals and mail (RFC 821 4.1.1; obsolete)."""

    verb: ClassVar[str] = "SAML"
    sender: str


@dataclass(frozen=True, slots=True)
class Turn(Command):
    """TURN: swap the client and server roles (RFC 821 4.1.1; obsolete and unsafe)."""

    verb: ClassVar[str] = "TURN"


@dataclass(frozen=True, slots=True)
class Etrn(Command):
    """ETRN: ask the server to start its queue for a node (RFC 1985 3).

    ``node`` is a domain, ``@domain`` (subdomains too) or ``#queue``.
    """

    verb: ClassVar[str] = "ETRN"
    node: str

    def __post_init__(self) -> None:
        _refuse_controls("ETRN node", self.node)
        if not self.node or " " in self.node or not self.node.isascii():
            raise LocalProtocolError(f"ETRN node {self.node!r} is not one ASCII word")

    def arguments(self) -> str:
        return self.node


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    """STARTTLS: ask to turn the connection into a TLS one (RFC 3207 4)."""

    verb: ClassVar[str] = "STARTTLS"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii") if data else "="


@dataclass(frozen=True, slots=True)
class Auth(Command):
    """AUTH: start a SASL exchange (RFC 4954 4).

    ``initial_response`` is the mechanism's first message, raw (base64 is the
    wire's business); ``b""`` is sent as ``=``, ``None`` sends none.
    """

    verb: ClassVar[str] = "AUTH"
    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _SASL_MECH.fullmatch(self.mechanism):
            raise LocalProtocolError(f"SASL mechanism name {self.mechanism!r} is not valid")

    def arguments(self) -> str:
        if self.initial_response is None:
            return self.mechanism
        return f"{self.mechanism} {_b64(self.initial_response)}"


@dataclass(frozen=True, slots=True)
class AuthResponse(Command):
    """One client line of a SASL exchange, answering a 334 challenge (RFC 4954 4)."""

    verb: ClassVar[str] = ""
    data: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return base64.b64encode(self.data) + b"\r\n"


@dataclass(frozen=True, slots=True)
class AuthCancel(Command):
    """``*``: cancel the SASL exchange; the server answers 501 (RFC 4954 4)."""

    verb: ClassVar[str] = "*"


@dataclass(frozen=True, slots=True)
class MessageData(Event):
    """A piece of message content.

    Client side: after a 354 it is dot-stuffed and CRLF-normalised on the way
    out; after BDAT it is sent as it is. Server side: unstuffed content.
    """

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class EndOfData(Event):
    """The end of the message content: ``CRLF.CRLF`` after DATA, or the end of a LAST chunk."""


@dataclass(frozen=True, slots=True)
class EndOfChunk(Event):
    """Server side: the content of a BDAT chunk that is not the LAST is complete."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed the connection (``receive_data(b"")``)."""


@dataclass(frozen=True, slots=True)
class InvalidCommand(Event):
    """Server side: a line that cannot be accepted, and the reply to send for it."""

    reason: str
    reply: Reply
