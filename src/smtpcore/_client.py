"""ClientConnection: the client state machine (RFC 5321 3, 4.1, 4.3.2).

How this works: ``send`` turns a command into bytes after checking that the
session allows it now; each command then waits in ``_pending`` for its reply.
``receive_data`` feeds the reply parser; ``next_event`` ties each complete
reply to the oldest pending command and moves the phase by the client's
machine in ``_state``, the only place a phase changes.

Two phases are tracked. ``_state`` is where the replies received so far put
us. ``_assumed`` is where we will be if every pending command succeeds: with
PIPELINING (RFC 2920) a client sends RCPT before the reply to MAIL arrives,
so sequence checks use the assumed phase. A negative reply recomputes it.

Replies are parsed as they arrive, and counted against ``_owed``: the replies
the commands sent so far may still get (RFC 5321 4.3.1: one each; LMTP's end
of data one per recipient). A reply that begins while nothing is owed answers
no command, so it cannot be paired with one sent later (RFC 2920 3.2): it is a
``RemoteProtocolError`` at once, before anything more is sent. Only 421 may
come unasked (RFC 5321 3.8).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Final

from ._data import DotStuffer
from ._errors import LocalProtocolError, RemoteProtocolError
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
    EndOfData,
    Etrn,
    Expn,
    Helo,
    Lhlo,
    Mail,
    MessageData,
    Rcpt,
    Reply,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
    Vrfy,
    _Need,
)
from ._extensions import Extensions
from ._limits import Limits
from ._replies import ReplyParser
from ._state import (
    BDAT_LAST,
    CLIENT,
    FAILED,
    GREETING,
    MORE_DUE,
    PEER_CLOSED,
    TLS_DONE,
    UNASKED,
    ClientPhase,
    Trigger,
    trigger_of,
)

__all__ = ["ClientConnection", "ClientPhase"]


P = ClientPhase
Sendable = Command | EndOfData

# RFC 2920 3.1: these may be followed by more commands before their reply
# arrives; any other command ends a pipelined group. The end of the message
# content may be followed too ("the actual transfer of message content is
# explicitly allowed to be the first command in a group"), and BDAT chunks
# may follow each other (RFC 3030 4.2).
_GROUPABLE: Final = frozenset({Mail, Rcpt, Rset, Send, Soml, Saml, EndOfData, Bdat})

# A positive reply to these changes more than the phase (see _succeeded).
_SUCCESS_CHANGES: Final = frozenset({Rcpt, Ehlo, Lhlo, Helo, Auth, AuthResponse, StartTLS})

# Sending these forgets the open transaction's facts (see _end_transaction).
_ENDS_TRANSACTION: Final = frozenset({Mail, Send, Soml, Saml, Rset, Ehlo, Helo, Lhlo})

# The EHLO keyword each MAIL/RCPT parameter needs (RFC 5321 4.1.1.11: a client
# must not use a parameter the server did not offer).
_PARAMETER_KEYWORD: Final[Mapping[str, str]] = {
    "SIZE": "SIZE",
    "SMTPUTF8": "SMTPUTF8",
    "RET": "DSN",
    "ENVID": "DSN",
    "NOTIFY": "DSN",
    "ORCPT": "DSN",
    "REQUIRETLS": "REQUIRETLS",
    "AUTH": "AUTH",
}
_BODY_KEYWORD: Final[Mapping[str, tuple[str, ...]]] = {
    "7BIT": ("8BITMIME", "BINARYMIME"),
    "8BITMIME": ("8BITMIME",),
    "BINARYMIME": ("BINARYMIME",),
}


_BARE_LINE_END: Final = (
    "BDAT content with a bare CR or LF: SMTP lines end in CRLF unless MAIL declared "
    "BODY=BINARYMIME (RFC 5321 2.3.8, RFC 3030 3); normalise the line ends first"
)


def _not_allowed(
    phase: ClientPhase, command: Sendable | None, code: int, lines: tuple[str, ...]
) -> str:
    """Why the table allows no reply ``code`` now."""
    if phase is P.CLOSED:
        return f"reply {code} after the session was closed"
    if command is None:
        if phase is P.GREETING:
            return f"greeting with intermediate code {code}"
        return f"reply {code} {lines[0]!r} arrived with no command waiting for it"
    if 300 <= code < 400:
        return f"intermediate reply {code} to {_verb(command)}"
    return f"reply {code} to {_verb(command)}: only 354 opens the data phase"


def _verb(command: Sendable) -> str:
    if isinstance(command, EndOfData):
        return "end of data"
    if isinstance(command, AuthResponse):
        return "AUTH response"
    return command.verb


class ClientConnection:
    """The client side of one SMTP (or LMTP) connection, without I/O.

    ``send(event)`` returns the bytes to write; ``receive_data(bytes)`` takes
    what was read; ``next_event()`` returns the next ``Reply`` (with
    ``.command`` set to the command it answers), ``ConnectionClosed``, or
    ``NEED_DATA``.

    ``send`` raises ``LocalProtocolError`` (and changes nothing) for anything
    the session does not allow now: a command out of sequence, pipelining a
    server did not offer, a parameter or extension it did not offer, message
    data before the 354. ``receive_data`` and ``next_event`` raise
    ``RemoteProtocolError`` for replies SMTP does not allow; that error is
    final for the connection.

    ``lmtp=True`` speaks LMTP (RFC 2033): LHLO, and one reply per accepted
    recipient after the data. ``tls=True`` says the connection is already
    encrypted (implicit TLS, port 465).
    """

    def __init__(
        self, *, lmtp: bool = False, tls: bool = False, limits: Limits | None = None
    ) -> None:
        self.limits = limits if limits is not None else Limits()
        self._shortest_line = self.limits.shortest_line
        self.lmtp = lmtp
        self._parser = ReplyParser(self.limits)
        self._ready: deque[tuple[int, tuple[str, ...]]] = deque()  # parsed, not yet taken
        self._parse_error: RemoteProtocolError | None = None  # raised after _ready
        self._owed = 1  # replies the server still owes: the greeting
        self._unowed = False  # a reply began while nothing was owed
        self._state = CLIENT.start
        self._assumed = CLIENT.start  # where success of every pending command leads
        self._pending: deque[Sendable] = deque()
        self._extensions = Extensions()
        self._is_tls = tls
        self._authenticated = False
        self._stuffer = DotStuffer()
        self._chunk_left = 0
        self._chunk_lines = True  # the open BDAT transfer must have CRLF line ends
        self._chunk_cr = False  # its content so far ends in CR, which LF must follow
        self._chunk_last = False  # the chunk being sent is the LAST one
        self._utf8_transaction = False  # the open transaction's MAIL has SMTPUTF8
        self._body = ""  # the open transaction's BODY parameter, upper case
        self._accepted = 0  # positive RCPT replies in this transaction (LMTP)
        self._lmtp_left = 0  # LMTP replies still due for the end of data
        self._closed_by_peer = False
        self._error: str | None = None

    # -- state ------------------------------------------------------------

    @property
    def phase(self) -> ClientPhase:
        """Where the replies received so far put the session."""
        return self._state.phase

    @property
    def extensions(self) -> Extensions:
        """What the last EHLO/LHLO reply offered; empty before it and after STARTTLS."""
        return self._extensions

    @property
    def is_tls(self) -> bool:
        """Whether the connection is encrypted (implicit TLS or after STARTTLS)."""
        return self._is_tls

    @property
    def is_authenticated(self) -> bool:
        """Whether an AUTH exchange succeeded (235) in this TLS state."""
        return self._authenticated

    @property
    def pending(self) -> tuple[Command | EndOfData, ...]:
        """The commands sent whose replies have not arrived, oldest first."""
        return tuple(self._pending)

    @property
    def chunk_left(self) -> int:
        """Octets of the current BDAT chunk still to be sent as MessageData."""
        return self._chunk_left

    # -- receiving --------------------------------------------------------

    def _fail(self, message: str) -> RemoteProtocolError:
        self._error = message
        self._state = self._assumed = self._state.on(FAILED)
        return RemoteProtocolError(message)

    def _check_error(self) -> None:
        if self._error is not None:
            raise RemoteProtocolError(
                f"connection is unusable after an earlier error: {self._error}"
            )

    def receive_data(self, data: bytes) -> None:
        """Take bytes read from the server; ``b""`` means the server closed.

        Raises ``RemoteProtocolError`` for bytes that arrive while the TLS
        handshake is due (RFC 3207 response injection).
        """
        if self._error is not None:
            self._check_error()
        if not data:
            self._closed_by_peer = True
            return
        if self._state.phase is P.TLS:
            raise self._fail(
                f"{len(data)} octets arrived after the 220 to STARTTLS and before the "
                "TLS handshake (response injection, RFC 3207 5)"
            )
        if self._closed_by_peer:
            raise self._fail("data received after the server closed the connection")
        parser = self._parser
        parser.receive_data(bytes(data))
        if self._parse_error is not None:
            return
        ready = self._ready
        while True:
            if not self._owed and not self._unowed and parser.in_reply:
                self._unowed = True  # its first octet came when nothing was owed
                if self._pending and isinstance(self._pending[-1], StartTLS):
                    raise self._fail(
                        f"{parser.buffered} octets arrived behind the 220 to STARTTLS "
                        "(response injection, RFC 3207 5)"
                    )
            try:
                parsed = parser.next_reply()
            except RemoteProtocolError as exc:
                self._parse_error = exc  # after the replies before it, as they came
                return
            if parsed is None:
                return
            if self._unowed:
                self._unowed = False
                if parsed[0] != 421:  # RFC 5321 3.8: only a closing server speaks unasked
                    raise self._fail(
                        f"reply {parsed[0]} {parsed[1][0]!r} arrived with no command waiting "
                        "for it (RFC 5321 4.3.1, RFC 2920 3.2)"
                    )
            else:
                self._owed -= 1
            ready.append(parsed)

    def next_event(self) -> Reply | ConnectionClosed | _Need:
        """The next reply, ``ConnectionClosed``, or ``NEED_DATA``.

        Raises ``RemoteProtocolError`` for a malformed reply, a reply nothing
        asked for, or a close in the middle of a reply.
        """
        if self._error is not None:
            self._check_error()
        if self._ready:
            code, lines = self._ready.popleft()
            return self._take_reply(code, lines)
        if self._parse_error is not None:
            raise self._fail(str(self._parse_error))
        if self._state.phase is P.CLOSED and not self._parser.buffered:
            return ConnectionClosed() if self._closed_by_peer else NEED_DATA
        if self._closed_by_peer:
            if self._parser.in_reply:
                raise self._fail("the server closed the connection in the middle of a reply")
            self._state = self._assumed = self._state.on(PEER_CLOSED)
            return ConnectionClosed()
        return NEED_DATA

    def _take_reply(self, code: int, lines: tuple[str, ...]) -> Reply:
        state = self._state
        pending = self._pending
        command: Sendable | None = None
        trigger: Trigger
        if state.phase is P.GREETING:
            trigger = GREETING
        elif not pending:
            trigger = UNASKED
        else:
            command = pending[0]
            trigger = trigger_of(command)
            if self._lmtp_left > 1 and (trigger is EndOfData or trigger is BDAT_LAST):
                trigger = MORE_DUE  # RFC 2033 4.2: one reply per accepted recipient
        after = state.after_reply(trigger, code)
        if after is None:
            raise self._fail(_not_allowed(state.phase, command, code, lines))
        reply = Reply._parsed(code, lines, command)
        self._state = after
        if command is None or code == 421:
            # The greeting, or the server is closing (RFC 5321 3.8): every
            # pending command is lost.
            pending.clear()
            self._assumed = after
            return reply
        if trigger is MORE_DUE:
            self._lmtp_left -= 1
            return reply
        pending.popleft()
        if code < 300 and type(command) in _SUCCESS_CHANGES:
            self._succeeded(command, lines)
        elif code == 354:
            self._stuffer = DotStuffer()
        if code >= 400:
            self._recompute_assumed()
        elif not pending:
            self._assumed = after
        return reply

    def _succeeded(self, command: Sendable, lines: tuple[str, ...]) -> None:
        """What a positive reply to one of ``_SUCCESS_CHANGES`` changes besides the phase."""
        if isinstance(command, Rcpt):
            self._accepted += 1
        elif isinstance(command, (Ehlo, Lhlo)):
            self._extensions = Extensions.from_reply_lines(lines)
        elif isinstance(command, Helo):
            self._extensions = Extensions()
        elif isinstance(command, (Auth, AuthResponse)):
            self._authenticated = True
        elif isinstance(command, StartTLS) and (self._ready or self._parser.in_reply):
            raise self._fail(
                "octets arrived behind the 220 to STARTTLS (response injection, RFC 3207 5)"
            )

    def _recompute_assumed(self) -> None:
        assumed = self._state
        for command in self._pending:
            assumed = assumed.after_success(trigger_of(command))
        self._assumed = assumed

    def _end_transaction(self) -> None:
        """Forget the transaction's facts at the moment its end is sent.

        Done on sending, not on the reply: with PIPELINING the next MAIL may
        already be on its way when the reply to the end of data arrives.
        """
        self._utf8_transaction = False
        self._body = ""
        self._accepted = 0
        if not self._chunk_left:  # else BDAT n LAST: its content is still to be checked
            self._chunk_cr = False

    # -- sending ----------------------------------------------------------

    def send(self, event: Command | MessageData | EndOfData) -> bytes:
        """The bytes for ``event``; the session moves on only when they are sent.

        Raises ``LocalProtocolError``, leaving everything as it was, when the
        session does not allow ``event`` now.
        """
        if self._error is not None:
            raise LocalProtocolError(
                f"connection is unusable after an earlier error: {self._error}"
            )
        if isinstance(event, MessageData):
            return self._send_data(event)
        if self._state.phase is P.CLOSED or self._closed_by_peer:
            raise LocalProtocolError("the connection is closed")
        if isinstance(event, EndOfData):
            if self._state.phase is not P.DATA or self._pending:
                raise LocalProtocolError("end of data outside DATA (after BDAT, use last=True)")
            wire = self._stuffer.end()
            self._pending.append(event)
            # RFC 2033 4.2: one reply per accepted recipient. The phase stays
            # DATA until the reply, so no content can follow the end marker.
            self._lmtp_left = max(self._accepted, 1) if self.lmtp else 0
            self._owed += self._lmtp_left or 1
            self._assumed = self._assumed.after_success(EndOfData)
            self._end_transaction()
            return wire
        if not isinstance(event, Command):
            raise LocalProtocolError(f"cannot send {type(event).__name__}")
        self._check_command(event)
        wire = event.to_bytes()
        if len(wire) > self._shortest_line:  # else no line limit can be exceeded
            self._check_length(event, wire)
        if type(event) in _ENDS_TRANSACTION:
            self._end_transaction()
        if isinstance(event, Mail):
            params = event.params
            if params:
                self._utf8_transaction = "SMTPUTF8" in params
                self._body = (params.get("BODY") or "").upper()
            # else: _end_transaction() just left both as no parameter has them
        elif isinstance(event, Bdat):
            if self._chunk_cr and event.last and not event.size:
                raise LocalProtocolError(
                    "the content would end in a bare CR: SMTP lines end in CRLF "
                    "unless MAIL declared BODY=BINARYMIME (RFC 5321 2.3.8, RFC 3030 3)"
                )
            self._chunk_left = event.size
            self._chunk_lines = self._body != "BINARYMIME"
            self._chunk_last = event.last
            if event.last:
                # RFC 2033 4.2 with RFC 3030: the LAST chunk, like the end of
                # DATA, gets one reply per accepted recipient.
                self._lmtp_left = max(self._accepted, 1) if self.lmtp else 0
                self._owed += self._lmtp_left - 1 if self.lmtp else 0
                self._end_transaction()
        self._pending.append(event)
        self._owed += 1
        self._assumed = self._assumed.after_success(trigger_of(event))
        return wire

    def _send_data(self, event: MessageData) -> bytes:
        data = bytes(event.data)
        if self._chunk_left:
            if len(data) > self._chunk_left:
                raise LocalProtocolError(
                    f"{len(data)} octets of content but the BDAT chunk has {self._chunk_left} left"
                )
            if self._chunk_lines:
                self._check_line_ends(data, ends=self._chunk_last and len(data) == self._chunk_left)
            self._chunk_left -= len(data)
            return data
        if self._state.phase is P.DATA and not self._pending:
            return self._stuffer.stuff(data)
        raise LocalProtocolError("message data outside DATA (before the 354) or a BDAT chunk")

    def _check_line_ends(self, data: bytes, *, ends: bool) -> None:
        """Refuse BDAT content with a bare CR or LF (RFC 5321 2.3.8) before any byte goes.

        The chunk's size is already on the wire, so the content cannot be
        normalised here as DATA's is: a CRLF may only be split between two
        pieces. ``ends``: this piece ends the message.
        """
        if not data:
            return
        start = 0
        if self._chunk_cr:
            if data[:1] != b"\n":
                raise LocalProtocolError(_BARE_LINE_END)
            start = 1
        pairs = data.count(b"\r\n", start)
        trailing_cr = data.endswith(b"\r") and len(data) > start
        if data.count(b"\n", start) != pairs or data.count(b"\r", start) != pairs + trailing_cr:
            raise LocalProtocolError(_BARE_LINE_END)
        if trailing_cr and ends:
            raise LocalProtocolError(_BARE_LINE_END)
        self._chunk_cr = trailing_cr

    def _check_command(self, command: Command) -> None:
        if self._chunk_left:
            raise LocalProtocolError(
                f"the BDAT chunk still needs {self._chunk_left} octets before {command.verb}"
            )
        if self._pending:
            last = self._pending[-1]
            if not self._extensions.pipelining:
                raise LocalProtocolError(
                    f"server did not offer PIPELINING: wait for the reply to {_verb(last)} "
                    f"before sending {_verb(command)}"
                )
            if type(last) not in _GROUPABLE:
                raise LocalProtocolError(
                    f"{_verb(last)} must be the last command of a pipelined group "
                    f"(RFC 2920 3.1): wait for its reply before sending {_verb(command)}"
                )
        kind = type(command)
        if not self._assumed.allows(kind):
            self._assumed.check(kind, _verb(command))  # raises, saying what and where
        if self._pending and isinstance(command, (AuthResponse, AuthCancel)):
            raise LocalProtocolError("an AUTH response must wait for the 334 challenge")
        self._check_extensions(command)

    def _check_extensions(self, command: Command) -> None:
        # The commands of every transaction come first.
        ext = self._extensions
        if isinstance(command, Mail):
            if command.params:
                self._check_params(command.params, utf8="SMTPUTF8" in command.params)
            if not command.sender.isascii() and "SMTPUTF8" not in command.params:
                raise LocalProtocolError(
                    f"non-ASCII sender {command.sender!r} needs the SMTPUTF8 parameter (RFC 6531)"
                )
        elif isinstance(command, (Vrfy, Expn)):
            argument = command.argument
            if not argument.isascii() and not ext.smtputf8:
                raise LocalProtocolError(
                    f"non-ASCII {command.verb} argument {argument!r} needs a server that "
                    "offers SMTPUTF8 (RFC 6531 3.7.4.2)"
                )
        elif isinstance(command, Rcpt):
            if command.params:
                self._check_params(command.params, utf8=self._utf8_transaction)
            if not command.recipient.isascii() and not self._utf8_transaction:
                raise LocalProtocolError(
                    f"non-ASCII recipient {command.recipient!r} needs MAIL ... SMTPUTF8 (RFC 6531)"
                )
        elif isinstance(command, Data):
            if self._body == "BINARYMIME":
                raise LocalProtocolError("BODY=BINARYMIME needs BDAT, not DATA (RFC 3030 3)")
        elif isinstance(command, (Ehlo, Helo)):
            if self.lmtp:
                raise LocalProtocolError(f"{command.verb} in LMTP mode: use LHLO (RFC 2033 4.1)")
        elif isinstance(command, Lhlo):
            if not self.lmtp:
                raise LocalProtocolError("LHLO is LMTP's; this connection speaks SMTP")
        elif isinstance(command, StartTLS):
            if self._is_tls:
                raise LocalProtocolError("STARTTLS on a connection that is already TLS")
            if not ext.starttls:
                raise LocalProtocolError("server did not offer STARTTLS")
        elif isinstance(command, Auth):
            if self._authenticated:
                raise LocalProtocolError("already authenticated (RFC 4954 4: one AUTH per session)")
            if command.mechanism not in ext.auth:
                raise LocalProtocolError(f"server did not offer AUTH {command.mechanism}")
        elif isinstance(command, Bdat):
            if not ext.chunking:
                raise LocalProtocolError("server did not offer CHUNKING (BDAT)")
            if self.lmtp and command.last and any(isinstance(c, Rcpt) for c in self._pending):
                # RFC 2033 4.2: LAST gets one reply per accepted recipient, so
                # the RCPT replies must be in before we know how many come.
                raise LocalProtocolError("in LMTP, BDAT LAST must wait for the RCPT replies")
        elif isinstance(command, Etrn):
            if not ext.etrn:
                raise LocalProtocolError("server did not offer ETRN")
        elif isinstance(command, (Send, Soml, Saml)) and not command.sender.isascii():
            raise LocalProtocolError(f"{command.verb} cannot carry a non-ASCII address")

    def _check_params(self, params: Mapping[str, str | None], *, utf8: bool) -> None:
        ext = self._extensions
        for name, value in params.items():
            if value is not None and not value.isascii() and not utf8:
                raise LocalProtocolError(f"non-ASCII value for {name} needs SMTPUTF8")
            if name == "BODY":
                needed = _BODY_KEYWORD[(value or "").upper()]
                if not any(k in ext for k in needed):
                    raise LocalProtocolError(
                        f"server did not offer {' or '.join(needed)} for BODY={value}"
                    )
                continue
            keyword = _PARAMETER_KEYWORD.get(name, name)
            if keyword not in ext:
                raise LocalProtocolError(f"server did not offer {keyword} for the {name} parameter")
            if name == "REQUIRETLS" and not self._is_tls:
                raise LocalProtocolError("REQUIRETLS needs a TLS connection (RFC 8689 4.1)")

    def _check_length(self, command: Command, wire: bytes) -> None:
        if isinstance(command, (Mail, Rcpt)):
            limit, name = self.limits.parameter_line, "parameter_line"
        elif isinstance(command, (Auth, AuthResponse)):
            limit, name = self.limits.auth_line, "auth_line"
        else:
            limit, name = self.limits.command_line, "command_line"
        if len(wire) > limit:
            raise LocalProtocolError(
                f"{_verb(command)} line of {len(wire)} octets exceeds Limits.{name} ({limit})"
            )

    # -- transport reports --------------------------------------------------

    def tls_established(self) -> None:
        """The transport finished the TLS handshake after the 220 to STARTTLS.

        Extensions and authentication are forgotten; EHLO is required again
        (RFC 3207 4.2). Raises ``LocalProtocolError`` outside that moment.
        """
        self._state = self._assumed = self._state.on(TLS_DONE)
        self._is_tls = True
        self._extensions = Extensions()
        self._authenticated = False

    def send_failed(self) -> None:
        """The transport could not send the bytes ``send`` returned: the connection is over."""
        self._error = self._error or "the transport failed to send"
        self._state = self._assumed = self._state.on(FAILED)
