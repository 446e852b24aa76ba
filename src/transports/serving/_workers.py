"""``smtpcore serve --workers N``: N forked processes sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from typing import Final

from ._run import STOP_SIGNALS, listen_error

__all__ = ["EX_SOFTWARE", "REUSE_PORT_BALANCES", "run_workers", "worker_share"]

EX_SOFTWARE: Final = 70  # sysexits.h: a worker ended without saying what it dropped


def worker_share(bound: int, workers: int) -> int:
    """One worker's part of a bound on the whole server: ``bound / workers``, rounded up.

    Together the workers allow at most ``bound`` plus fewer than ``workers``.
    """
    return max(1, -(-bound // workers))


REUSE_PORT_BALANCES: Final = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Whether worker processes can share a port: Linux spreads the connections to a
port among the sockets sharing it with SO_REUSEPORT; elsewhere the option is
missing or one socket takes them all."""


def run_workers(
    workers: int,
    port: int,
    ready: Callable[[int], None],
    serve: Callable[[int, Callable[[int], None]], tuple[int, int]],
) -> tuple[int, int, list[str]]:
    """``serve`` in ``workers`` forked processes sharing ``port`` (SO_REUSEPORT).

    The first worker binds (and picks the port when 0 was asked for), then
    the others join it. A stop signal here is passed on to every worker, and
    each stops as one server would; so do the others when one ends by
    itself. Returns the signal (SIGTERM when a worker ended first), the
    sessions the workers cut with a message in flight, and a line for each
    worker that ended without saying (killed, crashed): what those had in
    flight is not known, and is not counted as nothing.
    """
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    running: list[_Worker] = []
    try:
        first = _Worker.fork(port, serve)
        running.append(first)
        port = first.ready()
        running += [_Worker.fork(port, serve) for _ in range(workers - 1)]
        for worker in running[1:]:
            worker.ready()
        ready(port)
        # A timeout: the signal handler runs between waits.
        while not received and not any(w.ended() for w in running):
            select.select([w.reader for w in running], [], [], 0.5)
        stop = received[0] if received else signal.SIGTERM
        for worker in running:
            worker.signal(stop)
        dropped, unknown = 0, []
        for worker in running:
            cut = worker.wait()
            if cut is None:
                unknown.append(f"worker {worker.pid} {worker.how}, before saying what it dropped")
            else:
                dropped += cut
        return stop, dropped, unknown
    except BaseException:
        for worker in running:
            worker.signal(signal.SIGKILL)
            worker.wait()
        raise
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


class _Worker:
    """A forked ``smtpcore serve`` worker and the pipe it reports through."""

    def __init__(self, pid: int, reader: int) -> None:
        self.pid = pid
        self.reader = reader
        self.said = b""
        self.status: int | None = None
        self.how = ""
        self.done: bytes | None = None

    @classmethod
    def fork(
        cls, port: int, serve: Callable[[int, Callable[[int], None]], tuple[int, int]]
    ) -> _Worker:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid:
            os.close(writer)
            return cls(pid, reader)
        # The worker: it never returns into the caller's code.
        os.close(reader)
        code = EX_SOFTWARE

        def listening(port: int) -> None:
            os.write(writer, b"ready %d\n" % port)

        try:
            signum, dropped = serve(port, listening)
            os.write(writer, b"done %d %d\n" % (signum, dropped))
            code = 0
        except BaseException as exc:
            cause = listen_error(exc)
            if cause is None:
                logging.getLogger("smtpcore.server").exception("worker %d failed", os.getpid())
            else:  # the parent says it as one server would
                reason = (cause.strerror or str(cause)).encode()
                os.write(writer, b"error %d %s\n" % (cause.errno or 0, reason))
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(code)

    def read_line(self) -> bytes | None:
        """The worker's next report line; None once it closed its end."""
        while b"\n" not in self.said:
            chunk = os.read(self.reader, 512)
            if not chunk:
                return None
            self.said += chunk
        line, _, self.said = self.said.partition(b"\n")
        return line

    def ready(self) -> int:
        """The port the worker listens on; OSError when it could not."""
        line = self.read_line()
        if line is not None and line.startswith(b"ready "):
            return int(line.split()[1])
        if line is not None and line.startswith(b"error "):
            _, number, text = line.decode(errors="replace").split(" ", 2)
            raise OSError(int(number), text)
        self.wait()
        raise RuntimeError(f"worker {self.pid} {self.how} before listening")

    def ended(self) -> bool:
        """True when the worker is gone (its pipe reads as closed)."""
        readable, _, _ = select.select([self.reader], [], [], 0)
        if not readable:
            return False
        more = os.read(self.reader, 512)
        self.said += more
        return not more

    def signal(self, signum: int) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self) -> int | None:
        """Reap the worker; the sessions it cut, or None when it did not say."""
        report = self.read_line() if self.status is None else None
        while report is not None and not report.startswith(b"done "):
            report = self.read_line()
        if self.status is None:
            os.close(self.reader)
            _, status = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)
            if self.status < 0:
                self.how = f"was ended by {signal.Signals(-self.status).name}"
            else:
                self.how = f"exited with status {self.status}"
            self.done = report
        done = self.done
        if done is None or self.status != 0:
            return None
        return int(done.split()[2])
