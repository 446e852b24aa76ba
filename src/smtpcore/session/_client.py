"""Client procedures: whole conversations, written once, driven by any transport.

How this works: each procedure drives a ``ClientConnection`` and yields
effects (``Write``, ``Read``, ``Handshake``, ``Close``, ``NextChunk``). The
connection knows what SMTP allows; these know what a delivery is: which
command comes next, what a reply means, when to give up. They never call
user code and never yield in ``finally``.

    open_session   greeting, EHLO (HELO/LHLO), STARTTLS and EHLO again, AUTH
    deliver        one envelope: MAIL, RCPT..., DATA or BDAT, content, replies
    deliver_message  an email.message.Message: envelope from the headers
    deliver_many   many messages, one round trip each (in _many.py)
    simple_command NOOP, RSET, VRFY, EXPN, HELP, ETRN, TURN: the reply, any code
    quit           QUIT, then Close
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar, cast

from .._client import ClientConnection, ClientPhase
from .._data import LineEnds
from .._errors import RemoteProtocolError
from .._events import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    Lhlo,
    Mail,
    MessageData,
    Quit,
    Rcpt,
    Reply,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
)
from .._extensions import Extensions
from .._message import prepare_message, to_7bit
from .._syntax import xtext_encode
from ..sasl import choose_client_mechanism, decode_challenge
from ._effects import (
    Close,
    Handshake,
    NextChunk,
    Procedure,
    Write,
    next_reply,
    receive_event,
    reply_of,
)
from ._errors import (
    AuthenticationError,
    ConnectionLost,
    NotSupported,
    RecipientsRefused,
    SMTPError,
    TLSError,
    TransientError,
    command_text,
    reply_error,
)
from ._options import DSN, ClientOptions, Envelope, SendResult, Timeouts

if TYPE_CHECKING:
    from email.message import Message

__all__ = [
    "WRITE_BATCH",
    "deliver",
    "deliver_message",
    "message_envelope",
    "open_session",
    "quit",
    "simple_command",
]

#: Content is gathered into writes (and BDAT chunks) of about this many
#: octets: fewer system calls and packets than one per caller piece.
WRITE_BATCH: Final = 64 * 1024
"""Octets of content gathered into one write or BDAT chunk."""

_OLD_VERBS: Final = {"SEND": Send, "SOML": Soml, "SAML": Saml}

# The commands without fields, made once: they are frozen and compare equal
# to any other instance, and deliver sends them with every message.
_DATA: Final = Data()
_END_OF_DATA: Final = EndOfData()


# -- small steps ---------------------------------------------------------------------


def _command(conn: ClientConnection, command: Command, timeout: float) -> Procedure[Reply]:
    """Send one command, wait for its reply; 421 raises ``TransientError`` and closes."""
    yield Write(conn.send(command), timeout)
    return (yield from _reply(conn, timeout))


def _reply(conn: ClientConnection, timeout: float) -> Procedure[Reply]:
    """The next reply; 421 (RFC 5321 3.8: the server is closing) raises and closes.

    ``next_reply`` and the 421 check in one procedure: this is how every
    reply of a transaction is awaited.
    """
    event = conn.next_event()
    if event is NEED_DATA:
        event = yield from receive_event(conn, timeout)
    reply = reply_of(conn, event)
    if reply.code == 421:
        yield Close()
        raise TransientError(reply)
    return reply


def _reset(conn: ClientConnection, timeout: float) -> Procedure[None]:
    """RSET after a refused transaction, so the connection serves the next one (RFC 5321 4.1.1.5).

    Its reply does not matter, nor does its failure: see ``_after_refusal``.
    """
    yield from _after_refusal(conn, _command(conn, Rset(), timeout))


def _after_refusal(conn: ClientConnection, steps: Procedure[object]) -> Procedure[None]:
    """Clean up after a refusal (RSET, QUIT, ending abandoned data); never fail instead of it.

    A server that refuses and closes (Exim's ``drop``, Haraka's DISCONNECT)
    cannot answer the RSET or QUIT that follows: the refusal is what the
    caller must learn, not the lost connection, a timeout, a 421 or a garbled
    reply of the clean-up (smtplib ignores a disconnect during that RSET for the
    same reason). A connection left mid-command is closed by the transport.
    """
    if conn.phase is ClientPhase.CLOSED or conn.phase is ClientPhase.ERROR:
        steps.close()
        return
    try:
        yield from steps
    except SMTPError:
        pass


# -- opening a session -----------------------------------------------------------------


def open_session(
    conn: ClientConnection, options: ClientOptions, *, hello: str, nonce: str
) -> Procedure[Extensions]:
    """Greeting, EHLO (HELO or LHLO), TLS by ``options.tls``, and AUTH with credentials.

    ``hello`` is our name for EHLO; ``nonce`` fresh randomness for SCRAM
    (printable ASCII without ","). Returns the extensions of the last EHLO.
    Raises ``TLSError`` when TLS is required but not offered or refused, or
    credentials would cross in clear; ``AuthenticationError`` when AUTH is
    refused; ``NotSupported`` when no AUTH mechanism is shared;
    ``TransientError``/``PermanentError`` for a refused greeting or EHLO.
    Nothing of a message is sent in any of those cases.
    """
    timeouts = options.timeouts
    greeting = yield from _reply(conn, timeouts.greeting)
    if not greeting.is_positive:
        # RFC 5321 3.1: after a 554 greeting the client should say QUIT.
        yield from _after_refusal(conn, quit(conn, timeouts))
        raise reply_error(greeting, "the greeting")
    yield from _hello(conn, options.lmtp, hello, timeouts)
    if options.tls in ("starttls", "opportunistic") and not conn.is_tls:
        yield from _starttls(conn, options, hello)
    if options.username is not None:
        yield from _authenticate(conn, options, nonce)
    return conn.extensions


def _hello(conn: ClientConnection, lmtp: bool, name: str, timeouts: Timeouts) -> Procedure[None]:
    if lmtp:
        reply = yield from _command(conn, Lhlo(name), timeouts.ehlo)
    else:
        reply = yield from _command(conn, Ehlo(name), timeouts.ehlo)
        if reply.is_permanent:
            # RFC 5321 3.2: a server that does not know EHLO refuses it with
            # 5xx; the client may then fall back to HELO.
            reply = yield from _command(conn, Helo(name), timeouts.ehlo)
    if not reply.is_positive:
        raise reply_error(reply)


def _starttls(conn: ClientConnection, options: ClientOptions, hello: str) -> Procedure[None]:
    required = options.tls == "starttls"
    if not conn.extensions.starttls:
        if required:
            raise TLSError(
                f"TLS is required (tls='starttls') but {options.host} did not offer STARTTLS"
            )
        return
    reply = yield from _command(conn, StartTLS(), options.timeouts.ehlo)
    if not reply.is_positive:
        if required:
            raise TLSError(f"TLS is required but STARTTLS was refused: {reply}")
        return
    yield Handshake(options.host, options.timeouts.ehlo)
    conn.tls_established()
    # RFC 3207 4.2: forget what the clear channel said; EHLO again.
    yield from _hello(conn, options.lmtp, hello, options.timeouts)


def _authenticate(conn: ClientConnection, options: ClientOptions, nonce: str) -> Procedure[None]:
    if not conn.is_tls and not options.auth_in_clear:
        raise TLSError(
            "refusing to send credentials over a clear channel; "
            "use TLS, or auth_in_clear=True on a trusted network"
        )
    offered = conn.extensions.auth
    mechanism = choose_client_mechanism(
        offered,
        username=options.username,
        password=options.password,
        oauth_token=options.oauth_token,
        nonce=nonce,
        host=options.host,
        port=options.resolved_port,
    )
    if mechanism is None:
        shown = " ".join(sorted(offered)) or "none"
        raise NotSupported(f"no AUTH mechanism shared with the server (it offers: {shown})")
    timeout = options.timeouts.ehlo
    reply = yield from _command(conn, Auth(mechanism.name, mechanism.initial_response()), timeout)
    rounds = 0
    while reply.code == 334:
        rounds += 1
        try:
            if rounds > options.limits.sasl_rounds:
                raise RemoteProtocolError(
                    f"AUTH {mechanism.name}: challenge {rounds} exceeds "
                    f"Limits.sasl_rounds ({options.limits.sasl_rounds})"
                )
            answer = mechanism.respond(decode_challenge(reply.lines[0]))
        except RemoteProtocolError:
            # RFC 4954 4: "*" cancels; the server answers 501. Then give up.
            yield from _command(conn, AuthCancel(), timeout)
            raise
        reply = yield from _command(conn, AuthResponse(answer), timeout)
    if not reply.is_positive:
        raise AuthenticationError(reply, f"AUTH {mechanism.name}")
    # RFC 5802 5: a 235 before the server proved itself (SCRAM) is no success.
    mechanism.verify_success()


# -- commands that answer with a reply ----------------------------------------------


def simple_command(conn: ClientConnection, command: Command, timeout: float) -> Procedure[Reply]:
    """Send ``command`` (NOOP, RSET, VRFY, ...) and return its reply whatever the code.

    VRFY's 252 or EXPN's 550 is an answer, not an error. 421 raises
    ``TransientError`` and closes (RFC 5321 3.8).
    """
    return (yield from _command(conn, command, timeout))


def quit(conn: ClientConnection, timeouts: Timeouts) -> Procedure[Reply | None]:
    """QUIT (RFC 5321 4.1.1.10), then Close. Returns the reply, or None if the server left first."""
    yield Write(conn.send(Quit()), timeouts.quit)
    reply: Reply | None
    try:
        reply = yield from next_reply(conn, timeouts.quit)
    except (ConnectionLost, RemoteProtocolError):
        reply = None  # the server left without a word, or garbled it: we are done anyway
    yield Close()
    return reply


# -- one message ---------------------------------------------------------------------


def deliver_message(
    conn: ClientConnection,
    options: ClientOptions,
    msg: Message,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    *,
    dsn: DSN | None = None,
    requiretls: bool = False,
) -> Procedure[SendResult]:
    """Send an ``email.message.Message``; the envelope comes from its headers if not given.

    An 8-bit body to a server without 8BITMIME is converted with ``to_7bit``
    (RFC 6152 3 lets the client convert). See ``deliver`` for the rest.
    """
    envelope = message_envelope(conn, msg, sender, recipients, dsn=dsn, requiretls=requiretls)
    return (yield from deliver(conn, options, envelope))


def message_envelope(
    conn: ClientConnection,
    msg: Message,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    *,
    dsn: DSN | None = None,
    requiretls: bool = False,
) -> Envelope:
    """The envelope and content of ``msg`` for this connection (see ``deliver_message``)."""
    prepared = prepare_message(msg, sender, recipients)
    if prepared.body_8bit and not conn.extensions.eightbitmime:
        prepared = prepare_message(to_7bit(msg), prepared.sender, prepared.recipients)
    return Envelope(
        sender=prepared.sender,
        recipients=prepared.recipients,
        content=prepared.content,
        body="8BITMIME" if prepared.body_8bit else "7BIT",
        smtputf8=prepared.needs_smtputf8,
        dsn=dsn,
        requiretls=requiretls,
    )


class _Plan:
    """What one transaction will send, decided before any byte goes out."""

    __slots__ = ("bdat", "binary", "mail", "rcpts")

    def __init__(self, mail: Command, rcpts: tuple[Rcpt, ...], bdat: bool, binary: bool) -> None:
        self.mail = mail
        self.rcpts = rcpts
        self.bdat = bdat
        self.binary = binary  # BODY=BINARYMIME: the content goes as it is


#: The MAIL and RCPT commands of one batch, by their arguments (see ``_made``).
Made: TypeAlias = "dict[tuple[object, ...], Mail | Rcpt]"


_C = TypeVar("_C", Mail, Rcpt)


def _made(made: Made | None, kind: type[_C], address: str, params: dict[str, str | None]) -> _C:
    """``kind(address, params)``, made (and so checked) once per batch for the same arguments.

    A command is an immutable value whose checks depend on nothing but its
    arguments, and the messages of one batch often share their sender (a
    service's one address) and some recipients: each is built once.
    """
    if made is None:
        return kind(address, params)
    key = (kind, address, *params.items()) if params else (kind, address)
    command = made.get(key)
    if command is None:
        command = made[key] = kind(address, params)
    return cast(_C, command)  # made under a key that starts with its kind


def _plan(
    conn: ClientConnection, options: ClientOptions, env: Envelope, made: Made | None = None
) -> _Plan:
    """Check what the message needs against what the server offers; build the commands.

    Raises ``NotSupported`` (nothing sent) when the server lacks something
    the message cannot do without. ``made``: the commands built so far for
    the same batch, to reuse.
    """
    ext = conn.extensions
    smtputf8 = env.smtputf8
    if smtputf8 is None:
        smtputf8 = not (env.sender.isascii() and all(map(str.isascii, env.recipients)))
    body = env.body
    if body is None:
        body = "8BITMIME" if env.content is not None and not env.content.isascii() else "7BIT"
    if smtputf8 and not ext.smtputf8:
        raise NotSupported("the message needs SMTPUTF8 (RFC 6531) but the server does not offer it")
    if body == "8BITMIME" and not ext.eightbitmime:
        raise NotSupported(
            "the content has 8-bit octets but the server does not offer 8BITMIME "
            "(RFC 6152); send an EmailMessage to have it converted, or encode it"
        )
    if body == "BINARYMIME" and not (
        ext.binarymime and ext.chunking and options.chunking is not False
    ):
        raise NotSupported("BINARYMIME content needs BINARYMIME and CHUNKING (RFC 3030)")
    server_size = ext.size  # decides the check below and the SIZE parameter
    if env.size is not None and server_size and env.size > server_size:
        raise NotSupported(
            f"message of {env.size} octets exceeds the server's SIZE limit of {server_size} "
            "(RFC 1870)"
        )
    own = options.limits.message_size
    if env.size is not None and own is not None and env.size > own:
        raise NotSupported(f"message of {env.size} octets exceeds Limits.message_size ({own})")
    if env.requiretls and not (ext.requiretls and conn.is_tls):
        raise NotSupported("REQUIRETLS (RFC 8689) needs TLS and a server that offers it")
    bdat = body == "BINARYMIME" or (options.chunking is True and ext.chunking)

    dsn = env.dsn if ext.dsn else None
    if env.verb != "MAIL":
        mail: Command = _OLD_VERBS[env.verb](env.sender)
        return _Plan(mail, tuple(Rcpt(r) for r in env.recipients), bdat, False)
    params: dict[str, str | None] = {}
    if server_size is not None and env.size is not None:
        params["SIZE"] = str(env.size)
    if body != "7BIT":
        params["BODY"] = body
    if smtputf8:
        params["SMTPUTF8"] = None
    if dsn is not None and dsn.ret is not None:
        params["RET"] = dsn.ret
    if dsn is not None and dsn.envid is not None:
        params["ENVID"] = xtext_encode(dsn.envid)
    if env.requiretls:
        params["REQUIRETLS"] = None
    rcpt_params: dict[str, str | None] = {}
    if dsn is not None and dsn.notify is not None:
        rcpt_params["NOTIFY"] = ",".join(dsn.notify)
    rcpts = []
    for recipient in env.recipients:
        these = dict(rcpt_params)
        if dsn is not None and dsn.orcpt:
            these["ORCPT"] = "rfc822;" + xtext_encode(recipient)
        rcpts.append(_made(made, Rcpt, recipient, these))
    mail = _made(made, Mail, env.sender, params)
    return _Plan(mail, tuple(rcpts), bdat, body == "BINARYMIME")


def deliver(conn: ClientConnection, options: ClientOptions, env: Envelope) -> Procedure[SendResult]:
    """One transaction: MAIL, RCPT for each recipient, DATA or BDAT, the content, the replies.

    With PIPELINING (RFC 2920) MAIL, the RCPTs and DATA go out in one write;
    without it, one command per round trip. Content comes from
    ``env.content`` or, when that is None, from ``NextChunk`` effects.

    Returns a ``SendResult``. Raises ``NotSupported`` before MAIL when the
    server lacks what the message needs; ``RecipientsRefused`` when no
    recipient was accepted; ``TransientError``/``PermanentError`` when MAIL,
    DATA or the end of data is refused. After a refusal inside an open
    transaction, RSET is sent so that the connection stays usable.
    """
    plan = _plan(conn, options, env)
    timeouts = options.timeouts
    rcpts = plan.rcpts
    rcpt_replies: dict[str, Reply] = {}
    data_reply: Reply | None = None
    if conn.extensions.pipelining:
        # RFC 2920 3.1: the whole group in one write; DATA ends it.
        send = conn.send
        wire = [send(plan.mail)]
        for rcpt in rcpts:
            wire.append(send(rcpt))
        if not plan.bdat:
            wire.append(send(_DATA))
        yield Write(b"".join(wire), timeouts.mail)
        mail_reply = None
        try:
            mail_reply = yield from _reply(conn, timeouts.mail)
            for rcpt in rcpts:
                rcpt_replies[rcpt.recipient] = yield from _reply(conn, timeouts.rcpt)
            if not plan.bdat:
                data_reply = yield from _reply(conn, timeouts.data_initiation)
        except ConnectionLost:
            # The server closed within the group: a refusal it gave before
            # closing is the answer (a 5xx permanent, a 4xx transient).
            refusal = _refusal_before_close(mail_reply, rcpt_replies, len(rcpts))
            if refusal is None:
                raise
            raise refusal from None
        if not mail_reply.is_positive:
            if data_reply is not None and data_reply.code == 354:
                yield from _abandon_data(conn, timeouts)
            raise reply_error(mail_reply)
    else:
        mail_reply = yield from _command(conn, plan.mail, timeouts.mail)
        if not mail_reply.is_positive:
            raise reply_error(mail_reply)
        for rcpt in rcpts:
            rcpt_replies[rcpt.recipient] = yield from _command(conn, rcpt, timeouts.rcpt)

    accepted: dict[str, Reply] = {}
    refused: dict[str, Reply] = {}
    for recipient, reply in rcpt_replies.items():
        if reply.is_positive:
            accepted[recipient] = reply
        else:
            refused[recipient] = reply
    if not accepted:
        if data_reply is not None and data_reply.code == 354:
            # RFC 2920 3.1: DATA was accepted with no recipient; end the
            # (empty) data at once. The transaction is then over.
            yield from _abandon_data(conn, timeouts)
        else:
            yield from _reset(conn, timeouts.ehlo)
        raise RecipientsRefused(refused)

    lmtp = options.lmtp
    if plan.bdat:
        count = len(accepted) if lmtp else 1
        finals = yield from _send_bdat(conn, env, timeouts, count, plan.binary)
    else:
        if data_reply is None:
            data_reply = yield from _command(conn, Data(), timeouts.data_initiation)
        if data_reply.code != 354:
            yield from _reset(conn, timeouts.ehlo)
            raise reply_error(data_reply)
        if env.content is not None:
            # Content in hand, with its end marker, in one write (as _send_data).
            send = conn.send
            yield Write(send(MessageData(env.content)) + send(_END_OF_DATA), timeouts.data_block)
        else:
            yield from _send_data(conn, None, timeouts)
        if lmtp:
            finals = []
            for _ in range(len(accepted)):
                finals.append((yield from _reply(conn, timeouts.data_termination)))
        else:
            finals = [(yield from _reply(conn, timeouts.data_termination))]

    if lmtp:
        # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
        data_replies = dict(zip(accepted, finals, strict=True))
        if not any(reply.is_positive for reply in finals):
            worst = next((r for r in finals if r.is_permanent), finals[-1])
            raise reply_error(worst, note="refused for every recipient")
    else:
        if not finals[0].is_positive:
            raise reply_error(finals[0])
        data_replies = dict.fromkeys(accepted, finals[0])
    # The three dicts are this call's own: SendResult need not copy them.
    return SendResult._owned(accepted, refused, finals[-1], data_replies)


def _refusal_before_close(
    mail_reply: Reply | None, rcpt_replies: dict[str, Reply], rcpts: int
) -> SMTPError | None:
    """The refusal a pipelined group got before the server closed, if it got one."""
    if mail_reply is not None and not mail_reply.is_positive:
        return reply_error(mail_reply)
    everyone_answered = rcpt_replies and len(rcpt_replies) == rcpts
    if everyone_answered and not any(r.is_positive for r in rcpt_replies.values()):
        return RecipientsRefused(rcpt_replies)
    return None


def _abandon_data(conn: ClientConnection, timeouts: Timeouts) -> Procedure[None]:
    """End the data right after a 354 that should not have come; its reply is ignored."""
    yield from _after_refusal(conn, _end_abandoned_data(conn, timeouts))


def _end_abandoned_data(conn: ClientConnection, timeouts: Timeouts) -> Procedure[None]:
    yield Write(conn.send(EndOfData()), timeouts.data_block)
    yield from _reply(conn, timeouts.data_termination)


def _send_data(
    conn: ClientConnection, content: bytes | None, timeouts: Timeouts
) -> Procedure[None]:
    """The content after 354, dot-stuffed by the connection, then the end marker."""
    if content is not None:
        yield Write(conn.send(MessageData(content)) + conn.send(EndOfData()), timeouts.data_block)
        return
    batch = bytearray()
    while True:
        piece = yield NextChunk(timeouts.data_block)
        if not isinstance(piece, bytes):
            raise TypeError(f"a transport answered NextChunk with {type(piece).__name__}")
        if not piece:
            break
        batch += conn.send(MessageData(piece))
        if len(batch) >= WRITE_BATCH:
            yield Write(bytes(batch), timeouts.data_block)
            batch.clear()
    batch += conn.send(EndOfData())
    yield Write(bytes(batch), timeouts.data_block)


def _send_bdat(
    conn: ClientConnection, env: Envelope, timeouts: Timeouts, finals: int, binary: bool
) -> Procedure[list[Reply]]:
    """The content as BDAT chunks (RFC 3030 2); returns the ``finals`` final replies.

    Content in hand goes as one ``BDAT n LAST``. Streamed content goes in
    chunks of about ``WRITE_BATCH`` octets, each awaiting its reply; the last
    one carries LAST (``BDAT 0 LAST`` when the source ended on a boundary).
    Unless ``binary`` (BODY=BINARYMIME), bare CR and LF become CRLF first, as
    with DATA (RFC 5321 2.3.8), and each size counts the octets sent.
    LMTP answers the LAST chunk once per accepted recipient (RFC 2033 4.2):
    those replies are returned, refusals included, for the caller to judge.
    """
    ends = None if binary else LineEnds()
    if env.content is not None:
        content = env.content if ends is None else ends.feed(env.content) + ends.end()
        command = Bdat(len(content), last=True)
        yield Write(_chunk(conn, command, content), timeouts.data_block)
        return (yield from _final_replies(conn, timeouts, finals, command))
    batch = bytearray()
    while True:
        piece = yield NextChunk(timeouts.data_block)
        if not isinstance(piece, bytes):
            raise TypeError(f"a transport answered NextChunk with {type(piece).__name__}")
        if piece:
            batch += piece if ends is None else ends.feed(piece)
            if len(batch) < WRITE_BATCH:
                continue
        last = not piece
        if last and ends is not None:
            batch += ends.end()
        command = Bdat(len(batch), last=last)
        yield Write(_chunk(conn, command, bytes(batch)), timeouts.data_block)
        batch.clear()
        if last:
            return (yield from _final_replies(conn, timeouts, finals, command))
        reply = yield from _reply(conn, timeouts.data_block)
        if not reply.is_positive:
            # RFC 3030 4.2: no more chunks after a refused one; reset.
            yield from _reset(conn, timeouts.ehlo)
            raise reply_error(reply, command_text(command))


def _final_replies(
    conn: ClientConnection, timeouts: Timeouts, count: int, command: Bdat
) -> Procedure[list[Reply]]:
    """The replies to the LAST chunk: one (SMTP, must be positive) or one per recipient (LMTP)."""
    replies = []
    for _ in range(count):
        replies.append((yield from _reply(conn, timeouts.data_termination)))
    if not conn.lmtp and not replies[0].is_positive:
        raise reply_error(replies[0], command_text(command))
    return replies


def _chunk(conn: ClientConnection, command: Bdat, data: bytes) -> bytes:
    """A BDAT command line and its octets (RFC 3030 2)."""
    wire = conn.send(command)
    return wire + conn.send(MessageData(data)) if data else wire
