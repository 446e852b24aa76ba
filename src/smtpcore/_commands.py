"""The command parser: bytes from a client in, command lines and commands out (RFC 5321 4.1).

How this works: ``LineReader`` holds the bytes received and hands out one
CRLF-ended line at a time (RFC 5321 2.3.8: only CRLF ends a line; a bare LF
stays inside the line and makes it invalid). The limit a line must keep
depends on its verb (MAIL and RCPT carry parameters, AUTH carries SASL data),
so the reader asks for the limit of the line's first octets. A line over its
limit is reported once, as soon as it is known to be too long, and the rest
of it is skipped up to its CRLF: no part of it can become a command or the
end of a message. ``parse_command`` turns one line into a ``Command`` or a
``Refusal`` (the code, RFC 3463 status and text to answer with). It checks
syntax only; what the session allows now is the server's business.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from ._errors import LocalProtocolError
from ._events import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Etrn,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
    Turn,
    Vrfy,
)
from ._syntax import domain_error, ehlo_argument_error, mailbox_error, parameter_error

__all__ = ["LineReader", "Refusal", "is_bdat", "parse_auth_response", "parse_command"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a line cannot be accepted: reply code, RFC 3463 status, and text."""

    code: int
    status: str
    text: str


class LineReader:
    """Bounded, incremental splitter of CRLF-ended lines.

    It reads from ``buffer``, which the server connection owns and shares
    with its DATA and BDAT readers: the bytes after a command line are the
    message content's when the command opens it.
    """

    __slots__ = ("_scanned", "_skipping", "buffer", "long_head")

    def __init__(self, buffer: bytearray | None = None) -> None:
        self.buffer = buffer if buffer is not None else bytearray()
        self._scanned = 0
        self._skipping = False
        #: The first octets of the last line reported too long (its verb).
        self.long_head = b""

    def clear(self) -> None:
        """Forget everything received (STARTTLS: nothing may survive the handshake)."""
        self.buffer.clear()
        self._scanned = 0
        self._skipping = False

    @property
    def in_line(self) -> bool:
        """Whether part of a line has been received."""
        return bool(self.buffer) or self._skipping

    def take_line(self, limit_of: Callable[[bytes], int], fits: int = 0) -> bytes | int | None:
        """The next line without its CRLF; its length (an int) when it exceeds its limit.

        ``None`` while the line is incomplete. A too long line is reported
        once; its rest is then skipped up to and including its CRLF.
        ``fits``: a length (CRLF included) within every limit ``limit_of``
        gives, so that a line no longer than it needs no ``limit_of`` call.
        """
        buffer = self.buffer
        if self._skipping:
            end = buffer.find(b"\r\n")
            if end < 0:
                # A CR at the end may be the first half of the CRLF.
                keep = 1 if buffer.endswith(b"\r") else 0
                del buffer[: len(buffer) - keep]
                return None
            del buffer[: end + 2]
            self._skipping = False
        end = buffer.find(b"\r\n", self._scanned)
        if end < 0:
            if len(buffer) < fits:  # no limit reached yet (an empty buffer, most often)
                self._scanned = max(len(buffer) - 1, 0)
                return None
            limit = limit_of(bytes(buffer[:5]))
            if len(buffer) >= limit:
                # Even its CRLF could not make it fit: skip it now.
                length = len(buffer)
                self.long_head = bytes(buffer[:5])
                keep = 1 if buffer.endswith(b"\r") else 0
                del buffer[: len(buffer) - keep]
                self._scanned = 0
                self._skipping = True
                return length
            self._scanned = max(len(buffer) - 1, 0)
            return None
        self._scanned = 0
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        if end + 2 > fits and end + 2 > limit_of(line[:5]):
            self.long_head = line[:5]
            return end + 2
        return line


_VERB: Final = re.compile(rb"[A-Za-z]{1,12}")
_CONTROL: Final = re.compile(rb"[\x00-\x1f\x7f]")
_ROUTE: Final = re.compile(r"@([^,:@<>]+)(?:,@([^,:@<>]+))*:")
_ROUTE_DOMAIN: Final = re.compile(r"@([^,:@<>]+)")
_BDAT: Final = re.compile(r"([0-9]{1,20})(?: (LAST))?", re.IGNORECASE)
_SASL_MECH: Final = re.compile(r"[A-Za-z0-9\-_]{1,20}")
_BASE64: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
#: RFC 5321 4.5.3.1.3: a path, angle brackets included.
MAX_PATH: Final = 256


def _syntax(text: str) -> Refusal:
    return Refusal(501, "5.5.4", text)


def _no_arguments(command: Command) -> Callable[[str], Command | Refusal]:
    def parse(args: str) -> Command | Refusal:
        if args:
            return _syntax(f"Syntax: {command.verb} takes no argument")
        return command

    return parse


