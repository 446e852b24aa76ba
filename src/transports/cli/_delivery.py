"""Ready messages on an open connection: one streamed with its progress, or many pipelined."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from smtpcore import InvalidArgument, LocalProtocolError
from smtpcore.session import SendResult, SMTPError

from ._inputs import open_input
from ._output import (
    EX_NOINPUT,
    EX_OK,
    EX_UNAVAILABLE,
    EX_USAGE,
    Failure,
    exit_status,
    print_result,
    printable,
)

if TYPE_CHECKING:
    from ..sync import SMTPClient
    from ._mail import Outgoing

__all__ = ["HELD_AT_MOST", "PROGRESS_FROM", "open_ready", "ready_messages", "send_many", "send_one"]


def _envelope(args: argparse.Namespace) -> tuple[str | None, list[str] | None]:
    """The sender and recipients given as options, None where a ready message's fields serve."""
    return args.sender or None, list(dict.fromkeys([*args.to, *args.cc, *args.bcc])) or None


def open_ready(args: argparse.Namespace, option: str, path: str) -> Outgoing:
    """The ready message in the file ``path``; the options' envelope, if given, overrides it."""
    from ._ready import from_file

    sender, recipients = _envelope(args)
    file = open_input(option, path)
    try:
        return from_file(file, name=path, sender=sender, recipients=recipients)
    except BaseException:
        file.close()
        raise


def ready_messages(args: argparse.Namespace) -> tuple[list[str], Callable[[str], Outgoing]]:
    """The names of the ready messages to send, and how to open one (lazily, one at a time)."""
    from ._ready import from_file, mbox_spans

    if args.maildir:
        folder = Path(args.maildir)
        if not (folder / "cur").is_dir() or not (folder / "new").is_dir():
            raise Failure(f"--maildir {folder}: not a Maildir (it needs cur/ and new/)", EX_NOINPUT)
        names = [str(path) for sub in ("new", "cur") for path in sorted((folder / sub).iterdir())
                 if path.is_file() and not path.name.startswith(".")]  # fmt: skip
        return names, lambda path: open_ready(args, "--maildir", path)
    if args.eml:
        names = sorted(str(path) for path in Path(args.eml).iterdir()
                       if path.suffix.lower() == ".eml" and path.is_file())  # fmt: skip
        return names, lambda path: open_ready(args, "--eml", path)
    sender, recipients = _envelope(args)
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
    from smtpcore.driver import BATCH
    from smtpcore.session import Envelope, NotSupported, ReplyError

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

    from ._progress import Progress

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
