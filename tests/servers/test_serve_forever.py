"""``serve_forever``: a server, or N forked workers on one port, run until a stop signal.

A real process calls it as a library user would: the connections reach
every worker (the Maildir file names carry the pid of the worker that
stored each message), one SIGTERM stops them all, and what it returns says
how it ended.
"""

from __future__ import annotations

import mailbox
import os
import re
import signal
import smtplib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from smtpcore import InvalidArgument
from smtpcore.session import ServerSettings
from transports import serving

SCRIPT = """
import sys
from transports.mailboxes import MaildirHandler
from transports.serving import serve_forever

stopped = serve_forever(
    MaildirHandler(sys.argv[1]), "127.0.0.1", 0, transport=sys.argv[2],
    workers=int(sys.argv[3]), grace=1.0, hostname="mx.test",
    ready=lambda port: print("port", port, flush=True),
)
print("stopped", stopped.signal, stopped.dropped, stopped.unknown, flush=True)
"""


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@dataclass
class Run:
    """One ``serve_forever`` process, stopped by a signal: what it printed, and its workers."""

    pid: int
    workers: set[int]
    out: str
    err: str
    status: int | None


def _run(tmp_path: Path, transport: str, workers: int, messages: int, stop: int) -> Run:
    """Start the script, send ``messages``, send ``stop``; kill what is left in any case."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "Maildir"), transport, str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    children: set[int] = set()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("port "), line
        children = _children(process.pid)
        for number in range(messages):
            with smtplib.SMTP("127.0.0.1", int(line.split()[1]), timeout=20) as client:
                content = b"Subject: %d\r\n\r\nbody\r\n" % number
                client.sendmail("a@x.example", ["b@y.example"], content)
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            for pid in _children(process.pid):
                os.kill(pid, signal.SIGKILL)
            process.kill()
            out, err = process.communicate()
    return Run(process.pid, children, out, err, process.returncode)


def _stored_by(tmp_path: Path) -> list[int]:
    box = mailbox.Maildir(tmp_path / "Maildir")
    return [int(re.search(r"P(\d+)Q", key)[1]) for key in box.iterkeys()]  # type: ignore[index]


@pytest.mark.skipif(not serving.REUSE_PORT_BALANCES, reason="Linux only")
@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio", "anyio"])
def test_workers_share_the_port_and_one_signal_stops_them_all(
    tmp_path: Path, transport: str
) -> None:
    # Linux picks a listener by a hash of each connection's addresses: with
    # 20 connections, both workers get some (all on one: odds 2 in a million).
    run = _run(tmp_path, transport, 2, 20, signal.SIGTERM)
    assert run.status == 0, run.err
    assert run.out == f"stopped {int(signal.SIGTERM)} 0 ()\n"
    assert len(run.workers) == 2
    stored = _stored_by(tmp_path)
    assert len(stored) == 20 and set(stored) == run.workers
    assert not [pid for pid in run.workers if Path(f"/proc/{pid}").exists()]  # all reaped


def test_one_worker_is_the_server_itself(tmp_path: Path) -> None:
    run = _run(tmp_path, "asyncio", 1, 1, signal.SIGINT)
    assert run.out == f"stopped {int(signal.SIGINT)} 0 ()\n", run.err
    assert not run.workers  # no fork
    assert _stored_by(tmp_path) == [run.pid]


def test_a_worker_count_that_cannot_be_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgument, match="workers must be at least 1, not 0"):
        serving.serve_forever(object(), workers=0)
    monkeypatch.setattr(serving._workers, "REUSE_PORT_BALANCES", False)
    with pytest.raises(InvalidArgument, match="only Linux does"):
        serving.serve_forever(object(), workers=2)
    with pytest.raises(InvalidArgument, match="transport must be"):
        serving.serve_forever(object(), transport="gevent", port=0)  # type: ignore[arg-type]


def test_each_worker_gets_its_share_of_the_bounds_of_the_whole_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: list[dict[str, object]] = []

    def run(*args: object, options: dict[str, object], **keywords: object) -> tuple[int, int]:
        given.append(options)
        return signal.SIGTERM, 0

    def run_workers(
        workers: int, port: int, ready: object, serve: Callable[[int, object], object]
    ) -> tuple[int, int, list[str]]:
        serve(port, ready)
        return signal.SIGTERM, 2, ["worker 7 was ended by SIGKILL, before saying what it dropped"]

    monkeypatch.setattr(serving._run, "run", run)
    monkeypatch.setattr(serving._workers, "run_workers", run_workers)
    stopped = serving.serve_forever(object(), workers=3, max_connections=10,
                                    max_connections_per_client=None)  # fmt: skip
    assert given == [{
        "max_connections": 4, "max_connections_per_client": None, "reuse_port": True,
        "auth_failures_per_address": serving.worker_share(
            ServerSettings().auth_failures_per_address or 0, 3),
    }]  # fmt: skip
    assert stopped == serving.Stopped(
        signal.SIGTERM, 2, ("worker 7 was ended by SIGKILL, before saying what it dropped",)
    )
