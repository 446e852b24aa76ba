"""The server core and session alone: µs per message with no sockets and no event loop.

    python benchmarks/inprocess_server.py [--messages N] [--profile]

Drives ``ServerOptions.session`` the way a transport does, feeding it what
smtp-source sends (one command per read, no pipelining: MAIL, RCPT, DATA,
the content, the dot) and answering every effect at once. What is left is
the cost of the core (command parser, unstuffer, replies) and of the session
procedure (hooks, Received header, envelope), the part no transport can
make cheaper. The handler is the benchmark's discarding one.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import pstats
import time

from _common import HELO, RECIPIENT, SENDER, message
from smtpcore.session import _server as server_session
from smtpcore.session._effects import Close, Write
from smtpcore.session._server import CallHook, NewId, Now, Peer, Receive, ServerOptions

MOMENT = datetime.datetime(2026, 11, 29, 9, 0, tzinfo=datetime.timezone.utc)


class Discard:
    """Takes every message and keeps nothing of it (as benchmarks/server_worker.py)."""

    def on_data_chunk(self, data: bytes) -> None:
        del data

    def on_message(self, envelope: object) -> None:
        del envelope


def reads(count: int) -> list[bytes]:
    """What one smtp-source session sends, one element per read."""
    content = message()
    one = [
        f"MAIL FROM:<{SENDER}>\r\n".encode(),
        f"RCPT TO:<{RECIPIENT}>\r\n".encode(),
        b"DATA\r\n",
        content + b".\r\n",
    ]
    return [f"HELO {HELO}\r\n".encode(), *one * count, b"QUIT\r\n"]


def run(options: ServerOptions, handler: Discard, count: int) -> int:
    """Serve one session of ``count`` messages in memory; the messages accepted."""
    pending = iter(reads(count))
    procedure = options.session(Peer("127.0.0.1", 40000), "SESSION1")
    clock = getattr(server_session, "Clock", None)
    answer: object = None
    while True:
        try:
            effect = procedure.send(answer)
        except StopIteration as done:
            accepted: int = done.value
            return accepted
        answer = None
        kind = type(effect)
        if kind is Write or kind is Close:
            continue
        if kind is Receive:
            answer = next(pending, b"")
        elif kind is CallHook:
            assert isinstance(effect, CallHook)
            answer = getattr(handler, effect.name)(*effect.args)
        elif kind is Now:
            answer = MOMENT
        elif kind is NewId:
            answer = "0123456789ABCDEF"
        elif clock is not None and kind is clock:
            answer = time.monotonic()
        else:
            raise TypeError(f"unexpected effect {effect!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    from smtpcore import ServerConfig

    handler = Discard()
    config = ServerConfig(size=1 << 30, smtputf8=True, chunking=True)
    options = ServerOptions.create(handler, config=config)
    run(options, handler, 100)  # warm up
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(options, handler, args.messages)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(60)
        return
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        accepted = run(options, handler, args.messages)
        best = min(best, time.process_time() - started)
        assert accepted == args.messages, accepted
    print(f"server core + session: {best / args.messages * 1e6:.1f} µs/message")


if __name__ == "__main__":
    main()
