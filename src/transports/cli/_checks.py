"""What ``smtpcore serve`` checks before it creates the store, and how a failed bind is said."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Final

from ._inputs import read_input
from ._output import EX_NOINPUT, EX_NOPERM, EX_UNAVAILABLE, EX_USAGE, Failure

__all__ = [
    "EXTRAS",
    "check_framework",
    "check_listen",
    "check_loop",
    "check_serve_files",
    "listen_failure",
    "remove_if_empty_store",
]

#: The framework each transport needs beyond the standard library, and its extra.
EXTRAS: Final = {"trio": "trio", "anyio": "anyio"}


def check_framework(transport: str) -> None:
    """``Failure`` naming the extra to install when the transport's framework is missing."""
    import importlib.util

    module = EXTRAS.get(transport)
    if module is not None and importlib.util.find_spec(module) is None:
        raise Failure(
            f"--transport {transport} needs {module}, which is not installed: "
            f"pip install 'smtpcore[{EXTRAS[module]}]'",
            EX_UNAVAILABLE,
        )


def check_loop(transport: str, loop: str) -> None:
    """``Failure`` for ``--loop uvloop`` off asyncio, or with uvloop not installed."""
    import importlib.util

    if loop == "asyncio":
        return
    if transport != "asyncio":
        raise Failure(f"--loop {loop} is for --transport asyncio, not {transport}")
    if importlib.util.find_spec(loop) is None:
        raise Failure(
            f"--loop {loop} needs {loop}, which is not installed: pip install 'smtpcore[{loop}]'",
            EX_UNAVAILABLE,
        )


def check_serve_files(args: argparse.Namespace) -> None:
    """The certificate, key and users file exist and load; the store is not the wrong kind."""
    import ssl

    if args.tls_key and not args.tls_cert:
        raise Failure("--tls-key needs --tls-cert (the certificate chain it belongs to)")
    if args.tls_cert:
        read_input("--tls-cert", args.tls_cert)
        if args.tls_key:
            read_input("--tls-key", args.tls_key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except ssl.SSLError as exc:
            key = f" with --tls-key {args.tls_key}" if args.tls_key else ""
            raise Failure(
                f"--tls-cert {args.tls_cert}{key}: not a PEM certificate chain and its "
                f"private key ({exc.reason or 'none found'})",
                EX_NOINPUT,
            ) from None
    if args.users:
        from ..serving import load_users

        read_input("--users", args.users)
        try:
            load_users(args.users)  # a malformed line, named, before the store exists
        except SystemExit as exc:
            raise Failure(str(exc.code).removeprefix("smtpcore: ")) from None
    if args.maildir and os.path.exists(args.maildir) and not os.path.isdir(args.maildir):
        raise Failure(f"--maildir {args.maildir}: is a file; give a directory")
    if args.mbox and os.path.isdir(args.mbox):
        raise Failure(f"--mbox {args.mbox}: is a directory; give a file")


def check_listen(host: str, port: int) -> None:
    """``Failure`` when ``host:port`` cannot be listened on (in use, not ours, no such name)."""
    import socket

    if not 0 <= port < 65536:
        raise Failure(f"--port {port}: the port must be a number from 0 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise Failure(f"--host {host}: not an address of this machine ({reason})") from None
    if port == 0:
        return  # the system picks a free port
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As the servers do: a port left in TIME_WAIT can be taken again.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise listen_failure(host, port, exc) from None


def listen_failure(host: str, port: int, exc: OSError) -> Failure:
    """The one line, and status, for ``exc`` raised binding ``host:port``."""
    import errno

    if exc.errno == errno.EADDRINUSE:
        return Failure(
            f"--port {port}: already in use on {host}; choose another --port "
            "(--port 0 picks a free one)",
            EX_UNAVAILABLE,
        )
    if exc.errno == errno.EACCES:
        return Failure(
            f"--port {port}: permission denied on {host} (ports below 1024 need privileges); "
            "choose another --port",
            EX_NOPERM,
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return Failure(f"--host {host}: not an address of this machine", EX_USAGE)
    return Failure(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EX_UNAVAILABLE)


def remove_if_empty_store(path: Path) -> None:
    """Remove a Maildir (cur, new, tmp) or mbox this run created and left empty."""
    try:
        if path.is_dir():
            for name in ("cur", "new", "tmp"):
                if (path / name).is_dir():
                    (path / name).rmdir()  # fails, and keeps it, unless empty
            path.rmdir()
        elif path.is_file() and path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass
