"""``smtpcore send``: one message built from the options or read from a file, or many ready ones."""

from __future__ import annotations

import argparse
import functools
import os
from typing import TYPE_CHECKING, BinaryIO, TextIO

from ._delivery import open_ready, send_many, send_one
from ._inputs import open_input, password, read_input, split_host, ssl_context
from ._output import EX_OK, Failure, Tracer, print_result

if TYPE_CHECKING:
    from ._mail import Outgoing

__all__ = ["cmd_send", "outgoing"]


def cmd_send(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    """Send what the options say; print a line per recipient; the sysexits status."""
    from ..sync import SMTPClient

    host, port = split_host(args.host, args.port)
    if args.port is not None and not 0 < args.port < 65536:
        raise Failure(f"--port {args.port}: the port must be a number from 1 to 65535")
    ready = next((f"--{name}" for name in ("eml", "maildir", "mbox") if getattr(args, name)), None)
    building = next((f"--{name}" for name in ("body", "attach", "subject") if getattr(args, name)),
                    None)  # fmt: skip
    if ready and building:
        raise Failure(f"{building} builds a message: it cannot be used with {ready}, "
                      "which sends ready ones")  # fmt: skip
    context = ssl_context(args.cafile, args.insecure)
    client = functools.partial(
        SMTPClient, host, port, tls=args.tls, ssl_context=context, username=args.user,
        password=password(args), lmtp=args.lmtp, timeout=args.timeout,
        auth_in_clear=args.auth_in_clear, trace=Tracer(err) if args.trace else None,
    )  # fmt: skip
    if args.maildir or args.mbox or (args.eml and os.path.isdir(args.eml)):
        return send_many(args, client, out, err)
    message = outgoing(args, stdin)
    try:
        with client() as smtp:
            result = send_one(smtp, message, err if err.isatty() and not args.trace else None)
    finally:
        message.close()
    print_result(result, out)
    return EX_OK


def outgoing(args: argparse.Namespace, stdin: BinaryIO) -> Outgoing:
    """The message the options describe; files are opened now and read when sent."""
    from ._mail import from_options

    if args.eml:
        return open_ready(args, "--eml", args.eml)
    if args.body == "-":
        body = stdin.read()
    elif args.body:
        body = read_input("--body", args.body)
    else:
        body = b""
    attachments: list[tuple[str, BinaryIO]] = []
    try:
        for name in args.attach or []:
            attachments.append((name, open_input("--attach", name)))
        return from_options(args.sender, args.to, args.cc, args.bcc, args.subject, body,
                            attachments)  # fmt: skip
    except BaseException:
        for _, file in attachments:
            file.close()
        raise
