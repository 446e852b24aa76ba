"""Ordinary mistakes: one line on stderr naming what to change, a sysexits status, no traceback."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from transports import cli

SMTPCORE = [sys.executable, "-m", "transports"]
TRANSPORTS = ["sync", "asyncio", "trio", "anyio"]


def run(
    *args: str, env: dict[str, str] | None = None, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    """The command as a subprocess, stdin not a terminal; ``prelude`` runs first."""
    command = [*SMTPCORE, *args]
    if prelude:
        code = f"{prelude}\nimport sys\nfrom transports.cli import main\nsys.exit(main())"
        command = [sys.executable, "-c", code, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str], status: int) -> str:
    """The single stderr line of a failure with ``status``."""
    assert done.returncode == status, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("smtpcore"), lines
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_serve_on_a_port_in_use(transport: str, busy_port: int, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    done = run("serve", "--port", str(busy_port), "--maildir", str(maildir),
               "--transport", transport)  # fmt: skip
    line = one_line(done, 69)
    assert line == (
        f"smtpcore: --port {busy_port}: already in use on 127.0.0.1; choose another --port "
        "(--port 0 picks a free one)"
    )
    assert not maildir.exists()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_serve_losing_the_port_after_the_check(
    transport: str, busy_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port is taken between the check and the server's bind: still one line, no Maildir."""
    monkeypatch.setattr(cli, "_check_listen", lambda host, port: None)
    maildir = tmp_path / "Maildir"
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(
        ["serve", "--port", str(busy_port), "--maildir", str(maildir), "--transport", transport],
        out=out, err=err,
    )  # fmt: skip
    assert status == 69, err.getvalue()
    assert err.getvalue().splitlines()[-1].startswith(f"smtpcore: --port {busy_port}: already in")
    assert "Traceback" not in err.getvalue()
    assert not maildir.exists()


@pytest.mark.parametrize("transport", ["trio", "anyio"])
def test_serve_without_its_framework_names_the_extra(transport: str, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    done = run("serve", "--port", "0", "--maildir", str(maildir), "--transport", transport,
               prelude=f"import sys; sys.modules[{transport!r}] = None")  # fmt: skip
    assert one_line(done, 69) == (
        f"smtpcore: --transport {transport} needs {transport}, which is not installed: "
        f"pip install 'smtpcore[{transport}]'"
    )
    assert not maildir.exists()


def test_a_missing_framework_found_late_still_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def needs_trio(*args: object) -> int:
        raise ModuleNotFoundError("No module named 'trio'", name="trio")

    monkeypatch.setattr(cli, "cmd_demo", needs_trio)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["demo"], out=out, err=err) == 69
    assert err.getvalue() == "smtpcore: trio is not installed: pip install 'smtpcore[trio]'\n"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
        folder / "server.pem"
    )
    return folder / "server.pem"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["--tls-cert", "{tmp}/missing.pem"], "--tls-cert {tmp}/missing.pem: no such file"),
        (["--tls-cert", "{tmp}"], "--tls-cert {tmp}: is a directory; give a file"),
        (["--tls-cert", "{tmp}/note.txt"],
         "--tls-cert {tmp}/note.txt: not a PEM certificate chain and its private key"),
        (["--tls-cert", "{cert}", "--tls-key", "{tmp}/missing.key"],
         "--tls-key {tmp}/missing.key: no such file"),
        (["--tls-key", "{cert}"], "--tls-key needs --tls-cert"),
        (["--users", "{tmp}/users.txt"], "--users {tmp}/users.txt: no such file"),
    ],
)  # fmt: skip
def test_serve_names_the_file_it_cannot_use(
    transport: str, files: list[str], expected: str, tmp_path: Path, certificate: Path
) -> None:
    (tmp_path / "note.txt").write_text("not a certificate\n")
    maildir = tmp_path / "Maildir"
    given = [item.format(tmp=tmp_path, cert=certificate) for item in files]
    done = run("serve", "--port", "0", "--maildir", str(maildir), "--transport", transport, *given)
    status = 64 if "needs --tls-cert" in expected else 66
    assert one_line(done, status).startswith("smtpcore: " + expected.format(tmp=tmp_path))
    assert not maildir.exists()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_serve_on_a_name_that_is_not_here(transport: str, tmp_path: Path) -> None:
    done = run("serve", "--host", "no-such-host.invalid", "--port", "0",
               "--maildir", str(tmp_path / "Maildir"), "--transport", transport)  # fmt: skip
    assert one_line(done, 64).startswith(
        "smtpcore: --host no-such-host.invalid: not an address of this machine"
    )
    assert not (tmp_path / "Maildir").exists()


