"""``smtpcore serve`` stops gracefully on SIGTERM and SIGINT, on every transport.

A real ``smtpcore serve`` process per transport: an idle session, a message
whose final dot was sent just before the signal, and a message stalled in
the middle of its content. The wire bytes, the Maildir and the report on
stderr are asserted.
"""

from __future__ import annotations

import mailbox
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.conftest import Raw

SMTPCORE = [sys.executable, "-m", "transports"]
BYE = b"421 mx.test 4.3.2 Service shutting down, closing connection\r\n"


def _open_message(client: Raw) -> None:
    assert client.reply().startswith(b"220 ")
    client.send(b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
    assert [client.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio", "anyio"])
def test_serve_finishes_what_is_past_the_dot_and_reports_what_it_dropped(
    transport: str, stop: signal.Signals, tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    server = subprocess.Popen(
        [*SMTPCORE, "serve", "--port", "0", "--maildir", str(maildir), "--transport", transport,
         "--hostname", "mx.test", "--grace", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    clients: list[Raw] = []
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        idle, done, stalled = (Raw(port, timeout=20) for _ in range(3))
        clients += [idle, done, stalled]
        assert idle.reply().startswith(b"220 ")
        idle.send(b"EHLO c.example\r\n")
        assert idle.reply().startswith(b"250")
        _open_message(done)
        _open_message(stalled)
        stalled.send(b"Subject: half\r\n\r\nthe first half\r\n")
        done.send(b"Subject: whole\r\n\r\nall of it\r\n.\r\n")
        server.send_signal(stop)
        # Waiting for a command: 421 at once.
        assert idle.reply() == BYE
        assert idle.is_closed()
        # Past the final dot: stored, 250, then 421 for the next command.
        assert done.reply().startswith(b"250 2.0.0 OK queued as ")
        assert done.reply() == BYE
        # Still arriving when the 2 s grace runs out: 421, dropped.
        assert stalled.reply() == BYE
        assert stalled.is_closed()
        out, err = server.communicate(timeout=30)
    finally:
        for client in clients:
            client.close()
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 75, err  # EX_TEMPFAIL: something was dropped
    assert out.endswith("smtpcore: stopped\n"), out
    assert (
        f"smtpcore: {stop.name}: 1 session(s) cut after the 2 s grace with a message in flight;"
        " their clients got no 250 and keep the messages" in err
    ), err
    assert "gracefully" not in err
    sessions = [line for line in err.splitlines() if " session " in line and " peer=" in line]
    assert len(sessions) == 3, err
    assert sum("dropped=message-in-flight" in line for line in sessions) == 1, err
    assert all("end=shutdown" in line for line in sessions), err
    box = mailbox.Maildir(maildir)
    stored = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(stored) == 1
    assert stored[0].endswith(b"Subject: whole\n\nall of it\n")


@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio", "anyio"])
def test_serve_with_nothing_in_flight_stops_at_once_and_says_so(
    transport: str, tmp_path: Path
) -> None:
    server = subprocess.Popen(
        [*SMTPCORE, "serve", "--port", "0", "--maildir", str(tmp_path / "Maildir"),
         "--transport", transport],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("smtpcore: serving SMTP on 127.0.0.1:")
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    assert "smtpcore: SIGTERM: stopped; every message in flight was finished" in err
    assert out.endswith("smtpcore: stopped\n")


def test_users_without_a_certificate_refuses_to_start(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("test:secret\n")
    done = subprocess.run(
        [*SMTPCORE, "serve", "--port", "0", "--maildir", str(tmp_path / "Maildir"),
         "--users", str(users)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 64  # EX_USAGE
    assert done.stderr == (
        "smtpcore serve: --users needs --tls-cert (AUTH is offered only after STARTTLS)\n"
    )
    assert done.stdout == ""


def test_serve_caps_connections_per_client(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [*SMTPCORE, "serve", "--port", "0", "--maildir", str(tmp_path / "Maildir"),
         "--hostname", "mx.test", "--max-connections-per-client", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    clients: list[Raw] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split("127.0.0.1:")[1].split()[0])
        first = Raw(port)
        clients.append(first)
        assert first.reply().startswith(b"220 ")
        second = Raw(port)
        clients.append(second)
        assert second.reply() == (
            b"421 mx.test 4.7.0 Too many connections from your address, try again later\r\n"
        )
        assert second.is_closed()
        server.send_signal(signal.SIGTERM)
        assert first.reply() == BYE
        _, err = server.communicate(timeout=30)
    finally:
        for client in clients:
            client.close()
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    assert 'end="refused: 4.7.0 Too many connections from your address' in err


@pytest.mark.parametrize(
    ("option", "value", "complaint"),
    [
        ("--max-connections", "0", "--max-connections must be at least 1, not 0"),
        (
            "--max-connections-per-client",
            "0",
            "--max-connections-per-client must be at least 1, not 0",
        ),
        ("--grace", "-1", "--grace must be 0 or more seconds, not -1"),
    ],
)
def test_serve_refuses_limits_out_of_range(
    option: str, value: str, complaint: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [*SMTPCORE, "serve", "--port", "0", "--maildir", str(tmp_path / "Maildir"), option, value],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 64
    assert done.stderr == f"smtpcore serve: {complaint}\n"
