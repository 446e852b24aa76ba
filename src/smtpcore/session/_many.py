"""Many messages on one connection: ``deliver_many``, one round trip per message.

How this works: RFC 2920 3.1 lets the transfer of message content be the
first "command" of a pipelined group. So once the replies to a message's
MAIL, RCPT and DATA are in, its content and end of data go out in the same
write as the next message's MAIL, RCPT and DATA; the reply to the end of
data then arrives just before the replies of the next group. With CHUNKING
chosen (``chunking=True``) there is no 354 to wait for: each transaction is
one write (MAIL, RCPT, ``BDAT n LAST`` and the content) and up to ``WINDOW``
of them are in flight at once. Without PIPELINING every command waits for
its reply, as in ``deliver``.

Each message gets an ``Outcome``; a refusal ends that message only. When
the connection fails (lost, timed out, a 421, a reply SMTP does not allow)
the outcomes say what is known: a message whose end of data went out and
whose reply did not come back is "unknown" (the server may have taken it);
the messages whose end never went out are "unsent" and may be sent again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from .._client import ClientConnection
from .._data import LineEnds
from .._errors import InvalidArgument, LocalProtocolError, ProtocolError, RemoteProtocolError
from .._events import Bdat, Command, EndOfData, MessageData, Reply, Rset
from ._client import _DATA, Made, _plan, _reply, message_envelope
from ._effects import Close, Procedure, Write
from ._errors import (
    ConnectionLost,
    NotSupported,
    RecipientsRefused,
    SMTPError,
    SMTPTimeout,
    TransientError,
    reply_error,
)
from ._options import ClientOptions, Envelope, SendResult, Timeouts

if TYPE_CHECKING:
    from email.message import Message

__all__ = [
    "BATCH",
    "WINDOW",
    "WINDOW_OCTETS",
    "Outcome",
    "Outgoing",
    "Status",
    "batches",
    "connection_failed",
    "deliver_many",
    "to_envelope",
    "unsent",
]

#: How many messages a transport hands ``deliver_many`` at once: the results
#: of one batch reach the caller before the next batch starts.
BATCH: Final = 64
"""Messages per ``deliver_many`` call when a transport sends an iterable."""

#: With CHUNKING chosen (``chunking=True``), how many transactions may be in
#: flight at once, and about how many octets of content: a ``BDAT n LAST``
#: needs no 354, so the next transactions need not wait for its reply.
WINDOW: Final = 16
"""Transactions in flight at once with BDAT (RFC 3030 with RFC 2920)."""
WINDOW_OCTETS: Final = 1024 * 1024
"""About the most content in flight at once with BDAT."""

Outgoing: TypeAlias = "Message | Envelope | tuple[str, str | Sequence[str], bytes | str]"
"""One message for ``send_many``: an ``email.message.Message`` (envelope from its
headers), an ``Envelope`` with its content in hand, or ``(sender, recipients,
content)`` with content as bytes (or str, sent as UTF-8)."""

Status: TypeAlias = Literal["accepted", "refused", "unknown", "unsent"]
"""What became of a message; see ``Outcome``."""

_ACCEPTED: Final = "accepted"
_REFUSED: Final = "refused"
_UNKNOWN: Final = "unknown"
_UNSENT: Final = "unsent"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message of a batch.

    ``status`` is one of:

    - "accepted": the server took it for at least one recipient; ``result``
      is its ``SendResult`` (recipients refused at RCPT are in ``refused``).
    - "refused": the server refused it (``error`` is the ``ReplyError`` or
      ``RecipientsRefused``), or it needs what the server does not offer
      (``NotSupported``). Nothing was delivered.
    - "unknown": its end of data was sent but the connection failed before
      the reply came (``error`` says how). The server may have taken it.
    - "unsent": the connection failed before its end of data went out
      (``error`` says how). Nothing was delivered; it may be sent again.
    """

    status: Status
    result: SendResult | None = None
    error: Exception | None = None

    @property
    def accepted(self) -> bool:
        """True when the server took the message (``result`` is set)."""
        return self.status == _ACCEPTED


