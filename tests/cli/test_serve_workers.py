"""``smtpcore serve --workers N``: N processes on one port, stopped together, reported truly.

A real ``smtpcore serve --workers 2`` process: connections spread over both
workers (the Maildir file names carry the pid of the worker that stored
them), one signal stops all of them, and the parent adds up what they
dropped, or says that it does not know.
"""

from __future__ import annotations

import io
import mailbox
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smtpcore.session._throttle import AUTH_FAILURES_PER_ADDRESS
from tests.servers.conftest import Raw
from transports import cli, serving

SMTPCORE = [sys.executable, "-m", "transports"]
BYE = b"421 mx.test 4.3.2 Service shutting down, closing connection\r\n"
Start = Callable[..., tuple["subprocess.Popen[str]", int, set[int]]]
pytestmark = pytest.mark.skipif(not serving.REUSE_PORT_BALANCES, reason="Linux only")


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[subprocess.Popen[str]] = []

    def run(*options: str) -> tuple[subprocess.Popen[str], int, set[int]]:
        server = subprocess.Popen(
            [*SMTPCORE, "serve", "--port", "0", "--maildir", str(tmp_path / "Maildir"),
             "--hostname", "mx.test", "--workers", "2", *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(server)
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert "2 worker processes" in banner, banner
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        workers = _children(server.pid)
        assert len(workers) == 2
        return server, port, workers

    yield run
    for server in started:
        if server.poll() is None:
            for pid in _children(server.pid):
                os.kill(pid, signal.SIGKILL)
            server.kill()
            server.communicate()


def _send(port: int, number: int) -> None:
    client = Raw(port, timeout=20)
    try:
        assert client.reply() == b"220 mx.test ESMTP\r\n"
        client.send(
            b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
            b"Subject: %d\r\n\r\nbody %d\r\n.\r\nQUIT\r\n" % (number, number)
        )
        replies = [client.reply()[:4] for _ in range(6)]
        assert replies == [b"250-", b"250 ", b"250 ", b"354 ", b"250 ", b"221 "]
    finally:
        client.close()


@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio", "anyio"])
def test_workers_share_the_port_and_stop_together(
    start: Start, transport: str, tmp_path: Path
) -> None:
    server, port, workers = start("--transport", transport)
    # Linux picks a listener by a hash of each connection's addresses: with
    # 20 connections, both workers get some (all on one: odds 2 in a million).
    for number in range(20):
        _send(port, number)
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "smtpcore: SIGTERM: stopped; every message in flight was finished" in err
    assert out.endswith("smtpcore: stopped\n")
    assert not [pid for pid in workers if _alive(pid)]  # reaped: no orphan, no zombie
    box = mailbox.Maildir(tmp_path / "Maildir")
    stored = {key: box.get_bytes(key) for key in box.iterkeys()}
    bodies = sorted(int(m.rsplit(b"body ", 1)[1]) for m in stored.values())
    assert bodies == list(range(20))
    pids = {int(re.search(r"P(\d+)Q", key)[1]) for key in stored}  # type: ignore[index]
    assert pids == workers
    # Each log line names its worker; both logged sessions.
    logged = {int(m) for m in re.findall(r"\[(\d+)\] session ", err)}
    assert logged == workers


def test_what_the_workers_dropped_is_added_up(start: Start, tmp_path: Path) -> None:
    server, port, workers = start("--grace", "1")
    stalled = [Raw(port, timeout=20) for _ in range(6)]
    try:
        for client in stalled:
            assert client.reply() == b"220 mx.test ESMTP\r\n"
            client.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
            assert [client.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
            client.send(b"Subject: half\r\n\r\nthe first half\r\n")
        server.send_signal(signal.SIGINT)
        for client in stalled:
            assert client.reply() == BYE
        out, err = server.communicate(timeout=30)
    finally:
        for client in stalled:
            client.close()
    assert server.returncode == 75, err
    assert out.endswith("smtpcore: stopped\n")
    assert (
        "smtpcore: SIGINT: 6 session(s) cut after the 1 s grace with a message in flight;"
        " their clients got no 250 and keep the messages" in err
    ), err
    cut = re.findall(r"\[(\d+)\] session .* dropped=message-in-flight", err)
    assert len(cut) == 6, err
    assert not [pid for pid in workers if _alive(pid)]
    assert not list(mailbox.Maildir(tmp_path / "Maildir").iterkeys())


def test_a_killed_worker_is_reported_not_guessed(start: Start) -> None:
    server, _, workers = start()
    killed, other = sorted(workers)
    os.kill(killed, signal.SIGKILL)
    # The parent sees it, stops the other worker gracefully and says what it knows.
    out, err = server.communicate(timeout=30)
    assert server.returncode == 70, err
    assert out.endswith("smtpcore: stopped\n")
    assert (
        f"smtpcore: worker {killed} was ended by SIGKILL, before saying what it dropped" in err
    ), err
    assert (
        "smtpcore: SIGTERM: the other workers cut 0 session(s) with a message in flight; "
        "what the workers above had in flight is not known" in err
    ), err
    assert "every message in flight was finished" not in err
    assert not _alive(other)


def test_workers_must_be_one_or_more(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["serve", "--port", "0", "--maildir", str(tmp_path / "M"), "--workers",
                       "0"], out=out, err=err)  # fmt: skip
    assert status == 64
    assert err.getvalue() == "smtpcore serve: --workers must be at least 1, not 0\n"


def test_workers_elsewhere_than_linux_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "REUSE_PORT_BALANCES", False)
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["serve", "--port", "0", "--maildir", str(tmp_path / "M"), "--workers",
                       "2"], out=out, err=err)  # fmt: skip
    assert status == 64
    assert err.getvalue() == (
        "smtpcore serve: --workers 2 needs SO_REUSEPORT spreading connections among "
        f"processes, which only Linux does (this is {sys.platform})\n"
    )


def test_a_share_is_rounded_up() -> None:
    assert [serving.worker_share(bound, 2) for bound in (1, 2, 3, 500)] == [1, 1, 2, 250]
    assert serving.worker_share(50, 3) == 17


def test_the_workers_share_the_bounds_of_the_whole_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's connections land on any worker: each worker gets its part of every bound."""
    seen: list[dict[str, int]] = []

    def run(*args: object, options: dict[str, object], **keywords: object) -> object:
        assert options.pop("reuse_port")
        seen.append({name: int(str(options[name])) for name in serving.SHARED_BOUNDS})
        return signal.SIGTERM, 0

    def run_workers(workers: int, port: int, ready: object, serve: Callable[..., object]) -> object:
        assert workers == 2
        serve(port, ready)
        return signal.SIGTERM, 0, []

    monkeypatch.setattr(serving._run, "run", run)
    monkeypatch.setattr(serving._workers, "run_workers", run_workers)
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["serve", "--port", "0", "--maildir", str(tmp_path / "M"), "--workers", "2",
                       "--max-connections", "9", "--max-connections-per-client", "3"],
                      out=out, err=err)  # fmt: skip
    assert status == 0, err.getvalue()
    budget = serving.worker_share(AUTH_FAILURES_PER_ADDRESS, 2)
    assert budget < AUTH_FAILURES_PER_ADDRESS
    assert seen == [
        {"max_connections": 5, "max_connections_per_client": 2, "auth_failures_per_address": budget}
    ]
