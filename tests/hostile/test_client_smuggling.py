"""SMTP smuggling from the client's side: the exact bytes our five clients put on the wire.

A scripted ESMTP server (PIPELINING, 8BITMIME; CHUNKING in the BDAT tests)
records every octet the client sent. Hostile contents carry bare CR, bare
LF and the end markers other servers wrongly accept (``\\n.\\n``,
``\\r.\\r``, ``\\n.\\r\\n``), plus a real ``\\r\\n.\\r\\n`` inside.

The rule our ``DotStuffer`` (src/smtpcore/_data.py) applies, checked here
against a reference written independently of it:

1. line ends first: every CR LF pair stays; every other CR and every other
   LF becomes CR LF. So ``\\r\\r\\n`` gives two line ends and ``\\n\\r`` two
   as well; a content ending in a lone CR ends in CR LF;
2. then a dot at the start of every line is doubled (RFC 5321 4.5.2);
3. then the end: CR LF if the last line is open, and ``.CRLF``.

Normalising before stuffing is what makes smuggling impossible: stuffing
first would leave ``\\r.\\r`` to become ``\\r\\n.\\r\\n`` afterwards.
RFC 5321 2.3.8: a client MUST NOT send CR or LF except as CR LF.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import (
    ClientConnection,
    Data,
    Ehlo,
    EndOfData,
    Mail,
    MessageData,
    Rcpt,
    Reply,
)
from smtpcore._data import DotStuffer
from smtpcore.session import (
    ClientOptions,
    Close,
    Envelope,
    Handshake,
    NextChunk,
    Read,
    SendResult,
    Write,
    deliver,
)

from .conftest import TIMEOUT, Hostile, Peer, Smtp, run

GREETING: Final = b"220 mx.example ESMTP\r\n"
EHLO_DATA: Final = b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_BDAT: Final = b"250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
HELLO: Final = b"EHLO client.example\r\n"
RCPT: Final = b"RCPT TO:<b@example.net>\r\n"
END: Final = b"\r\n.\r\n"

CONTENTS: Final = {
    "bare-cr": b"Subject: x\r\n\r\na\rb\r\n",
    "bare-lf": b"Subject: x\n\na\nb\n",
    "lf-dot-lf": b"a\n.\nMAIL FROM:<e@example.org>\nRCPT TO:<v@example.net>\nDATA\nevil\n",
    "cr-dot-cr": b"a\r.\rMAIL FROM:<e@example.org>\r\n",
    "lf-dot-crlf": b"a\n.\r\nMAIL FROM:<e@example.org>\r\n",
    "cr-dot-crlf": b"a\r.\r\nMAIL FROM:<e@example.org>\r\n",
    "crlf-dot-cr": b"a\r\n.\rMAIL FROM:<e@example.org>\r\n",
    "crlf-dot-crlf": b"a\r\n.\r\nQUIT\r\n",
    "leading-dots": b".a\r\n..b\r\n.\r\n...\r\n",
    "open-last-line": b"a\r\nlast",
    "open-last-dot": b"a\r\n.",
    "ends-in-cr": b"a\r\nb\r",
    "cr-cr-lf-and-lf-cr": b"a\r\r\nb\n\rc\r\n",
    "only-dot": b".",
    "eight-bit": "café\n.\nnaïve\r".encode(),
}

#: The short hostile content split at every offset.
SPLIT: Final = b".a\r.\rb\n.\nc\r\n.\r\nd\r"


# -- the reference: written from the RFC, not from _data.py ---------------------------


def normalised(content: bytes) -> bytes:
    """Every CR LF kept, every other CR or LF made CR LF (RFC 5321 2.3.8)."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", content)


def stuffed(normal: bytes) -> bytes:
    """A dot doubled at the start of every line (RFC 5321 4.5.2)."""
    lines = normal.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def data_wire(content: bytes) -> bytes:
    """What must follow the 354: the stuffed content, an open last line closed, ``.CRLF``."""
    body = stuffed(normalised(content))
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def destuffed(payload: bytes) -> bytes:
    """What a correct server keeps: the end marker dropped, one leading dot removed per line."""
    assert payload.endswith(b"\r\n.\r\n"), payload
    lines = payload[: -len(b".\r\n")].split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def has_bare_cr_or_lf(data: bytes) -> bool:
    return b"\r" in data.replace(b"\r\n", b"") or b"\n" in data.replace(b"\r\n", b"")


