"""The server procedure: one connection served, written once, driven by any transport.

How this works: ``serve_connection`` drives a ``ServerConnection`` and
yields effects. Besides ``Write``, ``Handshake`` and ``Close`` of the client
side it yields seven of its own:

    Receive(timeout, interruptible)  bytes, or TIMED_OUT / SHUT_DOWN
    CallHook(name, args)             run the handler's hook; answer its result
                                     (awaited if it is awaitable) or HookFailed
    Now()                            the current time, an aware datetime
    Clock()                          seconds on a monotonic clock, a float
    NewId()                          a fresh random token (ids, SASL nonces)
    SpoolWrite(spool, data)          append content beyond the spool threshold to
                                     a spool (a new one when spool is None);
                                     answer the spool, or HookFailed
    Pause(seconds)                   sleep (after a failed AUTH); answer None
    Notice(message)                  log it at WARNING; answer None

The procedure holds every decision of a server session: the default reply
to each command, what a hook's answer means, the SASL exchange, the
``Received:`` header, and the rule that a message counts as accepted only
once ``on_message`` returned. It never calls user code: a transport runs each
hook it is asked to and reports an exception as ``HookFailed``, which turns
into a 451 4.3.0 here (the session goes on). Replies are buffered and written
when the procedure is about to wait, so pipelined commands (RFC 2920) get
their replies in one write.

Deadlines (Postfix smtpd_per_record_deadline and smtpd_min_data_rate): a
wait for bytes never lasts longer than ``idle_timeout``, and once a command
line has begun to arrive, or message content has, the rest has a budget:
``idle_timeout`` for a command line; ``idle_timeout`` plus one second per
``min_data_rate`` octets received for content. Only time spent waiting in
``Receive`` is charged (two ``Clock`` effects around each such wait), never
the time our own hooks take. A command that arrives whole in one read asks
for no clock at all. One message has a budget of its own besides:
``data_timeout`` seconds of waiting from its 354 (or first BDAT chunk) to its
end, whatever the rate, so a client cannot park a message for hours by
sending it fast and then a byte at a time.

Memory (content beyond ``spool_threshold``): a message's content is held in
memory up to ``spool_threshold`` octets; beyond, the transport keeps it in a
spool (a temporary file) through ``SpoolWrite``, and ``on_message`` gets an
envelope that reads it from there on demand. The core never touches a file.

A transport builds one ``ServerOptions`` per listener (``ServerOptions.create``)
and, per connection, ``options.session(peer, ...)``: the procedure to drive.
"""

from __future__ import annotations

import base64
import datetime
import enum
import hmac
from collections.abc import Collection, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Protocol, TypeAlias, TypeVar

from .._errors import InvalidArgument, LocalProtocolError
from .._events import (
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
)
from .._limits import Limits
from .._server import ServerConfig, ServerConnection, ServerPhase
from ..sasl import (
    MOCK_ITERATIONS,
    Challenge,
    Failure,
    NeedSecret,
    ScramCredentials,
    ServerStep,
    Success,
    VerifyPassword,
    derive_scram_credentials,
    scram_salt,
    server_mechanism,
)
from ._admission import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    SHUTTING_DOWN,
    TOO_MANY,
    Admission,
)
from ._effects import Close, Handshake, Write
from ._report import LogLine, message_line, session_line
from ._throttle import AUTH_FAILURE_WINDOW, AUTH_FAILURES_PER_ADDRESS, AuthBudget
from ._tls import TLSInfo

__all__ = [
    "AUTH_FAILURES_PER_ADDRESS",
    "AUTH_FAILURE_DELAY",
    "HOOKS",
    "SHUT_DOWN",
    "TIMED_OUT",
    "CallHook",
    "Clock",
    "ContentSpool",
    "HookFailed",
    "Interrupted",
    "NewId",
    "Notice",
    "Now",
    "Pause",
    "Peer",
    "Receive",
    "ServerEffect",
    "ServerEnvelope",
    "ServerOptions",
    "ServerProcedure",
    "SessionInfo",
    "SpoolWrite",
    "TLSInfo",
    "format_date",
    "hooks_of",
    "received_header",
    "serve_connection",
]

T = TypeVar("T")

#: Every hook a handler may define; all are optional.
HOOKS: Final = (
    "on_connect",
    "on_ehlo",
    "on_mail",
    "on_rcpt",
    "on_data_chunk",
    "on_message",
    "authenticate",
    "lookup_secret",
    "on_vrfy",
    "on_expn",
)
"""Every hook a handler may define, by name; all are optional."""

#: Seconds a client may stay silent (RFC 5321 4.5.3.2.7: at least 5 minutes).
IDLE_TIMEOUT: Final = 300.0
MIN_DATA_RATE: Final = 500.0
"""Octets per second message content must keep up, by default (Postfix's smtpd_min_data_rate)."""
#: Seconds a failed AUTH waits before its reply (Postfix smtpd_error_sleep_time: 1 s).
AUTH_FAILURE_DELAY: Final = 1.0
#: The largest message accepted when no ServerConfig says otherwise.
DEFAULT_MESSAGE_SIZE: Final = 32 * 1024 * 1024
SPOOL_THRESHOLD: Final = 1024 * 1024
"""Octets of one message held in memory by default; the rest goes to a spool (a temporary file)."""
# Postfix's per-record deadline is the model, applied to the message as one
# record: at this bound a 32 MiB message still goes through at 9.3 kB/s.
DATA_TIMEOUT: Final = 3600.0
"""Seconds of waiting one message may take from its 354 (or first BDAT chunk) to its end."""
#: PBKDF2 rounds for SCRAM credentials derived from a password lookup (RFC 7677 4: 4096 at
#: least); the same count an unknown user is shown, so the two look alike (RFC 5802 9).
SCRAM_ITERATIONS: Final = MOCK_ITERATIONS


# --- effects ---------------------------------------------------------------


class Interrupted(enum.Enum):
    """Why a ``Receive`` ended without bytes."""

    TIMED_OUT = enum.auto()  # nothing came within the timeout
    SHUT_DOWN = enum.auto()  # the server is shutting down (interruptible reads only)


TIMED_OUT: Final = Interrupted.TIMED_OUT
"""The answer to ``Receive`` when nothing came within its timeout."""
SHUT_DOWN: Final = Interrupted.SHUT_DOWN
"""The answer to an interruptible ``Receive`` when the server is shutting down."""


@dataclass(frozen=True, slots=True)
class Receive:
    """Receive some bytes from the client, waiting at most ``timeout`` seconds.

    Answer: the bytes (``b""`` when the client closed), ``TIMED_OUT`` when the
    time ran out, or ``SHUT_DOWN`` when the server shuts down. A transport
    answers ``SHUT_DOWN`` only when ``interruptible`` is true: no message is
    in flight, so nothing is lost by stopping here.
    """

    timeout: float
    interruptible: bool


