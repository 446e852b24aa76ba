"""The server procedure: one connection served, written once, driven by any transport.

How this works: ``serve_connection`` drives a ``ServerConnection`` and
yields effects (``Write``, ``Handshake`` and ``Close`` of the client side and
the server's own, see ``_server_effects``).

The procedure holds every decision of a server session: the default reply
to each command, what a hook's answer means, the SASL exchange, the
``Received:`` header, and the rule that a message counts as accepted only
once ``on_message`` returned. It never calls user code: a transport runs each
hook it is asked to and reports an exception as ``HookFailed``, which turns
into a 451 4.3.0 here (the session goes on). Replies are buffered and written
when the procedure is about to wait, so pipelined commands (RFC 2920) get
their replies in one write. The deadlines of each wait are the session's
(see ``_server_session``).

Memory (content beyond ``spool_threshold``): a message's content is held in
memory up to ``spool_threshold`` octets; beyond, the transport keeps it in a
spool (a temporary file) through ``SpoolWrite``, and ``on_message`` gets an
envelope that reads it from there on demand. The core never touches a file.

A transport builds one ``ServerOptions`` per listener (``ServerOptions.create``)
and, per connection, ``options.session(peer, ...)``: the procedure to drive.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from .._events import (
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
from .._server import ServerConnection, ServerPhase
from ._effects import Handshake
from ._received import received_header
from ._report import LogLine, message_line, session_line
from ._server_auth import auth
from ._server_effects import (
    SHUT_DOWN,
    TIMED_OUT,
    HookFailed,
    Interrupted,
    NewId,
    Now,
    Receive,
    ServerProcedure,
    SpoolWrite,
)
from ._server_session import (
    _GO_AHEAD,
    _HELP_TEXT,
    _Expired,
    _farewell,
    _Message,
    _reply,
    _Session,
)
from ._server_values import Peer, ServerEnvelope, SessionInfo
from ._tls import TLSInfo

if TYPE_CHECKING:
    from ._server_options import ServerOptions

__all__ = ["serve_connection"]


def serve_connection(
    conn: ServerConnection,
    options: ServerOptions,
    peer: Peer,
    *,
    session_id: str,
    tls: TLSInfo | None = None,
    refuse: str | None = None,
    log: LogLine | None = None,
) -> ServerProcedure[int]:
    """Serve one connection from greeting to close; return the number of messages accepted.

    ``options`` holds the handler's hooks and every setting of the session
    (``ServerOptions.session`` passes its own; each setting is declared
    once, as a field of ``ServerSettings``). ``tls`` describes an implicit
    TLS layer already in place. ``refuse`` is a reason to turn the client
    away (``Admission.admit`` gives it, enhanced status code first): the
    greeting is then ``421 <hostname> <reason>`` and the connection closes
    (RFC 5321 3.8: too many connections, shutting down).
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
    arrived and one when the session ends, however it ends.

    When ``options.contextual``, the hooks are a ``Handler``'s, each called
    with a ``SessionContext`` before its own arguments (``on_connect`` with
    the context alone, instead of a ``SessionInfo``).
    """
    session = _Session(
        conn,
        options.hooks,
        peer,
        session_id,
        tls,
        options.idle_timeout,
        options.min_data_rate,
        options.spool_threshold,
        options.data_timeout,
    )
    session.scram_secret = options.scram_secret
    session.auth_failure_delay = options.auth_failure_delay
    session.auth_budget = options.auth_budget
    session.contextual = options.contextual
    if log is None:
        return (yield from _serve(session, refuse, options.greeting_delay))
    session.log = log
    try:
        return (yield from _serve(session, refuse, options.greeting_delay))
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
    if session.contextual:  # the context says all SessionInfo would
        result = yield from session.hook("on_connect")
    else:
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
    if isinstance(event, Command):  # most events: MAIL, RCPT and DATA of each message
        yield from _command(session, event)
    elif isinstance(event, MessageData):
        if session.message is not None:
            session.message.size += len(event.data)
        yield from _content(session, event.data)
    elif isinstance(event, (EndOfData, EndOfChunk)):
        yield from _end_of_content(session, event)
    elif isinstance(event, InvalidCommand):
        conn = session.conn
        while conn.awaiting is not None:  # LMTP: once per recipient
            session.send(event.reply)
        if conn.phase not in (ServerPhase.DATA, ServerPhase.BDAT):
            session.message = None  # no transaction left: drop what was collected


def _command(session: _Session, command: Command) -> ServerProcedure[None]:
    conn = session.conn
    hostname = conn.config.hostname
    # The commands of every transaction first.
    if isinstance(command, Mail):
        result = yield from session.hook("on_mail", command.sender, command.params)
        session.answer(result, session.reply(250, "2.1.0", "Sender OK"))
    elif isinstance(command, Rcpt):
        result = yield from session.hook("on_rcpt", command.recipient, command.params)
        session.answer(result, session.reply(250, "2.1.5", "Recipient OK"))
    elif isinstance(command, Data):
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
        session.send(session.reply(250, "2.0.0", "OK"))
    elif isinstance(command, Noop):
        session.send(session.reply(250, "2.0.0", "OK"))
    elif isinstance(command, Quit):
        session.send(session.reply(221, "2.0.0", f"{hostname} closing connection"))
    elif isinstance(command, Help):
        session.send(session.reply(214, "2.0.0", _HELP_TEXT))
    elif isinstance(command, Vrfy):
        result = yield from session.hook("on_vrfy", command.argument)
        # RFC 5321 3.5.3: 252 when we will not say, but will take mail for it.
        default = session.reply(
            252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"
        )
        session.answer(result, default)
    elif isinstance(command, Expn):
        result = yield from session.hook("on_expn", command.argument)
        session.answer(result, session.reply(502, "5.5.1", "Command EXPN not implemented"))
    elif isinstance(command, StartTLS):
        yield from _starttls(session)
    elif isinstance(command, Auth):
        yield from auth(session, command)
    elif isinstance(command, (AuthResponse, AuthCancel)):  # pragma: no cover - only inside _auth
        session.send(session.reply(501, "5.5.2", "No AUTH exchange in progress"))
    elif isinstance(command, (Turn, Send, Soml, Saml, Etrn)):
        # Offered only when configured; we have no queue or terminal to run them.
        session.send(session.reply(502, "5.5.1", f"Command {command.verb} not implemented"))
    else:  # pragma: no cover - every command class is listed above
        session.send(session.reply(502, "5.5.1", f"Command {command.verb} not implemented"))


# -- STARTTLS ----------------------------------------------------------------------


def _starttls(session: _Session) -> ServerProcedure[None]:
    conn = session.conn
    session.send(session.reply(220, "2.0.0", "Ready to start TLS"))
    yield from session.flush()
    info = yield Handshake(None, session.idle_timeout)
    session.tls = info if isinstance(info, TLSInfo) else TLSInfo()
    session.message = None
    conn.tls_established()  # RFC 3207 4.2: everything said before is forgotten


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
    header = received_header(conn, session.peer, message_id, moment, date=session.date(moment))
    message = _Message(message_id, header, session.data_timeout, bdat)
    session.message = message
    if "on_data_chunk" in session.hooks:
        yield from _stream(session, message, header)
    else:
        message.content += header


def _stream(session: _Session, message: _Message, data: bytes) -> ServerProcedure[None]:
    if message.stream_failure is not None:
        return  # the handler refused already: the rest is read and dropped
    result = yield session.call("on_data_chunk", (data,))  # callers checked it exists
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
        message.stream_failure = session.reply(452, "4.3.1", "Insufficient system storage")
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
            session.send(session.reply(250, "2.0.0", "Chunk received"))
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
        reply = session.reply(451, "4.3.0", "No handler stores messages here")
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
    ok = _reply(conn, 250, "2.0.0", f"OK queued as {message.message_id}")
    result = None
    if "on_message" in session.hooks:
        result = yield session.call("on_message", (envelope,))
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
