"""``smtpcore serve``: receive mail into a Maildir or an mbox file until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import select
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, TextIO

from smtpcore import ServerConfig
from smtpcore.session import Handler, ServerEnvelope, ServerOptions, SessionContext
from smtpcore.session._throttle import AUTH_FAILURES_PER_ADDRESS

from .mailboxes import MaildirHandler, MboxHandler

__all__ = ["UsersHandler", "load_users", "serve_command", "worker_share"]


def load_users(path: str) -> dict[str, str]:
    """``user:password`` lines; blank lines and ``#`` comments are skipped."""
    users: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user:
            raise SystemExit(f"smtpcore: {path}:{number}: expected user:password")
        users[user] = password
    return users


class UsersHandler(Handler):
    """Stores through ``store``; AUTH checks against a users table (constant time)."""

    def __init__(self, store: MaildirHandler | MboxHandler, users: dict[str, str]) -> None:
        self.store = store
        self.users = users

    def lookup_secret(self, session: SessionContext, mechanism: str, username: str) -> str | None:
        """The password of ``username``: lets the server offer SCRAM and CRAM-MD5 too."""
        return self.users.get(username)

    def authenticate(self, session: SessionContext, username: str, password: str) -> bool:
        """PLAIN and LOGIN: compare in constant time, whether or not the user exists."""
        expected = self.users.get(username, "\x00unknown user\x00")
        same = hmac.compare_digest(expected.encode(), password.encode())
        return same and username in self.users

    def on_message(self, session: SessionContext, envelope: ServerEnvelope) -> None:
        """Store the message; an exception makes the server answer 451."""
        self.store.on_message(envelope)


EX_USAGE: Final = 64  # sysexits.h: the command was used incorrectly
EX_SOFTWARE: Final = 70  # sysexits.h: a worker ended without saying what it dropped
EX_TEMPFAIL: Final = 75  # sysexits.h: messages in flight were dropped at shutdown