@dataclass(frozen=True, slots=True)
class CallHook:
    """Call ``handler.<name>(*args)``; await the result if it is awaitable.

    Answer: what the hook returned, or ``HookFailed`` when it raised. The
    procedure asks only for hooks listed in ``ServerOptions.hooks``.
    """

    name: str
    args: tuple[object, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class HookFailed:
    """The answer to ``CallHook`` when the hook raised ``error`` (the transport logs it)."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class Now:
    """Answer: the current time, a timezone-aware ``datetime``."""


@dataclass(frozen=True, slots=True)
class Clock:
    """Answer: seconds from a monotonic clock, a float (``time.monotonic()``, ``loop.time()``).

    Only differences between two answers count, so any monotonic clock of
    the transport will do. The procedure asks only while part of a command
    line or of a message is in, to charge the client for its waits. Any
    answer but a number is a ``TypeError``: a driver must answer it.
    """


@dataclass(frozen=True, slots=True)
class NewId:
    """Answer: a fresh random token of letters and digits (message ids, SASL nonces)."""


class ContentSpool(Protocol):
    """Where a transport keeps a message's content beyond the spool threshold.

    The transport makes one per message when the procedure first asks
    (``SpoolWrite`` with no spool) and ``write``s into it; the envelope reads
    it back through ``chunks``, from the start, as often as asked. It is
    released when nothing refers to it any more (a temporary file is
    deleted when closed).
    """

    def write(self, data: bytes) -> None:
        """Append ``data``; raises ``OSError`` when it cannot be stored."""

    def chunks(self, size: int) -> Iterator[bytes]:
        """The content written so far, in pieces of at most ``size`` octets."""


@dataclass(frozen=True, slots=True)
class SpoolWrite:
    """Append ``data`` to ``spool``, or to a new spool when ``spool`` is None.

    Answer: the spool written to, or ``HookFailed`` when the write failed
    (a full disk: the message is then refused with 452 4.3.1 at its end).
    """

    spool: ContentSpool | None
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` before going on (after a failed AUTH). Answer: None.

    Like Postfix's smtpd_error_sleep_time: each wrong password costs the
    client time, whatever it does meanwhile (its bytes wait in the buffer).
    """

    seconds: float


@dataclass(frozen=True, slots=True)
class Notice:
    """Log ``message`` at WARNING on the ``smtpcore.server`` logger. Answer: None.

    For what an operator must see (a client address refused AUTH); never a
    password or message content.
    """

    message: str


ServerEffect: TypeAlias = (
    Write
    | Receive
    | Handshake
    | Close
    | CallHook
    | Now
    | Clock
    | NewId
    | SpoolWrite
    | Pause
    | Notice
)
"""Any effect the server procedure yields for its driver to perform."""
ServerProcedure: TypeAlias = Generator[ServerEffect, object, T]
"""The server procedure: yields server effects, is sent their answers, returns ``T``."""


# --- facts about the connection ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    """The client's address: ``host`` is the IP address as text, ``name`` its DNS name if known."""

    host: str
    port: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What ``on_connect`` learns about a new connection."""

    peer: Peer
    hostname: str
    session_id: str
    tls: TLSInfo | None = None


#: Octets ``ServerEnvelope.chunks`` gives at a time unless asked otherwise.
CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServerEnvelope:
    """One message received, as ``on_message`` gets it.

    ``content`` is the message as received (unstuffed, CRLF line ends) with
    our ``Received:`` header in front; ``received_header`` is that header
    alone. When the handler streams with ``on_data_chunk``, ``content`` is
    ``b""``: the chunks went to the hook.

    A message larger than the server's spool threshold is not in memory:
    ``spool`` holds it (a temporary file the transport made), ``held`` is
    empty, and ``content`` reads the whole of it from the spool each time it
    is asked for. To store or scan such a message without holding it, read
    it with ``chunks()``. ``size`` is its length in octets either way.
    """

    sender: str  # "" for the null reverse-path <>
    recipients: tuple[str, ...]
    mail_params: Mapping[str, str | None]
    recipient_params: tuple[Mapping[str, str | None], ...]
    peer: Peer
    hello_domain: str | None
    is_tls: bool
    tls: TLSInfo | None
    auth_identity: str | None
    message_id: str
    session_id: str
    received_header: bytes = field(repr=False)
    held: bytes = field(repr=False)  # the content when it stayed in memory, else b""
    spool: ContentSpool | None = field(default=None, repr=False)
    size: int = 0

    @property
    def content(self) -> bytes:
        """The whole message as bytes (read from the spool, when there is one)."""
        if self.spool is None:
            return self.held
        return b"".join(self.spool.chunks(CHUNK))

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The message in pieces of at most ``size`` octets, from the start, never all at once."""
        if size < 1:
            raise InvalidArgument(f"chunk size must be >= 1, not {size!r}")
        if self.spool is not None:
            yield from self.spool.chunks(size)
            return
        held = memoryview(self.held)
        for start in range(0, len(held), size):
            yield bytes(held[start : start + size])

    @property
    def original_content(self) -> bytes:
        """The content as the client sent it, without our ``Received:`` header."""
        if self.content.startswith(self.received_header):
            return self.content[len(self.received_header) :]
        return self.content


def hooks_of(handler: object) -> frozenset[str]:
    """The names in ``HOOKS`` that ``handler`` defines as callables."""
    return frozenset(name for name in HOOKS if callable(getattr(handler, name, None)))


# --- the Received: header (RFC 5321 4.4) ------------------------------------

#: The last date formatted, to the second, and its text (a pure cache).
_LAST_DATE: Final[list[tuple[datetime.datetime, str]]] = [
    (datetime.datetime.min.replace(tzinfo=datetime.timezone.utc), "")
]
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def format_date(moment: datetime.datetime) -> str:
    """``moment`` as an RFC 5322 3.3 date-time: ``Sun, 29 Nov 2026 06:26:45 +0000``.

    Raises ``ValueError`` for a naive datetime (its zone is unknown).
    """
    # One Received header per message, and many messages in the same second.
    second = moment.replace(microsecond=0)
    last, text = _LAST_DATE[0]  # one read: another thread may replace it meanwhile
    if second == last and second.utcoffset() == last.utcoffset():
        return text
    text = _format_date(moment)
    _LAST_DATE[0] = (second, text)
    return text


def _format_date(moment: datetime.datetime) -> str:
    offset = moment.utcoffset()
    if offset is None:
        raise InvalidArgument("format_date needs a timezone-aware datetime")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return (
        f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
        f"{sign}{hours:02d}{mins:02d}"
    )


def _address_literal(host: str) -> str:
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


def _protocol(conn: ServerConnection) -> str:
    """The ``with`` keyword (RFC 3848; RFC 6531 3.7.3 for UTF8SMTP)."""
    if conn.config.lmtp:
        base = "LMTP"
    elif conn.is_smtputf8:
        base = "UTF8SMTP"
    elif conn.is_esmtp:
        base = "ESMTP"
    else:
        return "SMTP"  # RFC 3848 has no S/A suffixes for plain SMTP
    suffix = ("S" if conn.is_tls else "") + ("A" if conn.is_authenticated else "")
    return base + suffix


def received_header(
    conn: ServerConnection, peer: Peer, message_id: str, moment: datetime.datetime
) -> bytes:
    """The ``Received:`` trace header for the open transaction (RFC 5321 4.4).

    ``from <helo> (<name> [<ip>]) by <hostname> with <protocol> id <id>
    for <recipient>; <date>``, folded. The ``for`` clause names the recipient
    only when there is exactly one: listing them all would reveal Bcc
    recipients to each other (RFC 5321 7.2).
    """
    tcp_info = _address_literal(peer.host)
    if peer.name:
        tcp_info = f"{peer.name} {tcp_info}"
    lines = [
        f"Received: from {conn.hello_domain or 'unknown'} ({tcp_info})",
        f"\tby {conn.config.hostname} with {_protocol(conn)} id {message_id}",
    ]
    recipients = conn.recipients
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>; {format_date(moment)}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{format_date(moment)}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# --- options: resolved once per listener ------------------------------------


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Everything a listener needs to start sessions, resolved once.

    Build it with ``create``; ``session`` makes the procedure for one
    connection.
    """

    config: ServerConfig
    limits: Limits
    hooks: frozenset[str]
    idle_timeout: float = IDLE_TIMEOUT
    max_connections: int | None = MAX_CONNECTIONS
    greeting_delay: float = 0.0
    min_data_rate: float = MIN_DATA_RATE
    spool_threshold: int | None = SPOOL_THRESHOLD
    data_timeout: float = DATA_TIMEOUT
    #: Random octets kept for the server's lifetime: SCRAM salts derive from
    #: them, so unknown users look like known ones (RFC 5802 9).
    scram_secret: bytes | None = field(default=None, repr=False)
    #: Seconds each failed AUTH waits before its reply (``Pause``).
    auth_failure_delay: float = AUTH_FAILURE_DELAY
    #: Failed AUTH per client address across sessions; None: no such bound.
    auth_budget: AuthBudget | None = field(default=None, compare=False)
    max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT

    @classmethod
    def create(
        cls,
        handler: object,
        *,
        config: ServerConfig | None = None,
        limits: Limits | None = None,
        starttls: bool = False,
        hostname: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int | None = MAX_CONNECTIONS,
        greeting_delay: float = 0.0,
        min_data_rate: float = MIN_DATA_RATE,
        spool_threshold: int | None = SPOOL_THRESHOLD,
        data_timeout: float = DATA_TIMEOUT,
        scram_secret: bytes | None = None,
        auth_failure_delay: float = AUTH_FAILURE_DELAY,
        auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS,
        auth_failure_window: float = AUTH_FAILURE_WINDOW,
        max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT,
    ) -> ServerOptions:
        """Options for ``handler``.

        Without ``config``, the defaults: SIZE of ``DEFAULT_MESSAGE_SIZE``,
        PIPELINING, 8BITMIME, SMTPUTF8, CHUNKING, ENHANCEDSTATUSCODES; AUTH with
        the mechanisms the handler can check (PLAIN and LOGIN with
        ``authenticate``; SCRAM-SHA-256 and CRAM-MD5 too with
        ``lookup_secret``). ``starttls`` says whether the transport can
        upgrade (a TLS context was given): it sets ``config.starttls``.

        ``idle_timeout`` bounds every wait and every command line;
        ``min_data_rate`` (octets per second) stretches it for message
        content (see ``serve_connection``). ``greeting_delay`` holds the 220
        back that many seconds; a client that talks meanwhile gets 554.
        ``spool_threshold``: octets of a message held in memory, the rest
        going to a spool the transport provides (None: everything in
        memory). ``data_timeout``: seconds of waiting one message may take
        from 354 (or its first BDAT chunk) to its end.
        ``scram_secret``: random octets (``secrets.token_bytes(32)``; the
        transports give each server its own) from which SCRAM derives the
        salt of every user, so a user that does not exist gets a challenge
        like one that does and fails only at the proof (RFC 5802 9); without
        it, salts are fresh for each exchange and unknown users fail at once.
        Password guessing: each failed AUTH waits ``auth_failure_delay``
        seconds before its reply (Postfix's smtpd_error_sleep_time; 0 for
        none), and a client address that failed ``auth_failures_per_address``
        times within ``auth_failure_window`` seconds, over any number of
        sessions, gets ``421 4.7.0`` to AUTH until the oldest failure is that
        old (``AuthBudget``, kept in these options' memory; None: no bound).
        ``max_connections`` and ``max_connections_per_client`` cap the
        sessions served at once, in total and per client address (None: no
        cap); see ``admission``.
        Raises ``ValueError`` for a non-positive timeout, data rate or
        connection cap, a negative greeting delay, AUTH delay or spool
        threshold, or a short secret.
        """
        if not auth_failure_delay >= 0:
            raise InvalidArgument(
                f"auth_failure_delay must be >= 0 seconds, not {auth_failure_delay!r}"
            )
        budget = None
        if auth_failures_per_address is not None:
            budget = AuthBudget(auth_failures_per_address, auth_failure_window)
        if scram_secret is not None and len(scram_secret) < 16:
            raise InvalidArgument("scram_secret must be None or at least 16 random octets")
        if not idle_timeout > 0:
            raise InvalidArgument(f"idle_timeout must be > 0, not {idle_timeout!r}")
        if not min_data_rate > 0:
            raise InvalidArgument(
                f"min_data_rate must be > 0 octets per second, not {min_data_rate!r}"
            )
        if not greeting_delay >= 0:
            raise InvalidArgument(f"greeting_delay must be >= 0 seconds, not {greeting_delay!r}")
        Admission(max_connections, max_connections_per_client)  # checks both caps
        if not data_timeout > 0:
            raise InvalidArgument(f"data_timeout must be > 0, not {data_timeout!r}")
        if spool_threshold is not None and (
            isinstance(spool_threshold, bool)
            or not isinstance(spool_threshold, int)
            or spool_threshold < 0
        ):
            raise InvalidArgument(
                f"spool_threshold must be an int >= 0 or None, not {spool_threshold!r}"
            )
        hooks = hooks_of(handler)
        if config is None:
            mechanisms: tuple[str, ...] = ()
            if "lookup_secret" in hooks:
                mechanisms += ("SCRAM-SHA-256", "CRAM-MD5")
            if "lookup_secret" in hooks or "authenticate" in hooks:
                mechanisms += ("PLAIN", "LOGIN")
            config = ServerConfig(
                size=DEFAULT_MESSAGE_SIZE,
                smtputf8=True,
                chunking=True,
                auth_mechanisms=mechanisms,
            )
        config = replace(config, starttls=starttls)
        if hostname is not None:
            config = replace(config, hostname=hostname)
        return cls(
            config=config,
            limits=limits if limits is not None else Limits(),
            hooks=hooks,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            greeting_delay=greeting_delay,
            min_data_rate=min_data_rate,
            spool_threshold=spool_threshold,
            data_timeout=data_timeout,
            scram_secret=scram_secret,
            auth_failure_delay=auth_failure_delay,
            auth_budget=budget,
            max_connections_per_client=max_connections_per_client,
        )

    def admission(self) -> Admission:
        """A fresh count of sessions, which decides who is served (one per listener)."""
        return Admission(self.max_connections, self.max_connections_per_client)

    def refusal(self, active: int, *, stopping: bool) -> str | None:
        """Why a new connection gets 421 instead of a session, or None to serve it.

        ``active`` is the number of sessions being served; ``stopping`` says a
        graceful shutdown has begun. Only the total cap: ``admission`` also
        counts per client address.
        """
        if stopping:
            return SHUTTING_DOWN
        if self.max_connections is not None and active >= self.max_connections:
            return TOO_MANY
        return None

    def session(
        self,
        peer: Peer,
        session_id: str,
        *,
        tls: TLSInfo | None = None,
        refuse: str | None = None,
        log: LogLine | None = None,
    ) -> ServerProcedure[int]:
        """The procedure serving one connection; see ``serve_connection``."""
        conn = ServerConnection(self.config, self.limits, tls=tls is not None)
        return serve_connection(
            conn,
            self.hooks,
            peer,
            session_id=session_id,
            tls=tls,
            idle_timeout=self.idle_timeout,
            refuse=refuse,
            greeting_delay=self.greeting_delay,
            min_data_rate=self.min_data_rate,
            spool_threshold=self.spool_threshold,
            data_timeout=self.data_timeout,
            scram_secret=self.scram_secret,
            auth_failure_delay=self.auth_failure_delay,
            auth_budget=self.auth_budget,
            log=log,
        )


# --- the procedure --------------------------------------------------------------


def _fresh_reply(conn: ServerConnection, code: int, status: str, text: str) -> Reply:
    """A reply with the RFC 3463 status code in front when we offer ENHANCEDSTATUSCODES."""
    if conn.config.enhanced_status_codes:
        return Reply(code, (f"{status} {text}",))
    return Reply(code, (text,))


def _reply(conn: ServerConnection, code: int, status: str, text: str) -> Reply:
    """``_fresh_reply``, kept for the next time: most reply texts are constants."""
    enhanced = conn.config.enhanced_status_codes
    key = (code, status, text, enhanced)
    reply = _REPLIES.get(key)
    if reply is None:
        reply = _fresh_reply(conn, code, status, text)
        # Replies are immutable and most texts are constants: keep them, bounded
        # (texts with ids or names in them would otherwise accumulate).
        if len(_REPLIES) >= _REPLIES_MAX:
            _REPLIES.clear()
        _REPLIES[key] = reply
    return reply


_REPLIES: Final[dict[tuple[int, str, str, bool], Reply]] = {}
_REPLIES_MAX: Final = 512
_GO_AHEAD: Final = Reply(354, ("End data with <CR><LF>.<CR><LF>",))


_HELP_TEXT: Final = "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP"


class _Expired(enum.Enum):
    """Which deadline ran out; the value is the 421 text."""

    COMMAND = "Command timeout"  # a command line did not complete within idle_timeout
    DATA_RATE = "Data rate too low"  # content slower than min_data_rate allows
    MESSAGE = "Data timeout"  # one message took longer than data_timeout


@dataclass(slots=True)
class _Budget:
    """The seconds of waiting left to the command line or content that has begun to arrive."""

    kind: _Expired
    seconds: float


def _farewell(conn: ServerConnection, why: Interrupted | _Expired) -> Reply:
    """The 421 that ends a session whose wait ended without bytes (RFC 5321 3.8)."""
    if why is SHUT_DOWN:
        text = "4.3.2 Service shutting down"
    elif why is TIMED_OUT:
        text = "4.4.2 Idle timeout"  # RFC 5321 4.5.3.2.7
    else:
        text = f"4.4.2 {why.value}"  # RFC 3463: 4.4.2 "bad connection"
    return Reply(421, (f"{conn.config.hostname} {text}, closing connection",))


@dataclass(slots=True)
class _Message:
    """The message being received: its id, header, and content or streaming verdict."""

    message_id: str
    header: bytes
    wait_left: float  # seconds of waiting left to the whole message (data_timeout)
    charged: bool  # every wait counts against wait_left (BDAT), not only those within content
    content: bytearray = field(default_factory=bytearray)  # in memory, up to the threshold
    spool: ContentSpool | None = None  # the content, once it went beyond the threshold
    spooled: int = 0  # octets written to the spool
    stream_failure: Reply | None = None  # a chunk hook refused or raised; the spool failed
    size: int = 0  # octets of content received (for the log line)


class _Session:
    """The state one ``serve_connection`` call keeps besides the connection."""

    def __init__(
        self,
        conn: ServerConnection,
        hooks: Collection[str],
        peer: Peer,
        session_id: str,
        tls: TLSInfo | None,
        idle_timeout: float,
        min_data_rate: float = MIN_DATA_RATE,
        spool_threshold: int | None = SPOOL_THRESHOLD,
        data_timeout: float = DATA_TIMEOUT,
    ) -> None:
        self.conn = conn
        self.hooks = hooks
        self.peer = peer
        self.session_id = session_id
        self.tls = tls
        self.idle_timeout = idle_timeout
        self.min_data_rate = min_data_rate
        # None: never spool. inf compares with any length without a branch.
        self.spool_threshold = float("inf") if spool_threshold is None else spool_threshold
        self.data_timeout = data_timeout
        self.budget: _Budget | None = None  # set while a command line or content is partly in
        self.out: list[bytes] = []
        self.message: _Message | None = None
        self.accepted = 0
        self.auth_failures = 0
        self.closed = False
        self.scram_secret: bytes | None = None  # see ServerOptions.scram_secret
        self.auth_failure_delay = 0.0  # see ServerOptions.auth_failure_delay
        self.auth_budget: AuthBudget | None = None  # shared by the server's sessions
        self.log: LogLine | None = None  # reports a line per session and per message
        self.end = "connection lost"  # how the session ended, for its log line

    # -- small steps ------------------------------------------------------------

    def send(self, reply: Reply) -> None:
        """Queue ``reply``; it is written before the next wait."""
        self.out.append(self.conn.send(reply))

    def flush(self) -> ServerProcedure[None]:
        if self.out:
            data, self.out = b"".join(self.out), []
            yield Write(data)

    def close(self) -> ServerProcedure[None]:
        yield from self.flush()
        if not self.closed:
            self.closed = True
            yield Close()

    def hook(self, name: str, *args: object) -> ServerProcedure[object]:
        """The result of hook ``name``: None when absent, HookFailed when it raised."""
        if name not in self.hooks:
            return None
        result = yield CallHook(name, args)
        return result

    def hook_failure(self) -> Reply:
        # The handler broke: a transient failure, the client may retry later.
        return _reply(self.conn, 451, "4.3.0", "Requested action aborted: local error")

    def reply_from(self, result: object, default: Reply) -> Reply:
        """What a hook's answer means: its Reply, the default for None, 451 otherwise."""
        if result is None:
            return default
        if isinstance(result, Reply):
            return result
        return self.hook_failure()

    def answer(self, result: object, default: Reply) -> None:
        """Send the reply a hook's answer calls for; one the phase forbids becomes 451."""
        if result is None:  # the usual answer: the default, which always fits
            self.out.append(self.conn.send(default))
            return
        reply = self.reply_from(result, default)
        try:
            self.send(reply)
        except LocalProtocolError:
            # A hook returned a reply this moment cannot take (354 to MAIL, say).
            self.send(self.hook_failure())

    def fresh_id(self) -> ServerProcedure[str]:
        token = yield NewId()
        if not isinstance(token, str):
            raise TypeError(f"a transport answered NewId with {type(token).__name__}")
        return token

    def clock(self) -> ServerProcedure[float]:
        """The transport's monotonic clock, in seconds."""
        moment = yield Clock()
        if isinstance(moment, (int, float)):
            return moment
        raise TypeError(f"a transport answered Clock with {type(moment).__name__}")

    def next_event(self) -> ServerProcedure[Event | Interrupted | _Expired]:
        """The next event, receiving as needed.

        TIMED_OUT or SHUT_DOWN when a wait ended without bytes; an
        ``_Expired`` when a command line or content used up its budget.
        """
        conn = self.conn
        idle = self.idle_timeout
        event = conn.next_event()
        while event is NEED_DATA:
            if self.out:  # flush() inline: this runs for every read
                replies, self.out = b"".join(self.out), []
                yield Write(replies)
            # Shutting down may interrupt only a session with no message in flight.
            quiet = conn.phase in _QUIET
            budget = self.budget
            if budget is None and conn.has_partial_command:
                # Part of a line is in (from the last read, or pipelined
                # behind a command): the rest has idle_timeout of waiting.
                budget = self.budget = _Budget(_Expired.COMMAND, idle)
            timeout: float = idle
            expiry: Interrupted | _Expired = TIMED_OUT
            before = 0.0
            if budget is not None:
                if budget.seconds <= 0:
                    return budget.kind
                # A started line that stalls is a command timeout; content
                # only when its rate, not plain silence, is the tighter bound.
                if budget.kind is _Expired.COMMAND or budget.seconds < idle:
                    timeout, expiry = min(budget.seconds, idle), budget.kind
            # The message's own budget: charged while its content flows (and,
            # for BDAT, between its chunks too). The one wait for the first
            # content after 354 is bounded by idle_timeout alone.
            message = self.message
            if message is not None and not (budget is not None or message.charged):
                message = None
            if message is not None:
                if message.wait_left <= 0:
                    return _Expired.MESSAGE
                if message.wait_left < timeout:
                    timeout, expiry = message.wait_left, _Expired.MESSAGE
            timed = budget is not None or message is not None
            if timed:
                before = yield from self.clock()
            data = yield Receive(timeout, quiet)
            if type(data) is not bytes:
                if isinstance(data, Interrupted):
                    return expiry if data is TIMED_OUT else data
                raise TypeError(f"a transport answered Receive with {type(data).__name__}")
            if timed:
                after = yield from self.clock()
                if budget is not None:
                    budget.seconds -= after - before
                if message is not None:
                    message.wait_left -= after - before
            content = conn.is_receiving_content
            conn.receive_data(data)
            if content:
                # smtpd_min_data_rate: each octet buys 1/rate seconds more.
                if budget is None or budget.kind is not _Expired.DATA_RATE:
                    budget = self.budget = _Budget(_Expired.DATA_RATE, idle)
                budget.seconds += len(data) / self.min_data_rate
            event = conn.next_event()
            # A line left incomplete by this read gets its budget at the next
            # wait, above: a read that completes the command costs no more.
        if self.budget is not None and not (
            isinstance(event, MessageData) and conn.is_receiving_content
        ):
            self.budget = None  # a whole command, or the content's end: the next starts afresh
        return event


#: The phases in which no message is in flight: a shutdown may end the wait.
_QUIET: Final = frozenset({ServerPhase.HELLO, ServerPhase.READY, ServerPhase.REFUSED})


def serve_connection(
    conn: ServerConnection,
    hooks: Collection[str],
    peer: Peer,
    *,
    session_id: str,
    tls: TLSInfo | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    refuse: str | None = None,
    greeting_delay: float = 0.0,
    min_data_rate: float = MIN_DATA_RATE,
    spool_threshold: int | None = SPOOL_THRESHOLD,
    data_timeout: float = DATA_TIMEOUT,
    scram_secret: bytes | None = None,
    auth_failure_delay: float = 0.0,
    auth_budget: AuthBudget | None = None,
    log: LogLine | None = None,
) -> ServerProcedure[int]:
    """Serve one connection from greeting to close; return the number of messages accepted.

    ``hooks`` are the handler's hooks (``hooks_of``); ``tls`` describes an
    implicit TLS layer already in place. ``refuse`` is a reason to turn the
    client away (``Admission.admit`` gives it, enhanced status code first):
    the greeting is then ``421 <hostname> <reason>`` and the connection
    closes (RFC 5321 3.8: too many connections, shutting down).
    A client silent for ``idle_timeout`` seconds gets 421 4.4.2 and is dropped
    (RFC 5321 4.5.3.2.7); so does any session waiting for a command when the
    server shuts down (421 4.3.2).

    Slow clients (Postfix smtpd_per_record_deadline, smtpd_min_data_rate):
    once a command line has begun to arrive, it must be complete after at
    most ``idle_timeout`` seconds of waiting (else ``421 4.4.2 Command
    timeout``); once message content has begun to arrive, the waits for it
    may add up to ``idle_timeout`` plus one second per ``min_data_rate``
    octets received (else ``421 4.4.2 Data rate too low``). For a BDAT
    chunk the budget starts with each chunk. Whatever the rate, one
    message's waits may add up to ``data_timeout`` seconds at most, from the
    first content after 354 (or its first BDAT chunk) to its end, the waits
    between BDAT chunks included (else ``421 4.4.2 Data timeout``).

    Content beyond ``spool_threshold`` octets (the ``Received:`` header
    included) goes to a spool through ``SpoolWrite``; see ``ServerEnvelope``.

    ``greeting_delay`` (sendmail greet_pause, Postfix postscreen greet wait):
    the 220 waits that long; a client that sends anything meanwhile did not
    wait for the greeting (RFC 5321 4.3.1) and gets 554 5.5.0 after it, then
    the connection closes.

    ``log``, when given, is called with one line per message whose end
    arrived and one when the session ends, however it ends (see
    ``session._report``).
    """
    session = _Session(
        conn,
        hooks,
        peer,
        session_id,
        tls,
        idle_timeout,
        min_data_rate,
        spool_threshold,
        data_timeout,
    )
    session.scram_secret = scram_secret
    session.auth_failure_delay = auth_failure_delay
    session.auth_budget = auth_budget
    if log is None:
        return (yield from _serve(session, refuse, greeting_delay))
    session.log = log
    try:
        return (yield from _serve(session, refuse, greeting_delay))
    finally:
        log(
            session_line(
                session_id,
                (peer.host, peer.port),
                helo=conn.hello_domain,
                tls=session.tls,
                identity=conn.identity,
                messages=session.accepted,
                end=session.end,
                dropped=session.message is not None,
            )
        )


def _serve(session: _Session, refuse: str | None, greeting_delay: float) -> ServerProcedure[int]:
    """``serve_connection`` for the session made: from greeting to close."""
    conn = session.conn
    peer = session.peer
    session_id = session.session_id
    tls = session.tls
    if refuse is not None:
        session.end = f"refused: {refuse}"
        session.send(Reply(421, (f"{conn.config.hostname} {refuse}",)))
        yield from session.close()
        return 0
    info = SessionInfo(peer, conn.config.hostname, session_id, tls)
    result = yield from session.hook("on_connect", info)
    greeting = session.reply_from(result, conn.greeting_reply())
    if greeting.code not in (220, 554, 421):
        greeting = Reply(421, (f"{conn.config.hostname} 4.3.0 Service not available",))
    if greeting.code == 220 and greeting_delay > 0:
        # Bytes before the 220 mark a client that does not wait for it; the
        # connection holds them and answers 554 5.5.0 after the greeting.
        early = yield Receive(greeting_delay, True)
        if early is SHUT_DOWN:
            session.end = "shutdown"
            session.send(_farewell(conn, SHUT_DOWN))
            yield from session.close()
            return 0
        if isinstance(early, bytes):
            if not early:  # gone before we spoke: nothing to say
                session.end = "client closed"
                yield from session.close()
                return 0
            conn.receive_data(early)
        elif early is not TIMED_OUT:
            raise TypeError(f"a transport answered Receive with {type(early).__name__}")
    session.send(greeting)
    session.end = "closed by server"
    while conn.phase is not ServerPhase.CLOSED:
        event = yield from session.next_event()
        if isinstance(event, (Interrupted, _Expired)):
            session.end = _ENDS[event]
            session.send(_farewell(conn, event))
            break
        if isinstance(event, ConnectionClosed):
            session.end = "client closed"
            break
        yield from _handle(session, event)
        if isinstance(event, Quit):
            session.end = "quit"
    yield from session.close()
    return session.accepted


#: How a session that ended without a command to end it ended, for its log line.
_ENDS: Final[dict[Interrupted | _Expired, str]] = {
    SHUT_DOWN: "shutdown",
    TIMED_OUT: "idle timeout",
    _Expired.COMMAND: "command timeout",
    _Expired.DATA_RATE: "data rate too low",
    _Expired.MESSAGE: "data timeout",
}


def _handle(session: _Session, event: Event) -> ServerProcedure[None]:
    """Answer one event from the connection."""
    if type(event) is MessageData:
        if session.message is not None:
            session.message.size += len(event.data)
        yield from _content(session, event.data)
    elif type(event) is EndOfData or type(event) is EndOfChunk:
        yield from _end_of_content(session, event)
    elif type(event) is InvalidCommand:
        conn = session.conn
        while conn.awaiting is not None:  # LMTP: once per recipient
            session.send(event.reply)
        if conn.phase not in (ServerPhase.DATA, ServerPhase.BDAT):
            session.message = None  # no transaction left: drop what was collected
    elif isinstance(event, Command):
        yield from _command(session, event)


def _command(session: _Session, command: Command) -> ServerProcedure[None]:
    conn = session.conn
    hostname = conn.config.hostname
    # The commands of every transaction first: this runs for each one.
    # A hook is called with a CallHook of its own here, not through
    # ``session.hook``: one generator less per command.
    if type(command) is Mail:
        result = None
        if "on_mail" in session.hooks:
            result = yield CallHook("on_mail", (command.sender, command.params))
        session.answer(result, _reply(conn, 250, "2.1.0", "Sender OK"))
    elif type(command) is Rcpt:
        result = None
        if "on_rcpt" in session.hooks:
            result = yield CallHook("on_rcpt", (command.recipient, command.params))
        session.answer(result, _reply(conn, 250, "2.1.5", "Recipient OK"))
    elif type(command) is Data:
        session.send(_GO_AHEAD)
        yield from _start_message(session, bdat=False)
    elif isinstance(command, (Ehlo, Lhlo)):
        result = yield from session.hook("on_ehlo", command.domain)
        session.answer(result, conn.ehlo_reply())
    elif isinstance(command, Helo):
        result = yield from session.hook("on_ehlo", command.domain)
        session.answer(result, Reply(250, (hostname,)))
    elif isinstance(command, Bdat):
        if session.message is None:  # the first chunk: no reply due yet
            yield from _start_message(session, bdat=True)
    elif isinstance(command, Rset):
        session.message = None
        session.send(_reply(conn, 250, "2.0.0", "OK"))
    elif isinstance(command, Noop):
        session.send(_reply(conn, 250, "2.0.0", "OK"))
    elif isinstance(command, Quit):
        session.send(_reply(conn, 221, "2.0.0", f"{hostname} closing connection"))
    elif isinstance(command, Help):
        session.send(_reply(conn, 214, "2.0.0", _HELP_TEXT))
    elif isinstance(command, Vrfy):
        result = yield from session.hook("on_vrfy", command.argument)
        # RFC 5321 3.5.3: 252 when we will not say, but will take mail for it.
        default = _reply(
            conn, 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"
        )
        session.answer(result, default)
    elif isinstance(command, Expn):
        result = yield from session.hook("on_expn", command.argument)
        session.answer(result, _reply(conn, 502, "5.5.1", "Command EXPN not implemented"))
    elif isinstance(command, StartTLS):
        yield from _starttls(session)
    elif isinstance(command, Auth):
        yield from _auth(session, command)
    elif isinstance(command, (AuthResponse, AuthCancel)):  # pragma: no cover - only inside _auth
        session.send(_reply(conn, 501, "5.5.2", "No AUTH exchange in progress"))
    elif isinstance(command, (Turn, Send, Soml, Saml, Etrn)):
        # Offered only when configured; we have no queue or terminal to run them.
        session.send(_reply(conn, 502, "5.5.1", f"Command {command.verb} not implemented"))
    else:  # pragma: no cover - every command class is listed above
        session.send(_reply(conn, 502, "5.5.1", f"Command {command.verb} not implemented"))


# -- STARTTLS ----------------------------------------------------------------------


def _starttls(session: _Session) -> ServerProcedure[None]:
    conn = session.conn
    session.send(_reply(conn, 220, "2.0.0", "Ready to start TLS"))
    yield from session.flush()
    info = yield Handshake(None, session.idle_timeout)
    session.tls = info if isinstance(info, TLSInfo) else TLSInfo()
    session.message = None
    conn.tls_established()  # RFC 3207 4.2: everything said before is forgotten


# -- AUTH (RFC 4954) ----------------------------------------------------------------


def _auth(session: _Session, command: Auth) -> ServerProcedure[None]:
    conn = session.conn
    limits = conn.limits
    budget = session.auth_budget
    if budget is not None and budget.exhausted(session.peer.host, (yield from session.clock())):
        session.send(_address_refused(conn, session.peer))
        return
    nonce = yield from session.fresh_id()
    mechanism = server_mechanism(
        command.mechanism, nonce=nonce, hostname=conn.config.hostname, secret=session.scram_secret
    )
    step: ServerStep = mechanism.start(command.initial_response)
    challenges = 0
    while True:
        if isinstance(step, Challenge):
            challenges += 1
            if challenges > limits.sasl_rounds:
                step = Failure(f"more than Limits.sasl_rounds ({limits.sasl_rounds}) challenges")
                continue
            text = base64.b64encode(step.data).decode("ascii")
            session.send(Reply(334, (text,)))
            event = yield from session.next_event()
            if isinstance(event, AuthResponse):
                step = mechanism.receive(event.data)
            elif isinstance(event, AuthCancel):
                # RFC 4954 4: "*" ends the exchange with 501. It counts like a
                # failure, or AUTH LOGIN / "*" could loop for free forever.
                session.auth_failures += 1
                if session.auth_failures >= limits.auth_failures:
                    session.send(_too_many_auth_failures(conn))
                else:
                    session.send(_reply(conn, 501, "5.7.0", "Authentication cancelled"))
                return
            elif isinstance(event, InvalidCommand):
                session.send(event.reply)  # bad base64 or too long: the exchange is over
                return
            else:  # closed, timed out or shut down: nothing left to answer
                if isinstance(event, (Interrupted, _Expired)):
                    session.send(_farewell(conn, event))
                return
        elif isinstance(step, VerifyPassword):
            ok = yield from _check_password(session, step)
            if ok is None:
                session.send(_reply(conn, 454, "4.7.0", "Temporary authentication failure"))
                return
            step = mechanism.password_checked(ok)
        elif isinstance(step, NeedSecret):
            secret = yield from _lookup_secret(session, step)
            if isinstance(secret, HookFailed):
                session.send(_reply(conn, 454, "4.7.0", "Temporary authentication failure"))
                return
            step = mechanism.supply_secret(secret)
        elif isinstance(step, Success):
            if step.authzid and step.authzid != step.authcid:
                # Acting as someone else needs a policy we do not have (RFC 4422 3.4.1).
                step = Failure(f"{step.authcid!r} may not act as {step.authzid!r}")
                continue
            conn.authenticated(step.authcid)
            session.send(_reply(conn, 235, "2.7.0", "Authentication successful"))
            return
        else:
            session.auth_failures += 1
            if budget is not None:
                host = session.peer.host
                if budget.fail(host, (yield from session.clock())):
                    yield Notice(
                        f"AUTH refused to {budget.key(host)} for up to {budget.window:g} s: "
                        f"{budget.failures} failed attempts within {budget.window:g} s"
                    )
                    session.send(_address_refused(conn, session.peer))
                    return
            if session.auth_failure_delay > 0:
                # Postfix smtpd_error_sleep_time: a wrong guess costs time.
                yield from session.flush()
                yield Pause(session.auth_failure_delay)
            if session.auth_failures >= limits.auth_failures:
                session.send(_too_many_auth_failures(conn))
            elif step.malformed:
                session.send(_reply(conn, 501, "5.5.2", "Malformed authentication data"))
            else:
                session.send(_reply(conn, 535, "5.7.8", "Authentication credentials invalid"))
            return


def _too_many_auth_failures(conn: ServerConnection) -> Reply:
    # Limits.auth_failures failed or cancelled exchanges: 421 and close (RFC 5321 3.8).
    text = "4.7.0 Too many failed authentication attempts, closing"
    return Reply(421, (f"{conn.config.hostname} {text}",))


def _address_refused(conn: ServerConnection, peer: Peer) -> Reply:
    # The client address used up its AuthBudget: 421 and close (RFC 5321 3.8).
    text = f"4.7.0 Too many failed authentication attempts from {peer.host}, try again later"
    return Reply(421, (f"{conn.config.hostname} {text}",))


def _check_password(session: _Session, step: VerifyPassword) -> ServerProcedure[bool | None]:
    """The handler's verdict on a password: True, False, or None when it failed.

    With only ``lookup_secret``, the password is compared with the secret it
    gives, in constant time.
    """
    if step.authzid and step.authzid != step.username:
        return False
    if "authenticate" in session.hooks:
        result = yield from session.hook("authenticate", step.username, step.password)
        return None if isinstance(result, HookFailed) else result is True
    secret = yield from session.hook("lookup_secret", "PLAIN", step.username)
    if isinstance(secret, HookFailed):
        return None
    if not isinstance(secret, str):
        return False
    return hmac.compare_digest(secret.encode("utf-8"), step.password.encode("utf-8"))


def _lookup_secret(
    session: _Session, step: NeedSecret
) -> ServerProcedure[str | ScramCredentials | HookFailed | None]:
    """The secret CRAM-MD5 or SCRAM needs, from ``lookup_secret(mechanism, username)``.

    A password (str) given for SCRAM is turned into credentials, with the
    salt ``scram_salt`` derives from the server's secret (the one an unknown
    user is shown too, RFC 5802 9), or a fresh one without a secret.
    """
    result = yield from session.hook("lookup_secret", step.mechanism, step.username)
    if isinstance(result, HookFailed):
        return result
    scram = step.mechanism.startswith("SCRAM-")
    if isinstance(result, str) and scram:
        if session.scram_secret is not None:
            salt = scram_salt(session.scram_secret, step.username)
        else:
            salt = (yield from session.fresh_id()).encode()
        hash_name = "sha256" if step.mechanism == "SCRAM-SHA-256" else "sha1"
        return derive_scram_credentials(result, salt, SCRAM_ITERATIONS, hash_name)
    if isinstance(result, ScramCredentials) and scram:
        return result
    if isinstance(result, str) and not scram:
        return result
    return None


# -- message content ---------------------------------------------------------------


def _start_message(session: _Session, *, bdat: bool) -> ServerProcedure[None]:
    """A message begins (354 sent, or the first BDAT chunk): stamp it."""
    message_id = yield NewId()
    if not isinstance(message_id, str):
        raise TypeError(f"a transport answered NewId with {type(message_id).__name__}")
    moment = yield Now()
    if not isinstance(moment, datetime.datetime):
        raise TypeError(f"a transport answered Now with {type(moment).__name__}")
    conn = session.conn
    header = received_header(conn, session.peer, message_id, moment)
    message = _Message(message_id, header, session.data_timeout, bdat)
    session.message = message
    if "on_data_chunk" in session.hooks:
        yield from _stream(session, message, header)
    else:
        message.content += header


def _stream(session: _Session, message: _Message, data: bytes) -> ServerProcedure[None]:
    if message.stream_failure is not None:
        return  # the handler refused already: the rest is read and dropped
    result = yield CallHook("on_data_chunk", (data,))  # callers checked it exists
    if result is not None:
        refusal = session.reply_from(result, session.hook_failure())
        if refusal.is_positive or refusal.is_intermediate:
            refusal = session.hook_failure()
        message.stream_failure = refusal


def _content(session: _Session, data: bytes) -> ServerProcedure[None]:
    message = session.message
    if message is None:  # pragma: no cover - content only flows after 354 or BDAT
        return
    if "on_data_chunk" in session.hooks:
        yield from _stream(session, message, data)
    elif message.stream_failure is not None:
        return  # the spool failed: the rest is read and dropped
    elif message.spool is None and len(message.content) + len(data) <= session.spool_threshold:
        # Bounded: the connection refuses a message beyond its size limit and
        # the size limit always exists when ServerOptions made the config.
        message.content += data
    else:
        yield from _spool(session, message, data)


def _spool(session: _Session, message: _Message, data: bytes) -> ServerProcedure[None]:
    """Beyond the threshold: what memory holds goes to the spool first, then each piece."""
    if message.spool is None:
        data = bytes(message.content) + data
        message.content = bytearray()
    spool = yield SpoolWrite(message.spool, data)
    if isinstance(spool, HookFailed):
        # RFC 3463 4.3.1: mail system full. The rest is read and dropped.
        message.stream_failure = _reply(session.conn, 452, "4.3.1", "Insufficient system storage")
        message.spool = None
        return
    if not callable(getattr(spool, "chunks", None)):
        raise TypeError(f"a transport answered SpoolWrite with {type(spool).__name__}")
    message.spool = spool  # type: ignore[assignment]  # checked above, as far as it can be
    message.spooled += len(data)


def _end_of_content(session: _Session, event: EndOfData | EndOfChunk) -> ServerProcedure[None]:
    conn = session.conn
    message = session.message
    if isinstance(event, EndOfChunk):
        if message is not None and message.stream_failure is not None:
            session.message = None
            session.send(message.stream_failure)  # RFC 3030 2: the transaction failed
        else:
            session.send(_reply(conn, 250, "2.0.0", "Chunk received"))
        return
    recipients = conn.recipients
    replies = yield from _deliver(session, message)
    session.message = None  # after delivery: a session cut meanwhile dropped it
    if session.log is not None and message is not None:
        session.log(
            message_line(
                message.message_id,
                session.session_id,
                sender=conn.sender or "",
                recipients=len(recipients),
                size=message.size,
                replies=replies,
            )
        )
    if conn.config.lmtp:
        # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
        for recipient, reply in zip(recipients, replies, strict=True):
            del recipient
            session.send(reply)
    else:
        session.send(replies[0])


def _deliver(session: _Session, message: _Message | None) -> ServerProcedure[list[Reply]]:
    """Hand the message to ``on_message``: one reply per recipient (all equal for SMTP)."""
    conn = session.conn
    recipients = conn.recipients
    count = len(recipients) if conn.config.lmtp else 1
    if message is None:  # pragma: no cover - a message always starts before its end
        return [session.hook_failure()] * count
    if message.stream_failure is not None:
        return [message.stream_failure] * count
    streamed = "on_data_chunk" in session.hooks
    if "on_message" not in session.hooks and not streamed:
        # Nothing would keep the message: saying 250 would lose it.
        reply = _reply(conn, 451, "4.3.0", "No handler stores messages here")
        return [reply] * count
    envelope = ServerEnvelope(
        sender=conn.sender or "",
        recipients=recipients,
        mail_params=conn.mail_params,  # a read-only copy already
        recipient_params=conn.recipient_params,
        peer=session.peer,
        hello_domain=conn.hello_domain,
        is_tls=conn.is_tls,
        tls=session.tls,
        auth_identity=conn.identity,
        message_id=message.message_id,
        session_id=session.session_id,
        received_header=message.header,
        held=b"" if streamed or message.spool is not None else bytes(message.content),
        spool=message.spool,
        size=message.spooled if message.spool is not None else len(message.content),
    )
    ok = _fresh_reply(conn, 250, "2.0.0", f"OK queued as {message.message_id}")
    result = None
    if "on_message" in session.hooks:
        result = yield CallHook("on_message", (envelope,))
    if isinstance(result, Mapping):
        replies = []
        for recipient in recipients:
            value = result.get(recipient)
            replies.append(session.reply_from(value, ok))
        if not conn.config.lmtp:
            refused = [r for r in replies if not r.is_positive]
            replies = [refused[0] if refused else ok]
    else:
        replies = [session.reply_from(result, ok)] * count
    replies = [r if not r.is_intermediate else session.hook_failure() for r in replies]
    session.accepted += any(r.is_positive for r in replies)
    return replies
