"""``smtpcore send`` streams: attachments and ready messages are never held whole."""

from __future__ import annotations

import base64
import os
import pty
import resource
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from smtpcore import ServerConfig
from transports.mailboxes import MemoryHandler
from transports.sync import SMTPServer

SMTPCORE = [sys.executable, "-m", "transports"]
SEND = ["send", "--tls", "none", "--from", "a@example.org", "--to", "b@example.net"]


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(
        [*SMTPCORE, *args], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip
    return done


@pytest.fixture
def inbox() -> Iterator[tuple[MemoryHandler, int]]:
    handler = MemoryHandler()
    config = ServerConfig(size=200 * 1024 * 1024, smtputf8=True, chunking=True)
    with SMTPServer(handler, "127.0.0.1", 0, config=config) as server:
        yield handler, server.port


@pytest.mark.parametrize("octets", [0, 1, 2, 3, 56, 57, 58, 114, 1000, 57 * 1150, 57 * 1150 + 1])
def test_attachment_size_is_the_length_of_its_base64_lines(octets: int) -> None:
    from transports.cli._mail import attachment_size

    data = os.urandom(octets)
    assert attachment_size(octets) == len(base64.encodebytes(data).replace(b"\n", b"\r\n"))


def test_attachments_arrive_whole_and_size_is_exact(
    inbox: tuple[MemoryHandler, int], tmp_path: Path
) -> None:
    handler, port = inbox
    files = {}
    for name, octets in [("a.bin", 57 * 1150 * 3 + 7), ("empty.txt", 0), ("b.pdf", 58)]:
        files[name] = os.urandom(octets)
        (tmp_path / name).write_bytes(files[name])
    (tmp_path / "body.txt").write_text("Grüße,\nthe report.\n", encoding="utf-8")
    attach = [arg for name in files for arg in ("--attach", str(tmp_path / name))]
    done = run(*SEND, "--host", f"127.0.0.1:{port}", "--subject", "Bericht",
               "--cc", "c@example.net", "--bcc", "hidden@example.net",
               "--body", str(tmp_path / "body.txt"), *attach)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress line
    [envelope] = handler.messages
    content = envelope.original_content
    assert envelope.mail_params["SIZE"] == str(len(content))
    assert envelope.mail_params["BODY"] == "8BITMIME"
    assert envelope.recipients == ("b@example.net", "c@example.net", "hidden@example.net")
    assert b"hidden@example.net" not in content
    msg = BytesParser(policy=policy.default).parsebytes(content)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "Bericht"
    assert msg["Cc"] == "c@example.net"
    assert msg.get_content_type() == "multipart/mixed"
    body, *parts = msg.iter_parts()
    assert body.get_content().replace("\r\n", "\n") == "Grüße,\nthe report.\n"
    assert [part.get_filename() for part in parts] == list(files)
    assert [part.get_content_type() for part in parts] == [
        "application/octet-stream", "text/plain", "application/pdf"]  # fmt: skip
    for part, data in zip(parts, files.values(), strict=True):
        assert part.get_payload(decode=True) == data


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"])
def test_a_ready_message_is_streamed_with_an_exact_size(
    inbox: tuple[MemoryHandler, int], tmp_path: Path, line_end: bytes
) -> None:
    handler, port = inbox
    lines = [b"From: x@example.org", b"To: y@example.net", b"Bcc: secret@example.net",
             b"Subject: ready", b"", b"caf\xc3\xa9", b".starts with a dot", b"end"]  # fmt: skip
    (tmp_path / "ready.eml").write_bytes(line_end.join(lines) + line_end)
    done = run("send", "--tls", "none", "--host", f"127.0.0.1:{port}",
               "--eml", str(tmp_path / "ready.eml"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    [envelope] = handler.messages
    content = envelope.original_content
    assert envelope.recipients == ("y@example.net", "secret@example.net")
    assert envelope.mail_params["SIZE"] == str(len(content))
    assert envelope.mail_params["BODY"] == "8BITMIME"
    assert content == (
        b"From: x@example.org\r\nTo: y@example.net\r\nSubject: ready\r\n\r\n"
        b"caf\xc3\xa9\r\n.starts with a dot\r\nend\r\n"
    )


def test_size_refusal_comes_before_the_file_is_read(tmp_path: Path) -> None:
    """A 4 GB attachment (sparse) against a 32 MiB SIZE, in a process allowed 1 GB."""
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as file:
        file.truncate(4 * 1024**3)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))

    with SMTPServer(MemoryHandler(), "127.0.0.1", 0) as server:  # SIZE 33554432
        done = run(*SEND, "--host", f"127.0.0.1:{server.port}", "--attach", str(huge),
                   preexec_fn=limit_memory)  # fmt: skip
    assert done.returncode == 69, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("smtpcore: NotSupported: message of ")
    assert "exceeds the server's SIZE limit of 33554432" in line


# VmHWM, the peak RSS of this process's own memory since exec: ru_maxrss
# would also count the pages of the (large) pytest process it was forked from.
MEASURE = """
import sys
from transports.cli import main
status = main(sys.argv[1:])
with open("/proc/self/status") as file:
    peak = [line.split()[1] for line in file if line.startswith("VmHWM:")][0]
print(peak, file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_a_big_attachment_is_sent_in_bounded_memory(
    inbox: tuple[MemoryHandler, int], tmp_path: Path
) -> None:
    """30 MB attached: the sender's peak RSS stays far below the message's size."""
    handler, port = inbox
    data = os.urandom(1024 * 1024) * 30
    (tmp_path / "big.bin").write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *SEND, "--host", f"127.0.0.1:{port}",
         "--attach", str(tmp_path / "big.bin")],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stderr.split()[-1])
    assert peak_kib < 80 * 1024, f"peak RSS {peak_kib} KiB for a 30 MB attachment"
    [envelope] = handler.messages
    msg = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
    [_, part] = msg.iter_parts()
    assert part.get_payload(decode=True) == data


def test_progress_on_a_terminal_shows_bytes_rate_and_time_left(
    inbox: tuple[MemoryHandler, int], tmp_path: Path
) -> None:
    _, port = inbox
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [*SMTPCORE, *SEND, "--host", f"127.0.0.1:{port}", "--attach",
             str(tmp_path / "big.bin")],
            stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        os.close(terminal)
        shown = b""
        while True:
            try:
                piece = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not piece:
                break
            shown += piece
    finally:
        os.close(controller)
    assert done.returncode == 0
    text = shown.decode()
    final = text.rstrip("\r\n").split("\r")[-1]
    assert final.startswith("  4.3 MB of 4.3 MB   "), text
    assert " MB/s   0 s left" in final
    assert text.endswith("\n")


def test_a_ready_message_over_size_is_refused_before_its_body_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smtpcore import Extensions
    from smtpcore.session import NotSupported
    from transports import cli
    from transports.cli._ready import from_file

    path = tmp_path / "big.eml"
    path.write_bytes(b"From: x@example.org\r\nTo: y@example.net\r\n\r\n" + b"line\r\n" * 1000)

    class Connected:
        extensions = Extensions({"SIZE": "1000"})

        def sendmail(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing may be sent")

    with open(path, "rb") as file:
        message = from_file(file, name=str(path))
        assert not message.size_is_exact
        monkeypatch.setattr(message, "scan", lambda: pytest.fail("the body was read"))
        with pytest.raises(NotSupported, match="or more exceeds the server's SIZE limit of 1000"):
            cli.send_one(Connected(), message, None)  # type: ignore[arg-type]


def test_progress_ends_its_line_before_an_error() -> None:
    import io

    from transports.cli._progress import Progress

    out = io.StringIO()
    times = iter([0.0, 1.0, 2.0, 3.0])
    bar = Progress(3_000_000, out, clock=lambda: next(times))
    pieces = bar.wrap(iter([b"x" * 1_000_000] * 3))
    next(pieces)
    next(pieces)  # the first piece is counted and drawn
    bar.end()  # the send failed: the error goes on the next line
    bar.end()
    assert out.getvalue() == "\r  1.0 MB of 3.0 MB   1.0 MB/s   2 s left \n"
    silent = io.StringIO()
    Progress(10, silent).end()  # nothing drawn: nothing to end
    assert silent.getvalue() == ""


def test_a_ready_message_with_a_huge_header_section_is_one_line_and_status_65(
    inbox: tuple[MemoryHandler, int], tmp_path: Path
) -> None:
    """A header section over the limit is bad input: no traceback, nothing sent."""
    handler, port = inbox
    eml = tmp_path / "big.eml"
    pad = (b"X-Pad: " + b"a" * 70 + b"\r\n") * 16000
    eml.write_bytes(b"From: a@example.org\r\nTo: b@example.net\r\n" + pad + b"\r\nbody\r\n")
    done = run("send", "--tls", "none", "--host", f"127.0.0.1:{port}", "--eml", str(eml))
    assert done.returncode == 65, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("header section over 1048576 octets"), done.stderr
    assert handler.messages == []