#: The signals that stop ``smtpcore serve`` gracefully.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def serve_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``smtpcore serve`` until SIGINT or SIGTERM, then stop gracefully.

    Returns 0 when every message in flight was finished, ``EX_TEMPFAIL``
    when the grace ran out and sessions with a message in flight were cut
    (their clients got no 250 and keep the messages), ``EX_USAGE`` for
    ``--users`` without ``--tls-cert``.
    """
    if args.users and not args.tls_cert:
        # AUTH is offered only over TLS: the users file would do nothing.
        print("smtpcore serve: --users needs --tls-cert (AUTH is offered only after STARTTLS)",
              file=err)  # fmt: skip
        return EX_USAGE
    caps = {"max_connections": args.max_connections,
            "max_connections_per_client": args.max_connections_per_client}  # fmt: skip
    for name, value in caps.items():
        if value < 1:
            option = "--" + name.replace("_", "-")
            print(f"smtpcore serve: {option} must be at least 1, not {value}", file=err)
            return EX_USAGE
    if not args.grace >= 0:
        print(f"smtpcore serve: --grace must be 0 or more seconds, not {args.grace:g}", file=err)
        return EX_USAGE
    workers = args.workers
    if workers < 1:
        print(f"smtpcore serve: --workers must be at least 1, not {workers}", file=err)
        return EX_USAGE
    if workers > 1 and not REUSE_PORT_BALANCES:
        print(f"smtpcore serve: --workers {workers} needs SO_REUSEPORT spreading connections "
              f"among processes, which only Linux does (this is {sys.platform})",
              file=err)  # fmt: skip
        return EX_USAGE
    # With workers, each line says whose it is.
    form = "%(asctime)s [%(process)d] %(message)s" if workers > 1 else "%(asctime)s %(message)s"
    logging.basicConfig(level=logging.INFO, stream=err, format=form)
    store: MaildirHandler | MboxHandler = (
        MaildirHandler(args.maildir) if args.maildir else MboxHandler(args.mbox)
    )
    handler: object = UsersHandler(store, load_users(args.users)) if args.users else store
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    config = ServerOptions.create(handler, starttls=context is not None).config
    config = replace(config, lmtp=args.lmtp, hostname=args.hostname)
    target = args.maildir or args.mbox
    banner = f"smtpcore: serving {'LMTP' if args.lmtp else 'SMTP'} on {args.host}:{{port}}"
    runs = f"{args.transport} on uvloop" if args.loop == "uvloop" else args.transport
    if workers > 1:
        runs += f", {workers} worker processes"
    banner += f" into {target} ({runs}); Ctrl-C or SIGTERM stops"

    def ready(port: int) -> None:
        print(banner.format(port=port), file=out, flush=True)

    grace = args.grace

    # Each worker counts on its own, and a client's connections land on any of
    # them: the bounds are shared out, so that together they stay what was asked.
    shared = {name: worker_share(value, workers) for name, value in caps.items()}
    shared["auth_failures_per_address"] = worker_share(AUTH_FAILURES_PER_ADDRESS, workers)

    def serve(port: int, ready: Callable[[int], None]) -> tuple[int, int]:
        return _run(args.transport, handler, args.host, port, ready, grace=grace,
                    tls_context=context, config=config, hostname=args.hostname,
                    caps=shared if workers > 1 else caps, loop=args.loop,
                    reuse_port=workers > 1)  # fmt: skip

    if workers == 1:
        signum, dropped = serve(args.port, ready)
        unknown: list[str] = []
    else:
        out.flush()
        err.flush()
        signum, dropped, unknown = _run_workers(workers, args.port, ready, serve)
    name = signal.Signals(signum).name
    if unknown:
        for line in unknown:
            print(f"smtpcore: {line}", file=err)
        print(
            f"smtpcore: {name}: the other workers cut {dropped} session(s) with a message in "
            "flight; what the workers above had in flight is not known",
            file=err,
        )
        status = EX_SOFTWARE
    elif dropped:
        print(
            f"smtpcore: {name}: {dropped} session(s) cut after the {grace:g} s grace with a "
            "message in flight; their clients got no 250 and keep the messages",
            file=err,
        )
        status = EX_TEMPFAIL
    else:
        print(f"smtpcore: {name}: stopped; every message in flight was finished", file=err)
        status = 0
    print("smtpcore: stopped", file=out)
    return status


def _run(
    transport: str,
    handler: object,
    host: str,
    port: int,
    ready: Callable[[int], None],
    *,
    grace: float,
    tls_context: ssl.SSLContext | None,
    config: ServerConfig,
    hostname: str,
    caps: dict[str, int],
    loop: str = "asyncio",
    reuse_port: bool = False,
) -> tuple[int, int]:
    """Serve on ``transport`` until SIGINT or SIGTERM, then stop within ``grace`` seconds.

    ``ready(port)`` is called once listening. Returns the signal and the
    number of sessions cut with a message in flight. A second signal
    during the grace changes nothing: the grace is the bound.
    """
    options = {"tls_context": tls_context, "config": config, "hostname": hostname, **caps}
    if reuse_port:
        options["reuse_port"] = True
    if transport == "sync":
        return _run_sync(handler, host, port, ready, grace, options)
    if transport == "asyncio":
        from . import asyncio as asyncio_transport

        main = _run_asyncio(handler, host, port, ready, grace, options)
        return asyncio_transport.run(main, loop="uvloop" if loop == "uvloop" else "asyncio")
    if transport == "trio":
        import trio

        return trio.run(_run_trio, handler, host, port, ready, grace, options)
    import anyio

    return anyio.run(_run_anyio, handler, host, port, ready, grace, options)


def worker_share(bound: int, workers: int) -> int:
    """One worker's part of a bound on the whole server: ``bound / workers``, rounded up.

    Together the workers allow at most ``bound`` plus fewer than ``workers``.
    """
    return max(1, -(-bound // workers))


#: Linux spreads the connections to a port among the sockets sharing it with
#: SO_REUSEPORT; elsewhere the option is missing or one socket takes them all.
REUSE_PORT_BALANCES: Final = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _run_workers(
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
            from .cli import _listen_error

            cause = _listen_error(exc)
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


def _run_sync(
    handler: object,
    host: str,
    port: int,
    ready: Callable[[int], None],
    grace: float,
    options: dict[str, Any],
) -> tuple[int, int]:
    from . import sync

    received: list[int] = []
    arrived = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        arrived.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        server = sync.SMTPServer(handler, host, port, **options).start()
        ready(server.port)
        while not arrived.wait(0.5):  # a timeout: signal handlers run between waits
            pass
        return received[0], server.close(grace)
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


async def _run_asyncio(
    handler: object,
    host: str,
    port: int,
    ready: Callable[[int], None],
    grace: float,
    options: dict[str, Any],
) -> tuple[int, int]:
    import asyncio

    from . import asyncio as asyncio_transport

    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if not received.done():
            received.set_result(signum)

    for stop in STOP_SIGNALS:
        loop.add_signal_handler(stop, on_signal, stop)
    server = await asyncio_transport.start_server(handler, host, port, **options)
    ready(server.port)
    signum = await received
    return signum, await server.aclose(grace)


async def _run_trio(
    handler: object,
    host: str,
    port: int,
    ready: Callable[[int], None],
    grace: float,
    options: dict[str, Any],
) -> tuple[int, int]:
    import trio

    from . import trio as trio_transport

    shutdown = trio.Event()
    dropped = 0
    received: list[int] = []

    async def serve(*, task_status: trio.TaskStatus[int]) -> None:
        nonlocal dropped
        dropped = await trio_transport.serve(handler, host, port, shutdown=shutdown, grace=grace,
                                             task_status=task_status, **options)  # fmt: skip

    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            ready(await nursery.start(serve))
            async for signum in signals:
                received.append(int(signum))
                shutdown.set()
                break
    return received[0], dropped


async def _run_anyio(
    handler: object,
    host: str,
    port: int,
    ready: Callable[[int], None],
    grace: float,
    options: dict[str, Any],
) -> tuple[int, int]:
    import anyio
    import anyio.abc

    from . import anyio as anyio_transport

    shutdown = anyio.Event()
    dropped = 0
    received: list[int] = []

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        nonlocal dropped
        dropped = await anyio_transport.serve(handler, host, port, shutdown=shutdown, grace=grace,
                                              task_status=task_status, **options)  # fmt: skip

    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with anyio.create_task_group() as group:
            ready(await group.start(serve))
            async for signum in signals:
                received.append(int(signum))
                shutdown.set()
                break
    return received[0], dropped
