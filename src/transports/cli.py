"""The ``smtpcore`` command: demo, send, serve, probe.

A thin layer for people over the sync client and the servers. Exit statuses
follow sysexits(3): 0 done, 64 usage (a bad address, a missing option), 66 no
input file, 69 permanent failure, 75 transient failure (try again later), 76
protocol or TLS error, 77 authentication refused.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, NoReturn, TextIO

from smtpcore import InvalidArgument, LocalProtocolError, ProtocolError
from smtpcore.session import (
    AuthenticationError,
    ConnectionLost,
    SendResult,
    SMTPError,
    SMTPTimeout,
    TLSError,
    TransientError,
)

if TYPE_CHECKING:
    import ssl

    from ._cli_mail import Outgoing
    from .sync import SMTPClient

__all__ = ["main"]

EX_OK: Final = 0
EX_USAGE: Final = 64
EX_NOINPUT: Final = 66
EX_UNAVAILABLE: Final = 69
EX_TEMPFAIL: Final = 75
EX_PROTOCOL: Final = 76
EX_NOPERM: Final = 77
EX_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE: what a shell shows for a reader gone


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as an escape.

    A server's replies reach the user's terminal: an ESC, a bell or a
    carriage return in them could recolour, retitle or overwrite what the
    user sees. Such characters are shown as ``\\x1b``, ``\\x07``, ``\\u202e``.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def server_text(data: bytes) -> str:
    """Bytes from the network as printable text (octets not UTF-8 shown as ``\\xNN``)."""
    return printable(data.decode("utf-8", "backslashreplace"))


class OutputClosed(BaseException):
    """The reader of our output went away (``smtpcore demo | head``): stop quietly.

    A BaseException, so that no handler of I/O errors on the way up (a
    client's, which would report a lost connection) mistakes it for its own.
    """


class Tracer:
    """Prints the conversation: ``>`` what we sent, ``<`` what the server answered.

    Every line is made printable first. The client's side of a SASL exchange
    (the AUTH command's initial response and every line the client sends until
    the server's final reply) is shown as ``***``: it carries the credentials,
    in base64 or as a proof an attacker could replay or crack offline.
    """

    def __init__(self, out: TextIO, *, limit: int = 2000) -> None:
        self.out = out
        self.limit = limit  # content lines shown before "..." (big messages)
        self._shown = 0
        self._partial = {">": b"", "<": b""}
        self._in_auth = False  # between an AUTH command and the server's final reply
        self._data_asked = False  # DATA sent, its reply not yet seen
        self._in_content = False  # after 354, until the line "."
        self._chunk_left = 0  # octets of the current BDAT chunk not yet seen

    def __call__(self, direction: str, data: bytes) -> None:
        buffered = self._partial[direction] + data
        *lines, rest = buffered.split(b"\r\n")
        self._partial[direction] = rest
        try:
            for line in lines:
                self._shown += 1
                if self._shown == self.limit:
                    print(f"{direction} ...", file=self.out)
                if self._shown < self.limit:
                    print(f"{direction} {self._masked(direction, line)}", file=self.out)
            self.out.flush()
        except BrokenPipeError:
            # Called from inside a client's I/O: an OSError here would be taken
            # for the connection's and reported as a lost connection.
            raise OutputClosed from None

    def _masked(self, direction: str, line: bytes) -> str:
        if direction == "<":
            final = line[3:4] != b"-"
            if self._in_auth and final and line[:3] != b"334":
                self._in_auth = False  # 235, 535...: the exchange is over
            # The server speaks after the content it was sent: whatever we
            # counted, the client's next line is a command again, so an AUTH
            # is never taken for content and shown in clear.
            self._in_content = False
            self._chunk_left = 0
            if self._data_asked and final:
                self._data_asked = False
                self._in_content = line[:3] == b"354"
            return server_text(line)
        if self._in_auth:
            return "***"
        if self._in_content:  # message lines: an "AUTH" there is text, not a command
            self._in_content = line != b"."
            return server_text(line)
        if self._chunk_left > 0:  # inside a BDAT chunk, counted in octets
            self._chunk_left -= len(line) + 2
            return server_text(line)
        verb, _, rest = line.partition(b" ")
        verb = verb.upper()
        if verb == b"DATA":
            self._data_asked = True
        elif verb == b"BDAT":
            size = rest.split(b" ", 1)[0]
            self._chunk_left = int(size) if size.isdigit() else 0
        elif verb == b"AUTH":
            self._in_auth = True
            mechanism, space, initial = rest.partition(b" ")
            if space and initial:
                return server_text(b"AUTH " + mechanism) + " ***"
        return server_text(line)


class Failure(Exception):
    """A mistake the user can correct: one line on stderr, then exit with ``status``."""

    def __init__(self, message: str, status: int = EX_USAGE) -> None:
        super().__init__(message)
        self.status = status


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


def _password(args: argparse.Namespace) -> str | None:
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


def _file_problem(exc: OSError) -> str:
    """Why a file could not be used, in a few words."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory; give a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


def open_input(option: str, path: str) -> BinaryIO:
    """``path`` opened for reading; ``Failure`` (no input, 66) naming ``option`` if it cannot be."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        hint = " (or - for stdin)" if option == "--body" else ""
        raise Failure(f"{option} {path}: {_file_problem(exc)}{hint}", EX_NOINPUT) from exc
    return file


def read_input(option: str, path: str) -> bytes:
    """The whole of a small input file; ``Failure`` naming ``option`` if it cannot be read."""
    with open_input(option, path) as file:
        try:
            return file.read()
        except OSError as exc:
            hint = " (or - for stdin)" if option == "--body" else ""
            raise Failure(f"{option} {path}: {_file_problem(exc)}{hint}", EX_NOINPUT) from exc


def _ssl_context(cafile: str | None, insecure: bool = False) -> ssl.SSLContext:
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


def print_result(result: SendResult, out: TextIO, *, prefix: str = "") -> None:
    """One line per recipient: ``accepted ADDRESS: 250 ...`` or ``refused  ADDRESS: 550 ...``."""
    for rcpt in result.accepted:
        final = result.data_replies.get(rcpt, result.reply)
        print(f"{prefix}accepted {printable(rcpt)}: {final.code} {printable(final.text)}",
              file=out)  # fmt: skip
    for rcpt, reply in result.refused.items():
        print(f"{prefix}refused  {printable(rcpt)}: {reply.code} {printable(reply.text)}",
              file=out)  # fmt: skip


def exit_status(exc: BaseException) -> int:
    """The sysexits status for a failure."""
    if isinstance(exc, AuthenticationError):
        return EX_NOPERM
    if isinstance(exc, (LocalProtocolError, InvalidArgument)):
        return EX_USAGE
    if isinstance(exc, (TLSError, ProtocolError)):
        return EX_PROTOCOL
    if isinstance(exc, (TransientError, ConnectionLost, SMTPTimeout)):
        return EX_TEMPFAIL
    if getattr(exc, "is_transient", False):
        return EX_TEMPFAIL
    return EX_UNAVAILABLE


def cmd_send(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from .sync import SMTPClient

    host, port = split_host(args.host, args.port)
    if args.port is not None and not 0 < args.port < 65536:
        raise Failure(f"--port {args.port}: the port must be a number from 1 to 65535")
    ready = next((f"--{name}" for name in ("eml", "maildir", "mbox") if getattr(args, name)), None)
    building = next((f"--{name}" for name in ("body", "attach", "subject") if getattr(args, name)),
                    None)  # fmt: skip
    if ready and building:
        raise Failure(f"{building} builds a message: it cannot be used with {ready}, "
                      "which sends ready ones")  # fmt: skip
    context = _ssl_context(args.cafile, args.insecure)
    password = _password(args)
    if args.maildir or args.mbox or (args.eml and os.path.isdir(args.eml)):
        client = functools.partial(
            SMTPClient, host, port, tls=args.tls, ssl_context=context, username=args.user,
            password=password, lmtp=args.lmtp, timeout=args.timeout,
            auth_in_clear=args.auth_in_clear, trace=Tracer(err) if args.trace else None,
        )  # fmt: skip
        return send_many(args, client, out, err)
    message = outgoing(args, stdin)
    try:
        trace = Tracer(err) if args.trace else None
        with SMTPClient(
            host, port, tls=args.tls, ssl_context=context, username=args.user,
            password=password, lmtp=args.lmtp, timeout=args.timeout,
            auth_in_clear=args.auth_in_clear, trace=trace,
        ) as smtp:  # fmt: skip
            result = send_one(smtp, message, err if err.isatty() and not args.trace else None)
    finally:
        message.close()
    print_result(result, out)
    return EX_OK


def outgoing(args: argparse.Namespace, stdin: BinaryIO) -> Outgoing:
    """The message the options describe; files are opened now and read when sent."""
    from ._cli_mail import from_file, from_options

    recipients = list(dict.fromkeys([*args.to, *args.cc, *args.bcc]))
    if args.eml:
        file = open_input("--eml", args.eml)
        try:
            return from_file(file, name=args.eml, sender=args.sender or None,
                             recipients=recipients or None)  # fmt: skip
        except BaseException:
            file.close()
            raise
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


def ready_messages(args: argparse.Namespace) -> tuple[list[str], Callable[[str], Outgoing]]:
    """The names of the ready messages to send, and how to open one (lazily, one at a time)."""
    from ._cli_mail import from_file, mbox_spans

    recipients = list(dict.fromkeys([*args.to, *args.cc, *args.bcc])) or None
    sender = args.sender or None

    def one_file(option: str) -> Callable[[str], Outgoing]:
        def make(path: str) -> Outgoing:
            file = open_input(option, path)
            try:
                return from_file(file, name=path, sender=sender, recipients=recipients)
            except BaseException:
                file.close()
                raise

        return make

    if args.maildir:
        folder = Path(args.maildir)
        if not (folder / "cur").is_dir() or not (folder / "new").is_dir():
            raise Failure(f"--maildir {folder}: not a Maildir (it needs cur/ and new/)", EX_NOINPUT)
        names = [str(path) for sub in ("new", "cur") for path in sorted((folder / sub).iterdir())
                 if path.is_file() and not path.name.startswith(".")]  # fmt: skip
        return names, one_file("--maildir")
    if args.eml:
        names = sorted(str(path) for path in Path(args.eml).iterdir()
                       if path.suffix.lower() == ".eml" and path.is_file())  # fmt: skip
        return names, one_file("--eml")
    box = open_input("--mbox", args.mbox)
    spans = mbox_spans(box)
    where = {f"{args.mbox}#{number}": span for number, span in enumerate(spans, 1)}

    def from_mbox(name: str) -> Outgoing:
        start, end = where[name]
        box.seek(start)
        return from_file(box, name=name, sender=sender, recipients=recipients,
                         strip_from_line=True, end=end, owns_file=False)  # fmt: skip

    return list(where), from_mbox


def send_many(
    args: argparse.Namespace, client: Callable[[], SMTPClient], out: TextIO, err: TextIO
) -> int:
    """Send every ready message of a Maildir, an mbox or a directory over one connection.

    Each message gets its lines (``NAME: accepted ADDRESS: 250 ...``); a
    refused message does not stop the others; a lost connection stops the
    rest, counted as not sent. The last line sums up. The status is 0 when
    every message was accepted, 69 when one was refused for good, otherwise
    the status of the first failure (75: try again later).
    """
    from smtpcore.session import BATCH, Envelope, NotSupported, ReplyError

    names, open_message = ready_messages(args)
    option = "--maildir" if args.maildir else "--mbox" if args.mbox else "--eml"
    if not names:
        path = args.maildir or args.mbox or args.eml
        raise Failure(f"{option} {path}: no messages in it", EX_NOINPUT)
    progress = err if err.isatty() and not args.trace else None
    accepted = refused = 0
    statuses: list[int] = []
    # Small messages are read whole and go together through send_many, pipelined
    # (one round trip each); a large one streams alone, with its progress line.
    waiting: list[tuple[str, Envelope]] = []

    def refusal(shown: str, exc: BaseException) -> None:
        nonlocal refused
        print(f"{shown}: refused: {type(exc).__name__}: {printable(str(exc))}", file=out)
        refused += 1
        statuses.append(exit_status(exc))

    def lost(shown: str, exc: BaseException, what: str = "not sent") -> None:
        # The connection is gone: the rest cannot be sent on it.
        print(f"{shown}: {what}: {type(exc).__name__}: {printable(str(exc))}", file=out)
        statuses.append(exit_status(exc))

    def flush(smtp: SMTPClient) -> bool:
        """Send the waiting messages; False when the connection is gone."""
        nonlocal accepted
        batch, waiting[:] = list(waiting), []
        if not batch:
            return True
        for (shown, _), outcome in zip(batch, smtp.send_many(e for _, e in batch), strict=True):
            error = outcome.error if outcome.error is not None else SMTPError("no reply")
            if outcome.result is not None:
                accepted += 1
                print_result(outcome.result, out, prefix=f"{shown}: ")
            elif outcome.status == "refused":
                refusal(shown, error)
            else:
                lost(shown, error, "unknown, it may have been delivered"
                     if outcome.status == "unknown" else "not sent")  # fmt: skip
                return False
        return True

    with client() as smtp:
        for name in names:
            shown = printable(name)
            try:
                message = open_message(name)
            except (Failure, LocalProtocolError) as exc:
                if not flush(smtp):
                    break
                print(f"{shown}: skipped: {printable(str(exc))}", file=out)
                refused += 1
                statuses.append(exc.status if isinstance(exc, Failure) else EX_USAGE)
                continue
            if message.size <= PROGRESS_FROM:
                try:
                    message.scan()
                    content = b"".join(message.pieces())
                finally:
                    message.close()
                waiting.append((shown, Envelope.build(
                    message.sender, list(message.recipients), content,
                    smtputf8=message.smtputf8, body="8BITMIME" if message.body_8bit else None,
                )))  # fmt: skip
                held = sum(len(e.content or b"") for _, e in waiting)
                if (len(waiting) >= BATCH or held >= HELD_AT_MOST) and not flush(smtp):
                    break
                continue
            if not flush(smtp):
                break
            try:
                result = send_one(smtp, message, progress)
            except (ReplyError, NotSupported, LocalProtocolError, InvalidArgument) as exc:
                refusal(shown, exc)
                continue
            except SMTPError as exc:
                lost(shown, exc)
                break
            finally:
                message.close()
            accepted += 1
            print_result(result, out, prefix=f"{shown}: ")
        else:
            flush(smtp)
    not_sent = len(names) - accepted - refused
    print(f"{len(names)} messages: {accepted} accepted, {refused} refused, {not_sent} not sent",
          file=out)  # fmt: skip
    if not statuses:
        return EX_OK
    return EX_UNAVAILABLE if EX_UNAVAILABLE in statuses else statuses[0]


#: Small messages read whole and waiting for send_many hold at most about this much.
HELD_AT_MOST: Final = 4 * 1024 * 1024

#: Content beyond this size shows a progress line on a terminal.
PROGRESS_FROM: Final = 1024 * 1024


def send_one(smtp: SMTPClient, message: Outgoing, progress: TextIO | None) -> SendResult:
    """Send ``message`` on an open connection; a progress line on ``progress`` if given.

    The server's SIZE is checked before the content is read: against the
    stored size of a ready message before its body is scanned, and by the
    session itself (before MAIL) against the exact size.
    """
    from smtpcore.session import NotSupported

    from ._cli_mail import Progress

    limit = smtp.extensions.size
    if limit and message.size > limit and not message.size_is_exact:
        raise NotSupported(
            f"message of {message.size} octets or more exceeds the server's SIZE limit "
            f"of {limit} (RFC 1870)"
        )
    message.scan()
    pieces = message.pieces()
    bar = None
    if progress is not None and message.size > PROGRESS_FROM:
        bar = Progress(message.size, progress)
        pieces = bar.wrap(pieces)
    try:
        return smtp.sendmail(
            message.sender, list(message.recipients), pieces, smtputf8=message.smtputf8,
            body="8BITMIME" if message.body_8bit else None, size=message.size,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.end()  # also when interrupted: the error line must start a line


def cmd_probe(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from .probe import probe

    host, port = split_host(args.target, None, option="the target")
    if args.cafile is not None:
        _ssl_context(args.cafile)  # a missing or empty --cafile, named, before connecting
    return probe(host, port, implicit=args.implicit, cafile=args.cafile, timeout=args.timeout,
                 out=out)  # fmt: skip


#: The framework each transport needs beyond the standard library, and its extra.
EXTRAS: Final = {"trio": "trio", "anyio": "anyio"}


def cmd_serve(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from .serving import serve_command

    # Everything that can be checked is checked before the store is created,
    # so a mistake leaves no empty Maildir or mbox behind.
    _check_framework(args.transport)
    _check_loop(args.transport, args.loop)
    _check_serve_files(args)
    _check_listen(args.host, args.port)
    new = [path for path in (args.maildir, args.mbox) if path and not os.path.lexists(path)]
    try:
        return serve_command(args, out, err)
    except BaseException as exc:
        cause = _listen_error(exc)
        if cause is None:
            raise
        # Another process took the port between the check and the server's bind.
        for path in new:
            _remove_if_empty_store(Path(path))
        raise _listen_failure(args.host, args.port, cause) from None


def _check_framework(transport: str) -> None:
    """``Failure`` naming the extra to install when the transport's framework is missing."""
    import importlib.util

    module = EXTRAS.get(transport)
    if module is not None and importlib.util.find_spec(module) is None:
        raise Failure(
            f"--transport {transport} needs {module}, which is not installed: "
            f"pip install 'smtpcore[{EXTRAS[module]}]'",
            EX_UNAVAILABLE,
        )


def _check_loop(transport: str, loop: str) -> None:
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


def _check_serve_files(args: argparse.Namespace) -> None:
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
        from .serving import load_users

        read_input("--users", args.users)
        try:
            load_users(args.users)  # a malformed line, named, before the store exists
        except SystemExit as exc:
            raise Failure(str(exc.code).removeprefix("smtpcore: ")) from None
    if args.maildir and os.path.exists(args.maildir) and not os.path.isdir(args.maildir):
        raise Failure(f"--maildir {args.maildir}: is a file; give a directory")
    if args.mbox and os.path.isdir(args.mbox):
        raise Failure(f"--mbox {args.mbox}: is a directory; give a file")


def _check_listen(host: str, port: int) -> None:
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
                raise _listen_failure(host, port, exc) from None


def _listen_error(exc: BaseException) -> OSError | None:
    """The OSError of a failed bind, also inside the exception groups of trio and anyio."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc
    # By shape, not class: on 3.10 the groups come from the exceptiongroup backport.
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple):
        for each in inner:
            found = _listen_error(each) if isinstance(each, BaseException) else None
            if found is not None:
                return found
    return None


def _listen_failure(host: str, port: int, exc: OSError) -> Failure:
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


def _remove_if_empty_store(path: Path) -> None:
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


def cmd_demo(args: argparse.Namespace, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    from .demo import run_demo

    return run_demo(out, keep=args.keep)


def package_version() -> str:
    """The installed smtpcore's version: ``smtpcore.__version__``, else the package metadata."""
    import smtpcore

    version = getattr(smtpcore, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("smtpcore")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors (status 64) that suggest the nearest option or choice."""

    commands: dict[str, _Parser]  # the subcommands' parsers, on the top parser

    def error(self, message: str) -> NoReturn:
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            message += _nearest(match.group(1), choices)
        raise Failure(f"{message} (see {self.prog} --help)", EX_USAGE)

    def option_names(self) -> list[str]:
        """Every option string this parser knows: ``--host``, ``-h``..."""
        return [name for action in self._actions for name in action.option_strings]

    def refuse_unknown(self, extras: Sequence[str]) -> NoReturn:
        """One line for arguments nobody took, with the nearest known option."""
        first = extras[0]
        if first.startswith("-"):
            hint = _nearest(first.split("=", 1)[0], self.option_names())
            raise Failure(f"unknown option {first}{hint} (see {self.prog} --help)", EX_USAGE)
        raise Failure(f"unexpected argument {first!r} (see {self.prog} --help)", EX_USAGE)


def _nearest(word: str, known: Sequence[str]) -> str:
    """``"; did you mean --password-env?"``, or "" when nothing is close."""
    import difflib

    found = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if not found:
        found = [name for name in known if name.startswith(word) and len(word) > 2][:1]
    return f"; did you mean {found[0]}?" if found else ""


class _Help(argparse.RawDescriptionHelpFormatter):
    """Examples are printed as written; option columns a little wider than argparse's."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


_SEND_EXAMPLES: Final = """\
examples:
  smtpcore send --host smtp.example.org:587 --user me --password-env SMTP_PASSWORD \\
      --from me@example.org --to you@example.net --subject Report \\
      --body report.txt --attach figures.pdf
  echo "it works" | smtpcore send --host localhost:2525 --tls none \\
      --from a@example.org --to b@example.net --body -
  smtpcore send --host localhost:2525 --tls none --eml ready.eml --trace
"""

_SERVE_EXAMPLES: Final = """\
examples:
  smtpcore serve --port 2525 --maildir ./Maildir
  smtpcore serve --port 0 --mbox ./mail.mbox --transport trio
  smtpcore serve --port 2525 --maildir ./Maildir --tls-cert server.pem --users users.txt
"""

_PROBE_EXAMPLES: Final = """\
examples:
  smtpcore probe smtp.example.org:587
  smtpcore probe smtp.example.org --implicit
  smtpcore probe localhost:2525 --cafile ca.pem
"""

_DEMO_EXAMPLES: Final = """\
examples:
  smtpcore demo
  smtpcore demo --keep
"""

_TOP_EXAMPLES: Final = """\
exit statuses: 0 done, 64 usage, 66 no input file, 69 unavailable or refused (5xx),
75 try again later (4xx, timeout), 76 TLS or protocol error, 77 authentication refused

examples:
  smtpcore demo
  smtpcore serve --port 2525 --maildir ./Maildir
  smtpcore send --host localhost:2525 --tls none --from a@example.org --to b@example.net
  smtpcore probe smtp.example.org:587
"""


def parser() -> _Parser:
    """The ``smtpcore`` command's argument parser."""
    # No abbreviations: "--password" must not quietly mean "--password-env".
    top = _Parser(
        prog="smtpcore", formatter_class=_Help, allow_abbrev=False, epilog=_TOP_EXAMPLES,
        description="The smtpcore command: try a server, send mail, receive mail into a folder.",
    )  # fmt: skip
    top.add_argument("--version", action="version", version=f"smtpcore {package_version()}",
                     help="print the version of smtpcore and exit")  # fmt: skip
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    top.commands = {}

    def command(name: str, summary: str, examples: str) -> _Parser:
        made = sub.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".",
            epilog=examples, formatter_class=_Help, allow_abbrev=False,
        )  # fmt: skip
        assert isinstance(made, _Parser)
        top.commands[name] = made
        return made

    demo = command(
        "demo", "send real mail through every transport to a server on loopback", _DEMO_EXAMPLES
    )
    demo.add_argument("--keep", action="store_true",
                      help="keep the Maildir afterwards (default: removed)")  # fmt: skip
    demo.set_defaults(run=cmd_demo)

    send = command("send", "send one message", _SEND_EXAMPLES)
    send.add_argument("--host", required=True,
                      help="the server: HOST, HOST:PORT or [IPv6]:PORT (required)")  # fmt: skip
    send.add_argument("--port", type=int, default=None,
                      help="the port, if not in --host "
                           "(default: 25; 465 with --tls implicit)")  # fmt: skip
    send.add_argument("--tls", choices=["starttls", "implicit", "opportunistic", "none"],
                      default="starttls",
                      help="starttls: required; implicit: TLS from the first byte; "
                           "opportunistic: when offered; none (default: %(default)s)")  # fmt: skip
    send.add_argument("--cafile", metavar="FILE",
                      help="trust the CAs in this PEM file (default: the system's)")  # fmt: skip
    send.add_argument("--insecure", action="store_true",
                      help="do not verify the certificate (default: verify)")  # fmt: skip
    send.add_argument("--user", help="AUTH user name (default: no AUTH)")
    send.add_argument("--password-env", metavar="VAR",
                      help="read the password from the environment variable VAR "
                           "(default: ask on the terminal)")  # fmt: skip
    send.add_argument("--auth-in-clear", action="store_true",
                      help="allow AUTH without TLS (default: refused)")  # fmt: skip
    send.add_argument("--lmtp", action="store_true", help="speak LMTP (default: SMTP)")
    send.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                      help="seconds allowed for every step "
                           "(default: RFC 5321's, 5 to 10 minutes a step)")  # fmt: skip
    send.add_argument("--from", dest="sender", default="", metavar="ADDRESS",
                      help="sender address (default: From of --eml)")  # fmt: skip
    send.add_argument("--to", action="append", default=[], metavar="ADDRESS",
                      help="recipient, repeatable (default: none)")  # fmt: skip
    send.add_argument("--cc", action="append", default=[], metavar="ADDRESS",
                      help="copy recipient, repeatable (default: none)")  # fmt: skip
    send.add_argument("--bcc", action="append", default=[], metavar="ADDRESS",
                      help="blind copy recipient, not shown in the message, "
                           "repeatable (default: none)")  # fmt: skip
    send.add_argument("--subject", default="", help="the Subject (default: none)")
    send.add_argument("--body", metavar="FILE",
                      help="the body text from FILE, or - for stdin (default: empty)")  # fmt: skip
    send.add_argument("--attach", action="append", metavar="FILE",
                      help="attach FILE, MIME type guessed from its name, repeatable "
                           "(default: none)")  # fmt: skip
    ready = send.add_mutually_exclusive_group()
    ready.add_argument("--eml", metavar="PATH",
                       help="send this ready message file, or every .eml file of this "
                            "directory, instead (default: build one)")  # fmt: skip
    ready.add_argument("--maildir", metavar="DIR",
                       help="send every message of this Maildir (new/ and cur/) "
                            "(default: build one)")  # fmt: skip
    ready.add_argument("--mbox", metavar="FILE",
                       help="send every message of this mbox file "
                            "(default: build one)")  # fmt: skip
    send.add_argument("--trace", action="store_true",
                      help="show the conversation on stderr, credentials as *** "
                           "(default: off)")  # fmt: skip
    send.set_defaults(run=cmd_send)

    serve = command("serve", "receive mail into a Maildir or mbox", _SERVE_EXAMPLES)
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default: %(default)s)")  # fmt: skip
    serve.add_argument("--port", type=int, default=2525,
                       help="the port; 0 picks a free one (default: %(default)s)")  # fmt: skip
    target = serve.add_mutually_exclusive_group(required=True)
    target.add_argument("--maildir", metavar="DIR",
                        help="store into this Maildir, created if missing "
                             "(this or --mbox)")  # fmt: skip
    target.add_argument("--mbox", metavar="FILE",
                        help="append to this mbox file, created if missing "
                             "(this or --maildir)")  # fmt: skip
    serve.add_argument("--tls-cert", metavar="FILE",
                       help="certificate chain (PEM) for STARTTLS "
                            "(default: no STARTTLS)")  # fmt: skip
    serve.add_argument("--tls-key", metavar="FILE",
                       help="its private key (PEM) (default: in --tls-cert)")  # fmt: skip
    serve.add_argument("--users", metavar="FILE",
                       help="AUTH users, one user:password a line (default: no AUTH)")  # fmt: skip
    serve.add_argument("--lmtp", action="store_true", help="speak LMTP (default: SMTP)")
    serve.add_argument("--hostname", default="localhost",
                       help="the name in greetings and Received fields "
                            "(default: %(default)s)")  # fmt: skip
    serve.add_argument("--transport", choices=["sync", "asyncio", "trio", "anyio"],
                       default="asyncio",
                       help="which server runs; trio and anyio need their extra "
                            "(default: %(default)s)")  # fmt: skip
    serve.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                       help="the event loop of --transport asyncio; uvloop needs the uvloop "
                            "extra (default: %(default)s)")  # fmt: skip
    serve.add_argument("--grace", type=float, default=10.0,
                       help="seconds messages in flight get to finish on SIGINT/SIGTERM "
                            "(default: %(default)s)")  # fmt: skip
    serve.add_argument("--max-connections", type=int, default=500,
                       help="sessions served at once; more get 421 4.7.0 "
                            "(default: %(default)s)")  # fmt: skip
    serve.add_argument("--max-connections-per-client", type=int, default=50,
                       help="sessions served at once from one client address "
                            "(default: %(default)s)")  # fmt: skip
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="serve in N processes sharing the port (SO_REUSEPORT, Linux); "
                            "the caps are divided among them (default: %(default)s)")  # fmt: skip
    serve.set_defaults(run=cmd_serve)

    probe = command("probe", "show what a server offers; sends no mail", _PROBE_EXAMPLES)
    probe.add_argument("target", help="HOST or HOST:PORT (port 25, or 465 with --implicit)")
    probe.add_argument("--implicit", action="store_true",
                       help="TLS from the first byte, as on port 465 "
                            "(default: STARTTLS)")  # fmt: skip
    probe.add_argument("--cafile", metavar="FILE",
                       help="trust the CAs in this PEM file (default: the system's)")  # fmt: skip
    probe.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                       help="seconds allowed for every step (default: %(default)s)")  # fmt: skip
    probe.set_defaults(run=cmd_probe)
    return top


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line; ``Failure`` (usage) with a suggestion for a mistyped option.

    Unknown options are looked for first: argparse would otherwise complain
    about a missing required option before it mentions the misspelt one.
    """
    given = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    chosen = top
    for token in given:
        if token == "--":
            break
        if chosen is top and token in top.commands:
            chosen = top.commands[token]
        elif (
            token.startswith("-")
            and token != "-"
            and not _NUMBER.match(token)
            and token.split("=", 1)[0] not in chosen.option_names()
        ):
            chosen.refuse_unknown([token])
    args, extras = top.parse_known_args(given)
    if extras:
        top.commands.get(args.command, top).refuse_unknown(extras)
    return args


_NUMBER: Final = re.compile(r"-\.?[0-9]")  # a negative number is a value, not an option


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
        run: Callable[[argparse.Namespace, BinaryIO, TextIO, TextIO], int] = args.run
        return run(args, stdin or sys.stdin.buffer, out, err)
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
