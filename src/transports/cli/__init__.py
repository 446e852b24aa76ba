"""The ``smtpcore`` command: demo, send, serve, probe.

A thin layer for people over the sync client and the servers. Exit statuses
follow sysexits(3): 0 done, 64 usage (a bad address, a missing option), 66 no
input file, 69 permanent failure, 75 transient failure (try again later), 76
protocol or TLS error, 77 authentication refused.

The package is split by concern: ``_parser`` and ``_options`` read the command
line, ``_output`` and ``_inputs`` are what it prints and what it opens,
``_send``, ``_delivery``, ``_mail``, ``_ready`` and ``_progress`` send mail,
``_checks`` tests what ``serve`` needs before ``transports.serving`` runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from smtpcore.session import SMTPError

from ._checks import (
    EXTRAS,
    check_framework,
    check_loop,
    check_serve_files,
    listen_failure,
    remove_if_empty_store,
)
from ._checks import check_listen as _check_listen
from ._delivery import send_one
from ._inputs import split_host, ssl_context
from ._output import (
    EX_BROKEN_PIPE,
    EX_NOINPUT,
    EX_UNAVAILABLE,
    EX_USAGE,
    Failure,
    OutputClosed,
    Tracer,
    exit_status,
    printable,
    server_text,
)
from ._parser import package_version, parse, parser
from ._send import cmd_send

# main is the command; the others serve the demo, the probe and the tests.
__all__ = ["Tracer", "main", "package_version", "parser", "printable", "send_one", "server_text"]


def cmd_demo(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    """``smtpcore demo``: mail through every client to a server on loopback."""
    from ..demo import run_demo

    return run_demo(out, keep=args.keep)


def cmd_probe(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    """``smtpcore probe``: what a server offers."""
    from ..probe import probe

    host, port = split_host(args.target, None, option="the target")
    if args.cafile is not None:
        ssl_context(args.cafile)  # a missing or empty --cafile, named, before connecting
    return probe(host, port, implicit=args.implicit, cafile=args.cafile, timeout=args.timeout,
                 out=out)  # fmt: skip


def cmd_serve(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    """``smtpcore serve``: checks first, then ``transports.serving`` runs the server."""
    from ..serving import serve_command
    from ..serving._run import listen_error

    # Everything that can be checked is checked before the store is created,
    # so a mistake leaves no empty Maildir or mbox behind.
    check_framework(args.transport)
    check_loop(args.transport, args.loop)
    check_serve_files(args)
    _check_listen(args.host, args.port)
    new = [path for path in (args.maildir, args.mbox) if path and not os.path.lexists(path)]
    try:
        return serve_command(args, out, err)
    except BaseException as exc:
        cause = listen_error(exc)
        if cause is None:
            raise
        # Another process took the port between the check and the server's bind.
        for path in new:
            remove_if_empty_store(Path(path))
        raise listen_failure(args.host, args.port, cause) from None


def _command(name: str) -> Callable[[argparse.Namespace, BinaryIO, TextIO, TextIO], int]:
    # Looked up when run, so that a test can put its own in this module's place.
    commands = {"demo": cmd_demo, "send": cmd_send, "serve": cmd_serve, "probe": cmd_probe}
    return commands[name]


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status.

    Every failure is one line on ``err`` (``smtpcore: ...``) naming what to
    change, and a sysexits status; a traceback means a defect of ours.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = parse(argv)
        return _command(args.command)(args, stdin or sys.stdin.buffer, out, err)
    except Failure as exc:
        print(f"smtpcore: {exc}", file=err)
        return exc.status
    except KeyboardInterrupt:
        print("smtpcore: interrupted", file=err)
        return 130
    except (BrokenPipeError, OutputClosed):
        # The reader went away (``smtpcore demo | head``): nothing to report.
        # Point stdout at /dev/null, so that flushing it at exit cannot fail.
        if out is sys.stdout:
            _silence_stdout()
        return EX_BROKEN_PIPE
    except SMTPError as exc:
        print(f"smtpcore: {type(exc).__name__}: {printable(str(exc))}", file=err)
        return exit_status(exc)
    except ImportError as exc:
        if exc.name in EXTRAS:
            print(f"smtpcore: {exc.name} is not installed: "
                  f"pip install 'smtpcore[{EXTRAS[exc.name]}]'", file=err)  # fmt: skip
        else:
            print(f"smtpcore: {exc}", file=err)
        return EX_UNAVAILABLE
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise  # --help, --version and argparse's own exits
        print(exc.code if exc.code.startswith("smtpcore") else f"smtpcore: {exc.code}", file=err)
        return EX_USAGE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"smtpcore: {where}{exc.strerror or exc}", file=err)
        return EX_NOINPUT if exc.filename and isinstance(exc, FileNotFoundError) else EX_UNAVAILABLE
    except BaseException as exc:
        # trio and anyio deliver a task's BrokenPipeError inside a group.
        if _holds(exc, (BrokenPipeError, OutputClosed)):
            if out is sys.stdout:
                _silence_stdout()
            return EX_BROKEN_PIPE
        raise


def _holds(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """True when ``exc`` is one of ``kinds`` or an exception group holding only those."""
    if isinstance(exc, kinds):
        return True
    inner = getattr(exc, "exceptions", None)  # by shape: on 3.10 the groups are a backport
    return (
        isinstance(inner, tuple)
        and bool(inner)
        and all(isinstance(each, BaseException) and _holds(each, kinds) for each in inner)
    )


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
