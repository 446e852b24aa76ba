"""A graceful shutdown keeps its deadline and says what it dropped, on every server.

Sessions waiting for a command get 421 at once; a message whose final dot
arrived is finished; a message still arriving when the grace runs out is
dropped with a 421 (its client got no 250 and keeps it), and the close
reports it.
"""

from __future__ import annotations

import threading

from .conftest import Memory, Raw, Starter

BYE = b"421 mx.test 4.3.2 Service shutting down, closing connection\r\n"


def _open_message(client: Raw) -> None:
    assert client.reply().startswith(b"220 ")
    client.send(b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
    assert [client.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]


def test_a_message_still_arriving_at_the_deadline_is_dropped_with_421(start: Starter) -> None:
    handler = Memory()
    server = start(handler, grace=0.5, hostname="mx.test")
    stalled, done = Raw(server.port, timeout=10), Raw(server.port, timeout=10)
    try:
        _open_message(stalled)
        _open_message(done)
        stalled.send(b"Subject: half\r\n\r\nnever ended\r\n")
        done.send(b"Subject: whole\r\n\r\nall of it\r\n.\r\n")  # the final dot, then the stop
        stopper = threading.Thread(target=server.close)
        stopper.start()
        assert done.reply().startswith(b"250 2.0.0 OK queued as ")
        assert done.reply() == BYE
        # The grace runs out: the stalled message is dropped, and said so.
        assert stalled.reply() == BYE
        assert stalled.is_closed()
        stopper.join(15)
        assert not stopper.is_alive()
    finally:
        stalled.close()
        done.close()
    assert [m.original_content for m in handler.messages] == [
        b"Subject: whole\r\n\r\nall of it\r\n"
    ]
    assert server.dropped == 1


def test_nothing_in_flight_reports_nothing_dropped(start: Starter) -> None:
    server = start(Memory(), grace=5.0, hostname="mx.test")
    idle = Raw(server.port)
    try:
        assert idle.reply().startswith(b"220 ")
        server.close()
        assert idle.reply() == BYE
    finally:
        idle.close()
    assert server.dropped == 0


class StuckStore:
    """``on_message`` blocks until released: a store that outlives the grace."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def on_message(self, envelope: object) -> None:
        self.started.set()
        self.release.wait(20)


def test_a_hook_outliving_the_grace_is_counted_and_never_answered_250(start: Starter) -> None:
    handler = StuckStore()
    server = start(handler, grace=0.5, hostname="mx.test")
    client = Raw(server.port, timeout=20)
    try:
        _open_message(client)
        client.send(b"Subject: stuck\r\n\r\nbody\r\n.\r\n")
        assert handler.started.wait(10)
        server.close()
        # Cut while storing: no 250 ever reaches the client (it keeps the
        # message), and the close counts the session as dropped.
        assert client.is_closed()
    finally:
        handler.release.set()
        client.close()
    assert server.dropped == 1
