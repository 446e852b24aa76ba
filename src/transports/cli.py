"""The ``smtpcore`` command: demo, send, serve, probe.

A thin layer for people over the sync client and the servers. Exit statuses
follow sysexits(3): 0 done, 64 usage (a bad address, a missing option), 66 no
input file, 69 permanent failure, 75 transient failure (try again later), 76
protocol or TLS error, 77 authentication refused.
"""

from __future__ import annotations

import argparse
import getpass
import mimetypes
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import BinaryIO, Final, TextIO

from smtpcore import LocalProtocolError, ProtocolError
from smtpcore.session import (
    AuthenticationError,
    ConnectionLost,
    SendResult,
    SMTPError,
    SMTPTimeout,
    TLSError,
    TransientError,
)

__all__ = ["main"]

EX_OK: Final = 0
EX_USAGE: Final = 64
EX_NOINPUT: Final = 66
EX_UNAVAILABLE: Final = 69
EX_TEMPFAIL: Final = 75
EX_PROTOCOL: Final = 76
EX_NOPERM: Final = 77


class Tracer:
    """Prints the conversation: ``>`` what we sent, ``<`` what the server answered."""

    def __init__(self, out: TextIO, *, limit: int = 2000) -> None:
        self.out = out
        self.limit = limit  # content lines shown before "..." (big messages)
        self._shown = 0
        self._partial = {">": b"", "<": b""}

    def __call__(self, direction: str, data: bytes) -> None:
        buffered = self._partial[direction] + data
        *lines, rest = buffered.split(b"\r\n")
        self._partial[direction] = rest
        for line in lines:
            self._shown += 1
            if self._shown == self.limit:
                print(f"{direction} ...", file=self.out)
            if self._shown < self.limit:
                print(f"{direction} {line.decode('utf-8', 'replace')}", file=self.out)
        self.out.flush()


