"""The state table of both roles: what each phase allows, and where each reply leads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from smtpcore import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    ClientConnection,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Etrn,
    Expn,
    Helo,
    Help,
    InvalidCommand,
    Lhlo,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    Saml,
    Send,
    ServerConfig,
    ServerConnection,
    ServerPhase,
    Soml,
    StartTLS,
    Turn,
    Vrfy,
)
from smtpcore._state import ALLOWED, CLIENT, SERVER, Machine

COMMANDS: list[Command] = [
    Helo("client.example"),
    Ehlo("client.example"),
    Lhlo("client.example"),
    Mail("a@example.org"),
    Rcpt("b@example.net"),
    Data(),
    Bdat(0, last=True),
    Rset(),
    Noop(),
    Quit(),
    Vrfy("user"),
    Expn("list"),
    Help(),
    Send("a@example.org"),
    Soml("a@example.org"),
    Saml("a@example.org"),
    Turn(),
    Etrn("example.org"),
    StartTLS(),
    Auth("PLAIN", b"\x00u\x00p"),
    AuthResponse(b"user"),
    AuthCancel(),
]
MACHINES: list[Machine[Any]] = [CLIENT, SERVER]


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.role)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_phase_and_command_of_the_table(machine: Machine[Any], command: Command) -> None:
    """Each phase of each role allows a command or raises LocalProtocolError for it."""
    for name, state in machine.states.items():
        kind = type(command)
        if kind in ALLOWED[machine.role].get(name, ()):
            assert state.allows(kind)
            state.check(kind, command.verb)
        else:
            assert not state.allows(kind)
            with pytest.raises(LocalProtocolError, match=f"not allowed in phase {name}"):
                state.check(kind, command.verb)
        assert machine.states[name] is state


# -- the server, driven into each phase that reads commands ----------------------

CONFIG = ServerConfig(
    chunking=True,
    etrn=True,
    expn=True,
    legacy_send=True,
    starttls=True,
    auth_mechanisms=("PLAIN",),
    auth_before_tls=True,
)
OK = Reply(250, ("2.0.0 OK",))


def _answer(conn: ServerConnection, line: bytes, reply: Reply = OK) -> object:
    conn.receive_data(line)
    event = conn.next_event()
    conn.send(reply)
    return event


def server_refused() -> ServerConnection:
    conn = ServerConnection(CONFIG)
    conn.send(Reply(554, ("no service",)))
    return conn


def server_hello() -> ServerConnection:
    conn = ServerConnection(CONFIG)
    conn.send(conn.greeting_reply())
    return conn


def server_ready() -> ServerConnection:
    conn = server_hello()
    _answer(conn, b"EHLO client.example\r\n", conn.ehlo_reply())
    return conn


def server_mail() -> ServerConnection:
    conn = server_ready()
    _answer(conn, b"MAIL FROM:<a@example.org>\r\n")
    return conn


def server_rcpt() -> ServerConnection:
    conn = server_mail()
    _answer(conn, b"RCPT TO:<b@example.net>\r\n")
    return conn


def server_bdat() -> ServerConnection:
    conn = server_rcpt()
    conn.receive_data(b"BDAT 3\r\nabc")
    assert isinstance(conn.next_event(), Bdat)
    assert conn.next_event() == MessageData(b"abc")
    conn.next_event()
    conn.send(OK)
    return conn


SERVER_PHASES: dict[ServerPhase, Callable[[], ServerConnection]] = {
    ServerPhase.REFUSED: server_refused,
    ServerPhase.HELLO: server_hello,
    ServerPhase.READY: server_ready,
    ServerPhase.MAIL: server_mail,
    ServerPhase.RCPT: server_rcpt,
    ServerPhase.BDAT: server_bdat,
}


@pytest.mark.parametrize("phase", list(SERVER_PHASES), ids=lambda p: p.name)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_phase_and_command_of_the_server(phase: ServerPhase, command: Command) -> None:
    """A command the phase accepts comes out; any other is refused and changes nothing."""
    conn = SERVER_PHASES[phase]()
    assert conn.phase is phase
    before = (conn.sender, conn.recipients, conn.hello_domain, conn.is_authenticated)
    if isinstance(command, (AuthResponse, AuthCancel)):
        return  # no command: only the line after a 334 is a SASL response
    conn.receive_data(command.to_bytes())
    event = conn.next_event()
    kind = type(command)
    if kind in ALLOWED["server"].get(phase.name, ()) and kind not in (Turn, Lhlo):
        assert type(event) is kind
    else:
        # 503 out of sequence; 502 TURN (never offered), 500 LHLO on SMTP.
        assert isinstance(event, InvalidCommand)
        assert event.reply.code in (500, 502, 503)
        conn.send(event.reply)
        if phase is ServerPhase.BDAT:
            # RFC 3030 2: between chunks, a refused command ends the transaction.
            assert conn.phase is ServerPhase.READY
            assert (conn.sender, conn.recipients) == (None, ())
        else:
            assert conn.phase is phase
            after = (conn.sender, conn.recipients, conn.hello_domain, conn.is_authenticated)
            assert after == before


# -- replies the table forbids ------------------------------------------------------


def test_server_refuses_to_answer_data_with_a_2xx() -> None:
    """Only 354 opens the data phase (RFC 5321 4.3.2): 250 to DATA is refused, nothing moves."""
    conn = server_rcpt()
    conn.receive_data(b"DATA\r\n")
    assert isinstance(conn.next_event(), Data)
    with pytest.raises(LocalProtocolError, match="reply 250 cannot answer DATA"):
        conn.send(OK)
    assert conn.phase is ServerPhase.RCPT
    assert conn.send(Reply(354, ("go ahead",))) == b"354 go ahead\r\n"
    assert conn.phase is ServerPhase.DATA


def test_client_takes_no_421_after_the_session_closed() -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 mx.example ESMTP\r\n")
    conn.next_event()
    conn.send(Ehlo("client.example"))
    conn.receive_data(b"250 mx.example\r\n")
    conn.next_event()
    conn.send(Quit())
    conn.receive_data(b"221 bye\r\n")
    conn.next_event()
    conn.receive_data(b"421 closing\r\n")
    with pytest.raises(RemoteProtocolError, match="after the session was closed"):
        conn.next_event()


def test_every_client_phase_has_a_state_and_a_name_in_the_table() -> None:
    assert [s.phase.name for s in CLIENT.states.values()] == list(CLIENT.states)
    assert set(ALLOWED["client"]) <= set(CLIENT.states)
    assert set(ALLOWED["server"]) <= set(SERVER.states)
    assert CLIENT.start.phase.name == SERVER.start.phase.name == "GREETING"


def test_end_of_data_of_the_client_leads_to_ready() -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 mx\r\n")
    conn.next_event()
    conn.send(Ehlo("c.example"))
    conn.receive_data(b"250 mx\r\n")
    conn.next_event()
    for command, wire in ((Mail("a@x.org"), b"250 ok\r\n"), (Rcpt("b@y.org"), b"250 ok\r\n")):
        conn.send(command)
        conn.receive_data(wire)
        conn.next_event()
    conn.send(Data())
    conn.receive_data(b"354 go\r\n")
    conn.next_event()
    conn.send(MessageData(b"hi\r\n"))
    conn.send(EndOfData())
    conn.receive_data(b"250 queued\r\n")
    assert conn.next_event() == Reply(250, ("queued",), EndOfData())
    assert conn.phase.name == "READY"
