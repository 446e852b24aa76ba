"""The client core and session alone: µs per message with no sockets and no event loop.

    python benchmarks/inprocess.py [--messages N] [--rounds R]
                                   [--mode core|many|many-distinct|sync|all]
                                   [--profile] [--top K] [--show-wire]

Sends 1 KB messages (one recipient, content in hand, as client_worker.py
does) to an in-memory peer that answers like Postfix's smtp-sink: the same
EHLO reply, the three pipelined replies to MAIL, RCPT and DATA in one read,
``250 2.0.0 Ok`` after the dot. Each write is answered at once with canned
bytes, so what is measured is CPU alone, in ``time.process_time``:

core   ``Envelope.build`` and the ``deliver`` procedure driven by a minimal
       effect loop: the core (connection, reply parser, dot-stuffer) plus
       the session layer, the part no transport can make cheaper.
many   ``deliver_many`` (what ``send_many`` drives) on the same loop, in
       batches as the transports cut them: each message's end of data goes
       out in one write with the next one's commands. Every message has
       the same sender and recipient, as in the throughput benchmarks.
many-distinct
       the same with a sender and a recipient of its own for every message:
       no MAIL or RCPT of a batch repeats, so none is built only once.
sync   ``transports.sync.SMTPClient.sendmail`` over a fake socket object:
       the above plus the blocking transport's effect loop and its socket
       calls, each answered at once (no system call is made).

Every figure is the best of ``--rounds`` rounds. ``--profile`` runs one
round under cProfile and prints the ``--top`` entries by own time.
``--show-wire`` prints what one message puts on the wire, to compare
before and after a change.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from _common import HELO, RECIPIENT, SENDER, message
from smtpcore import ClientConnection
from smtpcore.driver import batches
from smtpcore.session import (
    ClientOptions,
    Envelope,
    Procedure,
    Read,
    SendResult,
    Write,
    deliver,
    deliver_many,
    open_session,
)

#: What smtp-sink (Postfix 3.7) answers, captured from a real session.
GREETING = b"220 smtp-sink ESMTP\r\n"
EHLO_REPLY = (
    b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n"
    b"250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n"
)
GROUP_REPLY = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
DATA_REPLY = b"250 2.0.0 Ok\r\n"
QUIT_REPLY = b"221 Bye\r\n"


class SinkPeer:
    """An smtp-sink stand-in: each write queues the canned answer to it; reads take it.

    It tells writes apart by their first octets only: the benchmark's
    conversation is known, and a peer that parsed commands would add its own
    cost to the figure.
    """

    def __init__(self, trace: list[tuple[str, bytes]] | None = None) -> None:
        self.inbox: list[bytes] = [GREETING]
        self.trace = trace
        self.writes = 0
        self.reads = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.trace is not None:
            self.trace.append((">", bytes(data)))
        head = data[:4]
        if head == b"MAIL":
            self.inbox.append(GROUP_REPLY)
        elif head == b"EHLO":
            self.inbox.append(EHLO_REPLY)
        elif head == b"QUIT":
            self.inbox.append(QUIT_REPLY)
        elif data.endswith(b"\r\n.\r\n"):
            self.inbox.append(DATA_REPLY)
        elif b"\r\n.\r\nMAIL " in data:
            # send_many's pipelined write: one message's end of data, then
            # the next one's MAIL, RCPT and DATA
            self.inbox.append(DATA_REPLY + GROUP_REPLY)
        # else: a piece of content; nothing is due yet

    def read(self) -> bytes:
        self.reads += 1
        if not self.inbox:
            raise RuntimeError("the client read, but no reply is due")
        data = self.inbox.pop(0)
        if self.trace is not None:
            self.trace.append(("<", data))
        return data


class FakeSocket:
    """What transports.sync calls on a connected socket, answered by a ``SinkPeer``."""

    def __init__(self, peer: SinkPeer) -> None:
        self.peer = peer

    def settimeout(self, timeout: float | None) -> None:
        del timeout

    def setblocking(self, flag: bool) -> None:
        del flag

    def setsockopt(self, *args: object) -> None:
        del args

    def send(self, data: bytes, flags: int = 0) -> int:
        self.peer.write(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.peer.write(data)

    def recv(self, size: int) -> bytes:
        del size
        return self.peer.read()

    def shutdown(self, how: int) -> None:
        del how

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 40000)

    def close(self) -> None:
        pass


def _options() -> ClientOptions:
    return ClientOptions.build("127.0.0.1", 25, tls="none", local_hostname=HELO)


def _drive(procedure: Procedure[Any], peer: SinkPeer) -> Any:
    """The least an effect loop can be: Write and Read, answered at once."""
    answer: bytes | None = None
    while True:
        try:
            effect = procedure.send(answer)
        except StopIteration as done:
            return done.value
        kind = type(effect)
        if kind is Write:
            assert isinstance(effect, Write)
            peer.write(effect.data)
            answer = None
        elif kind is Read:
            answer = peer.read()
        else:
            raise TypeError(f"unexpected effect {effect!r}")


def run_core(count: int, trace: list[tuple[str, bytes]] | None = None) -> int:
    """``count`` messages through Envelope.build + deliver on one connection; accepted count."""
    peer = SinkPeer(trace)
    options = _options()
    conn = ClientConnection(limits=options.limits)
    _drive(open_session(conn, options, hello=HELO, nonce="unused"), peer)
    content = message()
    accepted = 0
    for _ in range(count):
        envelope = Envelope.build(SENDER, [RECIPIENT], content)
        result: SendResult = _drive(deliver(conn, options, envelope), peer)
        accepted += len(result.accepted)
    return accepted


def run_sync(count: int, trace: list[tuple[str, bytes]] | None = None) -> int:
    """``count`` messages through ``transports.sync.SMTPClient.sendmail``; accepted count."""
    import transports.sync as sync

    peer = SinkPeer(trace)
    real = socket.create_connection

    def connect(*args: object, **kwargs: object) -> Any:
        return FakeSocket(peer)

    setattr(socket, "create_connection", connect)  # noqa: B010 (what sync.py calls)
    try:
        client = sync.SMTPClient("127.0.0.1", 25, tls="none", local_hostname=HELO)
        client.connect()
    finally:
        setattr(socket, "create_connection", real)  # noqa: B010
    content = message()
    accepted = 0
    try:
        for _ in range(count):
            accepted += len(client.sendmail(SENDER, [RECIPIENT], content).accepted)
    finally:
        client.close()
    return accepted


def run_many(
    count: int, trace: list[tuple[str, bytes]] | None = None, *, distinct: bool = False
) -> int:
    """``count`` messages through ``deliver_many`` (send_many's procedure), in batches.

    ``distinct``: each message has a sender and a recipient of its own, so
    that no command of a batch repeats.
    """
    peer = SinkPeer(trace)
    options = _options()
    conn = ClientConnection(limits=options.limits)
    _drive(open_session(conn, options, hello=HELO, nonce="unused"), peer)
    content = message()
    accepted = 0
    if distinct:
        items: Iterator[tuple[str, list[str], bytes]] = (
            (f"n{n}.{SENDER}", [f"n{n}.{RECIPIENT}"], content) for n in range(count)
        )
    else:
        items = ((SENDER, [RECIPIENT], content) for _ in range(count))
    for batch in batches(items):
        outcomes = _drive(deliver_many(conn, options, batch), peer)
        accepted += sum(outcome.accepted for outcome in outcomes)
    return accepted


def run_many_distinct(count: int, trace: list[tuple[str, bytes]] | None = None) -> int:
    """``run_many`` with a sender and a recipient of its own for every message."""
    return run_many(count, trace, distinct=True)


class Run(Protocol):
    """A mode: sends ``count`` messages, recording the wire in ``trace`` if given."""

    def __call__(self, count: int, trace: list[tuple[str, bytes]] | None = None) -> int: ...


MODES: dict[str, Run] = {
    "core": run_core,
    "many": run_many,
    "many-distinct": run_many_distinct,
    "sync": run_sync,
}


def measure(run: Callable[[int], int], count: int, rounds: int) -> float:
    """CPU µs per message, best of ``rounds``."""
    run(min(count, 200))  # warm up: caches, first-call costs
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        accepted = run(count)
        best = min(best, time.process_time() - started)
        if accepted != count:
            raise RuntimeError(f"{accepted} of {count} messages accepted")
    return best / count * 1e6


def profile(run: Callable[[int], int], count: int, top: int) -> None:
    run(min(count, 200))
    profiler = cProfile.Profile()
    profiler.enable()
    run(count)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)


def show_wire(mode: str) -> None:
    """What two messages put on the wire, both directions, in order."""
    trace: list[tuple[str, bytes]] = []
    MODES[mode](2, trace)
    for direction, data in trace:
        print(direction, repr(data))


def _iter_modes(mode: str) -> Iterator[str]:
    yield from (MODES if mode == "all" else (mode,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=(*MODES, "all"), default="all")
    parser.add_argument("--profile", action="store_true", help="run under cProfile")
    parser.add_argument("--top", type=int, default=25, help="profile entries to print")
    parser.add_argument("--show-wire", action="store_true", help="print one session's bytes")
    args = parser.parse_args()
    for mode in _iter_modes(args.mode):
        if args.show_wire:
            print(f"== {mode}")
            show_wire(mode)
        elif args.profile:
            print(f"== {mode}: cProfile, {args.messages} messages, top {args.top} by own time")
            profile(MODES[mode], args.messages, args.top)
        else:
            figure = measure(MODES[mode], args.messages, args.rounds)
            print(f"client {mode}: {figure:.1f} µs/message (best of {args.rounds})", flush=True)


if __name__ == "__main__":
    main()
