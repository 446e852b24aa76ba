"""Connection caps and an accept loop that survives running out of resources.

Every server decides admission through ``smtpcore.session._admission``:
beyond ``max_connections`` in total or ``max_connections_per_client`` from
one address, a connection is greeted ``421 4.7.0`` and closed. Out of file
descriptors (or, on the threaded server, threads) a server pauses and goes
on accepting: a client arriving after the flood is served.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smtpcore.session._admission import (
    SHUTTING_DOWN,
    TOO_MANY,
    TOO_MANY_FROM_CLIENT,
    Admission,
)

from .conftest import KIND_PARAMS, Memory, Raw, Starter

SRC = Path(__file__).resolve().parents[2] / "src"


# -- the core's count ----------------------------------------------------------------


def test_admission_counts_in_total_and_per_client() -> None:
    admission = Admission(total=3, per_client=2)
    assert admission.admit("192.0.2.1") is None
    assert admission.admit("192.0.2.1") is None
    assert admission.admit("192.0.2.1") == TOO_MANY_FROM_CLIENT
    assert admission.admit("192.0.2.2") is None
    assert admission.admit("192.0.2.3") == TOO_MANY
    admission.release("192.0.2.1")
    assert admission.from_client("192.0.2.1") == 1
    assert admission.admit("192.0.2.3") is None
    assert admission.admit("192.0.2.4", stopping=True) == SHUTTING_DOWN
    for client in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        admission.release(client)
    assert admission.active == 0
    assert admission.from_client("192.0.2.1") == 0


def test_admission_without_caps_and_bad_caps() -> None:
    admission = Admission(total=None, per_client=None)
    assert all(admission.admit("192.0.2.1") is None for _ in range(10_000))
    with pytest.raises(ValueError, match="max_connections_per_client"):
        Admission(total=None, per_client=0)
    with pytest.raises(ValueError, match="max_connections"):
        Admission(total=0, per_client=None)


def test_refusal_texts_carry_their_status_codes() -> None:
    assert TOO_MANY.startswith("4.7.0 ")
    assert TOO_MANY_FROM_CLIENT.startswith("4.7.0 ")
    assert SHUTTING_DOWN.startswith("4.3.2 ")


# -- the caps on every server ----------------------------------------------------------


def test_per_client_cap_is_421_and_close_then_frees_up(start: Starter) -> None:
    server = start(Memory(), max_connections_per_client=2, hostname="mx.test")
    first, second = Raw(server.port), Raw(server.port)
    try:
        assert first.reply().startswith(b"220 ")
        assert second.reply().startswith(b"220 ")
        third = Raw(server.port)
        assert third.reply() == (
            b"421 mx.test 4.7.0 Too many connections from your address, try again later\r\n"
        )
        assert third.is_closed()
        third.close()
        first.send(b"QUIT\r\n")
        assert first.reply().startswith(b"221 ")
        assert first.is_closed()
        # The slot is free again once the server saw the session end.
        for _ in range(50):
            fourth = Raw(server.port)
            greeting = fourth.reply()
            fourth.close()
            if greeting.startswith(b"220 "):
                break
            threading.Event().wait(0.05)
        assert greeting.startswith(b"220 ")
    finally:
        first.close()
        second.close()


def test_total_cap_is_421_4_7_0(start: Starter) -> None:
    server = start(Memory(), max_connections=1, hostname="mx.test")
    first = Raw(server.port)
    try:
        assert first.reply().startswith(b"220 ")
        second = Raw(server.port)
        assert second.reply() == b"421 mx.test 4.7.0 Too many connections, try again later\r\n"
        assert second.is_closed()
        second.close()
    finally:
        first.close()


def test_default_caps_are_finite() -> None:
    from smtpcore.session import ServerOptions

    options = ServerOptions.create(Memory())
    assert options.max_connections == 500
    assert options.max_connections_per_client == 50


# -- out of threads (injected) ----------------------------------------------------------


def test_sync_server_survives_threads_that_cannot_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from transports import _serve_sync

    failures = [3]

    class Failing(threading.Thread):
        def start(self) -> None:
            if failures[0] > 0:
                failures[0] -= 1
                raise RuntimeError("can't start new thread")
            super().start()

    caplog.set_level(logging.INFO, logger="smtpcore")
    with _serve_sync.SMTPServer(Memory(), hostname="mx.test") as server:
        monkeypatch.setattr(threading, "Thread", Failing)
        turned_away = [Raw(server.port) for _ in range(3)]
        for client in turned_away:
            assert client.is_closed()  # closed at once, not left hanging
            client.close()
        later = Raw(server.port)
        try:
            assert later.reply() == b"220 mx.test ESMTP\r\n"
        finally:
            later.close()
        monkeypatch.undo()
    pauses = [r for r in caplog.records if "pausing" in r.getMessage()]
    assert len(pauses) == 1, [r.getMessage() for r in caplog.records]
    assert "thread could not start" in pauses[0].getMessage()


# -- out of file descriptors (a real RLIMIT_NOFILE, in a subprocess) -------------------

_SERVER = r"""
import os, resource, sys, threading
from functools import partial