def to_envelope(conn: ClientConnection, item: Outgoing) -> Envelope:
    """The envelope for one ``Outgoing``; its content must be in hand.

    Raises ``TypeError`` for anything else, ``ValueError`` (or
    ``LocalProtocolError`` for a message) when no envelope can be made.
    """
    if isinstance(item, Envelope):
        if item.content is None:
            raise InvalidArgument("send_many needs the content in hand, not streamed")
        return item
    if isinstance(item, tuple) and len(item) == 3:
        sender, recipients, content = item
        if not isinstance(content, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"content must be bytes or str, not {type(content).__name__}")
        return Envelope.build(sender, recipients, content)
    # Imported here: email.message brings in socket, which the core never loads.
    from email.message import Message

    if isinstance(item, Message):
        return message_envelope(conn, item)
    raise TypeError(
        "send_many takes email messages, Envelopes or (sender, recipients, content) tuples, "
        f"not {type(item).__name__}"
    )


class _Open:
    """A message whose MAIL/RCPT replies are in and whose content is still to go."""

    __slots__ = ("accepted", "bdat", "binary", "envelope", "index", "refused")

    def __init__(
        self,
        index: int,
        envelope: Envelope,
        accepted: dict[str, Reply],
        refused: dict[str, Reply],
        bdat: bool,
        binary: bool,
    ) -> None:
        self.index = index
        self.envelope = envelope
        self.accepted = accepted
        self.refused = refused
        self.bdat = bdat
        self.binary = binary


class _Batch:
    """The outcomes so far, and what is owed before the next group's replies."""

    __slots__ = ("final_due", "flight", "ignored", "outcomes")

    def __init__(self, count: int) -> None:
        self.outcomes: list[Outcome | None] = [None] * count
        self.flight: _Open | None = None  # its end went out (or is going); reply due
        self.ignored = 0  # replies to read and drop (RSET, an abandoned end of data)
        self.final_due = False  # reading the flight's final reply right now


def deliver_many(
    conn: ClientConnection, options: ClientOptions, messages: Sequence[Outgoing]
) -> Procedure[list[Outcome]]:
    """Send ``messages`` in order on one connection; return one ``Outcome`` each, in order.

    Never raises for what the server or the connection did: that is in the
    outcomes, and after a failure the connection is closed. Raises
    ``TypeError``/``ValueError`` before any byte is sent when an item cannot
    be made an envelope (see ``to_envelope``), except a message whose headers
    name no usable envelope, which is "refused" with that error.
    """
    batch = _Batch(len(messages))
    made: Made = {}  # the batch's MAIL and RCPT commands, built once each
    envelopes: list[Envelope | Exception] = []
    for item in messages:
        try:
            envelopes.append(to_envelope(conn, item))
        except ProtocolError as exc:  # a message without a usable envelope
            envelopes.append(exc)
    ext = conn.extensions
    pipelining = ext.pipelining
    if pipelining and ext.chunking and options.chunking is True and not conn.lmtp:
        return (yield from _deliver_window(conn, options, batch, envelopes, made))
    carry = b""  # what the previous message still has to send, before the next group
    try:
        for index, envelope in enumerate(envelopes):
            if isinstance(envelope, Exception):
                batch.outcomes[index] = Outcome(_REFUSED, error=envelope)
                continue
            try:
                # Also builds (and so checks) the commands: a bad address ends here.
                plan = _plan(conn, options, envelope, made)
            except (NotSupported, LocalProtocolError, ValueError) as exc:
                batch.outcomes[index] = Outcome(_REFUSED, error=exc)
                continue
            commands: list[Command] = [plan.mail, *plan.rcpts]
            if not plan.bdat:
                commands.append(_DATA)
            if pipelining:
                send = conn.send
                try:
                    group = b"".join([send(command) for command in commands])
                except LocalProtocolError as exc:
                    # A command the connection refuses to send (a line over the
                    # limits): the ones before it are counted as sent, so the
                    # session is out of step. What went before is settled, then
                    # the connection closes.
                    batch.outcomes[index] = Outcome(_REFUSED, error=exc)
                    if carry:
                        yield Write(carry, options.timeouts.data_block)
                        yield from _settle(conn, options, batch)
                    raise ConnectionLost(
                        f"connection closed after a message that could not be sent: {exc}"
                    ) from exc
                yield Write(carry + group, options.timeouts.data_block)
                carry = b""
                yield from _settle(conn, options, batch)
                replies = []
                for command in commands:
                    replies.append((yield from _reply(conn, _timeout(command, options))))
            else:
                if carry:
                    yield Write(carry, options.timeouts.data_block)
                    carry = b""
                    yield from _settle(conn, options, batch)
                replies = []
                unsendable: LocalProtocolError | None = None
                for command in commands:
                    if command is _DATA and not any(
                        r.is_positive for r in replies[1:]
                    ):  # no recipient: no DATA
                        break
                    try:
                        wire = conn.send(command)
                    except LocalProtocolError as exc:
                        unsendable = exc  # not sent, nothing counted: the session is in step
                        break
                    yield Write(wire, _timeout(command, options))
                    replies.append((yield from _reply(conn, _timeout(command, options))))
                    if len(replies) == 1 and not replies[0].is_positive:
                        break  # MAIL refused: no RCPT
                if unsendable is not None:
                    batch.outcomes[index] = Outcome(_REFUSED, error=unsendable)
                    if replies:  # MAIL went out: close the transaction
                        carry = conn.send(Rset())
                        batch.ignored += 1
                    continue
            carry = _judge(conn, batch, index, envelope, plan.bdat, plan.binary, replies)
        if carry:
            yield Write(carry, options.timeouts.data_block)
            yield from _settle(conn, options, batch)
    except (ConnectionLost, SMTPTimeout, TransientError, RemoteProtocolError) as exc:
        _failed(batch, exc)
        yield Close()
    return [outcome or Outcome(_UNSENT) for outcome in batch.outcomes]


