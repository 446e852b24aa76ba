"""What the command prints comes from the server too: it must be printable, and secret-free."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transports import cli

from .fake_server import FakeServer

SMTPCORE = [sys.executable, "-m", "transports"]
HOSTILE = b"\x1b]0;owned\x07\x1b[2J\x9b\r"  # retitle, bell, clear screen, C1 CSI, CR


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMTPCORE, *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def assert_printable(text: str) -> None:
    for line in text.splitlines():
        assert line.isprintable(), repr(line)


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    assert cli.printable("250 ok") == "250 ok"
    assert cli.printable("a\x1b[2Jb\x07\x9b\u202e\U000e0001") == (
        "a\\x1b[2Jb\\x07\\x9b\\u202e\\U000e0001"
    )


def test_send_prints_hostile_replies_escaped(tmp_path: Path) -> None:
    server = FakeServer(
        greeting=b"220 fake" + HOSTILE[:-1] + b" ESMTP\r\n",
        replies={"RCPT": b"250 2.1.5 ok " + HOSTILE[:-1] + b"\r\n",
                 ".": b"250 2.0.0 queued \x1b[31mred\r\n"},
    )  # fmt: skip
    try:
        done = run("send", "--host", f"127.0.0.1:{server.port}", "--tls", "none", "--trace",
                   "--from", "a@example.org", "--to", "b@example.net")  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert_printable(done.stdout)
    assert_printable(done.stderr)
    assert "< 220 fake\\x1b]0;owned\\x07\\x1b[2J\\x9b ESMTP\n" in done.stderr
    assert done.stdout == "accepted b@example.net: 250 2.0.0 queued \\x1b[31mred\n"


def test_an_error_quoting_the_server_is_escaped() -> None:
    server = FakeServer(replies={"RCPT": b"550 5.1.1 no such user" + HOSTILE[:-1] + b"\r\n"})
    try:
        done = run("send", "--host", f"127.0.0.1:{server.port}", "--tls", "none",
                   "--from", "a@example.org", "--to", "b@example.net")  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 69
    [line] = done.stderr.splitlines()
    assert line.isprintable()
    assert "no such user\\x1b]0;owned\\x07" in line


def test_probe_prints_the_greeting_and_extensions_escaped() -> None:
    server = FakeServer(
        greeting=b"220 fake\x1b[2J ESMTP\r\n",
        replies={"EHLO": b"250-fake.example\r\n250 X-EVIL \x1b]0;owned\x07\r\n"},
    )
    try:
        done = run("probe", f"127.0.0.1:{server.port}", "--timeout", "5")
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert_printable(done.stdout)
    assert "greeting: 220 fake\\x1b[2J ESMTP\n" in done.stdout
    assert "\\x1b]0;owned\\x07" in done.stdout


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_trace_hides_auth_plain_credentials() -> None:
    server = FakeServer(replies={"EHLO": b"250-fake.example\r\n250 AUTH PLAIN\r\n",
                                 "AUTH": b"235 2.7.0 ok\r\n"})  # fmt: skip
    try:
        done = run("send", "--host", f"127.0.0.1:{server.port}", "--tls", "none", "--trace",
                   "--auth-in-clear", "--user", "alice", "--password-env", "PW",
                   "--from", "a@example.org", "--to", "b@example.net",
                   env={"PW": "s3cret-pw"})  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    sent = bytes(server.received)
    assert b"AUTH PLAIN " + b64("\0alice\0s3cret-pw").encode() + b"\r\n" in sent
    assert "> AUTH PLAIN ***\n" in done.stderr
    assert "< 235 2.7.0 ok\n" in done.stderr
    assert "> MAIL FROM:<a@example.org>" in done.stderr  # shown again after the exchange
    assert b64("\0alice\0s3cret-pw") not in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


def test_trace_hides_every_auth_login_response() -> None:
    server = FakeServer(replies={
        "EHLO": b"250-fake.example\r\n250 AUTH LOGIN\r\n",
        "AUTH": b"334 VXNlcm5hbWU6\r\n",
        "AUTH-STEP": [b"334 UGFzc3dvcmQ6\r\n", b"235 2.7.0 ok\r\n"],
    })  # fmt: skip
    try:
        done = run("send", "--host", f"127.0.0.1:{server.port}", "--tls", "none", "--trace",
                   "--auth-in-clear", "--user", "alice", "--password-env", "PW",
                   "--from", "a@example.org", "--to", "b@example.net",
                   env={"PW": "s3cret-pw"})  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert b64("s3cret-pw").encode() in bytes(server.received)
    trace = done.stderr.splitlines()
    start = trace.index("> AUTH LOGIN")
    assert trace[start : start + 6] == [
        "> AUTH LOGIN", "< 334 VXNlcm5hbWU6", "> ***", "< 334 UGFzc3dvcmQ6", "> ***",
        "< 235 2.7.0 ok",
    ]  # fmt: skip
    assert b64("s3cret-pw") not in done.stderr
    assert b64("alice") not in done.stderr


@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_a_message_line_that_reads_auth_is_shown_as_content(verb: str) -> None:
    out = io.StringIO()
    trace = cli.Tracer(out)
    if verb == "DATA":
        trace(">", b"DATA\r\n")
        trace("<", b"354 go ahead\r\n")
        trace(">", b"AUTH PLAIN is a line of text\r\n.\r\n")
    else:
        trace(">", b"BDAT 30 LAST\r\nAUTH PLAIN is a line of text\r\n")
    trace("<", b"250 ok\r\n")
    trace(">", b"AUTH PLAIN AGFsaWNlAHB3\r\n")
    assert "> AUTH PLAIN is a line of text\n" in out.getvalue()
    assert out.getvalue().endswith("< 250 ok\n> AUTH PLAIN ***\n")