def check_data_payload(content: bytes, payload: bytes) -> None:
    """The octets after the 354: exact, one end marker, no bare CR or LF, de-stuffable."""
    assert payload == data_wire(content)
    assert payload.count(END) == 1 and payload.endswith(END)
    assert not has_bare_cr_or_lf(payload)
    normal = normalised(content)
    closed = normal if normal.endswith(b"\r\n") else normal + b"\r\n"
    assert destuffed(payload) == closed


def test_the_reference_is_the_rule_the_stuffer_states() -> None:
    """Pin the normalisation rule itself, so a wrong reference cannot hide a wrong stuffer."""
    assert normalised(b"a\rb\nc\r\nd\r\r\ne\n\rf") == b"a\r\nb\r\nc\r\nd\r\n\r\ne\r\n\r\nf"
    assert data_wire(b"a\r.\rb") == b"a\r\n..\r\nb\r\n.\r\n"
    assert data_wire(b".") == b"..\r\n.\r\n"
    assert data_wire(b"x\r") == b"x\r\n.\r\n"
    assert data_wire(b"") == b".\r\n"


# -- the scripted server ----------------------------------------------------------------


@dataclass
class Received:
    """What the server saw of each transaction."""

    data: list[bytes] = field(default_factory=list)  # DATA: the octets after the 354
    chunks: list[list[tuple[bytes, bytes]]] = field(default_factory=list)  # BDAT: (line, octets)


_BDAT_LINE: Final = re.compile(rb"BDAT ([0-9]+)( LAST)?\r\n")


def esmtp(received: Received, *, chunking: bool = False) -> Callable[[Peer], None]:
    """A well-behaved ESMTP server that serves transactions until QUIT, keeping the content."""

    def play(peer: Peer) -> None:
        peer.send(GREETING)
        peer.line()
        peer.send(EHLO_BDAT if chunking else EHLO_DATA)
        while True:
            line = peer.line()
            if not line.startswith(b"MAIL FROM:"):
                if line == b"QUIT\r\n":
                    peer.send(b"221 2.0.0 bye\r\n")
                return
            peer.line()  # RCPT: pipelined with MAIL
            if not chunking:
                peer.line()  # DATA ends the pipelined group
                peer.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
                received.data.append(peer.take_data())
                peer.send(b"250 2.0.0 queued\r\n")
                continue
            peer.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
            chunks: list[tuple[bytes, bytes]] = []
            received.chunks.append(chunks)
            while True:
                command = peer.line()
                match = _BDAT_LINE.fullmatch(command)
                if match is None:
                    return
                chunks.append((command, peer.take_octets(int(match[1]))))
                peer.send(b"250 2.0.0 chunk ok\r\n")
                if match[2]:
                    break

    return play


def send_all(
    kind: str, port: int, contents: Iterable[object], **options: Any
) -> list[SendResult | BaseException]:
    """One session: ``sendmail`` for each content in turn; each result or error."""
    options.setdefault("tls", "none")
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("local_hostname", "client.example")

    async def body() -> list[SendResult | BaseException]:
        outcomes: list[SendResult | BaseException] = []
        async with Smtp(kind, "127.0.0.1", port, **options) as smtp:
            for content in contents:
                try:
                    outcomes.append(
                        await smtp.sendmail("a@example.org", ["b@example.net"], content)
                    )
                except Exception as exc:
                    outcomes.append(exc)
        return outcomes

    return run(kind, body)


def mail_line(content: bytes) -> bytes:
    """The MAIL command ``sendmail`` must send for bytes in hand: BODY=8BITMIME if 8-bit."""
    return (
        b"MAIL FROM:<a@example.org>" + (b"" if content.isascii() else b" BODY=8BITMIME") + b"\r\n"
    )


# -- DATA over sockets ------------------------------------------------------------------


@pytest.mark.parametrize("content", CONTENTS.values(), ids=CONTENTS.keys())
def test_data_payload_is_normalised_then_stuffed_with_one_end_marker(
    kind: str, hostile: Callable[..., Hostile], content: bytes
) -> None:
    received = Received()
    server = hostile(esmtp(received))
    [outcome] = send_all(kind, server.port, [content])
    assert isinstance(outcome, SendResult), outcome
    peer = server.finished()
    [payload] = received.data
    check_data_payload(content, payload)
    # The whole conversation, exactly: nothing before the 354 nor after the end marker.
    group = mail_line(content) + RCPT + b"DATA\r\n"
    assert peer.clear == HELLO + group + payload + b"QUIT\r\n"