class _Transaction:
    """A BDAT transaction written whole, its replies still to come."""

    __slots__ = ("envelope", "index", "octets", "reset")

    def __init__(self, index: int, envelope: Envelope, reset: bool, octets: int) -> None:
        self.index = index
        self.envelope = envelope
        self.reset = reset  # an RSET went before its MAIL
        self.octets = octets


def _deliver_window(
    conn: ClientConnection,
    options: ClientOptions,
    batch: _Batch,
    envelopes: list[Envelope | Exception],
    made: Made,
) -> Procedure[list[Outcome]]:
    """Whole BDAT transactions in flight, up to ``WINDOW`` (RFC 3030 2 with RFC 2920 3.1).

    Each transaction is one write: MAIL, the RCPTs and ``BDAT n LAST`` with
    the content, sent before the replies of the ones before it. Each MAIL
    after one in flight is preceded by RSET: if that earlier transaction is
    refused (every recipient, or its chunk), the server's state is reset
    whatever it did, so the next one is not refused as a nested MAIL.
    """
    timeouts = options.timeouts
    inflight: deque[_Transaction] = deque()
    octets = 0
    outcomes = batch.outcomes
    send = conn.send
    try:
        for index, envelope in enumerate(envelopes):
            if isinstance(envelope, Exception):
                outcomes[index] = Outcome(_REFUSED, error=envelope)
                continue
            try:
                plan = _plan(conn, options, envelope, made)
            except (NotSupported, LocalProtocolError, ValueError) as exc:
                outcomes[index] = Outcome(_REFUSED, error=exc)
                continue
            content = envelope.content
            assert content is not None
            if not plan.binary:
                ends = LineEnds()
                content = ends.feed(content) + ends.end()
            while inflight and (len(inflight) >= WINDOW or octets + len(content) > WINDOW_OCTETS):
                octets -= yield from _window_settle(conn, timeouts, batch, inflight)
            reset = bool(inflight)
            wire = [send(Rset())] if reset else []
            try:
                wire.append(send(plan.mail))
                wire += [send(rcpt) for rcpt in plan.rcpts]
            except LocalProtocolError as exc:
                outcomes[index] = Outcome(_REFUSED, error=exc)
                # Commands before it count as sent: out of step. Settle, close.
                if wire:
                    yield Write(b"".join(wire), options.timeouts.data_block)
                while inflight:
                    yield from _window_settle(conn, timeouts, batch, inflight)
                raise ConnectionLost(
                    f"connection closed after a message that could not be sent: {exc}"
                ) from exc
            wire.append(_chunk(conn, content))
            inflight.append(_Transaction(index, envelope, reset, len(content)))
            octets += len(content)
            yield Write(b"".join(wire), options.timeouts.data_block)
        while inflight:
            yield from _window_settle(conn, timeouts, batch, inflight)
    except (ConnectionLost, SMTPTimeout, TransientError, RemoteProtocolError) as exc:
        for transaction in inflight:  # each one's LAST chunk went out: no reply, no guess
            if outcomes[transaction.index] is None:
                outcomes[transaction.index] = Outcome(_UNKNOWN, error=exc)
        _failed(batch, exc)
        yield Close()
    return [outcome or Outcome(_UNSENT) for outcome in outcomes]