SEND = ["send", "--tls", "none", "--from", "a@example.org", "--to", "b@example.net"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1:abc", "--host 127.0.0.1:abc: the port must be a number from 1 to 65535"),
        ("127.0.0.1:70000", "--host 127.0.0.1:70000: the port must be a number from 1 to 65535"),
        ("[::1", "--host [::1: write an IPv6 address as [ADDRESS] or [ADDRESS]:PORT"),
        (":25", "--host :25: the host name is missing"),
    ],
)
def test_send_with_a_bad_host(host: str, expected: str) -> None:
    assert one_line(run(*SEND, "--host", host), 64) == "smtpcore: " + expected


def test_send_with_a_directory_as_body(tmp_path: Path) -> None:
    done = run(*SEND, "--host", "127.0.0.1:1", "--body", str(tmp_path))
    assert one_line(done, 66) == (
        f"smtpcore: --body {tmp_path}: is a directory; give a file (or - for stdin)"
    )


@pytest.mark.parametrize("option", ["--attach", "--eml"])
def test_send_with_a_missing_input_file(option: str, tmp_path: Path) -> None:
    done = run(*SEND, "--host", "127.0.0.1:1", option, str(tmp_path / "gone.pdf"))
    assert one_line(done, 66) == f"smtpcore: {option} {tmp_path}/gone.pdf: no such file"


@pytest.mark.parametrize("command", ["send", "probe"])
def test_cafile_problems_name_the_file(command: str, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("not a certificate\n")
    for cafile, expected in [
        (tmp_path / "missing.pem", "no such file"),
        (tmp_path / "note.txt", "no PEM certificate in it"),
    ]:
        if command == "send":
            done = run(*SEND, "--host", "127.0.0.1:1", "--cafile", str(cafile))
        else:
            done = run("probe", "127.0.0.1:1", "--cafile", str(cafile))
        assert one_line(done, 66).startswith(f"smtpcore: --cafile {cafile}: {expected}")


def test_password_env_not_set_is_a_usage_error() -> None:
    done = run(*SEND, "--host", "127.0.0.1:1", "--user", "u", "--password-env", "NOT_SET_HERE")
    assert one_line(done, 64) == "smtpcore: --password-env NOT_SET_HERE: that variable is not set"


def test_user_without_a_terminal_is_a_usage_error() -> None:
    done = run(*SEND, "--host", "127.0.0.1:1", "--user", "u")
    assert one_line(done, 64) == (
        "smtpcore: --user needs --password-env VAR: there is no terminal to ask on"
    )


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    """``smtpcore demo | head``: the pipe closes; no traceback, the status of SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [*SMTPCORE, "demo"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


def test_a_reader_that_stops_midway_is_not_a_lost_connection() -> None:
    """``smtpcore demo | head -3``: the trace's write fails inside a client's I/O."""
    demo = subprocess.Popen([*SMTPCORE, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert demo.stdout is not None and demo.stderr is not None
    for _ in range(3):
        demo.stdout.readline()
    demo.stdout.close()
    try:
        status = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    stderr = demo.stderr.read().decode()
    demo.stderr.close()
    assert stderr == ""  # not "ConnectionLost: ... Broken pipe"
    assert status in (141, 0)  # 0 only if the demo had written everything already


def test_serve_with_a_malformed_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("alice:secret\nbob-without-a-password\n")
    done = run("serve", "--port", "0", "--maildir", str(tmp_path / "Maildir"),
               "--users", str(users))  # fmt: skip
    assert one_line(done, 64) == f"smtpcore: {users}:2: expected user:password"
    assert not (tmp_path / "Maildir").exists()


@pytest.mark.parametrize("ready", ["--eml", "--maildir", "--mbox"])
def test_building_options_are_refused_with_ready_messages(ready: str, tmp_path: Path) -> None:
    done = run(*SEND, "--host", "127.0.0.1:1", ready, str(tmp_path), "--attach", "x.pdf")
    assert one_line(done, 64) == (
        f"smtpcore: --attach builds a message: it cannot be used with {ready}, "
        "which sends ready ones"
    )


def test_serve_on_uvloop_without_uvloop_names_the_extra(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    done = run("serve", "--port", "0", "--maildir", str(maildir), "--loop", "uvloop",
               prelude="import sys; sys.modules['uvloop'] = None")  # fmt: skip
    assert one_line(done, 69) == (
        "smtpcore: --loop uvloop needs uvloop, which is not installed: "
        "pip install 'smtpcore[uvloop]'"
    )
    assert not maildir.exists()


@pytest.mark.parametrize("transport", ["sync", "trio", "anyio"])
def test_serve_uvloop_is_for_asyncio_only(transport: str, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    done = run("serve", "--port", "0", "--maildir", str(maildir), "--transport", transport,
               "--loop", "uvloop")  # fmt: skip
    assert one_line(done, 64) == (
        f"smtpcore: --loop uvloop is for --transport asyncio, not {transport}"
    )
    assert not maildir.exists()