def pieces_at(content: bytes, *cuts: int) -> list[bytes]:
    """``content`` cut at the given offsets (empty pieces included: the client skips them)."""
    bounds = [0, *cuts, len(content)]
    return [content[a:b] for a, b in itertools.pairwise(bounds)]


def every_split(content: bytes) -> list[list[bytes]]:
    """Two pieces at every offset, then one octet per piece."""
    return [pieces_at(content, cut) for cut in range(len(content) + 1)] + [
        [bytes([octet]) for octet in content]
    ]


@pytest.mark.parametrize("kind", ["sync", "trio"])
def test_iterable_of_chunks_split_at_every_offset_gives_the_same_wire(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    """An iterable of bytes is ``sendmail``'s streamed form (docs/client.md).

    One session, one transaction per split: a CR at the end of a piece must
    wait for the next piece before it is known to be bare.
    """
    splits = every_split(SPLIT)
    received = Received()
    server = hostile(esmtp(received))
    outcomes = send_all(kind, server.port, [iter(pieces) for pieces in splits])
    assert all(isinstance(outcome, SendResult) for outcome in outcomes), outcomes
    server.finished()
    assert len(received.data) == len(splits)
    for payload in received.data:
        check_data_payload(SPLIT, payload)
    assert received.data[0] == b"..a\r\n..\r\nb\r\n..\r\nc\r\n..\r\nd\r\n.\r\n"


# -- in process: every offset through the same procedure the transports run ------------


def drive(
    envelope: Envelope, pieces: Iterable[bytes], *, chunking: bool, ehlo: bytes | None = None
) -> bytes:
    """Run ``deliver`` against a server that accepts everything; every octet written.

    A ``Read`` is answered with one reply per command still waiting: 354 to
    DATA, 250 to the rest. The procedure reads only when every reply it had
    was used, so the pending commands are exactly the unanswered ones.
    """
    conn = ClientConnection()
    conn.receive_data(GREETING)
    assert conn.next_event() == Reply(220, ("mx.example ESMTP",))
    conn.send(Ehlo("client.example"))
    conn.receive_data(ehlo or (EHLO_BDAT if chunking else EHLO_DATA))
    assert isinstance(conn.next_event(), Reply)
    options = ClientOptions.build("mx.example", 25, tls="none", chunking=chunking)
    job = deliver(conn, options, envelope)
    source: Iterator[bytes] = (piece for piece in pieces if piece)
    wire = bytearray()
    answer: bytes | None = None
    while True:
        try:
            effect = job.send(answer)
        except StopIteration as done:
            result = done.value
            break
        answer = None
        match effect:
            case Write(data):
                wire += data
            case Read():
                answer = b"".join(
                    b"354 go\r\n" if isinstance(c, Data) else b"250 ok\r\n" for c in conn.pending
                )
            case NextChunk():
                answer = next(source, b"")
            case Handshake() | Close():
                raise AssertionError(f"unexpected effect {effect!r}")
    assert isinstance(result, SendResult), result
    return bytes(wire)


def streamed() -> Envelope:
    return Envelope.build("a@example.org", ["b@example.net"], None)


def test_every_two_and_three_piece_split_in_process() -> None:
    group = b"MAIL FROM:<a@example.org>\r\n" + RCPT + b"DATA\r\n"
    expected = group + data_wire(SPLIT)
    assert expected.count(END) == 1
    cuts = range(len(SPLIT) + 1)
    for first in cuts:
        for second in cuts[first:]:
            pieces = pieces_at(SPLIT, first, second)
            assert drive(streamed(), pieces, chunking=False) == expected, pieces


@settings(max_examples=300, deadline=None)
@given(
    content=st.binary(max_size=40).map(lambda b: bytes(b"a.\r\n"[octet % 4] for octet in b)),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
)
def test_dot_stuffer_matches_the_reference_however_the_content_is_cut(
    content: bytes, cuts: list[int]
) -> None:
    stuffer = DotStuffer()
    pieces = pieces_at(content, *sorted(min(cut, len(content)) for cut in cuts))
    wire = b"".join(stuffer.stuff(piece) for piece in pieces) + stuffer.end()
    assert wire == data_wire(content)
    assert not has_bare_cr_or_lf(wire)
    # Only the end marker, or nothing but ".CRLF" for empty content, ends the data.
    assert (b"\r\n" + wire).count(END) == 1


def test_client_connection_stuffs_message_data_split_at_every_offset() -> None:
    for pieces in every_split(SPLIT):
        conn = ClientConnection()
        conn.receive_data(GREETING)
        conn.next_event()
        conn.send(Ehlo("client.example"))
        conn.receive_data(EHLO_DATA)
        conn.next_event()
        conn.send(Mail("a@example.org"))
        conn.send(Rcpt("b@example.net"))
        conn.send(Data())
        conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n")
        for _ in range(3):
            conn.next_event()
        wire = b"".join(conn.send(MessageData(piece)) for piece in pieces)
        wire += conn.send(EndOfData())
        assert wire == data_wire(SPLIT), pieces


# -- BDAT -------------------------------------------------------------------------------

# Bare CR and LF became CRLF with BDAT too (they once went out as given).
BDAT_CASES: Final = [pytest.param(content, id=name) for name, content in CONTENTS.items()]


def check_chunks(chunks: list[tuple[bytes, bytes]], content: bytes) -> None:
    """Each BDAT line announced the octets that followed; the last says LAST; no stuffing."""
    assert chunks, "no BDAT chunk"
    for index, (line, octets) in enumerate(chunks):
        is_last = index == len(chunks) - 1
        assert line == b"BDAT %d%s\r\n" % (len(octets), b" LAST" if is_last else b"")
    assert b"".join(octets for _, octets in chunks) == normalised(content)


@pytest.mark.parametrize("content", BDAT_CASES)
def test_bdat_sends_exactly_the_announced_octets_normalised_and_unstuffed(
    kind: str, hostile: Callable[..., Hostile], content: bytes
) -> None:
    received = Received()
    server = hostile(esmtp(received, chunking=True))
    [outcome] = send_all(kind, server.port, [content], chunking=True)
    assert isinstance(outcome, SendResult), outcome
    peer = server.finished()
    [chunks] = received.chunks
    wire = b"".join(line + octets for line, octets in chunks)
    assert peer.clear == HELLO + mail_line(content) + RCPT + wire + b"QUIT\r\n"
    check_chunks(chunks, content)


#: Over two 64 KiB batches, so the client sends several chunks; CRLF only.
LARGE: Final = b"".join(b".line %05d\r\n" % n for n in range(12_000))


def test_streamed_bdat_chunks_are_framed_by_their_size_and_the_last_says_last(
    kind: str, hostile: Callable[..., Hostile]
) -> None:
    received = Received()
    server = hostile(esmtp(received, chunking=True))
    pieces = [LARGE[i : i + 1000] for i in range(0, len(LARGE), 1000)]
    [outcome] = send_all(kind, server.port, [iter(pieces)], chunking=True)
    assert isinstance(outcome, SendResult), outcome
    server.finished()
    [chunks] = received.chunks
    assert len(chunks) >= 3, [line for line, _ in chunks]
    check_chunks(chunks, LARGE)


def test_streamed_bdat_normalises_bare_cr_and_lf_at_every_offset_in_process() -> None:
    for pieces in every_split(SPLIT):
        wire = drive(streamed(), pieces, chunking=True)
        group = b"MAIL FROM:<a@example.org>\r\n" + RCPT
        normal = normalised(SPLIT)
        assert wire == group + b"BDAT %d LAST\r\n" % len(normal) + normal, pieces


def test_streamed_bdat_keeps_crlf_content_as_it_is_at_every_offset_in_process() -> None:
    content = normalised(SPLIT)
    for pieces in every_split(content):
        wire = drive(streamed(), pieces, chunking=True)
        group = b"MAIL FROM:<a@example.org>\r\n" + RCPT
        assert wire == group + b"BDAT %d LAST\r\n" % len(content) + content, pieces


def test_binarymime_content_goes_as_it_is_bare_cr_and_lf_included() -> None:
    """RFC 3030 3: BODY=BINARYMIME content is octets, not lines: nothing is normalised."""
    binary = b"\x00\r\n.\r\n\n\r\xff\r"
    ehlo = EHLO_BDAT.replace(b"250 CHUNKING", b"250-BINARYMIME\r\n250 CHUNKING")
    group = b"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n" + RCPT
    whole = Envelope.build("a@example.org", ["b@example.net"], binary, body="BINARYMIME")
    wire = drive(whole, [], chunking=True, ehlo=ehlo)
    assert wire == group + b"BDAT %d LAST\r\n" % len(binary) + binary
    for cut in range(len(binary) + 1):
        envelope = Envelope.build("a@example.org", ["b@example.net"], None, body="BINARYMIME")
        pieces = [binary[:cut], binary[cut:]]
        wire = drive(envelope, pieces, chunking=True, ehlo=ehlo)
        assert wire == group + b"BDAT %d LAST\r\n" % len(binary) + binary, cut
