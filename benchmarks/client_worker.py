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

#: Reference rows, not clients: the bare-socket floors below.
FLOORS = ("floor-sync-1rt", "floor-sync-2rt", "floor-asyncio-1rt", "floor-asyncio-2rt")
#: ``send_many`` on each connection: messages pipelined across, one round trip each.
MANY = ("smtpcore-sync-many", "smtpcore-asyncio-many", "smtpcore-trio-many", "smtpcore-anyio-many")
#: One ``Pool`` of CONNECTIONS connections, one task per connection, each ``send_many``.
POOLS = ("smtpcore-asyncio-pool", "smtpcore-trio-pool", "smtpcore-anyio-pool")
CLIENTS = (
    "smtpcore-sync",
    "smtpcore-asyncio",
    "smtpcore-trio",
    "smtpcore-anyio",
    *MANY,
    *POOLS,
    "smtplib",
    "aiosmtplib",
    "smtpproto-asyncio",
    "smtpproto-trio",
    *FLOORS,
)


# -- the floors: canned bytes on a bare socket, no SMTP library -----------------------
#
# What a Python client pays when it does nothing but move the bytes of a pipelined
# conversation and count the replies: the least any client in Python can cost.
# "1rt" sends a message's end and the next envelope in one write (RFC 2920 3.1
# lets the content head a pipelined group), so one round trip per message; "2rt"
# waits for the 354 first, as a client that pipelines only MAIL/RCPT/DATA does.

_ENVELOPE = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode()


def _content_and_dot() -> bytes:
    data = message()
    # The benchmark message has no line starting with a dot, so it needs no stuffing.
    assert b"\n." not in data and not data.startswith(b".")
    return data + b".\r\n"


