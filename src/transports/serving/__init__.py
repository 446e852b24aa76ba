"""``smtpcore serve``: receive mail into a Maildir or an mbox file until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import hmac
import logging
import signal
import ssl
import sys
from dataclasses import replace
from pathlib import Path
from typing import Final, TextIO

from smtpcore.session import (
    Handler,
    ServerEnvelope,
    ServerOptions,
    SessionContext,
)

from ..mailboxes import MaildirHandler, MboxHandler
from ._forever import SHARED_BOUNDS, Stopped, serve_forever
from ._workers import EX_SOFTWARE, REUSE_PORT_BALANCES, worker_share

# serve_command looks REUSE_PORT_BALANCES up here, when it runs: a test can
# put its own in its place.
__all__ = [
    "REUSE_PORT_BALANCES",
    "SHARED_BOUNDS",
    "Stopped",
    "UsersHandler",
    "load_users",
    "serve_command",
    "serve_forever",
    "worker_share",
]


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
    out.flush()
    err.flush()
    stopped = serve_forever(
        handler, args.host, args.port, transport=args.transport, workers=workers, grace=grace,
        loop=args.loop, ready=ready, tls_context=context, config=config, hostname=args.hostname,
        max_connections=args.max_connections,
        max_connections_per_client=args.max_connections_per_client,
    )  # fmt: skip
    dropped, unknown = stopped.dropped, stopped.unknown
    name = signal.Signals(stopped.signal).name
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
