"""The state of one server session besides its connection: replies queued, deadlines, hooks.

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
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from .._errors import LocalProtocolError
from .._events import NEED_DATA, Event, MessageData, Reply
from .._server import ServerConnection, ServerPhase
from ._effects import Close, Write
from ._received import format_date
from ._report import LogLine
from ._server_effects import (
    SHUT_DOWN,
    TIMED_OUT,
    CallHook,
    Clock,
    ContentSpool,
    Interrupted,
    NewId,
    Receive,
    ServerProcedure,
)
from ._server_values import Peer, SessionContext
from ._throttle import AuthBudget
from ._tls import TLSInfo

#: Seconds a client may stay silent (RFC 5321 4.5.3.2.7: at least 5 minutes).
IDLE_TIMEOUT: Final = 300.0
MIN_DATA_RATE: Final = 500.0
"""Octets per second message content must keep up, by default (Postfix's smtpd_min_data_rate)."""
SPOOL_THRESHOLD: Final = 1024 * 1024
"""Octets of one message held in memory by default; the rest goes to a spool (a temporary file)."""
# Postfix's per-record deadline is the model, applied to the message as one
# record: at this bound a 32 MiB message still goes through at 9.3 kB/s.
DATA_TIMEOUT: Final = 3600.0
"""Seconds of waiting one message may take from its 354 (or first BDAT chunk) to its end."""


def _reply(conn: ServerConnection, code: int, status: str, text: str) -> Reply:
    """A reply with the RFC 3463 status code in front when we offer ENHANCEDSTATUSCODES."""
    if conn.config.enhanced_status_codes:
        return Reply(code, (f"{status} {text}",))
    return Reply(code, (text,))


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
        # None: never spool, which an infinite threshold says for every length.
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
        self.contextual = False  # the hooks take a SessionContext first (a Handler's)
        self.end = "connection lost"  # how the session ended, for its log line
        self._replies: dict[tuple[int, str, str], Reply] = {}  # see reply()
        self._date: tuple[datetime.datetime, str] | None = None  # see date()
        self._waits: tuple[Receive, Receive] | None = None  # see next_event()

    # -- small steps ------------------------------------------------------------

    def reply(self, code: int, status: str, text: str) -> Reply:
        """``_reply``'s reply, made once per session and kept for the next time.

        For the replies every message repeats (250 to MAIL and RCPT): a reply
        is immutable, and whether the status code goes in front is fixed by
        the session's config, so the same words always give the same reply.
        Callers pass texts that are constant within a session (the hostname
        at most), so the session keeps a handful; a text with a message id in
        it goes through ``_reply`` instead.
        """
        key = (code, status, text)
        reply = self._replies.get(key)
        if reply is None:
            reply = self._replies[key] = _reply(self.conn, code, status, text)
        return reply

    def date(self, moment: datetime.datetime) -> str:
        """``format_date(moment)``, kept for the messages of the same second."""
        second = moment.replace(microsecond=0)
        last = self._date
        # The text shows the offset: the same instant in another zone is another text.
        if last is not None and last[0] == second and last[0].tzinfo == second.tzinfo:
            return last[1]
        text = format_date(moment)
        self._date = (second, text)
        return text

    def send(self, reply: Reply) -> None:
        """Queue ``reply``; it is written before the next wait."""
        self.out.append(self.conn.send(reply))

    def flush(self) -> ServerProcedure[None]:
        if self.out:
            data, self.out = b"".join(self.out), []
            yield Write(data, self.idle_timeout)

    def close(self) -> ServerProcedure[None]:
        yield from self.flush()
        if not self.closed:
            self.closed = True
            yield Close()

    def context(self) -> SessionContext:
        """What a ``Handler``'s hook is told about this session, as of now."""
        conn = self.conn
        message = self.message
        return SessionContext(
            session_id=self.session_id,
            peer=self.peer,
            hostname=conn.config.hostname,
            tls=self.tls,
            hello_domain=conn.hello_domain,
            auth_identity=conn.identity,
            sender=conn.sender,
            recipients=conn.recipients,
            message_id=None if message is None else message.message_id,
        )

    def call(self, name: str, args: tuple[object, ...]) -> CallHook:
        """The effect that calls hook ``name`` with ``args``, after the context if it takes one."""
        if self.contextual:
            return CallHook(name, (self.context(), *args))
        return CallHook(name, args)

    def hook(self, name: str, *args: object) -> ServerProcedure[object]:
        """The result of hook ``name``: None when absent, HookFailed when it raised."""
        if name not in self.hooks:
            return None
        result = yield self.call(name, args)
        return result

    def hook_failure(self) -> Reply:
        # The handler broke: a transient failure, the client may retry later.
        return self.reply(451, "4.3.0", "Requested action aborted: local error")

    def reply_from(self, result: object, default: Reply) -> Reply:
        """What a hook's answer means: its Reply, the default for None, 451 otherwise."""
        if result is None:
            return default
        if isinstance(result, Reply):
            return result
        return self.hook_failure()

    def answer(self, result: object, default: Reply) -> None:
        """Send the reply a hook's answer calls for; one the phase forbids becomes 451."""
        if result is None:  # the default, which always fits this moment
            self.send(default)
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
            if self.out:
                # Whatever is queued goes out before we wait: the client may
                # be waiting for it (a pipelined group is answered at its end,
                # RFC 2920 3.2), and no reply may wait for the next read.
                replies, self.out = b"".join(self.out), []
                yield Write(replies, idle)
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
            if timeout == idle:  # most waits: the two effects are kept, as they repeat
                waits = self._waits
                if waits is None or waits[0].timeout != idle:
                    waits = self._waits = (Receive(idle, False), Receive(idle, True))
                data = yield waits[quiet]
            else:
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
#: A tuple, not a set: membership by identity, with no hash of an Enum member (a Python call).
_QUIET: Final = (ServerPhase.HELLO, ServerPhase.READY, ServerPhase.REFUSED)
