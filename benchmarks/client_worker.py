"""One client benchmark in its own process: send messages, print a JSON line of figures.

    python benchmarks/client_worker.py KIND PORT MESSAGES CONNECTIONS [--file PATH]

KIND is one of ``CLIENTS``. MESSAGES 1 KB messages are spread over
CONNECTIONS concurrent connections (one for the blocking clients); with
``--file`` one message is sent from that file instead. Printed: messages,
wall seconds and CPU seconds of this process from the first connect to the
last QUIT (imports and interpreter start are left out).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import HELO, HOST, RECIPIENT, SENDER, message

CLIENTS = (
    "smtpcore-sync",
    "smtpcore-asyncio",
    "smtpcore-trio",
    "smtpcore-anyio",
    "smtplib",
    "aiosmtplib",
    "smtpproto-asyncio",
    "smtpproto-trio",
)


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _content(path: Path | None) -> Callable[[], Any]:
    """A fresh content argument per message: the 1 KB bytes, or an open file to stream."""
    if path is None:
        data = message()
        return lambda: data
    return lambda: open(path, "rb")


def run_sync(kind: str, port: int, count: int, path: Path | None) -> None:
    content = _content(path)
    if kind == "smtplib":
        import smtplib

        with smtplib.SMTP(HOST, port, local_hostname=HELO) as smtp:
            for _ in range(count):
                item = content()
                data = item if isinstance(item, bytes) else item.read()  # smtplib wants it whole
                smtp.sendmail(SENDER, [RECIPIENT], data)
        return
    from transports.sync import SMTPClient

    with SMTPClient(HOST, port, tls="none", local_hostname=HELO) as client:
        for _ in range(count):
            item = content()
            try:
                client.sendmail(SENDER, [RECIPIENT], item)
            finally:
                if not isinstance(item, bytes):
                    item.close()


async def _one_connection(kind: str, port: int, count: int, path: Path | None) -> None:
    content = _content(path)
    if kind == "aiosmtplib":
        import aiosmtplib

        smtp = aiosmtplib.SMTP(
            hostname=HOST, port=port, local_hostname=HELO, use_tls=False, start_tls=False
        )
        await smtp.connect()
        for _ in range(count):
            item = content()
            data = item if isinstance(item, bytes) else item.read()
            await smtp.sendmail(SENDER, [RECIPIENT], data)
        await smtp.quit()
        return
    if kind.startswith("smtpproto"):
        import email
        import email.policy

        from smtpproto.client import AsyncSMTPClient

        item = content()
        raw = item if isinstance(item, bytes) else item.read()
        msg = email.message_from_bytes(raw, policy=email.policy.SMTP)
        client = AsyncSMTPClient(HOST, port, domain=HELO)
        async with client.connect() as session:
            for _ in range(count):
                await session.send_message(msg, sender=SENDER, recipients=[RECIPIENT])
        return
    if kind == "smtpcore-asyncio":
        from transports.asyncio import SMTPClient as AsyncioClient

        client_type: Any = AsyncioClient
    elif kind == "smtpcore-trio":
        from transports.trio import SMTPClient as TrioClient

        client_type = TrioClient
    else:
        from transports.anyio import SMTPClient as AnyioClient

        client_type = AnyioClient
    async with client_type(HOST, port, tls="none", local_hostname=HELO) as smtp:
        for _ in range(count):
            item = content()
            try:
                await smtp.sendmail(SENDER, [RECIPIENT], item)
            finally:
                if not isinstance(item, bytes):
                    item.close()


def run_async(kind: str, port: int, count: int, connections: int, path: Path | None) -> None:
    async def main() -> None:
        shares = _shares(count, connections)
        if kind in ("smtpcore-asyncio", "aiosmtplib", "smtpproto-asyncio"):
            import asyncio

            await asyncio.gather(*(_one_connection(kind, port, n, path) for n in shares))
        else:
            import anyio

            async with anyio.create_task_group() as group:
                for n in shares:
                    group.start_soon(_one_connection, kind, port, n, path)

    runner: Callable[[Callable[[], Awaitable[None]]], None]
    if kind in ("smtpcore-trio", "smtpproto-trio"):
        import trio

        runner = trio.run
    else:
        import asyncio

        def runner(fn: Callable[[], Awaitable[None]]) -> None:
            asyncio.run(fn())  # type: ignore[arg-type]

    runner(main)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=CLIENTS)
    parser.add_argument("port", type=int)
    parser.add_argument("messages", type=int)
    parser.add_argument("connections", type=int)
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    # Import everything before the clock starts.
    if args.kind in ("smtpcore-sync", "smtplib"):
        if args.connections != 1:
            parser.error("the blocking clients use one connection")
        import transports.sync
    else:
        import anyio  # noqa: F401
        import trio  # noqa: F401

        import transports.anyio
        import transports.asyncio
        import transports.trio  # noqa: F401
    wall, cpu = time.perf_counter(), time.process_time()
    if args.kind in ("smtpcore-sync", "smtplib"):
        run_sync(args.kind, args.port, args.messages, args.file)
    else:
        run_async(args.kind, args.port, args.messages, args.connections, args.file)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"messages": args.messages, "seconds": wall, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
