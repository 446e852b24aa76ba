"""The state machines of both roles, in one table (RFC 5321 3, 4.1, 4.3.2).

How this works: ``RULES`` lists every way a session's phase can change, for
the client, the server or both. A rule names the phases it applies in (or
all of them), what happens (a reply to a command, or a moment such as the
greeting, the TLS handshake or the peer closing), the replies it covers (an
exact code such as ``354``, or a class such as ``2xx``) and the phase it
leads to; ``SAME`` keeps the phase, ``FORBIDDEN`` says the combination is
not allowed. Later rules override earlier ones, so the general case comes
first and its exceptions after it. ``ALLOWED`` says which commands each
phase accepts.

The table is compiled into one ``State`` per phase and role. A connection
holds its current ``State`` and never names a phase itself: it asks the
state what a command, a reply or a moment leads to, and gets the next
``State`` (or ``LocalProtocolError``, or ``None`` for a reply SMTP does not
allow). Nothing outside this module changes a phase, and the connections
know their role only by the machine they start from.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final, Generic, TypeVar

from ._errors import LocalProtocolError
from ._events import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfData,
    Etrn,
    Expn,
    Helo,
    Help,
    InvalidCommand,
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

__all__ = ["CLIENT", "SERVER", "ClientPhase", "Machine", "ServerPhase", "State", "trigger_of"]


class ClientPhase(enum.Enum):
    """Where a client session stands."""

    GREETING = enum.auto()  # connected, waiting for the 220
    REFUSED = enum.auto()  # the greeting was 554: only QUIT (RFC 5321 3.1)
    HELLO = enum.auto()  # greeted; EHLO, HELO or LHLO next
    READY = enum.auto()  # no transaction open
    MAIL = enum.auto()  # MAIL accepted, no recipient yet
    RCPT = enum.auto()  # at least one recipient accepted
    DATA = enum.auto()  # 354 received: message data may flow
    BDAT = enum.auto()  # between the chunks of a BDAT transfer
    AUTH = enum.auto()  # 334 received: a SASL response is due
    TLS = enum.auto()  # 220 to STARTTLS received: nothing until the handshake is done
    CLOSED = enum.auto()
    ERROR = enum.auto()


class ServerPhase(enum.Enum):
    """Where a server session stands."""

    GREETING = enum.auto()  # connected; our greeting is not sent yet
    REFUSED = enum.auto()  # we greeted with 554: only QUIT (RFC 5321 3.1)
    HELLO = enum.auto()  # greeted; EHLO, HELO or LHLO next
    READY = enum.auto()  # no transaction open
    MAIL = enum.auto()  # MAIL accepted, no recipient yet
    RCPT = enum.auto()  # at least one recipient accepted
    DATA = enum.auto()  # 354 sent: message content flows
    BDAT = enum.auto()  # a BDAT chunk was accepted; more chunks may follow
    AUTH = enum.auto()  # 334 sent: the next line is a SASL response
    TLS = enum.auto()  # 220 to STARTTLS sent: nothing until the handshake is done
    CLOSED = enum.auto()


PhaseT = TypeVar("PhaseT", ClientPhase, ServerPhase)


class Moment(str):
    """Something other than a command that changes the phase; its text names it in the docs."""

    __slots__ = ()


# What happens, besides a reply to a command or to the end of the content.
GREETING: Final = Moment("the greeting")
UNASKED: Final = Moment("a reply nothing asked for")
BDAT_LAST: Final = Moment("BDAT ... LAST")
MORE_DUE: Final = Moment("an LMTP reply with more due")
TLS_DONE: Final = Moment("TLS handshake")
PEER_CLOSED: Final = Moment("the peer closed")
FAILED: Final = Moment("a protocol failure")
CLOSING_REFUSAL: Final = Moment("a refusal that closes")
CHUNK_REFUSED: Final = Moment("a refused BDAT chunk")
AUTH_FAILED: Final = Moment("a bad AUTH response")

Trigger = type | Moment
#: The outcome of a reply: its exact code, or its class ("2xx"); None for a moment.
Outcome = int | str | None

_CLASSES: Final = ("", "", "2xx", "3xx", "4xx", "5xx")
_REPLIES: Final = ("2xx", "3xx", "4xx", "5xx")
_NEGATIVE: Final = ("4xx", "5xx")

#: Keep the phase; the combination is allowed and changes nothing.
SAME: Final = "SAME"
#: The combination is not allowed (a reply SMTP does not allow, a moment out of place).
FORBIDDEN: Final = "FORBIDDEN"

_COMMANDS: Final[tuple[type[Command], ...]] = (
    Helo, Ehlo, Lhlo, Mail, Send, Soml, Saml, Rcpt, Data, Bdat, Rset, Noop, Quit,
    Vrfy, Expn, Help, Etrn, Turn, StartTLS, Auth, AuthResponse, AuthCancel,
)  # fmt: skip
#: What a reply can answer: a command, or the end of the content, or a refusal.
_ANSWERED: Final[tuple[type, ...]] = (*_COMMANDS, EndOfData, EndOfChunk, InvalidCommand)
_EVERY: Final[tuple[Trigger, ...]] = (*_ANSWERED, BDAT_LAST)
#: In a rule, every phase, or every command (and end of content) a reply answers.
ANY: Final = Moment("*")

BOTH: Final = ("client", "server")
CLIENT_ONLY: Final = ("client",)
SERVER_ONLY: Final = ("server",)

_ANYTIME: Final = (Noop, Rset, Quit, Vrfy, Expn, Help)
_HELLOS: Final = (Ehlo, Helo, Lhlo)
_OPENING: Final = (Mail, Send, Soml, Saml, StartTLS, Auth, Etrn, Turn)

#: Which commands each phase allows (RFC 5321 4.1.4, 3.1; RFC 3030 2; RFC
#: 4954 4: no AUTH inside a transaction; RFC 3207 4). A phase not named
#: allows none. The server also takes a new EHLO/HELO inside a transaction
#: (RFC 5321 4.1.4: it ends the transaction); the client does not send one.
#: In AUTH the server reads the SASL response itself, not a command.
ALLOWED: Final[Mapping[str, Mapping[str, tuple[type[Command], ...]]]] = {
    "client": {
        "REFUSED": (Quit,),
        "HELLO": (*_ANYTIME, *_HELLOS),
        "READY": (*_ANYTIME, *_HELLOS, *_OPENING),
        "MAIL": (*_ANYTIME, Rcpt),
        "RCPT": (*_ANYTIME, Rcpt, Data, Bdat),
        "BDAT": (Bdat, Rset, Noop, Quit),
        "AUTH": (AuthResponse, AuthCancel),
    },
    "server": {
        "REFUSED": (Quit,),
        "HELLO": (*_ANYTIME, *_HELLOS),
        "READY": (*_ANYTIME, *_HELLOS, *_OPENING),
        "MAIL": (*_ANYTIME, *_HELLOS, Rcpt),
        "RCPT": (*_ANYTIME, *_HELLOS, Rcpt, Data, Bdat),
        "BDAT": (Bdat, Rset, Noop, Quit),
    },
}

Rule = tuple[
    tuple[str, ...],  # roles
    str | tuple[str, ...],  # phases it applies in, or ANY
    tuple[Trigger, ...],  # what happens; ANY: a reply to any command
    tuple[Outcome, ...],  # the replies it covers
    str,  # the phase it leads to, SAME or FORBIDDEN
]

#: Every change of phase, for both roles; later rules override earlier ones.
RULES: Final[tuple[Rule, ...]] = (
    # A reply to a command: positive moves by the command, negative stays.
    (BOTH, ANY, (ANY,), ("2xx", *_NEGATIVE), SAME),
    (BOTH, ANY, _HELLOS, ("2xx",), "READY"),
    (BOTH, ANY, (Mail, Send, Soml, Saml), ("2xx",), "MAIL"),
    (BOTH, ANY, (Rcpt,), ("2xx",), "RCPT"),
    (BOTH, ANY, (EndOfData, Rset, Auth, AuthResponse), ("2xx",), "READY"),
    (BOTH, ("HELLO", "REFUSED"), (Rset,), ("2xx",), SAME),  # no transaction to reset
    (BOTH, ANY, (StartTLS,), ("2xx",), "TLS"),
    (BOTH, ANY, (Quit,), ("2xx",), "CLOSED"),
    # The only intermediate replies SMTP defines (RFC 5321 4.3.2, RFC 4954 4).
    (BOTH, ANY, (Data,), (354,), "DATA"),
    (BOTH, ANY, (Auth, AuthResponse), (334,), "AUTH"),
    (CLIENT_ONLY, ANY, (AuthCancel,), ("2xx",), "READY"),
    (CLIENT_ONLY, ANY, (Turn,), ("2xx",), "CLOSED"),  # the roles would swap; no further
    # RFC 5321 4.3.2: only 354 opens the data phase; a 2xx to DATA would
    # leave the server not reading data while the client sends it.
    (BOTH, ANY, (Data,), ("2xx",), FORBIDDEN),
    # BDAT chunks (RFC 3030 2): the last one ends the transaction.
    (CLIENT_ONLY, ANY, (Bdat,), ("2xx",), "BDAT"),
    (CLIENT_ONLY, ANY, (BDAT_LAST,), ("2xx",), "READY"),
    (SERVER_ONLY, ANY, (EndOfChunk,), ("2xx",), "BDAT"),
    # The end of the content refused: the transaction is over; after a
    # refused chunk no more may be sent (RFC 3030 4.2).
    (BOTH, ANY, (EndOfData, EndOfChunk, Bdat, BDAT_LAST), _NEGATIVE, "READY"),
    # A failed SASL exchange is over (RFC 4954 4).
    (BOTH, ("AUTH",), (ANY,), _NEGATIVE, "READY"),
    (SERVER_ONLY, ("AUTH",), (AUTH_FAILED,), (None,), "READY"),
    # The server's refusal of something in the content ends the transaction.
    (SERVER_ONLY, ("DATA", "BDAT"), (InvalidCommand,), _NEGATIVE, "READY"),
    (SERVER_ONLY, ANY, (CHUNK_REFUSED,), (None,), SAME),
    (SERVER_ONLY, ("RCPT", "BDAT"), (CHUNK_REFUSED,), (None,), "READY"),
    (SERVER_ONLY, ANY, (CLOSING_REFUSAL,), _NEGATIVE, "CLOSED"),
    # A refusal is never answered positively; a cancelled AUTH is answered
    # 501 (RFC 4954 4).
    (SERVER_ONLY, ANY, (InvalidCommand, AuthCancel), ("2xx",), FORBIDDEN),
    # RFC 2033 4.2: LMTP answers the end of the content once per accepted
    # recipient; only the last of those replies moves the phase.
    (BOTH, ANY, (MORE_DUE,), ("2xx", *_NEGATIVE), SAME),
    # The greeting (RFC 5321 3.1): 220 to go on, 554 then only QUIT, or 421.
    (CLIENT_ONLY, ("GREETING",), (GREETING,), ("2xx",), "HELLO"),
    (CLIENT_ONLY, ("GREETING",), (GREETING,), _NEGATIVE, "REFUSED"),
    (SERVER_ONLY, ("GREETING",), (GREETING,), (220,), "HELLO"),
    (SERVER_ONLY, ("GREETING",), (GREETING,), (554,), "REFUSED"),
    # RFC 5321 3.8: a server closing down says 421 at any moment, even unasked.
    (BOTH, ANY, (ANY, MORE_DUE, GREETING, UNASKED), (421,), "CLOSED"),
    # RFC 3207 4.2: after the handshake the session starts again at EHLO.
    (BOTH, ("TLS",), (TLS_DONE,), (None,), "HELLO"),
    (BOTH, ANY, (PEER_CLOSED,), (None,), "CLOSED"),
    (CLIENT_ONLY, ANY, (FAILED,), (None,), "ERROR"),
    # Nothing is answered once the session is over.
    (BOTH, ("CLOSED",), (ANY, MORE_DUE, GREETING, UNASKED), (*_REPLIES, 421), FORBIDDEN),
    (CLIENT_ONLY, ("ERROR",), (ANY, MORE_DUE, GREETING, UNASKED), (*_REPLIES, 421), FORBIDDEN),
)

#: The codes a rule names exactly; any other code moves as its class does.
_EXACT: Final = frozenset(o for rule in RULES for o in rule[3] if isinstance(o, int))


def trigger_of(event: object) -> Trigger:
    """What a reply to ``event`` is a reply to, as ``RULES`` names it."""
    if isinstance(event, Bdat) and event.last:
        return BDAT_LAST
    return type(event)


class State(Generic[PhaseT]):
    """One phase of one role: what it allows, and where each thing that happens leads."""

    __slots__ = ("_allowed", "_moves", "_success", "machine", "phase")

    def __init__(self, machine: Machine[PhaseT], phase: PhaseT) -> None:
        self.machine: Machine[PhaseT] = machine
        self.phase: PhaseT = phase
        self._allowed: frozenset[type] = frozenset()
        self._moves: dict[tuple[Trigger, Outcome], State[PhaseT]] = {}
        self._success: dict[Trigger, State[PhaseT]] = {}

    def __repr__(self) -> str:
        return f"<State {self.machine.role} {self.phase.name}>"

    def allows(self, kind: type) -> bool:
        """Whether this phase accepts a command of class ``kind``."""
        return kind in self._allowed

    def check(self, kind: type[Command], what: str) -> None:
        """Raise ``LocalProtocolError`` unless this phase accepts ``kind``; ``what`` names it."""
        if kind not in self._allowed:
            raise LocalProtocolError(f"{what} is not allowed in phase {self.phase.name}")

    def after_reply(self, trigger: Trigger, code: int) -> State[PhaseT] | None:
        """The state a reply ``code`` to ``trigger`` leads to; None when SMTP does not allow it."""
        moves = self._moves
        if code in _EXACT:
            return moves.get((trigger, code)) or moves.get((trigger, _CLASSES[code // 100]))
        return moves.get((trigger, _CLASSES[code // 100]))

    def after_success(self, trigger: Trigger) -> State[PhaseT]:
        """The state the command's success leads to (its positive or intermediate reply).

        With PIPELINING the client checks each command against the phase it
        will be in when every command already sent has succeeded.
        """
        return self._success.get(trigger, self)

    def on(self, moment: Moment) -> State[PhaseT]:
        """The state ``moment`` leads to; ``LocalProtocolError`` where it cannot happen."""
        state = self._moves.get((moment, None))
        if state is None:
            raise LocalProtocolError(f"no {moment} is due in phase {self.phase.name}")
        return state


class Machine(Generic[PhaseT]):
    """The compiled table of one role: a ``State`` for each of its phases."""

    def __init__(self, role: str, phases: type[PhaseT]) -> None:
        self.role = role
        self.states: dict[str, State[PhaseT]] = {phase.name: State(self, phase) for phase in phases}
        self.start: State[PhaseT] = self.states["GREETING"]
        for name, commands in ALLOWED[role].items():
            self.states[name]._allowed = frozenset(commands)
        for roles, phases_of, triggers, outcomes, to in RULES:
            if role in roles:
                self._apply(phases_of, triggers, outcomes, to)
        for state in self.states.values():
            for trigger in _EVERY:
                success = state._moves.get((trigger, "2xx")) or state._moves.get((trigger, 354))
                if success is not None and success is not state:
                    state._success[trigger] = success

    def _apply(
        self,
        phases_of: str | tuple[str, ...],
        triggers: tuple[Trigger, ...],
        outcomes: Iterable[Outcome],
        to: str,
    ) -> None:
        names = phases_of if isinstance(phases_of, tuple) else tuple(self.states)
        chosen = [t for x in triggers for t in (_EVERY if x == ANY else (x,))]
        for name in names:
            state = self.states.get(name)
            if state is None:
                continue  # a phase the other role has (ERROR)
            for trigger in chosen:
                for outcome in outcomes:
                    key = (trigger, outcome)
                    if to == FORBIDDEN:
                        state._moves.pop(key, None)
                        if isinstance(outcome, str):  # and its exact codes
                            for code in [o for t, o in state._moves if t is trigger]:
                                if isinstance(code, int) and _CLASSES[code // 100] == outcome:
                                    del state._moves[trigger, code]
                    else:
                        state._moves[key] = state if to == SAME else self.states[to]


CLIENT: Final = Machine("client", ClientPhase)
SERVER: Final = Machine("server", ServerPhase)
