"""ServerConnection: the server state machine (RFC 5321 3, 4.1, 4.3.2; LMTP RFC 2033).

How this works: ``receive_data`` appends bytes; ``next_event`` hands out one
event at a time: a command, a piece of message content, the end of the
content, an ``InvalidCommand`` carrying the reply to send, or
``ConnectionClosed``. The server never replies by itself. Every command (and
every end of content) waits for the application's ``send(Reply)`` before the
next event comes out, so the phase that checks a command is always the one
the earlier replies made. The phase moves by the server's machine in
``_state``, the only place a phase changes; a reply the phase does not allow
(354 with no DATA waiting, 235 before ``authenticated()``) raises
``LocalProtocolError``.

The connection owns one buffer of what was received and not yet read. Which
reader takes from it follows the session: command lines (``LineReader``)
unless message content is due, DATA content after the 354 (``DataReader``:
ends only on CRLF.CRLF), a BDAT chunk after its command (``ChunkReader``:
exactly the announced octets, never parsed). ``_content`` is that content
reader, or None while commands are read.

Security rules enforced here, so every session gets them:
- nothing pipelined behind STARTTLS survives the 220 (RFC 3207 5, CVE-2011-0411);
- a bare CR or LF never ends DATA; a message with a bare CR is refused, one
  with a bare LF normalised or refused (``ServerConfig.bare_lf``), in DATA
  and in BDAT content alike (SMTP smuggling);
- a too long line is skipped to its CRLF, never parsed in parts;
- a refused BDAT chunk is read and dropped, never parsed as commands; one
  over ``Limits.skipped_chunk`` octets is answered and the connection closed;
- recipients, errors and message size are bounded by ``Limits``; a RCPT
  over ``Limits.recipients`` gets 452 and is not an error of the client
  (RFC 5321 4.5.3.1.10) until ``Limits.recipient_overshoot`` of them;
- NOOP, RSET, VRFY, EXPN, HELP, ETRN, a repeated EHLO/HELO and ``BDAT 0``
  beyond ``Limits.junk_commands`` count as errors (Postfix's
  smtpd_junk_command_limit), so a client cannot keep a session alive on
  free commands.

Time is not ours to read: ``has_partial_command`` and
``is_receiving_content`` tell the session procedure when a deadline runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from ._commands import (
    AUTH_VERB,
    PARAMETER_VERBS,
    LineReader,
    Refusal,
    is_bdat,
    parse_auth_response,
    parse_command,
)
from ._errors import InvalidArgument, LocalProtocolError
from ._events import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfData,
    Etrn,
    Event,
    Expn,
    Helo,
    Help,
    InvalidCommand,
    Lhlo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
    Turn,
    Vrfy,
    _Need,
)
from ._limits import Limits
from ._state import (
    AUTH_FAILED,
    CHUNK_REFUSED,
    CLOSING_REFUSAL,
    GREETING,
    MORE_DUE,
    PEER_CLOSED,
    SERVER,
    TLS_DONE,
    UNASKED,
    ServerPhase,
    Trigger,
)
from ._unstuff import ChunkReader, DataReader, LineEndCheck

__all__ = ["ServerConfig", "ServerConnection", "ServerPhase"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What a server offers and allows. Frozen: one config serves many connections.

    The extension flags decide both the EHLO/LHLO reply (``ehlo_reply``) and
    what the connection accepts: a parameter or command of an extension not
    offered is refused (RFC 5321 4.1.1.11, 555 / 502).
    """

    hostname: str = "localhost"
    #: Speak LMTP (RFC 2033): LHLO only, one reply per recipient after the data.
    lmtp: bool = False
    #: RFC 1870: the largest message accepted, advertised as ``SIZE n``;
    #: None advertises bare ``SIZE`` (no fixed limit besides Limits.message_size).
    size: int | None = None
    pipelining: bool = True  # RFC 2920
    eightbitmime: bool = True  # RFC 6152
    smtputf8: bool = False  # RFC 6531
    chunking: bool = False  # RFC 3030: BDAT
    binarymime: bool = False  # RFC 3030: needs chunking
    dsn: bool = False  # RFC 3461
    enhanced_status_codes: bool = True  # RFC 2034: status codes in our own replies
    #: RFC 3207: offer STARTTLS while the connection is not yet encrypted.
    starttls: bool = False
    #: RFC 4954: SASL mechanisms offered, upper case.
    auth_mechanisms: tuple[str, ...] = ()
    #: Offer AUTH before TLS too (RFC 4954 4 warns against plaintext mechanisms).
    auth_before_tls: bool = False
    requiretls: bool = False  # RFC 8689: offered over TLS only
    etrn: bool = False  # RFC 1985
    vrfy: bool = True  # RFC 5321 3.5.3: VRFY events (the session answers, 252 is fine)
    expn: bool = False  # RFC 5321 3.5.2; off by default (list harvesting)
    #: SEND, SOML, SAML (RFC 821); off: parsed, then 502.
    legacy_send: bool = False
    #: A line of message content (DATA, or BDAT without BODY=BINARYMIME) that
    #: ends in a bare LF: "normalise" takes it as ending in CRLF (Postfix 3.9's
    #: smtpd_forbid_bare_newline = normalize); "reject" refuses the message
    #: with 550 5.5.2 after its end. Either way only CRLF.CRLF ends DATA and a
    #: message with a bare CR is refused (RFC 5321 2.3.8; SMTP smuggling).
    bare_lf: Literal["normalise", "reject"] = "normalise"

    def __post_init__(self) -> None:
        if self.bare_lf not in ("normalise", "reject"):
            raise InvalidArgument(
                f"ServerConfig.bare_lf must be 'normalise' or 'reject', not {self.bare_lf!r}"
            )
        if self.size is not None and self.size < 0:
            raise InvalidArgument("ServerConfig.size must be None or >= 0")
        object.__setattr__(self, "auth_mechanisms", tuple(m.upper() for m in self.auth_mechanisms))


