"""Every server logs one line per session and one per message at INFO, on ``smtpcore.server``.

The lines name the peer, the HELO name, TLS, the authenticated identity,
the sender, the recipient count, the size, the result and the queue id;
never a password or a byte of the message.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from smtpcore.session._report import quote

from .conftest import PASSWORD, USER, Memory, Raw, Starter, wait_for

ROOT = Path(__file__).resolve().parents[2]
BODY = b"Subject: secret plans\r\n\r\nthe body nobody may log\r\n"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "smtpcore.server" and record.levelno == logging.INFO
    ]


def test_a_session_and_its_message_are_logged_without_secrets(
    start: Starter,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="smtpcore")
    server = start(Memory(), tls_context=server_tls, hostname="mx.test")
    client = Raw(server.port)
    try:
        assert client.reply().startswith(b"220 ")
        client.send(b"EHLO c.example\r\n")
        client.reply()
        client.send(b"STARTTLS\r\n")
        assert client.reply().startswith(b"220 ")
        client.starttls(client_tls)
        client.send(b"EHLO c.example\r\n")
        client.reply()
        token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
        client.send(b"AUTH PLAIN " + token + b"\r\n")
        assert client.reply().startswith(b"235 ")
        client.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n")
        client.send(b"RCPT TO:<c@y.example>\r\nDATA\r\n")
        assert [client.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        client.send(BODY + b".\r\n")
        queued = client.reply()
        assert queued.startswith(b"250 2.0.0 OK queued as ")
        queue_id = queued.split()[-1].decode()
        client.send(b"QUIT\r\n")
        assert client.reply().startswith(b"221 ")
    finally:
        client.close()
    assert wait_for(lambda: any(line.startswith("session ") for line in _lines(caplog)))
    lines = _lines(caplog)
    messages = [line for line in lines if line.startswith("message ")]
    sessions = [line for line in lines if line.startswith("session ")]
    assert len(messages) == 1 and len(sessions) == 1, lines
    session_id = sessions[0].split()[1]
    assert messages[0] == (
        f"message {queue_id} session={session_id} from=<a@x.example> recipients=2"
        f' size={len(BODY)} result="250 2.0.0 OK queued as {queue_id}"'
    )
    assert sessions[0].startswith(f"session {session_id} peer=127.0.0.1:")
    assert sessions[0].endswith(" helo=c.example tls=TLSv1.3 auth=alice messages=1 end=quit"), (
        sessions[0]
    )
    everything = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in everything
    assert token.decode() not in everything
    assert "secret plans" not in everything and "nobody may log" not in everything


def test_refused_timed_out_and_cut_sessions_are_logged(
    start: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smtpcore")
    server = start(Memory(), max_connections=1, hostname="mx.test")
    first = Raw(server.port)
    try:
        assert first.reply().startswith(b"220 ")
        second = Raw(server.port)
        assert second.reply().startswith(b"421 ")
        second.close()
        first.send(b"EHLO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
        assert [first.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        first.send(b"Subject: half\r\n\r\nnever ended")
    finally:
        first.close()
    assert wait_for(lambda: len([x for x in _lines(caplog) if x.startswith("session ")]) == 2)
    lines = [x for x in _lines(caplog) if x.startswith("session ")]
    refused = next(x for x in lines if "refused" in x)
    cut = next(x for x in lines if "refused" not in x)
    assert refused.endswith(
        " helo=- tls=no auth=- messages=0"
        ' end="refused: 4.7.0 Too many connections, try again later"'
    ), refused
    assert cut.endswith(
        ' helo=c.example tls=no auth=- messages=0 end="client closed" dropped=message-in-flight'
    ), cut
    assert not [x for x in _lines(caplog) if x.startswith("message ")]


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("a@x.example", "a@x.example"),
        ('"a b"@x.example', '"\\"a b\\"@x.example"'),
        ("evil\r\nsession FAKE", '"evil\\r\\nsession FAKE"'),
        ("", '""'),
        ("ü@x.example", '"\\xfc@x.example"'),
    ],
)
def test_client_values_cannot_forge_log_lines(value: str, logged: str) -> None:
    assert quote(value) == logged
    assert "\n" not in quote(value) and "\r" not in quote(value)


def test_the_docs_first_example_shows_the_lines(tmp_path: Path) -> None:
    source = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    example = source.split("```python\n", 1)[1].split("```", 1)[0]
    assert "logging.basicConfig(level=logging.INFO)" in example
    done = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "INFO:smtpcore.server:message",
        "INFO:smtpcore.server:session",
    ], done.stderr
    assert lines[1].endswith(" tls=no auth=- messages=1 end=quit")
