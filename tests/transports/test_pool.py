"""``Pool`` for the async clients, over real loopback sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import anyio
import pytest

from smtpcore.session import ConnectionLost, SMTPError
from transports.mailboxes import MemoryHandler
from transports.sync import SMTPServer

from .conftest import run, sleep, transport_module
from .test_clients import wait_for_messages


def message(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.net", f"n{number}"
    msg.set_content(f"This is message {number}.\n")
    return msg


def pool(kind: str, port: int, **options: Any) -> Any:
    options.setdefault("tls", "none")
    options.setdefault("timeout", 5.0)
    return transport_module(kind).Pool("127.0.0.1", port, **options)


class LineServer:
    """A small SMTP server speaking by lines, for the pool's sake.

    ``per_connection`` messages per connection, then it closes without a word
    (an idle close); ``hold`` keeps the reply to an end of data until set.
    Counts the connections it accepted and the most open at once.
    """

    def __init__(self, per_connection: int = 1000) -> None:
        self.per_connection = per_connection
        self.hold = threading.Event()
        self.hold.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self.delivered: list[bytes] = []
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.running = False
        self.listener.close()

    def _accept(self) -> None:
        while self.running:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
                self.most_open = max(self.most_open, self.open)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        reader = sock.makefile("rb")
        try:
            sock.sendall(b"220 line.example ESMTP\r\n")
            served = 0
            while True:
                line = reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    sock.sendall(b"250-line.example\r\n250 PIPELINING\r\n")
                elif verb == b"DATA":
                    sock.sendall(b"354 go\r\n")
                    content = b""
                    while (piece := reader.readline()) not in (b".\r\n", b""):
                        content += piece
                    self.hold.wait(10)
                    with self.lock:
                        self.delivered.append(content)
                    sock.sendall(b"250 queued\r\n")
                    served += 1
                    if served >= self.per_connection:
                        return  # the idle close: no 421, nothing
                elif verb == b"QUIT":
                    sock.sendall(b"221 bye\r\n")
                    return
                else:
                    sock.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            with self.lock:
                self.open -= 1
            sock.close()


@pytest.fixture
def line_server() -> Iterator[Any]:
    servers: list[LineServer] = []

    def start(**options: Any) -> LineServer:
        servers.append(LineServer(**options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_many_tasks_share_a_bounded_number_of_connections(
    async_kind: str, line_server: Any
) -> None:
    server = line_server()
    results: list[Any] = []

    async def body() -> None:
        async with pool(async_kind, server.port, connections=3) as smtp:

            async def one(n: int) -> None:
                results.append(await smtp.send_message(message(n)))

            async with anyio.create_task_group() as group:
                for n in range(30):
                    group.start_soon(one, n)

    run(async_kind, body)
    assert len(results) == 30 and all(r.reply.code == 250 for r in results)
    assert len(server.delivered) == 30
    assert server.most_open <= 3
    assert server.accepted <= 3  # reused, not reopened


def test_a_silently_closed_idle_connection_is_replaced(async_kind: str, line_server: Any) -> None:
    """The server closes after each message: the next send finds out and goes on a fresh one."""
    server = line_server(per_connection=1)

    async def body() -> list[Any]:
        async with pool(async_kind, server.port, connections=1) as smtp:
            results = []
            for n in range(3):
                results.append(await smtp.send_message(message(n)))
                await sleep(async_kind, 0.05)  # the server's close arrives meanwhile
            return results

    results = run(async_kind, body)
    assert [r.reply.code for r in results] == [250, 250, 250]
    assert len(server.delivered) == 3  # each once: none sent twice
    assert server.accepted == 3


def test_a_421_for_an_idle_timeout_is_replaced(async_kind: str) -> None:
    """Our server says 421 and closes an idle connection; the pool reconnects."""
    inbox = MemoryHandler()
    with SMTPServer(inbox, "127.0.0.1", 0, idle_timeout=0.3) as server:

        async def body() -> list[Any]:
            async with pool(async_kind, server.port, connections=2) as smtp:
                first = await smtp.send_message(message(0))
                await sleep(async_kind, 0.8)
                outcomes = [o async for o in smtp.send_many(message(n) for n in range(1, 5))]
                return [first, *outcomes]

        first, *outcomes = run(async_kind, body)
        assert wait_for_messages(inbox, 5)
    assert first.reply.code == 250
    assert [o.status for o in outcomes] == ["accepted"] * 4
    assert len(inbox.messages) == 5


def test_a_cancelled_send_closes_its_connection_and_the_pool_goes_on(
    async_kind: str, line_server: Any
) -> None:
    server = line_server()
    server.hold.clear()

    async def body() -> Any:
        async with pool(async_kind, server.port, connections=1) as smtp:
            with anyio.move_on_after(0.5):
                await smtp.send_message(message(0))  # its reply is held: cancelled
            server.hold.set()
            return await smtp.send_message(message(1))

    result = run(async_kind, body)
    assert result.reply.code == 250
    assert server.accepted == 2  # the cancelled connection was not reused


def test_a_refused_connection_raises_and_a_closed_pool_refuses(async_kind: str) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    async def body() -> None:
        async with pool(async_kind, port, connections=2) as smtp:
            with pytest.raises(ConnectionLost):
                await smtp.send_message(message(0))
        with pytest.raises(SMTPError, match="closed"):
            await smtp.send_message(message(1))

    run(async_kind, body)


def test_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="connections"):
        transport_module("asyncio").Pool("127.0.0.1", 25, connections=0)