class _Finals:
    """Counts complete replies (their last lines) in what the server sends."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.seen = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        start = 0
        while (end := self.buffer.find(b"\r\n", start)) >= 0:
            if self.buffer[start] not in b"23":
                raise RuntimeError(f"refused: {bytes(self.buffer[start:end])!r}")
            if end - start == 3 or self.buffer[start + 3] == 0x20:
                self.seen += 1
            start = end + 2
        del self.buffer[:start]


def floor_sync(port: int, count: int, round_trips: int) -> None:
    import socket

    body, finals, due = _content_and_dot(), _Finals(), 0
    with socket.create_connection((HOST, port)) as sock:

        def wait(replies: int) -> None:
            nonlocal due
            due += replies
            while finals.seen < due:
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError("the server closed the connection")
                finals.feed(data)

        wait(1)
        sock.sendall(f"EHLO {HELO}\r\n".encode())
        wait(1)
        sock.sendall(_ENVELOPE)
        wait(3)
        for left in range(count - 1, -1, -1):
            if round_trips == 1 and left:
                sock.sendall(body + _ENVELOPE)
                wait(4)
            elif left:
                sock.sendall(body)
                wait(1)
                sock.sendall(_ENVELOPE)
                wait(3)
            else:
                sock.sendall(body)
                wait(1)
        sock.sendall(b"QUIT\r\n")
        wait(1)


async def floor_asyncio(port: int, count: int, round_trips: int) -> None:
    import asyncio

    body = _content_and_dot()
    loop = asyncio.get_running_loop()

    class Floor(asyncio.Protocol):
        def __init__(self) -> None:
            self.finals = _Finals()
            self.due = 0
            self.waiter: asyncio.Future[None] | None = None

        def data_received(self, data: bytes) -> None:
            self.finals.feed(data)
            if self.waiter is not None and self.finals.seen >= self.due:
                self.waiter.set_result(None)
                self.waiter = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self.waiter is not None:
                self.waiter.set_exception(ConnectionError("the server closed the connection"))

        async def wait(self, replies: int) -> None:
            self.due += replies
            if self.finals.seen < self.due:
                self.waiter = loop.create_future()
                await self.waiter

    transport, floor = await loop.create_connection(Floor, HOST, port)
    try:
        await floor.wait(1)
        transport.write(f"EHLO {HELO}\r\n".encode())
        await floor.wait(1)
        transport.write(_ENVELOPE)
        await floor.wait(3)
        for left in range(count - 1, -1, -1):
            if round_trips == 1 and left:
                transport.write(body + _ENVELOPE)
                await floor.wait(4)
            elif left:
                transport.write(body)
                await floor.wait(1)
                transport.write(_ENVELOPE)
                await floor.wait(3)
            else:
                transport.write(body)
                await floor.wait(1)
        transport.write(b"QUIT\r\n")
        await floor.wait(1)
    finally:
        transport.close()


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _content(path: Path | None) -> Callable[[], Any]:
    """A fresh content argument per message: the 1 KB bytes, or an open file to stream."""
    if path is None:
        data = message()
        return lambda: data
    return lambda: open(path, "rb")


def _envelopes(count: int, path: Path | None) -> Any:
    """``count`` (sender, recipients, content) items for send_many; the content in hand."""
    data = message() if path is None else path.read_bytes()
    return ((SENDER, [RECIPIENT], data) for _ in range(count))


def _check(outcomes: Any) -> None:
    """Consume the outcomes; fail the run unless every message was accepted."""
    for outcome in outcomes:
        if outcome.status != "accepted":
            raise RuntimeError(f"a message was {outcome.status}: {outcome.error}")


async def _acheck(outcomes: Any) -> None:
    async for outcome in outcomes:
        if outcome.status != "accepted":
            raise RuntimeError(f"a message was {outcome.status}: {outcome.error}")


def run_sync(kind: str, port: int, count: int, path: Path | None) -> None:
    if kind.startswith("floor-sync"):
        floor_sync(port, count, 1 if kind.endswith("1rt") else 2)
        return
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
        if kind == "smtpcore-sync-many":
            _check(client.send_many(_envelopes(count, path)))
            return
        for _ in range(count):
            item = content()
            try:
                client.sendmail(SENDER, [RECIPIENT], item)
            finally:
                if not isinstance(item, bytes):
                    item.close()


async def _one_connection(kind: str, port: int, count: int, path: Path | None) -> None:
    if kind.startswith("floor-asyncio"):
        await floor_asyncio(port, count, 1 if kind.endswith("1rt") else 2)
        return
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
    if kind.startswith("smtpcore-asyncio"):
        from transports.asyncio import SMTPClient as AsyncioClient

        client_type: Any = AsyncioClient
    elif kind.startswith("smtpcore-trio"):
        from transports.trio import SMTPClient as TrioClient

        client_type = TrioClient
    else:
        from transports.anyio import SMTPClient as AnyioClient

        client_type = AnyioClient
    async with client_type(HOST, port, tls="none", local_hostname=HELO) as smtp:
        if kind.endswith("-many"):
            await _acheck(smtp.send_many(_envelopes(count, path)))
            return
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
        if kind in POOLS:
            import anyio

            from transports import anyio as anyio_transport
            from transports import asyncio as asyncio_transport
            from transports import trio as trio_transport

            module: Any = {"asyncio": asyncio_transport, "trio": trio_transport}.get(
                kind.split("-")[1], anyio_transport
            )
            pool = module.Pool(HOST, port, connections=connections, tls="none", local_hostname=HELO)
            async with pool, anyio.create_task_group() as group:
                for n in shares:
                    group.start_soon(_acheck, pool.send_many(_envelopes(n, path)))
            return
        if kind in (
            "smtpcore-asyncio",
            "smtpcore-asyncio-many",
            "aiosmtplib",
            "smtpproto-asyncio",
        ) or kind.startswith("floor-asyncio"):
            import asyncio

            await asyncio.gather(*(_one_connection(kind, port, n, path) for n in shares))
        else:
            import anyio

            async with anyio.create_task_group() as group:
                for n in shares:
                    group.start_soon(_one_connection, kind, port, n, path)

    runner: Callable[[Callable[[], Awaitable[None]]], None]
    if kind in ("smtpcore-trio", "smtpcore-trio-many", "smtpcore-trio-pool", "smtpproto-trio"):
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
    blocking = args.kind in ("smtpcore-sync", "smtpcore-sync-many", "smtplib") or (
        args.kind.startswith("floor-sync")
    )
    if blocking:
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
    if blocking:
        run_sync(args.kind, args.port, args.messages, args.file)
    else:
        run_async(args.kind, args.port, args.messages, args.connections, args.file)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"messages": args.messages, "seconds": wall, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