P = ServerPhase
Awaited = Command | EndOfData | EndOfChunk | InvalidCommand

#: Parsed command lines a connection keeps (see ``_next_line``); bounded, since a
#: client could send a different line every time.
_PARSED_LINES: Final = 16
# Commands that cost the client nothing and move no mail: beyond
# Limits.junk_commands each is also an error (Postfix smtpd_junk_command_limit).
# A repeated hello and an empty BDAT chunk count too (``_junk_event``).
_JUNK: Final = frozenset({Noop, Rset, Vrfy, Expn, Help, Etrn})
# The commands ``_not_offered`` has an opinion on.
_MAY_BE_UNOFFERED: Final = frozenset(
    {Turn, Expn, Vrfy, Send, Soml, Saml, Bdat, Etrn, StartTLS, Auth}
)
_HELLOS: Final = frozenset({Helo, Ehlo, Lhlo})
# What a positive reply must be checked for: every other event takes any 2xx.
_POSITIVE_CHECKED: Final = frozenset(
    {InvalidCommand, AuthCancel, Auth, AuthResponse, StartTLS, Quit}
)

# MAIL parameters and the offer each needs (RFC 5321 4.1.1.11).
_MAIL_PARAMS: Final = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH", "REQUIRETLS"})


def _name(event: Awaited) -> str:
    if isinstance(event, (EndOfData, EndOfChunk)):
        return "the end of the content"
    if isinstance(event, InvalidCommand):
        return "an invalid command"
    if isinstance(event, AuthResponse):
        return "an AUTH response"
    return event.verb


@dataclass(slots=True)
class _Transaction:
    sender: str | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)
    recipient_params: list[Mapping[str, str | None]] = field(default_factory=list)
    chunked: bool = False  # a BDAT chunk was accepted (RFC 3030 2: no DATA now)
    size: int = 0  # octets of BDAT chunks announced so far
    line_ends: LineEndCheck | None = None  # BDAT content: line ends seen so far
    overshoot: int = 0  # RCPTs refused 452 because of Limits.recipients


@dataclass(slots=True)
class _Chunk:
    """The BDAT chunk being read: its octets, and what comes out once they are all here."""

    reader: ChunkReader
    end: EndOfData | EndOfChunk | InvalidCommand
    last: bool  # BDAT ... LAST: in LMTP, one reply per recipient even when refused


