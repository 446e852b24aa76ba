"""``smtpcore demo``: real mail through every client to a server on loopback.

An embedded server (the sync one, threads) listens on a free port of
127.0.0.1 and stores into a Maildir in a temporary folder. Each client whose
framework is installed sends one classic message (the sync and asyncio ones
always; trio and anyio with their extras); the conversation is printed as
``>`` (sent) and ``<`` (received) lines; each stored file is read back and
compared with what was sent. A client whose framework is missing is named
with the extra that brings it. Exit status 0 only when every client that ran
delivered intact.
"""

from __future__ import annotations

import asyncio
import importlib
import mailbox
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from smtpcore.session import SendResult

from . import asyncio as asyncio_transport
from . import sync as sync_transport
from .cli import Tracer
from .mailboxes import MaildirHandler

__all__ = ["run_demo"]

SENDER = "alice@example.org"
RECIPIENT = "bob@example.test"


def classic_message(kind: str) -> bytes:
    """The message each client sends: a Subject line and two body lines."""
    return (
        f"From: Alice <{SENDER}>\r\n"
        f"To: Bob <{RECIPIENT}>\r\n"
        f"Subject: Hello from the {kind} client\r\n"
        "\r\n"
        "This is the first line of the message.\r\n"
        "And this is the second.\r\n"
    ).encode()


def _send_sync(port: int, content: bytes, trace: Tracer) -> SendResult:
    with sync_transport.SMTPClient("127.0.0.1", port, tls="none", trace=trace) as smtp:
        return smtp.sendmail(SENDER, [RECIPIENT], content)


def _send_asyncio(port: int, content: bytes, trace: Tracer) -> SendResult:
    async def main() -> SendResult:
        client = asyncio_transport.SMTPClient("127.0.0.1", port, tls="none", trace=trace)
        async with client as smtp:
            return await smtp.sendmail(SENDER, [RECIPIENT], content)

    return asyncio.run(main())


def _send_trio(port: int, content: bytes, trace: Tracer) -> SendResult:
    import trio  # an optional extra: imported only when it is there

    from . import trio as trio_transport

    async def main() -> SendResult:
        async with trio_transport.SMTPClient("127.0.0.1", port, tls="none", trace=trace) as smtp:
            return await smtp.sendmail(SENDER, [RECIPIENT], content)

    return trio.run(main)


def _send_anyio(port: int, content: bytes, trace: Tracer) -> SendResult:
    import anyio  # an optional extra: imported only when it is there

    from . import anyio as anyio_transport

    async def main() -> SendResult:
        async with anyio_transport.SMTPClient("127.0.0.1", port, tls="none", trace=trace) as smtp:
            return await smtp.sendmail(SENDER, [RECIPIENT], content)

    return anyio.run(main)


CLIENTS: dict[str, Callable[[int, bytes, Tracer], SendResult]] = {
    "sync": _send_sync,
    "asyncio": _send_asyncio,
    "trio": _send_trio,
    "anyio": _send_anyio,
}


def missing_framework(kind: str) -> str | None:
    """Why the ``kind`` client cannot run here (its import error names the extra), or None.

    Only the framework itself being absent counts: any other import failure
    is a broken installation, and propagates.
    """
    try:
        importlib.import_module(f"transports.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != kind:
            raise
        return str(exc)
    return None


def _stored_body(raw: bytes) -> bytes:
    """A stored message without the Received header our server put in front."""
    assert raw.startswith(b"Received:"), raw[:40]
    end = raw.index(b"\n")
    while raw[end + 1 : end + 2] in (b" ", b"\t"):  # folded continuation lines
        end = raw.index(b"\n", end + 1)
    return raw[end + 1 :]


def run_demo(out: TextIO, *, keep: bool = False) -> int:
    """Run the demo; 0 when every message arrived intact."""
    folder = Path(tempfile.mkdtemp(prefix="smtpcore-demo-"))
    maildir = folder / "Maildir"
    intact = 0
    skipped: list[str] = []
    try:
        handler = MaildirHandler(maildir)
        with sync_transport.SMTPServer(
            handler, "127.0.0.1", 0, hostname="demo.smtpcore.test"
        ) as server:
            print(
                f"smtpcore demo: a server on 127.0.0.1:{server.port} stores into {maildir}",
                file=out,
            )
            for kind, send in CLIENTS.items():
                print(f"\n--- the {kind} client", file=out)
                why = missing_framework(kind)
                if why is not None:
                    print(f"skipped: {why}", file=out)
                    skipped.append(kind)
                    continue
                before = set(mailbox.Maildir(maildir).keys())
                content = classic_message(kind)
                result = send(server.port, content, Tracer(out))
                added = set(mailbox.Maildir(maildir).keys()) - before
                if len(added) != 1 or RECIPIENT not in result.accepted:
                    print(f"!!! expected one stored message, found {len(added)}", file=out)
                    continue
                path = next(maildir.glob(f"new/{added.pop()}*"))
                raw = path.read_bytes()
                print(f"stored as {path}:", file=out)
                for line in raw.decode("utf-8", "replace").splitlines():
                    print(f"  | {line}", file=out)
                if _stored_body(raw) == content.replace(b"\r\n", b"\n"):
                    intact += 1
                else:
                    print("!!! the stored message differs from what was sent", file=out)
        ran = len(CLIENTS) - len(skipped)
        verdict = "intact" if intact == ran else "NOT all intact"
        print(f"\n{intact} of {ran} messages arrived {verdict}.", file=out)
        if skipped:
            extras = ", ".join(f"pip install 'smtpcore[{kind}]'" for kind in skipped)
            print(f"Not run, framework not installed: {', '.join(skipped)} ({extras}).", file=out)
        if keep:
            print(f"The Maildir is kept in {maildir}.", file=out)
        return 0 if intact == ran else 1
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
