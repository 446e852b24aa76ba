"""``smtpcore serve``: receive mail into a Maildir or an mbox file until Ctrl-C."""

from __future__ import annotations

import argparse
import functools
import hmac
import logging
import ssl
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from smtpcore import ServerConfig
from smtpcore.session import ServerEnvelope, ServerOptions

from .mailboxes import MaildirHandler, MboxHandler

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

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


class UsersHandler:
    """Stores through ``store``; AUTH checks against a users table (constant time)."""

    def __init__(self, store: MaildirHandler | MboxHandler, users: dict[str, str]) -> None:
        self.store = store
        self.users = users

    def lookup_secret(self, mechanism: str, username: str) -> str | None:
        """The password of ``username``: lets the server offer SCRAM and CRAM-MD5 too."""
        return self.users.get(username)

    def authenticate(self, username: str, password: str) -> bool:
        """PLAIN and LOGIN: compare in constant time, whether or not the user exists."""
        expected = self.users.get(username, "\x00unknown user\x00")
        same = hmac.compare_digest(expected.encode(), password.encode())
        return same and username in self.users

    def on_message(self, envelope: ServerEnvelope) -> None:
        """Store the message; an exception makes the server answer 451."""
        self.store.on_message(envelope)


def serve_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``smtpcore serve`` until interrupted."""
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
    banner += f" into {target} ({args.transport}); Ctrl-C stops"

    def ready(port: int) -> None:
        print(banner.format(port=port), file=out, flush=True)

    try:
        _run(args.transport, handler, args.host, args.port, ready,
             tls_context=context, config=config, hostname=args.hostname)  # fmt: skip
    except KeyboardInterrupt:
        print("smtpcore: interrupted; the server closed gracefully", file=err)
    except BaseExceptionGroup as group:  # trio and anyio wrap the interruption in a group
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
        print("smtpcore: interrupted; the server closed gracefully", file=err)
    print("smtpcore: stopped", file=out)
    return 0


def _run(
    transport: str,
    handler: object,
    host: str,
    port: int,
    ready: Callable[[int], None],
    *,
    tls_context: ssl.SSLContext | None,
    config: ServerConfig,
    hostname: str,
) -> None:
    """Serve on the chosen transport until interrupted; ``ready(port)`` once listening."""
    if transport == "sync":
        from . import sync

        sync.serve(handler, host, port, tls_context=tls_context, config=config,
                   hostname=hostname, ready=lambda server: ready(server.port))  # fmt: skip
    elif transport == "asyncio":
        import asyncio

        from . import asyncio as asyncio_transport

        async def main() -> None:
            server = await asyncio_transport.start_server(
                handler, host, port, tls_context=tls_context, config=config, hostname=hostname
            )
            ready(server.port)
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.shield(server.aclose())

        asyncio.run(main())
    elif transport == "trio":
        import trio

        from . import trio as trio_transport

        async def main_trio() -> None:
            async with trio.open_nursery() as nursery:
                serve = functools.partial(trio_transport.serve, handler, host, port,
                                          tls_context=tls_context, config=config,
                                          hostname=hostname)  # fmt: skip
                ready(await nursery.start(serve))

        trio.run(main_trio)
    else:
        import anyio

        from . import anyio as anyio_transport

        async def main_anyio() -> None:
            async with anyio.create_task_group() as group:
                serve = functools.partial(anyio_transport.serve, handler, host, port,
                                          tls_context=tls_context, config=config,
                                          hostname=hostname)  # fmt: skip
                ready(await group.start(serve))

        anyio.run(main_anyio)
