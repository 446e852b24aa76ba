"""Differential fuzzing: our ClientConnection against our ServerConnection, in memory.

The fuzzer chooses the server's flags, the envelope, the message content
(bare CR and LF, leading dots, lone dots, end markers, commands) and where
every transfer is cut. Asserts: what the server stores is exactly what the
client was asked to send, after CRLF normalisation for DATA (bare CR/LF
made CRLF, a final CRLF added to an open last line) and verbatim for BDAT
(whose content with a bare CR or LF the client refuses);
the envelope arrives unchanged; one message never becomes two (one MAIL,
one end of content, nothing in the content parsed as a command); and the
client never emits a bare CR or LF inside DATA content.
"""

from __future__ import annotations

from smtpcore import (
    NEED_DATA,
    Bdat,
    ClientConnection,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Event,
    Lhlo,
    LocalProtocolError,
    Mail,
    MessageData,
    Quit,
    Rcpt,
    Reply,
    ServerConfig,
    ServerConnection,
)

from ._harness import Input, cuts, join_data, run_atheris
from ._peers import answer

MAX_CONTENT = 2000


class Pair:
    """A client and a server joined by in-memory pipes cut at seeded places."""

    def __init__(self, config: ServerConfig, seed: int) -> None:
        self.client = ClientConnection(lmtp=config.lmtp)
        self.server = ServerConnection(config)
        self.seed = seed
        self.events: list[Event] = []
        self.to_client = self.server.send(self.server.greeting_reply())
        self.stored: list[tuple[str | None, tuple[str, ...], bytes]] = []
        self.client_wire = b""

    def _server_take(self, data: bytes) -> None:
        self.seed += 1
        for piece in cuts(data, self.seed):
            self.server.receive_data(piece)
            while (event := self.server.next_event()) is not NEED_DATA:
                self.events.append(event)
                if isinstance(event, EndOfData):
                    content = join_data(self.events)
                    start = max(i for i, e in enumerate(content) if isinstance(e, Mail))
                    body = b"".join(e.data for e in content[start:] if isinstance(e, MessageData))
                    self.stored.append((self.server.sender, self.server.recipients, body))
                self.to_client += b"".join(answer(self.server, event))

    def send(self, *items: Command | MessageData | EndOfData) -> list[Reply]:
        """The client sends ``items``; the server answers; the replies the client got."""
        wire = b"".join(self.client.send(item) for item in items)
        self.client_wire += wire
        self._server_take(wire)
        return self.replies()

    def replies(self) -> list[Reply]:
        if self.to_client:  # b"" would mean the server closed
            self.client.receive_data(self.to_client)
        self.to_client = b""
        out = []
        while (event := self.client.next_event()) is not NEED_DATA:
            assert isinstance(event, Reply), event
            out.append(event)
        return out


def normalise(content: bytes) -> bytes:
    out = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return out + b"\r\n" if out and not out.endswith(b"\r\n") else out


def _address(source: Input, default: str) -> str:
    text = source.text(40)
    local = text.split("@")[0] if text else ""
    address = f"{local}@example.org" if local else default
    try:
        Rcpt(address)
    except LocalProtocolError:
        return default
    return address


def test_one_input(data: bytes) -> None:
    """One fuzz case: flags, envelope and cuts first; the rest is the message content."""
    source = Input(data)
    lmtp, pipelining, bdat, normal = source.flag(), source.flag(), source.flag(), source.flag()
    config = ServerConfig(
        hostname="mx.example",
        lmtp=lmtp,
        pipelining=pipelining,
        chunking=bdat,
        smtputf8=True,
        bare_lf="normalise" if normal else "reject",
    )
    sender = _address(source, "a@example.org")
    recipients = list(
        dict.fromkeys(_address(source, "b@example.net") for _ in range(source.number(1, 3)))
    )
    seed = source.byte()
    content = source.rest()[:MAX_CONTENT]
    pair = Pair(config, seed)
    assert [r.code for r in pair.replies()] == [220]
    hello = Lhlo("client.example") if lmtp else Ehlo("client.example")
    assert [r.code for r in pair.send(hello)] == [250]
    utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
    envelope: list[Command] = [Mail(sender, {"SMTPUTF8": None} if utf8 else {})]
    envelope += [Rcpt(r) for r in recipients]
    replies: list[Reply] = []
    if pipelining:
        replies = pair.send(*envelope, *([] if bdat else [Data()]))
    else:
        for command in [*envelope, *([] if bdat else [Data()])]:
            replies += pair.send(command)
    assert all(r.is_positive for r in replies[:-1]) and replies, replies
    pieces = cuts(content, seed) or [b""]
    if bdat:
        assert replies[-1].is_positive
        # Without BODY=BINARYMIME the client refuses bare CR and LF in BDAT
        # content (the chunk sizes are fixed, so it cannot normalise them).
        bare = content.count(b"\r") != content.count(b"\r\n") or content.count(
            b"\n"
        ) != content.count(b"\r\n")
        try:
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                chunk = [MessageData(piece)] if piece else []
                replies = pair.send(Bdat(len(piece), last=last), *chunk)
                assert all(r.is_positive for r in replies), replies
        except LocalProtocolError:
            assert bare, content
            assert not pair.stored
            return
        assert not bare, content
        expected = content
    else:
        assert replies[-1].code == 354, replies
        before = len(pair.client_wire)
        for piece in pieces:
            assert pair.send(MessageData(piece)) == []
        replies = pair.send(EndOfData())
        stuffed = pair.client_wire[before:]
        # No bare CR or LF on the wire; one end marker, at the end (no smuggling).
        assert stuffed.count(b"\r") == stuffed.count(b"\n") == stuffed.count(b"\r\n"), stuffed
        assert (b"\r\n" + stuffed).find(b"\r\n.\r\n") == len(stuffed) - 3, stuffed
        expected = normalise(content)
    assert [r.code for r in replies] == [250] * (len(recipients) if lmtp else 1), replies
    assert [r.code for r in pair.send(Quit())] == [221]
    assert len(pair.stored) == 1, pair.stored
    assert pair.stored[0] == (sender, tuple(recipients), expected), (pair.stored, expected)
    assert sum(isinstance(e, Mail) for e in pair.events) == 1
    assert sum(isinstance(e, EndOfData) for e in pair.events) == 1


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