def split_host(text: str, default_port: int | None) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or ``v6`` into (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def _password(args: argparse.Namespace) -> str | None:
    """From the environment variable named by --password-env, else a prompt."""
    if not args.user:
        return None
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise SystemExit(f"smtpcore: environment variable {args.password_env} is not set")
        return value
    if not sys.stdin.isatty():
        raise SystemExit("smtpcore: --user needs --password-env VAR (no terminal to prompt on)")
    return getpass.getpass(f"Password for {args.user}: ")


def _ssl_context(cafile: str | None, insecure: bool = False) -> object:
    import ssl

    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def build_message(args: argparse.Namespace, stdin: BinaryIO) -> EmailMessage:
    """The message to send: a ready .eml file, or one made from the options."""
    if args.eml:
        with open(args.eml, "rb") as file:
            parsed = BytesParser(policy=policy.default).parse(file)
        assert isinstance(parsed, EmailMessage)
        return parsed
    msg = EmailMessage()
    msg["From"] = args.sender
    if args.to:
        msg["To"] = ", ".join(args.to)
    if args.cc:
        msg["Cc"] = ", ".join(args.cc)
    if args.bcc:
        msg["Bcc"] = ", ".join(args.bcc)
    if args.subject:
        msg["Subject"] = args.subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid()
    if args.body == "-":
        body = stdin.read()
    elif args.body:
        body = Path(args.body).read_bytes()
    else:
        body = b""
    msg.set_content(body.decode("utf-8", "replace"))
    for name in args.attach or []:
        path = Path(name)
        kind, encoding = mimetypes.guess_type(path.name)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        msg.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return msg


def _progress(content: bytes, out: TextIO) -> Iterator[bytes]:
    """Yield ``content`` in pieces, drawing a bar on ``out`` (a terminal)."""
    total = len(content)
    step = 256 * 1024
    for start in range(0, total, step):
        yield content[start : start + step]
        done = min(start + step, total)
        filled = 30 * done // total
        out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done * 100 // total:3d}%")
        out.flush()
    out.write("\n")


def print_result(result: SendResult, out: TextIO) -> None:
    for rcpt in result.accepted:
        final = result.data_replies.get(rcpt, result.reply)
        print(f"accepted {rcpt}: {final.code} {final.text}", file=out)
    for rcpt, reply in result.refused.items():
        print(f"refused  {rcpt}: {reply.code} {reply.text}", file=out)


def exit_status(exc: BaseException) -> int:
    """The sysexits status for a failure."""
    if isinstance(exc, AuthenticationError):
        return EX_NOPERM
    if isinstance(exc, LocalProtocolError):
        return EX_USAGE
    if isinstance(exc, (TLSError, ProtocolError)):
        return EX_PROTOCOL
    if isinstance(exc, (TransientError, ConnectionLost, SMTPTimeout)):
        return EX_TEMPFAIL
    if getattr(exc, "is_transient", False):
        return EX_TEMPFAIL
    return EX_UNAVAILABLE


def cmd_send(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from smtpcore import prepare_message

    from .sync import SMTPClient

    host, port = split_host(args.host, args.port)
    msg = build_message(args, stdin)
    recipients = list(dict.fromkeys([*(args.to or []), *(args.cc or []), *(args.bcc or [])]))
    prepared = prepare_message(msg, args.sender or None, recipients or None)
    context = _ssl_context(args.cafile, args.insecure)
    show = err.isatty() and prepared.size > 1024 * 1024 and not args.trace
    trace = Tracer(err) if args.trace else None
    with SMTPClient(
        host, port, tls=args.tls, ssl_context=context, username=args.user,  # type: ignore[arg-type]
        password=_password(args), lmtp=args.lmtp, timeout=args.timeout,
        auth_in_clear=args.auth_in_clear, trace=trace,
    ) as smtp:  # fmt: skip
        content = _progress(prepared.content, err) if show else prepared.content
        result = smtp.sendmail(
            prepared.sender, list(prepared.recipients), content,
            smtputf8=prepared.needs_smtputf8,
            body="8BITMIME" if prepared.body_8bit else None, size=prepared.size,
        )  # fmt: skip
    print_result(result, out)
    return EX_OK


def cmd_probe(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from .probe import probe

    host, port = split_host(args.target, None)
    return probe(host, port, implicit=args.implicit, cafile=args.cafile, timeout=args.timeout,
                 out=out)  # fmt: skip


def cmd_serve(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from .serving import serve_command

    return serve_command(args, out, err)


def cmd_demo(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from .demo import run_demo

    return run_demo(out, keep=args.keep)


def parser() -> argparse.ArgumentParser:
    # No abbreviations: "--password" must not quietly mean "--password-env".
    top = argparse.ArgumentParser(
        prog="smtpcore", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    sub = top.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="send real mail through every transport to a server on loopback"
    )
    demo.add_argument("--keep", action="store_true", help="keep the Maildir afterwards")
    demo.set_defaults(run=cmd_demo)

    send = sub.add_parser("send", allow_abbrev=False, help="send one message")
    send.add_argument("--host", required=True, help="server, HOST or HOST:PORT")
    send.add_argument("--port", type=int, default=None)
    send.add_argument("--tls", choices=["starttls", "implicit", "opportunistic", "none"],
                      default="starttls")  # fmt: skip
    send.add_argument("--cafile", help="trust this CA bundle instead of the system's")
    send.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    send.add_argument("--user", help="AUTH user name")
    send.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    send.add_argument("--auth-in-clear", action="store_true",
                      help="allow AUTH without TLS")  # fmt: skip
    send.add_argument("--lmtp", action="store_true")
    send.add_argument("--timeout", type=float, default=None, help="seconds for every step")
    send.add_argument("--from", dest="sender", default="", help="sender address")
    send.add_argument("--to", action="append", default=[], help="recipient (repeatable)")
    send.add_argument("--cc", action="append", default=[])
    send.add_argument("--bcc", action="append", default=[])
    send.add_argument("--subject", default="")
    send.add_argument("--body", help="body text file, or - for stdin")
    send.add_argument("--attach", action="append", help="attach a file (repeatable)")
    send.add_argument("--eml", help="send this ready message file instead")
    send.add_argument("--trace", action="store_true", help="show the conversation")
    send.set_defaults(run=cmd_send)

    serve = sub.add_parser("serve", allow_abbrev=False, help="receive mail into a Maildir or mbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=2525)
    target = serve.add_mutually_exclusive_group(required=True)
    target.add_argument("--maildir", help="store into this Maildir")
    target.add_argument("--mbox", help="append to this mbox file")
    serve.add_argument("--tls-cert", help="certificate chain (PEM) for STARTTLS")
    serve.add_argument("--tls-key", help="private key (PEM)")
    serve.add_argument("--users", help="AUTH users file: one user:password per line")
    serve.add_argument("--lmtp", action="store_true")
    serve.add_argument("--hostname", default="localhost", help="name in greetings")
    serve.add_argument("--transport", choices=["sync", "asyncio", "trio", "anyio"],
                       default="asyncio")  # fmt: skip
    serve.add_argument("--grace", type=float, default=10.0,
                       help="seconds messages in flight get on SIGINT/SIGTERM")  # fmt: skip
    serve.add_argument("--max-connections", type=int, default=500,
                       help="sessions served at once (more get 421 4.7.0)")  # fmt: skip
    serve.add_argument("--max-connections-per-client", type=int, default=50,
                       help="sessions served at once from one client address")  # fmt: skip
    serve.set_defaults(run=cmd_serve)

    probe = sub.add_parser(
        "probe", allow_abbrev=False, help="show what a server offers; sends no mail"
    )
    probe.add_argument("target", help="HOST or HOST:PORT (default port 25, 465 with --implicit)")
    probe.add_argument("--implicit", action="store_true", help="TLS from the first byte")
    probe.add_argument("--cafile", help="trust this CA bundle instead of the system's")
    probe.add_argument("--timeout", type=float, default=10.0)
    probe.set_defaults(run=cmd_probe)
    return top


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    out = out or sys.stdout
    err = err or sys.stderr
    run: Callable[[argparse.Namespace, BinaryIO, TextIO, TextIO], int] = args.run
    try:
        return run(args, stdin or sys.stdin.buffer, out, err)
    except KeyboardInterrupt:
        print("smtpcore: interrupted", file=err)
        return 130
    except FileNotFoundError as exc:
        print(f"smtpcore: {exc}", file=err)
        return EX_NOINPUT
    except (SMTPError, ProtocolError) as exc:
        print(f"smtpcore: {type(exc).__name__}: {exc}", file=err)
        return exit_status(exc)