def _chunk(conn: ClientConnection, content: bytes) -> bytes:
    """``BDAT n LAST`` and its octets (RFC 3030 2)."""
    wire = conn.send(Bdat(len(content), last=True))
    return wire + conn.send(MessageData(content)) if content else wire


def _window_settle(
    conn: ClientConnection, timeouts: Timeouts, batch: _Batch, inflight: deque[_Transaction]
) -> Procedure[int]:
    """Read the oldest transaction's replies and judge it; return its octets."""
    transaction = inflight[0]
    if transaction.reset:
        yield from _reply(conn, timeouts.ehlo)  # what it says does not matter
    mail_reply = yield from _reply(conn, timeouts.mail)
    accepted: dict[str, Reply] = {}
    refused: dict[str, Reply] = {}
    for recipient in transaction.envelope.recipients:
        reply = yield from _reply(conn, timeouts.rcpt)
        if 200 <= reply.code < 300:
            accepted[recipient] = reply
        else:
            refused[recipient] = reply
    final = yield from _reply(conn, timeouts.data_termination)
    inflight.popleft()
    error: Exception | None = None
    if not mail_reply.is_positive:
        error = reply_error(mail_reply)
    elif not accepted:
        error = RecipientsRefused(refused)
    elif not final.is_positive:
        error = reply_error(final, "BDAT LAST")
    if error is not None:
        batch.outcomes[transaction.index] = Outcome(_REFUSED, error=error)
    else:
        data_replies = dict.fromkeys(accepted, final)
        result = SendResult._owned(accepted, refused, final, data_replies)
        batch.outcomes[transaction.index] = Outcome(_ACCEPTED, result=result)
    return transaction.octets


def _timeout(command: Command, options: ClientOptions) -> float:
    timeouts = options.timeouts
    if command is _DATA:
        return timeouts.data_initiation
    return timeouts.mail if command.verb != "RCPT" else timeouts.rcpt


def _judge(
    conn: ClientConnection,
    batch: _Batch,
    index: int,
    envelope: Envelope,
    bdat: bool,
    binary: bool,
    replies: list[Reply],
) -> bytes:
    """Judge a message's group replies; return what it sends next (content, RSET or nothing)."""
    mail_reply = replies[0]
    recipients = envelope.recipients
    accepted: dict[str, Reply] = {}
    refused: dict[str, Reply] = {}
    for recipient, reply in zip(recipients, replies[1 : 1 + len(recipients)], strict=False):
        if 200 <= reply.code < 300:
            accepted[recipient] = reply
        else:
            refused[recipient] = reply
    data_reply = replies[1 + len(recipients)] if len(replies) > 1 + len(recipients) else None
    error: Exception | None = None
    if not mail_reply.is_positive:
        error = reply_error(mail_reply)
    elif not accepted:
        error = RecipientsRefused(refused)
    elif data_reply is not None and data_reply.code != 354:
        error = reply_error(data_reply)
    if error is None:
        flight = _Open(index, envelope, accepted, refused, bdat, binary)
        batch.flight = flight
        return _content(conn, flight)
    batch.outcomes[index] = Outcome(_REFUSED, error=error)
    batch.ignored += 1
    if data_reply is not None and data_reply.code == 354:
        # RFC 2920 3.1: DATA accepted with nothing to send: end the empty data.
        return conn.send(EndOfData())
    return conn.send(Rset())  # the transaction may be half open: close it (RFC 5321 4.1.1.5)


