"""The smtpcore command, run as a subprocess against real servers on loopback."""

from __future__ import annotations

import mailbox
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from smtpcore import Reply
from transports.mailboxes import MemoryHandler
from transports.sync import SMTPServer

SMTPCORE = [sys.executable, "-m", "transports"]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMTPCORE, *args], input=stdin.decode(), capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture
def inbox() -> Iterator[tuple[MemoryHandler, int]]:
    handler = MemoryHandler()
    with SMTPServer(handler, "127.0.0.1", 0) as server:
        yield handler, server.port


def test_demo_sends_through_every_client_and_checks_what_was_stored() -> None:
    done = run("demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for kind in ("sync", "asyncio", "trio", "anyio"):
        assert f"--- the {kind} client" in out
        assert f"Subject: Hello from the {kind} client" in out
    assert "> MAIL FROM:<alice@example.org>" in out
    assert "< 354 " in out
    assert out.count("  | And this is the second.") == 4
    assert "4 of 4 messages arrived intact." in out


def test_send_with_trace_and_per_recipient_results(inbox: tuple[MemoryHandler, int]) -> None:
    handler, port = inbox
    done = run(
        "send", "--host", f"127.0.0.1:{port}", "--tls", "none", "--from", "a@example.org",
        "--to", "b@example.net", "--cc", "c@example.net", "--bcc", "hidden@example.net",
        "--subject", "CLI test", "--body", "-", "--trace",
        stdin=b"First line.\nSecond line.\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "accepted b@example.net: 250" in done.stdout
    assert "accepted hidden@example.net: 250" in done.stdout
    assert "> RCPT TO:<hidden@example.net>" in done.stderr
    [envelope] = handler.messages
    assert envelope.recipients == ("b@example.net", "c@example.net", "hidden@example.net")
    content = envelope.original_content
    assert b"Subject: CLI test\r\n" in content
    assert b"First line.\r\nSecond line.\r\n" in content
    assert b"hidden@example.net" not in content  # Bcc removed


def test_send_attachment_and_eml(inbox: tuple[MemoryHandler, int], tmp_path: Path) -> None:
    handler, port = inbox
    attachment = tmp_path / "data.csv"
    attachment.write_text("a,b\n1,2\n")
    done = run("send", "--host", "127.0.0.1", "--port", str(port), "--tls", "none",
               "--from", "a@example.org", "--to", "b@example.net",
               "--attach", str(attachment))  # fmt: skip
    assert done.returncode == 0, done.stderr
    content = handler.messages[0].original_content
    assert b"Content-Type: text/csv\r\n" in content
    assert b'Content-Disposition: attachment; filename="data.csv"\r\n' in content
    assert b"\r\n\r\nYSxiCjEsMgo=\r\n" in content  # base64 of the file
    assert b"\r\nSubject:" not in content  # no empty Subject header
    eml = tmp_path / "ready.eml"
    eml.write_bytes(b"From: x@example.org\r\nTo: y@example.net\r\nSubject: ready\r\n\r\nbody\r\n")
    done = run("send", "--host", f"127.0.0.1:{port}", "--tls", "none", "--eml", str(eml))
    assert done.returncode == 0, done.stderr
    assert handler.messages[1].recipients == ("y@example.net",)
    assert handler.messages[1].original_content.endswith(b"Subject: ready\r\n\r\nbody\r\n")


class Refusing(MemoryHandler):
    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def on_rcpt(self, recipient: str, params: object) -> Reply:
        return Reply(self.code, (f"{self.code // 100}.1.1 no such user",))


@pytest.mark.parametrize(("code", "status"), [(550, 69), (450, 75)])
def test_failures_have_distinct_exit_statuses(code: int, status: int) -> None:
    with SMTPServer(Refusing(code), "127.0.0.1", 0) as server:
        done = run("send", "--host", f"127.0.0.1:{server.port}", "--tls", "none",
                   "--from", "a@example.org", "--to", "b@example.net", "--body", "-")  # fmt: skip
    assert done.returncode == status
    assert done.stderr.startswith("smtpcore: RecipientsRefused: ")
    assert str(code) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_starttls_required_but_missing_is_a_protocol_exit(inbox: tuple[MemoryHandler, int]) -> None:
    _, port = inbox
    done = run("send", "--host", f"127.0.0.1:{port}", "--from", "a@example.org",
               "--to", "b@example.net", "--body", "-")  # fmt: skip
    assert done.returncode == 76
    assert "TLSError" in done.stderr


def test_password_comes_from_the_environment_never_the_command_line(
    inbox: tuple[MemoryHandler, int],
) -> None:
    _, port = inbox
    done = run("send", "--host", f"127.0.0.1:{port}", "--tls", "none", "--user", "u",
               "--password-env", "NOT_SET_ANYWHERE", "--from", "a@example.org",
               "--to", "b@example.net")  # fmt: skip
    assert done.returncode == 64
    assert "--password-env NOT_SET_ANYWHERE: that variable is not set" in done.stderr
    refused = run("send", "--host", f"127.0.0.1:{port}", "--password", "secret")
    assert refused.returncode == 64  # no such option
    assert refused.stderr == (
        "smtpcore: unknown option --password; did you mean --password-env? "
        "(see smtpcore send --help)\n"
    )


@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio", "anyio"])
def test_serve_stores_into_a_maildir_and_stops_on_ctrl_c(transport: str, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    users = tmp_path / "users"
    users.write_text("test:secret\n")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    server = subprocess.Popen(
        [*SMTPCORE, "serve", "--port", "0", "--maildir", str(maildir), "--transport", transport,
         "--tls-cert", str(tmp_path / "server.pem"), "--users", str(users)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert banner.startswith("smtpcore: serving SMTP on 127.0.0.1:"), banner
        port = banner.split("127.0.0.1:")[1].split()[0]
        done = run("send", "--host", f"localhost:{port}", "--cafile", str(tmp_path / "ca.pem"),
                   "--user", "test", "--password-env", "PW", "--from", "a@example.org",
                   "--to", "b@example.net", "--subject", "served", "--body", "-",
                   env={"PW": "secret"}, stdin=b"hello\n")  # fmt: skip
        assert done.returncode == 0, done.stderr
        probe = run("probe", f"localhost:{port}", "--cafile", str(tmp_path / "ca.pem"))
        assert probe.returncode == 0, probe.stderr + probe.stdout
        assert "greeting: 220 localhost ESMTP" in probe.stdout
        assert "STARTTLS" in probe.stdout
        assert "TLS verification: ok" in probe.stdout
        assert "AUTH: CRAM-MD5 LOGIN PLAIN SCRAM-SHA-256" in probe.stdout
    finally:
        server.send_signal(signal.SIGINT)
        try:
            out, err = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert "smtpcore: stopped" in out, err
    [key] = mailbox.Maildir(maildir).keys()
    stored = mailbox.Maildir(maildir).get_bytes(key)
    assert b"Subject: served\n" in stored
    assert b"with ESMTPSA" in stored


def test_probe_reports_a_failed_verification(tmp_path: Path) -> None:
    import ssl

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    with SMTPServer(MemoryHandler(), "127.0.0.1", 0, tls_context=context) as server:
        time.sleep(0)
        done = run("probe", f"localhost:{server.port}")
    assert done.returncode == 1
    assert "TLS verification: FAILED" in done.stdout
    assert "TLS: TLSv1" in done.stdout


def test_send_and_probe_over_implicit_tls(tmp_path: Path) -> None:
    """Port 465 (RFC 8314): TLS from the first byte, no --local-hostname needed."""
    import ssl

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    handler = MemoryHandler()
    with SMTPServer(handler, "127.0.0.1", 0, tls_context=context, implicit_tls=True) as server:
        sent = run(
            "send", "--host", f"localhost:{server.port}", "--tls", "implicit",
            "--cafile", str(cafile), "--from", "a@example.org", "--to", "b@example.net",
            "--subject", "over 465", "--body", "-", stdin=b"Hello.\n",
        )  # fmt: skip
        probed = run("probe", f"localhost:{server.port}", "--implicit", "--cafile", str(cafile))
    assert sent.returncode == 0, sent.stderr
    assert "Traceback" not in sent.stderr
    assert len(handler.messages) == 1 and handler.messages[0].is_tls
    assert b"Subject: over 465" in handler.messages[0].content
    assert probed.returncode == 0, probed.stderr + probed.stdout
    assert "TLS verification: ok" in probed.stdout
