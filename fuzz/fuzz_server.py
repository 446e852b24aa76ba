"""Fuzz a whole ServerConnection fed arbitrary client bytes, answered by a permissive app.

Asserts: nothing at all is raised on the receiving side (a client's error is
an ``InvalidCommand``); whole, byte-wise and cut feeding give the same events;
the line buffer stays below the largest line limit; between the 354 and the
end of the content only content comes out (nothing in a message becomes a
command), and likewise inside a BDAT chunk; every ``InvalidCommand`` carries
a 4xx/5xx reply; no more recipients are accepted than ``Limits.recipients``.
"""

from __future__ import annotations

from smtpcore import (
    NEED_DATA,
    Bdat,
    Command,
    ConnectionClosed,
    Data,
    EndOfChunk,
    EndOfData,
    Event,
    InvalidCommand,
    Limits,
    Mail,
    MessageData,
    Rcpt,
    ServerConfig,
    ServerConnection,
    ServerPhase,
)

from ._harness import Input, every_way, run_atheris
from ._peers import answer, server_config, server_limits


def drain(server: ServerConnection, events: list[Event]) -> None:
    """Take every event now available, answering each."""
    while True:
        event = server.next_event()
        if event is NEED_DATA:
            return
        events.append(event)
        answer(server, event)
        if isinstance(event, ConnectionClosed):
            return


def check_buffer(server: ServerConnection) -> None:
    """Drained, the server holds less than one line (or is closed and will drop it all)."""
    limits = server.limits
    biggest = max(limits.command_line, limits.parameter_line, limits.auth_line)
    if server.phase not in (ServerPhase.CLOSED, ServerPhase.TLS):
        assert len(server._buffer) < biggest, len(server._buffer)


def check_sequence(events: list[Event], limits: Limits) -> None:
    """Content stays content; errors carry an error reply; recipients are bounded."""
    in_content = False
    recipients = 0
    for event in events:
        if isinstance(event, InvalidCommand):
            assert event.reply.code >= 400, event
            in_content = False
        elif isinstance(event, MessageData):
            assert in_content, "content outside DATA or a BDAT chunk"
        elif isinstance(event, (EndOfData, EndOfChunk)):
            in_content = False
            if isinstance(event, EndOfData):
                recipients = 0
        elif isinstance(event, Bdat):
            in_content = True  # the chunk's octets follow
        elif isinstance(event, Command):
            assert not in_content, f"{event!r} came out of message content"
            if isinstance(event, Data):
                in_content = True
            elif isinstance(event, Mail):
                recipients = 0
            elif isinstance(event, Rcpt):
                recipients += 1
                assert recipients <= limits.recipients, recipients


def test_one_input(data: bytes) -> None:
    """One fuzz case: config and limits from the first bytes; the rest is the client's."""
    source = Input(data)
    config: ServerConfig = server_config(source)
    limits = server_limits(source)
    tls = source.flag()
    close = source.flag()
    wire = source.rest()

    def make() -> ServerConnection:
        server = ServerConnection(config, limits, tls=tls)
        server.send(server.greeting_reply())
        return server

    def receive(server: ServerConnection, piece: bytes, events: list[Event]) -> None:
        server.receive_data(piece)
        drain(server, events)

    outcome = every_way(make, wire, receive, seed=len(data), close=close, check=check_buffer)
    assert outcome.error is None, outcome
    check_sequence(outcome.events, limits)


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