class ServerConnection:
    """The server side of one SMTP (or LMTP) connection, without I/O.

    ``receive_data(bytes)`` takes what was read (``b""``: the client closed);
    ``next_event()`` returns the next ``Command``, ``MessageData``,
    ``EndOfChunk``, ``EndOfData``, ``InvalidCommand`` (with the reply to
    send), ``ConnectionClosed`` or ``NEED_DATA``; ``send(Reply)`` returns the
    reply's bytes and moves the phase on a positive reply.

    Every command, ``EndOfChunk``, ``EndOfData`` and ``InvalidCommand`` must
    be answered with ``send`` before ``next_event`` is called again (LMTP:
    one reply per accepted recipient after the end of the content).
    ``next_event`` raises ``LocalProtocolError`` when a reply is still due;
    ``send`` raises it for a reply the phase does not allow. The receiving
    side never raises: what the client does wrong comes out as an
    ``InvalidCommand``.

    The greeting is ours to send first: ``send(Reply(220, ...))`` (or 554,
    RFC 5321 3.1). No event comes out before it; a client that talked first
    gets ``InvalidCommand`` 554 and the connection closes after it (RFC 5321
    4.3.1 lets the client speak only after the greeting). After any 421 or
    the 221 to QUIT, ``phase`` is ``CLOSED``: the transport closes.

    ``tls=True`` says the connection is already encrypted (implicit TLS).
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        limits: Limits | None = None,
        *,
        tls: bool = False,
    ) -> None:
        self.config = config if config is not None else ServerConfig()
        self.limits = limits if limits is not None else Limits()
        self._buffer = bytearray()  # received, not yet read; every reader takes from it
        self._lines = LineReader(self._buffer)
        # Limits.shortest_line of the limits last used (see _next_line): they may be replaced.
        self._fits_limits: Limits | None = None
        self._fits = 0
        self._parsed: dict[bytes, Command] = {}  # see _next_line
        self._state = SERVER.start
        self._is_tls = tls
        self._esmtp = False
        self._hello_domain: str | None = None
        self._identity: str | None = None
        self._pending_identity: str | None = None
        self._transaction = _Transaction()
        self._awaiting: Awaited | None = None
        self._replies_left = 0  # LMTP: replies still due for the end of the content
        self._content: DataReader | _Chunk | None = None  # the message content due, if any
        self._errors = 0
        self._junk = 0  # junk commands since the session began or a message was accepted
        self._early_talker = False
        self._peer_closed = False
        self._closing = False  # close once the pending InvalidCommand is answered

    # -- state ------------------------------------------------------------

    @property
    def phase(self) -> ServerPhase:
        """Where the replies sent so far put the session."""
        return self._state.phase

    @property
    def is_tls(self) -> bool:
        """Whether the connection is encrypted (implicit TLS or after STARTTLS)."""
        return self._is_tls

    @property
    def is_esmtp(self) -> bool:
        """Whether the client greeted with EHLO or LHLO (extensions are in force)."""
        return self._esmtp

    @property
    def hello_domain(self) -> str | None:
        """The argument of the accepted EHLO/HELO/LHLO, None before one."""
        return self._hello_domain

    @property
    def is_authenticated(self) -> bool:
        """Whether an AUTH exchange ended with 235 in this TLS state."""
        return self._identity is not None

    @property
    def identity(self) -> str | None:
        """The authenticated identity given to ``authenticated()``, once 235 was sent."""
        return self._identity

    @property
    def sender(self) -> str | None:
        """The reverse-path of the open transaction (``""`` for ``<>``), None outside one."""
        return self._transaction.sender

    @property
    def mail_params(self) -> Mapping[str, str | None]:
        """The MAIL parameters of the open transaction."""
        return MappingProxyType(dict(self._transaction.params))

    @property
    def recipients(self) -> tuple[str, ...]:
        """The accepted recipients of the open transaction, in order."""
        return tuple(self._transaction.recipients)

    @property
    def recipient_params(self) -> tuple[Mapping[str, str | None], ...]:
        """The RCPT parameters of each accepted recipient, in order."""
        return tuple(self._transaction.recipient_params)

    @property
    def is_smtputf8(self) -> bool:
        """Whether the open transaction's MAIL asked for SMTPUTF8 (RFC 6531)."""
        return "SMTPUTF8" in self._transaction.params

    @property
    def body(self) -> str | None:
        """The BODY parameter of the open transaction, upper case (RFC 6152, 3030)."""
        value = self._transaction.params.get("BODY")
        return value.upper() if value else None

    @property
    def size_limit(self) -> int | None:
        """The largest message accepted: the smaller of ServerConfig.size and Limits."""
        sizes = [s for s in (self.config.size, self.limits.message_size) if s is not None]
        return min(sizes) if sizes else None

    @property
    def awaiting(self) -> Awaited | None:
        """The event the next ``send`` answers, None when no reply is due."""
        return self._awaiting

    # -- replies we build -------------------------------------------------

    def _reply(self, code: int, status: str, text: str) -> Reply:
        if self.config.enhanced_status_codes:
            return Reply(code, (f"{status} {text}",))
        return Reply(code, (text,))

    def _offers_auth(self) -> bool:
        return bool(self.config.auth_mechanisms) and (self._is_tls or self.config.auth_before_tls)

    def extension_lines(self) -> tuple[str, ...]:
        """The EHLO keywords offered now (RFC 5321 4.1.1.1), one per line."""
        cfg = self.config
        lines: list[str] = []
        if cfg.pipelining:
            lines.append("PIPELINING")
        limit = self.size_limit
        lines.append("SIZE" if limit is None else f"SIZE {limit}")
        if cfg.eightbitmime:
            lines.append("8BITMIME")
        if cfg.smtputf8:
            lines.append("SMTPUTF8")
        if cfg.chunking:
            lines.append("CHUNKING")
            if cfg.binarymime:
                lines.append("BINARYMIME")
        if cfg.dsn:
            lines.append("DSN")
        if cfg.enhanced_status_codes:
            lines.append("ENHANCEDSTATUSCODES")
        if cfg.etrn:
            lines.append("ETRN")
        if cfg.starttls and not self._is_tls:
            lines.append("STARTTLS")  # RFC 3207 4.2: not after the handshake
        if self._offers_auth():
            lines.append("AUTH " + " ".join(cfg.auth_mechanisms))
        if cfg.requiretls and self._is_tls:
            lines.append("REQUIRETLS")  # RFC 8689 4: offered over TLS only
        return tuple(lines)

    def ehlo_reply(self, greeting: str = "") -> Reply:
        """The 250 reply to EHLO/LHLO: the hostname, then one keyword per line.

        ``ehlo-ok-rsp`` of RFC 5321 4.1.1.1: ``250-domain [greet]``, then
        ``250-keyword [params]``, the last with ``250 ``.
        """
        first = f"{self.config.hostname} {greeting}".rstrip()
        return Reply(250, (first, *self.extension_lines()))

    def greeting_reply(self, text: str = "ESMTP") -> Reply:
        """The 220 greeting (RFC 5321 4.2: ``220 domain text``)."""
        if self.config.lmtp and text == "ESMTP":
            text = "LMTP"
        return Reply(220, (f"{self.config.hostname} {text}".rstrip(),))

    @property
    def has_partial_command(self) -> bool:
        """Whether part of a command line (or SASL response) has arrived, but not its CRLF.

        The session procedure starts its per-command deadline then (Postfix
        smtpd_per_record_deadline): a line trickled a byte at a time must
        still be complete within the idle timeout.
        """
        if self._content is not None:
            return False
        if self._state.phase in (P.GREETING, P.TLS, P.CLOSED):
            return False
        return self._lines.in_line

    @property
    def is_receiving_content(self) -> bool:
        """Whether message content (DATA after 354, or a BDAT chunk) is due and not all here.

        False as soon as ``next_event`` has found the end of the content,
        before the end's own event comes out.
        """
        content = self._content
        if isinstance(content, DataReader):
            return not content.done
        return content is not None and content.reader.left > 0

    # -- receiving --------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Take bytes read from the client; ``b""`` means the client closed.

        Bytes that arrive while the TLS handshake is due, or after we closed,
        are dropped (RFC 3207 5: nothing sent before the handshake may count).
        """
        if not data:
            self._peer_closed = True
            return
        phase = self._state.phase
        if phase is P.GREETING:
            self._early_talker = True
        if phase is P.TLS or phase is P.CLOSED:
            return
        self._buffer += data

    def next_event(self) -> Event | _Need:
        """The next event, or ``NEED_DATA``.

        Raises ``LocalProtocolError`` when the reply to the previous event
        has not been sent.
        """
        if self._awaiting is not None:
            raise LocalProtocolError(
                f"send the reply to {_name(self._awaiting)} before asking for the next event"
            )
        phase = self._state.phase
        if phase in (P.GREETING, P.TLS, P.CLOSED):
            if self._peer_closed:
                self._state = self._state.on(PEER_CLOSED)
                return ConnectionClosed()
            return NEED_DATA
        if self._early_talker:
            # The client spoke before our greeting (Postfix: "improper command
            # pipelining after CONNECT"); it does not wait for replies.
            self._early_talker = False
            self._lines.clear()
            return self._invalid(
                "client sent data before the greeting",
                self._reply(554, "5.5.0", "Protocol error: data sent before the greeting"),
                close=True,
            )
        content = self._content
        if content is None:
            return self._next_line()
        if isinstance(content, DataReader):
            return self._next_data(content)
        return self._next_chunk(content)

    def _closed(self) -> ConnectionClosed:
        self._state = self._state.on(PEER_CLOSED)
        self._lines.clear()
        return ConnectionClosed()

    def _error_limit_reply(self) -> Reply:
        # Limits.errors, like Postfix's smtpd_hard_error_limit.
        return self._reply(421, "4.7.0", f"{self.config.hostname} Error limit reached, closing")

    def _invalid(
        self, reason: str, reply: Reply, *, close: bool = False, counted: bool = True
    ) -> InvalidCommand:
        """An InvalidCommand to answer; beyond Limits.errors it becomes 421 and closes.

        ``counted`` false: not an error of the client (452 too many recipients).
        """
        self._errors += counted
        if self._errors > self.limits.errors and not close:
            reply = self._error_limit_reply()
            close = True
        self._closing = close
        event = InvalidCommand(reason, reply)
        self._awaiting = event
        return event

    def _refuse(
        self, refusal: Refusal, *, close: bool = False, counted: bool = True
    ) -> InvalidCommand:
        reply = self._reply(refusal.code, refusal.status, refusal.text)
        return self._invalid(refusal.text, reply, close=close, counted=counted)

    def _limit_of(self, start: bytes) -> int:
        if self._state.phase is P.AUTH:
            return self.limits.auth_line
        start = start.upper()
        if start in PARAMETER_VERBS:
            return max(self.limits.parameter_line, self.limits.command_line)
        if start == AUTH_VERB:
            return max(self.limits.auth_line, self.limits.command_line)
        return self.limits.command_line

    def _next_line(self) -> Event | _Need:
        limits = self.limits
        if limits is not self._fits_limits:
            self._fits_limits = limits
            self._fits = limits.shortest_line
        line = self._lines.take_line(self._limit_of, self._fits)
        if line is None:
            return self._closed() if self._peer_closed else NEED_DATA
        if isinstance(line, int):
            # RFC 5321 4.5.3.1.4 and 4.5.3.1.10: "500 Line too long".
            limit = self._limit_of(b"")
            if self._state.phase is P.AUTH:
                self._state = self._state.on(AUTH_FAILED)  # the exchange is over
                close = False
            else:
                # A BDAT whose size is too long to read: its octets cannot be
                # skipped and would be read as commands (RFC 3030 2). Close.
                close = is_bdat(self._lines.long_head)
            too_long = Refusal(500, "5.5.2", f"Line too long (limit {limit} octets)")
            return self._refuse(too_long, close=close)
        if self._state.phase is P.AUTH:
            response = parse_auth_response(line)
            if isinstance(response, Refusal):
                self._state = self._state.on(AUTH_FAILED)  # RFC 4954 4: it fails with 501
                return self._refuse(response)
            self._awaiting = response
            return response
        known = self._parsed.get(line)
        command = parse_command(line) if known is None else known
        if known is None and not isinstance(command, Refusal):
            # The lines a client repeats for every message (its MAIL and RCPT,
            # DATA) are parsed once per connection: a parsed command is an
            # immutable value, and parsing needs nothing but the line.
            if len(self._parsed) >= _PARSED_LINES:
                self._parsed.clear()
            self._parsed[line] = command
        if isinstance(command, Bdat):
            return self._start_chunk(command)
        if isinstance(command, Refusal):
            # A malformed BDAT leaves its octets unknown: they would be read as
            # commands. Close rather than parse content (RFC 3030 2).
            return self._refuse(command, close=is_bdat(line[:5]))
        refusal = self._check(command)
        if refusal is not None:
            if refusal.code == 452 and isinstance(command, Rcpt):
                # RFC 5321 4.5.3.1.10: too many recipients is not the client's
                # error; it goes on with those accepted. Only an overshoot
                # beyond Limits.recipient_overshoot counts (Postfix does too).
                self._transaction.overshoot += 1
                counted = self._transaction.overshoot > self.limits.recipient_overshoot
                return self._refuse(refusal, counted=counted)
            return self._refuse(refusal)
        kind = type(command)
        if kind in _JUNK or (kind in _HELLOS and self._state.phase is not P.HELLO):
            # A second EHLO/HELO moves no mail either (after STARTTLS the
            # phase is HELLO again, and that EHLO is required).
            junk = self._junk_event(command)
            if junk is not None:
                return junk
        self._awaiting = command
        return command

    def _junk_event(self, command: Command) -> InvalidCommand | None:
        """Count one junk command; the 421 to send instead once errors run out."""
        self._junk += 1
        if self._junk <= self.limits.junk_commands:
            return None
        # Postfix: past smtpd_junk_command_limit each one is an error.
        # The command is still answered until the errors run out.
        self._errors += 1
        if self._errors <= self.limits.errors:
            return None
        reason = (
            f"{command.verb} beyond Limits.junk_commands "
            f"({self.limits.junk_commands}) reached Limits.errors "
            f"({self.limits.errors})"
        )
        self._closing = True
        event = InvalidCommand(reason, self._error_limit_reply())
        self._awaiting = event
        return event

    # -- checks of a well-formed command ---------------------------------------

    def _check(self, command: Command) -> Refusal | None:
        """Why ``command`` cannot be accepted now, or None."""
        # The state table names exact classes: the command classes are final.
        kind = type(command)
        if kind in _HELLOS:
            if (kind is Lhlo) is not self.config.lmtp:
                if kind is Lhlo:
                    return Refusal(500, "5.5.1", "Command LHLO unrecognized")
                return Refusal(
                    500, "5.5.1", f"Command {command.verb} unrecognized: use LHLO (RFC 2033 4.1)"
                )
        elif kind in _MAY_BE_UNOFFERED and self._not_offered(command):
            return Refusal(502, "5.5.1", f"Command {command.verb} not implemented")
        if not self._state.allows(kind):
            return Refusal(503, "5.5.1", self._sequence_text(command))
        if isinstance(command, Mail):
            return self._check_mail(command)
        if isinstance(command, Rcpt):
            return self._check_rcpt(command)
        if kind is Data:
            if self._transaction.chunked:
                return Refusal(503, "5.5.1", "DATA after BDAT in one transaction (RFC 3030 2)")
            if self.body == "BINARYMIME":
                return Refusal(503, "5.5.1", "BODY=BINARYMIME needs BDAT, not DATA (RFC 3030 3)")
        elif kind is StartTLS and self._is_tls:
            return Refusal(503, "5.5.1", "TLS already active")
        elif isinstance(command, Auth):
            return self._check_auth(command)
        return None

    def _not_offered(self, command: Command) -> bool:
        """Whether ``command`` belongs to something this configuration does not offer."""
        cfg = self.config
        if isinstance(command, Turn):
            return True  # RFC 821 TURN: no authentication of the new server; never
        if isinstance(command, Expn):
            return not cfg.expn
        if isinstance(command, Vrfy):
            return not cfg.vrfy
        if isinstance(command, (Send, Soml, Saml)):
            return not cfg.legacy_send
        if isinstance(command, Bdat):
            return not (cfg.chunking and self._esmtp)  # RFC 3030 2
        if isinstance(command, Etrn):
            return not (cfg.etrn and self._esmtp)
        if isinstance(command, StartTLS):
            return not (cfg.starttls and (self._esmtp or self._state.phase is P.HELLO))
        if isinstance(command, Auth):
            return not (cfg.auth_mechanisms and (self._esmtp or self._state.phase is P.HELLO))
        return False

    def _sequence_text(self, command: Command) -> str:
        phase = self._state.phase
        if phase is P.REFUSED:
            return "Bad sequence of commands: only QUIT (RFC 5321 3.1)"
        if phase is P.HELLO:
            return "Bad sequence of commands: send EHLO or HELO first"
        if phase is P.BDAT:
            return f"Bad sequence of commands: {command.verb} between BDAT chunks (RFC 3030 2)"
        if isinstance(command, (Mail, Send, Soml, Saml)):
            return "Bad sequence of commands: nested MAIL command"
        if isinstance(command, Rcpt):
            return "Bad sequence of commands: need MAIL before RCPT"
        if isinstance(command, (Data, Bdat)):
            if phase is P.MAIL:
                return "Bad sequence of commands: need RCPT before " + command.verb
            return "Bad sequence of commands: need MAIL and RCPT before " + command.verb
        if isinstance(command, (Auth, StartTLS)):
            return f"Bad sequence of commands: {command.verb} inside a mail transaction"
        return f"Bad sequence of commands: {command.verb}"

    def _check_auth(self, command: Auth) -> Refusal | None:
        if self._identity is not None:
            return Refusal(503, "5.5.1", "Already authenticated (RFC 4954 4)")
        if not self._offers_auth():
            # RFC 4954 6: 538 when the mechanism needs an encrypted channel.
            return Refusal(
                538, "5.7.11", "Encryption required for requested authentication mechanism"
            )
        if command.mechanism not in self.config.auth_mechanisms:
            return Refusal(504, "5.5.4", f"Unrecognized authentication type {command.mechanism}")
        return None

    def _param_refusal(self, name: str, value: str | None, *, mail: bool) -> Refusal | None:
        cfg = self.config
        if not self._esmtp:
            offered = False  # HELO: no extension is in force (RFC 5321 4.1.1.1)
        elif mail:
            offered = {
                "SIZE": True,
                "BODY": cfg.eightbitmime or (cfg.binarymime and cfg.chunking),
                "SMTPUTF8": cfg.smtputf8,
                "RET": cfg.dsn,
                "ENVID": cfg.dsn,
                "AUTH": self._offers_auth(),
                "REQUIRETLS": cfg.requiretls and self._is_tls,
            }.get(name, False)
        else:
            offered = name in ("NOTIFY", "ORCPT") and cfg.dsn
        if not offered:
            # RFC 5321 4.1.1.11: 555 for a parameter not recognized.
            return Refusal(555, "5.5.4", f"Parameter {name} not recognized or not implemented")
        if name == "BODY":
            body = (value or "").upper()
            if (body == "8BITMIME" and not cfg.eightbitmime) or (
                body == "BINARYMIME" and not (cfg.binarymime and cfg.chunking)
            ):
                return Refusal(555, "5.5.4", f"BODY={body} not implemented")
        return None

    def _check_mail(self, command: Mail) -> Refusal | None:
        for name, value in command.params.items():
            refusal = self._param_refusal(name, value, mail=True)
            if refusal is not None:
                return refusal
        utf8 = "SMTPUTF8" in command.params
        if not utf8:
            if not command.sender.isascii():
                # RFC 6531 3.5 / 3.7.4.1: X.6.7, non-ASCII address without SMTPUTF8.
                return Refusal(553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8")
            if any(v is not None and not v.isascii() for v in command.params.values()):
                return Refusal(501, "5.5.4", "Non-ASCII parameter value needs SMTPUTF8")
        size = command.params.get("SIZE")
        limit = self.size_limit
        if size is not None and limit is not None and int(size) > limit:
            # RFC 1870 6.1: 552 when the declared size exceeds the fixed limit.
            return Refusal(552, "5.3.4", f"Message size exceeds fixed limit of {limit} octets")
        return None

    def _check_rcpt(self, command: Rcpt) -> Refusal | None:
        for name, value in command.params.items():
            refusal = self._param_refusal(name, value, mail=False)
            if refusal is not None:
                return refusal
        if not self.is_smtputf8:
            if not command.recipient.isascii():
                return Refusal(553, "5.6.7", "Non-ASCII recipient address needs SMTPUTF8")
            if any(v is not None and not v.isascii() for v in command.params.values()):
                return Refusal(501, "5.5.4", "Non-ASCII parameter value needs SMTPUTF8")
        if len(self._transaction.recipients) >= self.limits.recipients:
            # RFC 5321 4.5.3.1.10: 452 for too many recipients.
            return Refusal(452, "4.5.3", f"Too many recipients (limit {self.limits.recipients})")
        return None

    # -- DATA and BDAT ----------------------------------------------------------

    def _next_data(self, reader: DataReader) -> Event | _Need:
        buffer = self._buffer
        while buffer and not reader.done:
            content, consumed = reader.feed(bytes(buffer))
            del buffer[:consumed]
            if content:
                return MessageData(content)
        if not reader.done:
            return self._closed() if self._peer_closed else NEED_DATA
        self._content = None
        end = self._end_of_data(reader)
        self._awaiting = end
        self._replies_left = self._lmtp_replies()
        return end

    def _end_of_data(self, reader: DataReader) -> EndOfData | InvalidCommand:
        if self._has_bare_newline(reader):
            return self._bare_newline()
        if reader.is_oversize:
            return self._oversize()
        return EndOfData()

    def _has_bare_newline(self, seen: DataReader | LineEndCheck) -> bool:
        """Whether the content broke the line-end rule this server keeps."""
        return seen.has_bare_cr or (seen.has_bare_lf and self.config.bare_lf == "reject")

    def _bare_newline(self) -> InvalidCommand:
        # RFC 5321 2.3.8: CR and LF only as CRLF. Postfix answers
        # "550 5.5.2 Error: bare <LF> received" (smtpd_forbid_bare_newline).
        reply = self._reply(
            550, "5.5.2", "Message refused: bare CR or LF in the content (RFC 5321 2.3.8)"
        )
        return InvalidCommand("bare CR or LF in the message content", reply)

    def _oversize(self) -> InvalidCommand:
        limit = self.size_limit
        reply = self._reply(552, "5.3.4", f"Message size exceeds fixed limit of {limit} octets")
        return InvalidCommand(f"message larger than {limit} octets", reply)

    def _lmtp_replies(self) -> int:
        # RFC 2033 4.2: one reply per accepted recipient after the content.
        return max(len(self._transaction.recipients), 1) if self.config.lmtp else 1

    def _start_chunk(self, command: Bdat) -> Event | _Need:
        refusal = self._check(command)
        transaction = self._transaction
        if refusal is None:
            limit = self.size_limit
            if limit is not None and transaction.size + command.size > limit:
                return self._skip_chunk(command, self._oversize())
            if command.size == 0 and not command.last:
                junk = self._junk_event(command)  # an empty chunk moves nothing
                if junk is not None:
                    self._chunk_refused()
                    return junk
            transaction.size += command.size
            if transaction.line_ends is None and self.body != "BINARYMIME":
                # RFC 3030 3: only BINARYMIME content is octets rather than lines.
                normalise = self.config.bare_lf == "normalise"
                transaction.line_ends = LineEndCheck(normalise_lf=normalise)
            end = EndOfData() if command.last else EndOfChunk()
            self._content = _Chunk(ChunkReader(command.size), end, command.last)
            return command
        reply = self._reply(refusal.code, refusal.status, refusal.text)
        return self._skip_chunk(command, InvalidCommand(refusal.text, reply))

    def _skip_chunk(self, command: Bdat, end: InvalidCommand) -> Event | _Need:
        """A refused chunk: read and dropped (RFC 3030 2), or answered at once and closed."""
        if command.size > self.limits.skipped_chunk:
            # Postfix hangs up rather than read a refused chunk this large.
            self._chunk_refused()
            return self._invalid(end.reason, end.reply, close=True)
        chunk = _Chunk(ChunkReader(command.size, discard=True), end, command.last)
        self._content = chunk
        return self._next_chunk(chunk)

    def _next_chunk(self, chunk: _Chunk) -> Event | _Need:
        reader = chunk.reader
        buffer = self._buffer
        line_ends = None if reader.discard else self._transaction.line_ends
        if reader.left:
            piece = reader.take(bytes(buffer[: reader.left]))
            del buffer[: len(piece)]
            if line_ends is not None and piece:
                piece = line_ends.feed(piece)
            if piece and not reader.discard:
                return MessageData(piece)
            if reader.left:
                return self._closed() if self._peer_closed else NEED_DATA
        end = chunk.end
        if line_ends is not None and isinstance(end, EndOfData):
            line_ends.end()  # a CR held at the very end is bare: refused below
            if self._has_bare_newline(line_ends):
                end = self._bare_newline()
        self._content = None
        if isinstance(end, InvalidCommand):
            # RFC 2033 4.2 with RFC 3030: a LAST chunk, refused or not, gets one
            # reply per accepted recipient (the client counts them).
            replies = self._lmtp_replies() if chunk.last else 1
            self._chunk_refused()
            event = self._invalid(end.reason, end.reply)
            self._replies_left = replies
            return event
        self._awaiting = end
        self._replies_left = self._lmtp_replies() if isinstance(end, EndOfData) else 1
        return end

    # -- sending ----------------------------------------------------------

    def authenticated(self, identity: str) -> None:
        """The SASL exchange in progress succeeded for ``identity``; send 235 next (RFC 4954 4).

        Raises ``LocalProtocolError`` when no AUTH exchange is waiting for its reply.
        """
        if not isinstance(self._awaiting, (Auth, AuthResponse)):
            raise LocalProtocolError("no AUTH exchange is waiting for its outcome")
        self._pending_identity = identity

    def send(self, reply: Reply) -> bytes:
        """The bytes of ``reply``; the session moves on when the reply is positive.

        Raises ``LocalProtocolError``, changing nothing, when no event waits
        for a reply (except the greeting and an unsolicited 421, RFC 5321
        3.8), or when the reply does not fit what it answers.
        """
        if not isinstance(reply, Reply):
            raise LocalProtocolError(f"a server sends replies, not {type(reply).__name__}")
        state = self._state
        if state.phase is P.CLOSED:
            raise LocalProtocolError("the connection is closed")
        awaiting = self._awaiting
        code = reply.code
        trigger = self._trigger(awaiting)
        after = state.after_reply(trigger, code)
        wire = reply.to_bytes()
        if awaiting is None:
            if after is None:
                if state.phase is not P.GREETING:
                    raise LocalProtocolError(f"no command is waiting for reply {code}")
                raise LocalProtocolError(f"greeting {code}: RFC 5321 3.1 allows 220, 554 or 421")
            self._state = after
            return wire
        if after is None and 300 <= code < 400:
            raise LocalProtocolError(f"reply {code} cannot answer {_name(awaiting)}")
        self._check_reply(awaiting, reply)
        if after is None:
            raise LocalProtocolError(f"reply {code} cannot answer {_name(awaiting)}")
        self._apply(awaiting, reply, trigger)
        self._state = after
        return wire

    def _trigger(self, awaiting: Awaited | None) -> Trigger:
        """What the next reply answers, as the state table names it."""
        if awaiting is None:
            return GREETING if self._state.phase is P.GREETING else UNASKED
        if isinstance(awaiting, InvalidCommand):
            if self._replies_left > 1:
                return MORE_DUE
            return CLOSING_REFUSAL if self._closing else InvalidCommand
        if isinstance(awaiting, (EndOfData, EndOfChunk)) and self._replies_left > 1:
            return MORE_DUE
        return type(awaiting)

    def _check_reply(self, awaiting: Awaited, reply: Reply) -> None:
        code = reply.code
        if 200 <= code < 300 and type(awaiting) not in _POSITIVE_CHECKED:
            return  # any 2xx answers the other commands and the end of content
        if isinstance(awaiting, InvalidCommand):
            if reply.is_positive or reply.is_intermediate:
                raise LocalProtocolError(f"reply {code} would accept {awaiting.reason!r}")
            return
        if not reply.is_positive:
            return
        if isinstance(awaiting, AuthCancel):
            raise LocalProtocolError("a cancelled AUTH exchange is answered 501 (RFC 4954 4)")
        if isinstance(awaiting, (Auth, AuthResponse)) and (
            code != 235 or self._pending_identity is None
        ):
            raise LocalProtocolError("call authenticated(identity) and send 235 to end AUTH")
        if isinstance(awaiting, StartTLS) and code != 220:
            raise LocalProtocolError(f"reply {code} to STARTTLS: the go-ahead is 220 (RFC 3207 4)")
        if isinstance(awaiting, Quit) and code != 221:
            raise LocalProtocolError(f"reply {code} to QUIT: it is 221 (RFC 5321 4.1.1.10)")

    def _apply(self, awaiting: Awaited, reply: Reply, trigger: Trigger) -> None:
        """What a reply does besides moving the phase, before the move."""
        code = reply.code
        if code == 421:
            self._awaiting = None
            return
        if isinstance(awaiting, EndOfData) and 200 <= code < 300:
            self._junk = 0  # a message was accepted (Postfix resets its junk count too)
        if trigger is MORE_DUE:
            self._replies_left -= 1  # LMTP: more per-recipient replies are due
            return
        self._awaiting = None
        self._replies_left = 0
        phase = self._state.phase
        if isinstance(awaiting, InvalidCommand):
            if phase is P.DATA or phase is P.BDAT:
                self._transaction = _Transaction()  # the refused content ends it
            return
        if code == 354:
            self._content = DataReader(
                normalise_lf=self.config.bare_lf == "normalise", max_size=self.size_limit
            )
            return
        if not 200 <= code < 300:
            if isinstance(awaiting, (EndOfData, EndOfChunk)):
                self._transaction = _Transaction()  # the transaction failed and is over
            return
        if isinstance(awaiting, Rcpt):
            transaction = self._transaction
            transaction.recipients.append(awaiting.recipient)
            transaction.recipient_params.append(awaiting.params)
        elif isinstance(awaiting, Mail):
            self._transaction = _Transaction(sender=awaiting.sender, params=awaiting.params)
        elif isinstance(awaiting, (EndOfData, Rset)):
            self._transaction = _Transaction()
        elif isinstance(awaiting, (Helo, Ehlo, Lhlo)):
            self._esmtp = not isinstance(awaiting, Helo)
            self._hello_domain = awaiting.domain
            self._transaction = _Transaction()
        elif isinstance(awaiting, (Send, Soml, Saml)):
            self._transaction = _Transaction(sender=awaiting.sender)
        elif isinstance(awaiting, EndOfChunk):
            self._transaction.chunked = True
        elif isinstance(awaiting, StartTLS):
            # RFC 3207 5: whatever the client pipelined behind STARTTLS is dropped.
            self._lines.clear()
        elif isinstance(awaiting, (Auth, AuthResponse)):
            self._identity = self._pending_identity
            self._pending_identity = None

    def _chunk_refused(self) -> None:
        """A BDAT chunk was refused: inside a transaction, the transaction failed (RFC 3030 2)."""
        before = self._state
        self._state = before.on(CHUNK_REFUSED)
        if self._state is not before:
            self._transaction = _Transaction()

    # -- transport reports --------------------------------------------------

    def tls_established(self) -> None:
        """The transport finished the TLS handshake after our 220 to STARTTLS.

        Everything is forgotten: the greeting, extensions, authentication and
        any bytes received since the 220; EHLO is required again (RFC 3207
        4.2). Raises ``LocalProtocolError`` outside that moment.
        """
        self._state = self._state.on(TLS_DONE)
        self._is_tls = True
        self._lines.clear()
        self._esmtp = False
        self._hello_domain = None
        self._identity = None
        self._pending_identity = None
        self._transaction = _Transaction()
