"""Fuzz a whole ClientConnection: arbitrary server bytes, and commands chosen by the fuzzer.

After each event the client tries the next planned commands (a pipelined
group when the plan says so); a command the session does not allow must
raise LocalProtocolError and change nothing. Asserts: only
RemoteProtocolError leaves the receiving side; whole, byte-wise and cut
feeding agree (except that a reply arriving before the command it could
answer was sent is refused, which may only cut a feeding short); each reply
answers the oldest command waiting; the parser
holds less than one line after draining; a sending mistake changes no state.
"""

from __future__ import annotations

from smtpcore import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    ClientConnection,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfData,
    Etrn,
    Event,
    Expn,
    Helo,
    Help,
    Lhlo,
    Limits,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    StartTLS,
    Turn,
    Vrfy,
)

from ._harness import Input, every_way, run_atheris

Item = Command | MessageData | EndOfData

MENU: tuple[Item, ...] = (
    Ehlo("client.example"),
    Helo("client.example"),
    Lhlo("client.example"),
    Mail("a@example.org"),
    Mail("a@example.org", {"SIZE": "100", "BODY": "8BITMIME"}),
    Mail("ä@example.org", {"SMTPUTF8": None}),
    Rcpt("b@example.net"),
    Rcpt("c@example.net", {"NOTIFY": "NEVER"}),
    Data(),
    Bdat(5),
    Bdat(3, last=True),
    Bdat(0, last=True),
    MessageData(b"Subject: x\r\n\r\n.dot\n"),
    MessageData(b"abc"),
    MessageData(b"\r\n.\r\n"),
    EndOfData(),
    Rset(),
    Noop(),
    Quit(),
    StartTLS(),
    Auth("PLAIN", b"\0user\0pencil"),
    Auth("LOGIN"),
    AuthResponse(b"dXNlcg=="),
    AuthCancel(),
    Vrfy("b"),
    Expn("list"),
    Help(),
    Etrn("example.net"),
    Turn(),
)


def _state(client: ClientConnection) -> tuple[object, ...]:
    return (
        client.phase,
        client._assumed,
        client.pending,
        dict(client.extensions),
        client.chunk_left,
        client.is_authenticated,
        client.is_tls,
    )


class _Driver:
    """A client and its plan: after each event, the next group of items is tried."""

    def __init__(self, lmtp: bool, tls: bool, limits: Limits, plan: list[list[Item]]) -> None:
        self.client = ClientConnection(lmtp=lmtp, tls=tls, limits=limits)
        self.plan = list(plan)
        self.sent: list[bytes] = []

    def act(self) -> None:
        if not self.plan:
            return
        for item in self.plan.pop(0):
            before = _state(self.client)
            try:
                self.sent.append(self.client.send(item))
            except LocalProtocolError:
                assert _state(self.client) == before, "a refused send changed the state"


def test_one_input(data: bytes) -> None:
    """One fuzz case: options and a plan from the first bytes; the rest is the server's."""
    source = Input(data)
    lmtp, tls, close = source.flag(), source.flag(), source.flag()
    limits = Limits(reply_line=source.number(8, 600), reply_lines=source.number(1, 12))
    plan = [
        [source.pick(MENU) for _ in range(source.number(1, 3))] for _ in range(source.number(0, 12))
    ]
    wire = source.rest()

    def make() -> _Driver:
        return _Driver(lmtp, tls, limits, plan)

    def receive(driver: _Driver, piece: bytes, events: list[Event]) -> None:
        client = driver.client
        client.receive_data(piece)
        while True:
            waiting = client.pending[0] if client.pending else None
            event = client.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return
            assert isinstance(event, Reply), event
            if event.command is not None:
                assert event.command is waiting, (event, waiting)
            driver.act()
        assert client._parser.buffered < limits.reply_line

    outcome = every_way(make, wire, receive, seed=len(data), close=close)
    for event in outcome.events:
        assert isinstance(event, (Reply, ConnectionClosed)), event


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
