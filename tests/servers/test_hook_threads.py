"""Synchronous hooks on the async servers run in worker threads, async hooks on the loop.

One slow synchronous hook (a Maildir fsync on a busy disk, a virus scan)
must not freeze every other session of an asyncio, trio or anyio server.
"""

from __future__ import annotations

import threading
import time

import pytest

from smtpcore.session._server import ServerEnvelope

from .conftest import Raw, Starter

CONTENT = b"Subject: hi\r\n\r\nbody\r\n"


class SlowForOne:
    """``on_message`` sleeps (up to 10 s, until released) for mail from slow@x.example."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.slow_done = threading.Event()
        self.senders: list[str] = []
        self.threads: dict[str, threading.Thread] = {}

    def on_message(self, envelope: ServerEnvelope) -> None:
        self.threads[envelope.sender] = threading.current_thread()
        if envelope.sender == "slow@x.example":
            self.started.set()
            self.release.wait(10.0)
            self.slow_done.set()
        self.senders.append(envelope.sender)


def _transaction(client: Raw, sender: str) -> bytes:
    """EHLO, MAIL, RCPT, DATA and content; the reply to the final dot is left to read."""
    assert client.reply().startswith(b"220 ")
    client.send(b"EHLO c.example\r\n")
    assert client.reply().startswith(b"250")
    client.send(f"MAIL FROM:<{sender}>\r\n".encode())
    assert client.reply().startswith(b"250 ")
    client.send(b"RCPT TO:<b@y.example>\r\n")
    assert client.reply().startswith(b"250 ")
    client.send(b"DATA\r\n")
    assert client.reply().startswith(b"354 ")
    client.send(CONTENT + b".\r\n")
    return b""


def test_a_slow_sync_hook_does_not_hold_up_other_sessions(start: Starter) -> None:
    handler = SlowForOne()
    server = start(handler, hostname="mx.test")
    slow = Raw(server.port, timeout=20)
    fast = Raw(server.port, timeout=20)
    try:
        _transaction(slow, "slow@x.example")
        assert handler.started.wait(10)
        began = time.monotonic()
        _transaction(fast, "fast@x.example")
        assert fast.reply().startswith(b"250 2.0.0 OK queued as ")
        fast.send(b"QUIT\r\n")
        assert fast.reply().startswith(b"221 ")
        took = time.monotonic() - began
        # A whole transaction of another session ended while the slow hook
        # was still sleeping: the order, not a speed, is what is asserted.
        assert not handler.slow_done.is_set(), f"the fast session waited ({took:.3f} s)"
        assert handler.senders == ["fast@x.example"]
        handler.release.set()
        assert slow.reply().startswith(b"250 2.0.0 OK queued as ")
        assert handler.senders == ["fast@x.example", "slow@x.example"]
    finally:
        handler.release.set()
        slow.close()
        fast.close()


class AsyncAndSync:
    """An async ``on_rcpt`` and a sync ``on_message``: where does each run?"""

    def __init__(self) -> None:
        self.threads: dict[str, threading.Thread] = {}

    async def on_rcpt(self, recipient: str, params: object) -> None:
        self.threads["on_rcpt"] = threading.current_thread()

    def on_message(self, envelope: ServerEnvelope) -> None:
        self.threads["on_message"] = threading.current_thread()


@pytest.mark.parametrize("hook_threads", [4, 0])
def test_where_hooks_run(start: Starter, kind: str, hook_threads: int) -> None:
    if kind == "sync":
        pytest.skip("the threaded server runs every hook in the session's thread")
    handler = AsyncAndSync()
    server = start(handler, hook_threads=hook_threads)
    client = Raw(server.port)
    try:
        _transaction(client, "a@x.example")
        assert client.reply().startswith(b"250 ")
    finally:
        client.close()
    loop_thread = handler.threads["on_rcpt"]
    assert loop_thread is not threading.main_thread()  # the servers' portal thread
    if hook_threads:
        assert handler.threads["on_message"] is not loop_thread
    else:
        assert handler.threads["on_message"] is loop_thread


def test_negative_hook_threads_is_refused() -> None:
    from transports._serve_asyncio import SMTPServer

    with pytest.raises(ValueError, match="hook_threads"):
        SMTPServer(AsyncAndSync(), hook_threads=-1)


class DriverFrames:
    """Notes, in each hook, which server driver's code is on the stack and in which thread."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[threading.Thread, set[str]]] = {}

    def _note(self, name: str) -> None:
        import sys

        frame = sys._getframe(1)
        modules = set()
        while frame is not None:
            if frame.f_code.co_name == "drive":
                modules.add(str(frame.f_globals.get("__name__")))
            frame = frame.f_back  # type: ignore[assignment]
        self.seen[name] = (threading.current_thread(), modules)

    async def on_rcpt(self, recipient: str, params: object) -> None:
        self._note("on_rcpt")

    def on_message(self, envelope: ServerEnvelope) -> None:
        self._note("on_message")


def test_the_threaded_server_runs_the_one_driver_in_the_session_thread() -> None:
    # Not a copy of it: the same code as the async servers, every hook (an
    # async one in a fresh event loop) in the session's own thread.
    from transports.sync import SMTPServer

    handler = DriverFrames()
    with SMTPServer(handler, "127.0.0.1", 0) as server:
        client = Raw(server.port)
        try:
            _transaction(client, "a@x.example")
            assert client.reply().startswith(b"250 ")
        finally:
            client.close()
    rcpt_thread, rcpt_drivers = handler.seen["on_rcpt"]
    message_thread, message_drivers = handler.seen["on_message"]
    assert rcpt_drivers == message_drivers == {"transports._driver"}
    assert rcpt_thread is message_thread
    assert rcpt_thread is not threading.main_thread()
