"""``smtpcore serve``: receive mail into a Maildir or an mbox file until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import hmac
import logging
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, TextIO

from smtpcore import ServerConfig
from smtpcore.session import Handler, ServerEnvelope, ServerOptions, SessionContext

from .mailboxes import MaildirHandler, MboxHandler

__all__ = ["UsersHandler", "load_users", "serve_command"]


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
    logging.basicConfig(level=logging.INFO, stream=err, format="%(asctime)s %(message)s")
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
    banner += f" into {target} ({args.transport}); Ctrl-C or SIGTERM stops"

    def ready(port: int) -> None:
        print(banner.format(port=port), file=out, flush=True)

    grace = args.grace
    signum, dropped = _run(args.transport, handler, args.host, args.port, ready, grace=grace,
                           tls_context=context, config=config, hostname=args.hostname,
                           caps=caps)  # fmt: skip
    name = signal.Signals(signum).name
    if dropped:
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
) -> tuple[int, int]:
    """Serve on ``transport`` until SIGINT or SIGTERM, then stop within ``grace`` seconds.

    ``ready(port)`` is called once listening. Returns the signal and the
    number of sessions cut with a message in flight. A second signal
    during the grace changes nothing: the grace is the bound.
    """
    options = {"tls_context": tls_context, "config": config, "hostname": hostname, **caps}
    if transport == "sync":
        return _run_sync(handler, host, port, ready, grace, options)
    if transport == "asyncio":
        import asyncio

        return asyncio.run(_run_asyncio(handler, host, port, ready, grace, options))
    if transport == "trio":
        import trio

        return trio.run(_run_trio, handler, host, port, ready, grace, options)
    import anyio

    return anyio.run(_run_anyio, handler, host, port, ready, grace, options)


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