def _hello(cls: type[Helo] | type[Ehlo] | type[Lhlo]) -> Callable[[str], Command | Refusal]:
    def parse(args: str) -> Command | Refusal:
        if not args:
            return _syntax(f"Syntax: {cls.verb} hostname")
        reason = ehlo_argument_error(args)
        if reason is not None:
            return _syntax(f"Syntax: {cls.verb} hostname ({reason})")
        return cls(args)

    return parse


def _closing_bracket(text: str) -> int:
    """The index of the ``>`` that closes the path in ``text`` (quotes respected), or -1."""
    i, quoted = 1, False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ">":
            return i
        i += 1
    return -1


def _path(args: str, prefix: str, status: str) -> tuple[str, str] | Refusal:
    """``(address, rest)`` from ``FROM:<path> rest`` (RFC 5321 4.1.2), or a Refusal.

    One space after the colon is tolerated: many clients send it, and
    Postfix and Exim accept it too.
    """
    if args[: len(prefix)].upper() != prefix:
        return _syntax(f"Syntax: expected {prefix}<address>")
    text = args[len(prefix) :]
    if text.startswith(" "):
        text = text[1:]
    if not text.startswith("<"):
        return _syntax(f"Syntax: expected {prefix}<address>, the address in angle brackets")
    i = text.find(">")
    if i < 0 or '"' in text[:i]:
        # A quoted local part may hold a ">": walk it (RFC 5321 4.1.2 Quoted-string).
        i = _closing_bracket(text)
        if i < 0:
            return _syntax("Syntax: the address has no closing '>'")
    # UTF-8 takes at most 4 octets per character: short paths need no encoding.
    if 4 * (i + 1) > MAX_PATH and len(text[: i + 1].encode("utf-8")) > MAX_PATH:
        return Refusal(501, status, f"Path too long (RFC 5321 4.5.3.1.3: {MAX_PATH} octets)")
    inner, rest = text[1:i], text[i + 1 :]
    route = _ROUTE.match(inner)
    if route is not None:
        # RFC 5321 4.1.2 and C: a source route is accepted and ignored.
        for domain in _ROUTE_DOMAIN.findall(route.group(0)):
            if domain_error(domain) is not None:
                return Refusal(501, status, f"Bad source route {route.group(0)!r}")
        inner = inner[route.end() :]
    return inner, rest


def _params(rest: str) -> dict[str, str | None] | Refusal:
    """ESMTP parameters (RFC 5321 4.1.2), names upper-cased; generic and known-value checks."""
    if rest and not rest.startswith(" "):
        return _syntax(f"Syntax: unexpected {rest[:20]!r} after the address")
    params: dict[str, str | None] = {}
    for item in rest.split(" "):
        if not item:
            continue  # several spaces between parameters are tolerated
        name, sep, raw = item.partition("=")
        value = raw if sep else None
        reason = parameter_error(name, value, utf8=True)
        if reason is not None:
            return _syntax(reason)
        key = name.upper()
        if key in params:
            return _syntax(f"parameter {key} given twice")
        params[key] = value
    return params


def _mail(args: str) -> Command | Refusal:
    parsed = _path(args, "FROM:", "5.1.7")
    if isinstance(parsed, Refusal):
        return parsed
    sender, rest = parsed
    if sender and (reason := mailbox_error(sender)):
        return Refusal(501, "5.1.7", f"Bad sender address syntax: {reason}")
    params = _params(rest)
    if isinstance(params, Refusal):
        return params
    return Mail._parsed(sender, params)


def _rcpt(args: str) -> Command | Refusal:
    parsed = _path(args, "TO:", "5.1.3")
    if isinstance(parsed, Refusal):
        return parsed
    recipient, rest = parsed
    if recipient.lower() == "postmaster":
        recipient = "postmaster"  # RFC 5321 4.1.1.3: case-insensitive, no domain
    elif not recipient:
        return Refusal(501, "5.1.3", "Bad recipient address syntax: empty address")
    elif reason := mailbox_error(recipient):
        return Refusal(501, "5.1.3", f"Bad recipient address syntax: {reason}")
    params = _params(rest)
    if isinstance(params, Refusal):
        return params
    return Rcpt._parsed(recipient, params)


def _old_mail(cls: type[Send] | type[Soml] | type[Saml]) -> Callable[[str], Command | Refusal]:
    def parse(args: str) -> Command | Refusal:
        parsed = _path(args, "FROM:", "5.1.7")
        if isinstance(parsed, Refusal):
            return parsed
        sender, rest = parsed
        if rest.strip():
            return _syntax(f"Syntax: {cls.verb} FROM:<address> takes no parameters")
        if sender and (reason := mailbox_error(sender)) is not None:
            return Refusal(501, "5.1.7", f"Bad sender address syntax: {reason}")
        return cls(sender)

    return parse


