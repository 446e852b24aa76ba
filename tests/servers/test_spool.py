"""Message content beyond the spool threshold goes to a temporary file, on every server.

A handler records what ``on_message`` got: where the content was (a spool
file or memory), how large the file was, and whether the envelope held the
content anywhere in memory. The Maildir and mbox handlers copy from the
envelope piece by piece; their files must be byte for byte what the stdlib
``mailbox`` writes for the same message.
"""

from __future__ import annotations

import dataclasses
import itertools
import mailbox
import os
import re
import smtplib
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore import Reply, ServerConfig
from smtpcore.session._server import ServerEnvelope
from smtpcore.session._server_session import SPOOL_THRESHOLD
from transports._spool import TemporarySpool
from transports.mailboxes import MaildirHandler, MboxHandler, _quote_from, _unix

from .conftest import Raw, Starter

LINE = b"0123456789" * 7 + b"abcd\r\n"  # 76 octets


def content_of(octets: int) -> bytes:
    return b"Subject: big\r\n\r\n" + LINE * (octets // len(LINE))


class Inspect:
    """Records, inside on_message, what the envelope holds and where."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def on_message(self, envelope: ServerEnvelope) -> Reply | None:
        spool = envelope.spool
        in_memory = max(
            (len(value) for value in _field_values(envelope) if isinstance(value, bytes)),
            default=0,
        )
        self.seen.append(
            {
                "spool": type(spool).__name__ if spool is not None else None,
                "file_size": os.fstat(spool.fileno()).st_size
                if isinstance(spool, TemporarySpool)
                else None,
                "size": envelope.size,
                "largest_bytes_field": in_memory,
                "chunks": b"".join(envelope.chunks(4096)),
                "content": envelope.content,
                "header": envelope.received_header,
            }
        )
        return None


def _field_values(envelope: ServerEnvelope) -> list[object]:
    return [getattr(envelope, item.name) for item in dataclasses.fields(envelope)]


def send(port: int, content: bytes, *, bdat: bool = False) -> bytes:
    raw = Raw(port)
    raw.reply()
    raw.send(b"EHLO c.example\r\n")
    raw.reply()
    raw.send(b"MAIL FROM:<a@x.example>\r\n")
    raw.reply()
    raw.send(b"RCPT TO:<b@y.example>\r\n")
    raw.reply()
    if bdat:
        raw.send(b"BDAT %d LAST\r\n" % len(content) + content)
    else:
        raw.send(b"DATA\r\n")
        assert raw.reply().startswith(b"354")
        raw.send(content + b".\r\n")
    reply = raw.reply()
    raw.send(b"QUIT\r\n")
    raw.reply()
    raw.close()
    return reply


def test_content_over_the_threshold_is_in_a_temporary_file(start: Starter) -> None:
    handler = Inspect()
    server = start(handler, spool_threshold=10_000)
    content = content_of(200_000)
    assert send(server.port, content).startswith(b"250 ")
    (seen,) = handler.seen
    size = len(seen["header"]) + len(content)
    assert seen["spool"] == "TemporarySpool"
    assert seen["file_size"] == seen["size"] == size
    # Nothing of the envelope holds the content in memory: only the header.
    assert seen["largest_bytes_field"] == len(seen["header"]) < 10_000
    assert seen["content"] == seen["chunks"] == seen["header"] + content


def test_a_bdat_message_over_the_threshold_is_spooled_too(start: Starter) -> None:
    handler = Inspect()
    server = start(handler, spool_threshold=10_000)
    content = content_of(50_000)
    assert send(server.port, content, bdat=True).startswith(b"250 ")
    (seen,) = handler.seen
    assert seen["spool"] == "TemporarySpool"
    assert seen["file_size"] == len(seen["header"]) + len(content)
    assert seen["content"] == seen["header"] + content


def test_content_within_the_threshold_stays_in_memory(start: Starter) -> None:
    handler = Inspect()
    server = start(handler, spool_threshold=10_000)
    content = content_of(5_000)
    assert send(server.port, content).startswith(b"250 ")
    (seen,) = handler.seen
    assert seen["spool"] is None and seen["file_size"] is None
    assert seen["largest_bytes_field"] == seen["size"] == len(seen["header"]) + len(content)
    assert seen["content"] == seen["chunks"] == seen["header"] + content


def test_the_default_threshold_is_one_mebibyte(start: Starter) -> None:
    assert SPOOL_THRESHOLD == 1024 * 1024
    handler = Inspect()
    server = start(handler)
    small, big = content_of(SPOOL_THRESHOLD - 2000), content_of(SPOOL_THRESHOLD + 1000)
    assert send(server.port, small).startswith(b"250 ")
    assert send(server.port, big).startswith(b"250 ")
    assert [seen["spool"] for seen in handler.seen] == [None, "TemporarySpool"]
    assert handler.seen[1]["content"] == handler.seen[1]["header"] + big


def test_no_threshold_keeps_everything_in_memory(start: Starter) -> None:
    handler = Inspect()
    server = start(handler, spool_threshold=None)
    assert send(server.port, content_of(SPOOL_THRESHOLD + 1000)).startswith(b"250 ")
    assert handler.seen[0]["spool"] is None


def test_a_spooled_message_reaches_the_maildir_whole(start: Starter, tmp_path: Path) -> None:
    server = start(MaildirHandler(tmp_path / "Maildir"), spool_threshold=10_000)
    content = content_of(300_000)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("a@x.example", ["b@y.example"], content)
    box = mailbox.Maildir(tmp_path / "Maildir", create=False)
    (key,) = box.keys()
    stored = box.get_bytes(key)
    assert stored.startswith(b"Received: from ")
    assert stored.endswith(content.replace(b"\r\n", b"\n"))
    assert os.listdir(tmp_path / "Maildir" / "tmp") == []


# -- the handlers, without a server ---------------------------------------------------


def envelope(content: bytes, *, spooled: bool, sender: str = "a@x.example") -> ServerEnvelope:
    """An envelope as the session builds it, its content in memory or in a spool."""
    from smtpcore.session._server import Peer

    header = b"Received: from c.example\r\n\tby mx.test; Thu, 3 Dec 2026 10:00:00 +0000\r\n"
    whole = header + content
    spool = None
    if spooled:
        spool = TemporarySpool()
        for start in range(0, len(whole), 1000):
            spool.write(whole[start : start + 1000])
    return ServerEnvelope(
        sender=sender,
        recipients=("b@y.example",),
        mail_params={},
        recipient_params=({},),
        peer=Peer("127.0.0.1", 1),
        hello_domain="c.example",
        is_tls=False,
        tls=None,
        auth_identity=None,
        message_id="ID",
        session_id="S",
        received_header=header,
        held=b"" if spooled else whole,
        spool=spool,
        size=len(whole),
    )


TRICKY = (
    b"From: a@x.example\r\nSubject: From here\r\n\r\n"
    b"From the start\r\n>From quoted\r\nFrom\r\nFro\r\n"
    + b"x" * 995
    + b"\r\nFrom cut\r\nlast line without end"
)


def test_mbox_handler_writes_what_the_stdlib_writes(tmp_path: Path) -> None:
    """Separator lines carry the time: both sides get the same one before comparing."""
    separator = re.compile(rb"^From (\S+) [A-Z][a-z]{2} .*$", re.MULTILINE)
    for spooled in (False, True):
        ours, theirs = tmp_path / f"ours{spooled}", tmp_path / f"theirs{spooled}"
        handler = MboxHandler(ours)
        box = mailbox.mbox(theirs, create=True)
        for sender in ("a@x.example", ""):
            made = envelope(TRICKY, spooled=spooled, sender=sender)
            handler.on_message(made)
            line = b"From %s Thu Dec 03 10:00:00 2026\n" % (sender or "MAILER-DAEMON").encode()
            box.add(line + made.content.replace(b"\r\n", b"\n"))  # what the handler did before
        box.close()
        written = separator.sub(rb"From \1 Thu Dec 03 10:00:00 2026", ours.read_bytes())
        assert written == theirs.read_bytes()
        # Per message: "From the start" and "From cut" quoted, ">From quoted" as it was.
        assert written.count(b"\n>From ") == 6


def test_maildir_handler_writes_the_same_file_from_a_spool(tmp_path: Path) -> None:
    for newlines in (True, False):
        stored = []
        for spooled in (False, True):
            path = tmp_path / f"box{spooled}{newlines}"
            MaildirHandler(path, unix_newlines=newlines).on_message(
                envelope(TRICKY, spooled=spooled)
            )
            box = mailbox.Maildir(path, create=False)
            stored.append(box.get_bytes(box.keys()[0]))
        whole = envelope(TRICKY, spooled=False).content
        expected = whole.replace(b"\r\n", b"\n") if newlines else whole
        assert stored == [expected, expected]


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(st.lists(st.integers(0, len(TRICKY)), max_size=40))
def test_line_end_and_from_quoting_agree_however_the_pieces_are_cut(cuts: list[int]) -> None:
    pieces = [*cut(TRICKY, cuts), b""]
    unix = TRICKY.replace(b"\r\n", b"\n")
    assert b"".join(_unix(pieces)) == unix
    expected = (b">" if unix.startswith(b"From ") else b"") + unix.replace(b"\nFrom ", b"\n>From ")
    assert b"".join(_quote_from(cut(unix, cuts))) == expected


def test_spool_config_is_for_memory_only_not_size(start: Starter) -> None:
    """The size limit still applies to spooled content: 552 past SIZE."""
    server = start(Inspect(), spool_threshold=1000, config=ServerConfig(size=20_000))
    assert send(server.port, content_of(30_000)).startswith(b"552 ")


def spool_files() -> list[str]:
    """The open descriptors of this process on deleted files in the temporary directory."""
    where = os.path.realpath(tempfile.gettempdir())
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(where) and target.endswith("(deleted)"):
            found.append(target)
    return found


def wait_until_no_spool_is_open(before: list[str], seconds: float = 5.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        left = [target for target in spool_files() if target not in before]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


class Count:
    """Takes every message and keeps nothing of it."""

    def __init__(self) -> None:
        self.spooled = 0

    def on_message(self, envelope: ServerEnvelope) -> None:
        self.spooled += envelope.spool is not None


def test_spool_files_are_gone_once_stored_or_abandoned(start: Starter) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")
    before = spool_files()
    handler = Count()
    server = start(handler, spool_threshold=10_000)
    for _ in range(3):
        assert send(server.port, content_of(50_000)).startswith(b"250 ")
    assert handler.spooled == 3
    assert wait_until_no_spool_is_open(before) == []
    # A client that goes away in the middle of a spooled message leaves no file.
    raw = Raw(server.port)
    raw.reply()
    raw.send(b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
    for _ in range(4):
        raw.reply()
    raw.send(content_of(50_000))
    deadline = time.monotonic() + 5.0
    while not [t for t in spool_files() if t not in before] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [t for t in spool_files() if t not in before]  # the half message is on disk
    raw.sock.close()
    assert wait_until_no_spool_is_open(before) == []


def test_a_parked_message_is_cut_by_data_timeout(start: Starter) -> None:
    """Content sent fast buys a long data-rate budget; data_timeout still ends the message."""
    server = start(Inspect(), idle_timeout=5.0, data_timeout=0.6, hostname="mx.test")
    raw = Raw(server.port)
    raw.reply()
    raw.send(b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
    for _ in range(4):
        raw.reply()
    raw.send(content_of(100_000))  # 100 kB at 500 octets/s: 200 s of rate budget
    raw.sock.settimeout(0.2)
    reply = b""
    for _ in range(50):  # one byte every 0.2 s, 10 s at most
        try:
            reply = raw.reply()
            break
        except TimeoutError:
            raw.send(b"x")
    raw.close()
    assert reply == b"421 mx.test 4.4.2 Data timeout, closing connection\r\n"


def test_a_spool_that_cannot_be_made_is_452_and_the_session_goes_on(
    start: Starter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # every spool fails
    handler = Inspect()
    server = start(handler, spool_threshold=10_000)
    raw = Raw(server.port)
    raw.reply()
    raw.send(b"EHLO c.example\r\n")
    raw.reply()
    replies = []
    for content in (content_of(50_000), content_of(5_000)):
        raw.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
        for _ in range(3):
            raw.reply()
        raw.send(content + b".\r\n")
        replies.append(raw.reply())
    raw.close()
    assert replies[0] == b"452 4.3.1 Insufficient system storage\r\n"
    assert replies[1].startswith(b"250 ")
    assert len(handler.seen) == 1 and handler.seen[0]["spool"] is None