kind = sys.argv[1]

class Handler:
    def on_message(self, envelope):
        pass

options = dict(hostname="mx.test", max_connections=None, max_connections_per_client=None)

def squeeze(port):
    # Room for a handful of connections beyond what is open now.
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 6, hard))
    print(port, flush=True)

def until_stdin_closes():
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=until_stdin_closes, daemon=True).start()

if kind == "sync":
    from transports.sync import SMTPServer
    server = SMTPServer(Handler(), "127.0.0.1", 0, **options).start()
    squeeze(server.port)
    server.serve_forever()
elif kind in ("asyncio", "asyncio-uvloop"):
    import asyncio
    from transports.asyncio import run, start_server
    async def main():
        server = await start_server(Handler(), "127.0.0.1", 0, **options)
        squeeze(server.port)
        await asyncio.Event().wait()
    run(main(), loop=kind.removeprefix("asyncio-") if "-" in kind else "asyncio")
elif kind == "trio":
    import trio
    from transports.trio import serve
    async def main():
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve, Handler(), "127.0.0.1", 0, **options))
            squeeze(port)
    trio.run(main)
else:
    import anyio
    from transports.anyio import serve
    async def main():
        async with anyio.create_task_group() as group:
            port = await group.start(partial(serve, Handler(), "127.0.0.1", 0, **options))
            squeeze(port)
    anyio.run(main, backend=kind.removeprefix("anyio-"))
"""


def _served_soon(port: int) -> None:
    """Connect until the server greets (within 10 s)."""
    for _ in range(100):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            if sock.recv(100).startswith(b"220"):
                return
        time.sleep(0.1)
    raise AssertionError("never greeted")


@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_accept_goes_on_after_running_out_of_descriptors(kind: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    # A file, not a pipe: a full pipe nobody reads would block the server's
    # logging, and so the server, for reasons of the test's own.
    log = (tmp_path / "stderr").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, kind],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
    )  # fmt: skip
    flood: list[socket.socket] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        # Many more connections than the server has descriptors for.
        for _ in range(40):
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # The server's accept has hit EMFILE by the time a greeting-less
        # connection waits: at most a few of the flood were greeted.
        greeted = 0
        for sock in flood:
            sock.settimeout(0.2)
            try:
                greeted += sock.recv(100).startswith(b"220")
            except TimeoutError:
                pass
        assert greeted < len(flood)
        for sock in flood:
            sock.close()
        flood.clear()
        # The flood is gone: a later client is served.
        if kind == "asyncio-uvloop":
            # libuv closes at once what arrives while it is out of descriptors
            # (asyncio leaves it in the backlog for the next try): the server
            # frees the flood's descriptors as it reads their ends.
            _served_soon(port)
        later = Raw(port, timeout=20)
        try:
            assert later.reply() == b"220 mx.test ESMTP\r\n"
            later.send(b"QUIT\r\n")
            assert later.reply().startswith(b"221 ")
        finally:
            later.close()
    finally:
        for sock in flood:
            sock.close()
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.send_signal(signal.SIGKILL)
            server.wait(10)
        log.close()
        assert server.stdout is not None
        server.stdout.close()
    # Logged once per run of failures, not once per retry, and no traceback.
    lines = (tmp_path / "stderr").read_text().splitlines()
    pausing = [line for line in lines if "Too many open files; pausing and retrying" in line]
    again = [line for line in lines if "accepting connections on port" in line]
    if kind == "asyncio-uvloop":
        # libuv meets EMFILE itself: it accepts with a spare descriptor and
        # closes what it cannot keep, and no failure reaches the server.
        assert not pausing, lines
    else:
        assert 1 <= len(pausing) <= len(again) + 1, lines
    assert not [line for line in lines if "Traceback" in line], lines
