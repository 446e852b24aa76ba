"""``smtpcore send --maildir/--mbox/--eml DIR``: many messages over one connection."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpcore import Reply
from transports.mailboxes import MemoryHandler
from transports.sync import SMTPServer

SMTPCORE = [sys.executable, "-m", "transports"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMTPCORE, *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)  # fmt: skip


class Refusing(MemoryHandler):
    """Refuses the recipients named ``refused@...`` (550) and ``later@...`` (450)."""

    def on_rcpt(self, recipient: str, params: object) -> Reply | None:
        if recipient.startswith("refused@"):
            return Reply(550, ("5.1.1 no such user",))
        if recipient.startswith("later@"):
            return Reply(450, ("4.2.1 try later",))
        return None


@pytest.fixture
def inbox() -> Iterator[tuple[Refusing, int]]:
    handler = Refusing()
    with SMTPServer(handler, "127.0.0.1", 0) as server:
        yield handler, server.port


def message(number: int, to: str) -> bytes:
    return (f"From: a@example.org\nTo: {to}\nSubject: message {number}\n\n"
            f"From the body of message {number}.\nline two\n").encode()  # fmt: skip


def test_a_maildir_over_one_connection_with_a_summary(
    inbox: tuple[Refusing, int], tmp_path: Path
) -> None:
    handler, port = inbox
    box = mailbox.Maildir(tmp_path / "Maildir")
    for number, to in enumerate(["b@example.net", "refused@example.net", "c@example.net"], 1):
        box.add(mailbox.MaildirMessage(message(number, to)))
    done = run("send", "--host", f"127.0.0.1:{port}", "--tls", "none",
               "--maildir", str(tmp_path / "Maildir"))  # fmt: skip
    assert done.returncode == 69, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "3 messages: 2 accepted, 1 refused, 0 not sent"
    assert sum(" accepted b@example.net: 250 " in line for line in lines) == 1
    assert sum(": refused: RecipientsRefused: " in line and "550" in line for line in lines) == 1
    assert done.stderr == ""
    assert sorted(env.recipients for env in handler.messages) == [
        ("b@example.net",), ("c@example.net",)]  # fmt: skip
    assert len({env.session_id for env in handler.messages}) == 1  # one connection
    subjects = sorted(env.original_content.split(b"Subject: ")[1][:9] for env in handler.messages)
    assert subjects in ([b"message 1", b"message 3"],)


def test_an_mbox_with_escaped_from_lines_and_all_accepted(
    inbox: tuple[Refusing, int], tmp_path: Path
) -> None:
    handler, port = inbox
    path = tmp_path / "mail.mbox"
    box = mailbox.mbox(path)
    for number in range(1, 4):
        box.add(mailbox.mboxMessage(message(number, f"r{number}@example.net")))
    box.flush()
    box.close()
    done = run("send", "--host", f"127.0.0.1:{port}", "--tls", "none", "--mbox", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "3 messages: 3 accepted, 0 refused, 0 not sent"
    assert [env.recipients for env in handler.messages] == [
        ("r1@example.net",), ("r2@example.net",), ("r3@example.net",)]  # fmt: skip
    first = handler.messages[0].original_content
    assert first.startswith(b"From: a@example.org\r\n")  # the mbox "From " line is not sent
    assert first.endswith(b"\r\n\r\n>From the body of message 1.\r\nline two\r\n")
    assert len({env.session_id for env in handler.messages}) == 1


def test_a_directory_of_eml_files_with_a_transient_refusal(
    inbox: tuple[Refusing, int], tmp_path: Path
) -> None:
    handler, port = inbox
    (tmp_path / "1.eml").write_bytes(message(1, "b@example.net").replace(b"\n", b"\r\n"))
    (tmp_path / "2.eml").write_bytes(message(2, "later@example.net"))
    (tmp_path / "notes.txt").write_text("not a message")
    done = run("send", "--host", f"127.0.0.1:{port}", "--tls", "none", "--eml", str(tmp_path))
    assert done.returncode == 75, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "2 messages: 1 accepted, 1 refused, 0 not sent"
    assert [env.recipients for env in handler.messages] == [("b@example.net",)]


def test_envelope_options_apply_to_every_message(
    inbox: tuple[Refusing, int], tmp_path: Path
) -> None:
    handler, port = inbox
    for number in (1, 2):
        (tmp_path / f"{number}.eml").write_bytes(message(number, "header@example.net"))
    done = run("send", "--host", f"127.0.0.1:{port}", "--tls", "none", "--eml", str(tmp_path),
               "--from", "bounce@example.org", "--to", "override@example.net")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(env.sender, env.recipients) for env in handler.messages] == [
        ("bounce@example.org", ("override@example.net",))] * 2  # fmt: skip


def test_an_empty_source_is_a_missing_input(tmp_path: Path) -> None:
    done = run("send", "--host", "127.0.0.1:1", "--tls", "none", "--eml", str(tmp_path))
    assert done.returncode == 66
    assert done.stderr == f"smtpcore: --eml {tmp_path}: no messages in it\n"
    done = run("send", "--host", "127.0.0.1:1", "--tls", "none", "--maildir", str(tmp_path))
    assert done.returncode == 66
    assert (
        done.stderr == f"smtpcore: --maildir {tmp_path}: not a Maildir (it needs cur/ and new/)\n"
    )


def test_small_messages_are_pipelined_one_round_trip_each(
    inbox: tuple[Refusing, int], tmp_path: Path
) -> None:
    """RFC 2920 3.1: a message's end and the next envelope go in one write."""
    handler, port = inbox
    box = mailbox.Maildir(tmp_path / "Maildir")
    for number, to in enumerate(["b@example.net", "refused@example.net", "c@example.net"], 1):
        box.add(mailbox.MaildirMessage(message(number, to)))
    done = run("send", "--host", f"127.0.0.1:{port}", "--tls", "none", "--trace",
               "--maildir", str(tmp_path / "Maildir"))  # fmt: skip
    assert done.returncode == 69, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "3 messages: 2 accepted, 1 refused, 0 not sent"
    trace = done.stderr.splitlines()
    first_end = trace.index("> .")
    assert trace[first_end + 1].startswith("> MAIL FROM:<a@example.org>"), trace
    assert len(handler.messages) == 2