def _bdat(args: str) -> Command | Refusal:
    # RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF;
    # chunk-size = 1*DIGIT. ASCII digits only: str.isdigit would take others.
    match = _BDAT.fullmatch(args)
    if match is None or not args.isascii():
        return _syntax("Syntax: BDAT chunk-size [LAST] (RFC 3030 2)")
    return Bdat(int(match.group(1)), last=match.group(2) is not None)


def _string(cls: type[Vrfy] | type[Expn]) -> Callable[[str], Command | Refusal]:
    def parse(args: str) -> Command | Refusal:
        if not args.strip():
            return _syntax(f"Syntax: {cls.verb} string")
        return cls(args)

    return parse


def _etrn(args: str) -> Command | Refusal:
    if not args or " " in args or not args.isascii():
        return _syntax("Syntax: ETRN node (RFC 1985 3)")
    return Etrn(args)


def decode_base64(text: str) -> bytes | None:
    """Strict base64 (RFC 4954 4: ``=`` alone is the empty response), or None."""
    if text == "=":
        return b""
    if not text.isascii() or not _BASE64.fullmatch(text):
        return None
    try:
        return binascii.a2b_base64(text.encode("ascii"))
    except binascii.Error:
        return None


def _auth(args: str) -> Command | Refusal:
    mechanism, _, initial = args.partition(" ")
    if not _SASL_MECH.fullmatch(mechanism) or " " in initial:
        return _syntax("Syntax: AUTH mechanism [initial-response] (RFC 4954 4)")
    response: bytes | None = None
    if initial:
        response = decode_base64(initial)
        if response is None:
            return Refusal(501, "5.5.2", "Cannot decode the AUTH initial response (RFC 4954 4)")
    return Auth(mechanism.upper(), response)


_PARSERS: Final[Mapping[str, Callable[[str], Command | Refusal]]] = {
    "HELO": _hello(Helo),
    "EHLO": _hello(Ehlo),
    "LHLO": _hello(Lhlo),
    "MAIL": _mail,
    "RCPT": _rcpt,
    "DATA": _no_arguments(Data()),
    "BDAT": _bdat,
    "RSET": _no_arguments(Rset()),
    "NOOP": Noop,
    "QUIT": _no_arguments(Quit()),
    "VRFY": _string(Vrfy),
    "EXPN": _string(Expn),
    "HELP": Help,
    "SEND": _old_mail(Send),
    "SOML": _old_mail(Soml),
    "SAML": _old_mail(Saml),
    "TURN": _no_arguments(Turn()),
    "ETRN": _etrn,
    "STARTTLS": _no_arguments(StartTLS()),
    "AUTH": _auth,
}


def is_bdat(head: bytes) -> bool:
    """Whether a line starting with ``head`` is a BDAT command, whatever follows the verb."""
    return head[:4].upper() == b"BDAT" and head[4:5] in (b"", b" ")


#: The verbs whose lines may be ``Limits.parameter_line`` or ``auth_line`` long.
PARAMETER_VERBS: Final = frozenset({b"MAIL ", b"RCPT "})
AUTH_VERB: Final = b"AUTH "


def parse_command(line: bytes) -> Command | Refusal:
    """The command on ``line`` (without its CRLF), or why it cannot be accepted.

    Verbs are case-insensitive (RFC 5321 2.4). Trailing spaces are ignored.
    Never raises: every defect of the peer's line is a ``Refusal``.
    """
    verb_bytes, _, raw_args = line.partition(b" ")
    if not _VERB.fullmatch(verb_bytes):
        return Refusal(500, "5.5.1", "Command unrecognized")
    verb = verb_bytes.decode("ascii").upper()
    parser = _PARSERS.get(verb)
    if parser is None:
        return Refusal(500, "5.5.1", f"Command {verb[:12]} unrecognized")
    if _CONTROL.search(raw_args):
        return Refusal(501, "5.5.2", f"{verb} line contains a control character")
    try:
        args = raw_args.decode("utf-8").rstrip(" ")
    except UnicodeDecodeError:
        return Refusal(501, "5.5.2", f"{verb} line is not UTF-8 (RFC 6531 3.3)")
    try:
        return parser(args)
    except LocalProtocolError as exc:  # an event's own check: same verdict, same words
        return _syntax(str(exc))


def parse_auth_response(line: bytes) -> AuthResponse | AuthCancel | Refusal:
    """One line of a SASL exchange after a 334 (RFC 4954 4): data, ``*`` to cancel, or a Refusal."""
    if line == b"*":
        return AuthCancel()
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        text = "\x00"
    data = b"" if not text else decode_base64(text)
    if data is None:
        return Refusal(501, "5.5.2", "Cannot decode the SASL response (RFC 4954 4)")
    return AuthResponse(data)