def _content(conn: ClientConnection, flight: _Open) -> bytes:
    """The content with its end: after the 354, or as one ``BDAT n LAST`` (RFC 3030 2)."""
    content = flight.envelope.content
    assert content is not None
    if flight.bdat:
        if not flight.binary:
            ends = LineEnds()
            content = ends.feed(content) + ends.end()
        wire = conn.send(Bdat(len(content), last=True))
        return wire + conn.send(MessageData(content)) if content else wire
    return conn.send(MessageData(content)) + conn.send(EndOfData())


def _settle(conn: ClientConnection, options: ClientOptions, batch: _Batch) -> Procedure[None]:
    """Read what the previous message is owed: its final replies, or replies to drop."""
    timeout = options.timeouts.data_termination
    while batch.ignored:
        try:
            yield from _reply(conn, timeout)
        finally:
            batch.ignored -= 1
    flight = batch.flight
    if flight is None:
        return
    lmtp = conn.lmtp
    count = len(flight.accepted) if lmtp else 1
    finals = []
    batch.final_due = True
    for _ in range(count):
        finals.append((yield from _reply(conn, timeout)))
    batch.final_due = False
    batch.flight = None
    outcomes = batch.outcomes
    if lmtp:
        # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
        data_replies = dict(zip(flight.accepted, finals, strict=True))
        if not any(reply.is_positive for reply in finals):
            worst = next((r for r in finals if r.is_permanent), finals[-1])
            error = reply_error(worst, note="refused for every recipient")
            outcomes[flight.index] = Outcome(_REFUSED, error=error)
            return
    else:
        if not finals[0].is_positive:
            outcomes[flight.index] = Outcome(_REFUSED, error=reply_error(finals[0]))
            return
        data_replies = dict.fromkeys(flight.accepted, finals[0])
    result = SendResult._owned(flight.accepted, flight.refused, finals[-1], data_replies)
    outcomes[flight.index] = Outcome(_ACCEPTED, result=result)


def _failed(batch: _Batch, error: SMTPError | RemoteProtocolError) -> None:
    """The connection failed: what is in flight is unknown, the rest unsent."""
    flight = batch.flight
    outcomes = batch.outcomes
    if flight is not None and outcomes[flight.index] is None:
        if batch.final_due and isinstance(error, TransientError) and error.reply is not None:
            # The 421 answered the end of data itself: the message was refused.
            outcomes[flight.index] = Outcome(_REFUSED, error=error)
        else:
            outcomes[flight.index] = Outcome(_UNKNOWN, error=error)
    for index, outcome in enumerate(outcomes):
        if outcome is None:
            outcomes[index] = Outcome(_UNSENT, error=error)


def batches(messages: Iterable[Outgoing], size: int = BATCH) -> Iterator[list[Outgoing]]:
    """``messages`` in lists of at most ``size``, taken from the iterable as they are needed."""
    it = iter(messages)
    while chunk := list(islice(it, size)):
        yield chunk


def unsent(count: int, error: Exception) -> list[Outcome]:
    """``count`` "unsent" outcomes: for what follows a batch that lost the connection."""
    return [Outcome(_UNSENT, error=error)] * count


def connection_failed(outcomes: Iterable[Outcome]) -> Exception | None:
    """The error that ended a batch's connection, if one did (for the batches after it)."""
    for outcome in outcomes:
        if outcome.status in (_UNKNOWN, _UNSENT) and outcome.error is not None:
            return outcome.error
    return None
