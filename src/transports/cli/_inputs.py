"""What the user names on the command line: a host and port, a password, files, a CA file."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING, BinaryIO

from ._output import EX_NOINPUT, Failure

if TYPE_CHECKING:
    import ssl

__all__ = ["open_input", "password", "read_input", "split_host", "ssl_context"]


def split_host(
    text: str, default_port: int | None, *, option: str = "--host"
) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or ``v6`` into (host, port).

    Raises ``Failure`` (usage) when the port is not a number from 1 to 65535.
    """
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise Failure(f"{option} {text}: write an IPv6 address as [ADDRESS] or [ADDRESS]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    if not host:
        raise Failure(f"{option} {text}: the host name is missing")
    if port_text is None:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise Failure(f"{option} {text}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def password(args: argparse.Namespace) -> str | None:
    """From the environment variable named by --password-env, else a prompt."""
    if not args.user:
        return None
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise Failure(f"--password-env {args.password_env}: that variable is not set")
        return value
    if not sys.stdin.isatty():
        raise Failure("--user needs --password-env VAR: there is no terminal to ask on")
    return getpass.getpass(f"Password for {args.user}: ")


def _unusable(option: str, path: str, exc: OSError) -> Failure:
    """Why the file of ``option`` cannot be used, in a few words (no input, 66)."""
    if isinstance(exc, FileNotFoundError):
        problem = "no such file"
    elif isinstance(exc, IsADirectoryError):
        problem = "is a directory; give a file"
    elif isinstance(exc, PermissionError):
        problem = "permission denied"
    else:
        problem = exc.strerror or str(exc)
    hint = " (or - for stdin)" if option == "--body" else ""
    return Failure(f"{option} {path}: {problem}{hint}", EX_NOINPUT)


def open_input(option: str, path: str) -> BinaryIO:
    """``path`` opened for reading; ``Failure`` (no input, 66) naming ``option`` if it cannot be."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise _unusable(option, path, exc) from exc


def read_input(option: str, path: str) -> bytes:
    """The whole of a small input file; ``Failure`` naming ``option`` if it cannot be read."""
    with open_input(option, path) as file:
        try:
            return file.read()
        except OSError as exc:
            raise _unusable(option, path, exc) from exc


def ssl_context(cafile: str | None, insecure: bool = False) -> ssl.SSLContext:
    """The client's context; ``Failure`` naming --cafile when it holds no certificate."""
    import ssl

    if cafile is not None:
        read_input("--cafile", cafile)  # names the file when it is missing or unreadable
    try:
        context = ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        reason = exc.reason or exc
        raise Failure(
            f"--cafile {cafile}: no PEM certificate in it ({reason})", EX_NOINPUT
        ) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
