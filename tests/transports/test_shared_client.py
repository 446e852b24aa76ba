"""One client shared by several tasks (or threads): its operations take turns.

Against one of our servers on loopback. Without turns, ten concurrent sends on
one connection interleave their commands and deliver nothing; with them, each
send is whole, in the order the calls were made, and a cancelled task leaves
the connection either clean or closed, never out of step.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import anyio
import pytest

from smtpcore import ProtocolError, SMTPError
from transports.mailboxes import MemoryHandler
from transports.sync import SMTPServer

from .conftest import Smtp, run

COUNT = 10


def message(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.net", f"number {number}"
    msg.set_content(f"This is message {number}.\n")
    return msg


@pytest.fixture
def inbox() -> Iterator[tuple[MemoryHandler, int]]:
    handler = MemoryHandler()
    with SMTPServer(handler, "127.0.0.1", 0) as server:
        yield handler, server.port


def subjects(handler: MemoryHandler) -> list[str]:
    out = []
    for envelope in handler.messages:
        header = envelope.original_content.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
        out.append(header.decode())
    return out


def test_ten_concurrent_sends_on_one_client_deliver_ten(
    kind: str, inbox: tuple[MemoryHandler, int]
) -> None:
    handler, port = inbox
    results: list[Any] = []

    async def body() -> None:
        async with Smtp(kind, "127.0.0.1", port, tls="none", timeout=5.0) as smtp:
            client = smtp.client
            if kind == "sync":
                threads = [
                    threading.Thread(
                        target=lambda n=n: results.append(client.send_message(message(n)))
                    )
                    for n in range(COUNT)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(30)
            elif kind == "asyncio":
                results.extend(
                    await asyncio.gather(*(client.send_message(message(n)) for n in range(COUNT)))
                )
            else:

                async def one(n: int) -> None:
                    results.append(await client.send_message(message(n)))

                async with anyio.create_task_group() as group:
                    for n in range(COUNT):
                        group.start_soon(one, n)
            assert (await smtp.noop()).code == 250  # the conversation is still in step

    run(kind, body)
    assert len(results) == COUNT
    assert all(list(result.accepted) == ["b@example.net"] for result in results)
    delivered = subjects(handler)
    assert sorted(delivered) == sorted(f"number {n}" for n in range(COUNT))
    if kind == "asyncio":  # gather starts the tasks in order: they take turns in that order
        assert delivered == [f"number {n}" for n in range(COUNT)]


async def _held(started: anyio.Event, release: anyio.Event) -> Any:
    """Content that keeps its sender inside its turn, mid-DATA, until ``release``."""
    yield b"Subject: held\r\n\r\nfirst part\r\n"
    started.set()
    await release.wait()
    yield b"second part\r\n"


def test_a_waiter_cancelled_before_its_turn_changes_nothing(
    async_kind: str, inbox: tuple[MemoryHandler, int]
) -> None:
    handler, port = inbox
    outcome: dict[str, Any] = {}

    async def body() -> None:
        async with Smtp(async_kind, "127.0.0.1", port, tls="none", timeout=5.0) as smtp:
            client = smtp.client
            started, release = anyio.Event(), anyio.Event()

            async def first() -> None:
                outcome["first"] = await client.sendmail(
                    "a@example.org", ["b@example.net"], _held(started, release)
                )

            async def waiter(scope: anyio.CancelScope) -> None:
                with scope:
                    await client.send_message(message(2))
                outcome["waiter cancelled"] = scope.cancel_called

            scope = anyio.CancelScope()
            async with anyio.create_task_group() as group:
                group.start_soon(first)
                await started.wait()
                group.start_soon(waiter, scope)
                await anyio.sleep(0.1)  # the waiter now waits for its turn
                scope.cancel()
                await anyio.sleep(0.05)
                release.set()
            outcome["third"] = await client.send_message(message(3))

    run(async_kind, body)
    assert outcome["waiter cancelled"]
    assert list(outcome["first"].accepted) == ["b@example.net"]
    assert list(outcome["third"].accepted) == ["b@example.net"]
    assert subjects(handler) == ["held", "number 3"]


def test_a_task_cancelled_mid_transaction_leaves_the_connection_closed(
    async_kind: str, inbox: tuple[MemoryHandler, int]
) -> None:
    """Never out of step: the next operation fails cleanly instead of pairing stale replies."""
    handler, port = inbox
    outcome: dict[str, Any] = {}

    async def body() -> None:
        smtp = Smtp(async_kind, "127.0.0.1", port, tls="none", timeout=5.0)
        await smtp.connect()
        client = smtp.client
        started, release = anyio.Event(), anyio.Event()
        with anyio.CancelScope() as scope:

            async def cancel_when_started() -> None:
                await started.wait()
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_when_started)
                await client.sendmail("a@example.org", ["b@example.net"], _held(started, release))
        try:
            await client.send_message(message(2))
        except (SMTPError, ProtocolError) as exc:
            outcome["next"] = exc
        await smtp.close()

    run(async_kind, body)
    error = outcome.get("next")
    assert isinstance(error, SMTPError), error  # not a ProtocolError of a desynchronised session
    assert "not connected" in str(error)
    assert handler.messages == []


def test_threads_take_turns_in_the_order_they_asked() -> None:
    from transports.sync import _Turns

    turns = _Turns()
    order: list[int] = []

    def one(n: int) -> None:
        with turns:
            order.append(n)

    threads = []
    with turns:
        for n in range(5):
            threads.append(threading.Thread(target=one, args=(n,)))
            threads[-1].start()
            for _ in range(500):  # until this one is parked in the queue
                if len(turns._queue) == n + 1:
                    break
                threading.Event().wait(0.01)
            assert len(turns._queue) == n + 1
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]
    with turns:  # free again
        pass


def test_close_from_another_thread_ends_a_blocked_operation_at_once() -> None:
    """close() does not wait for a turn, and a thread blocked reading is woken by it."""
    from smtpcore.session import ConnectionLost
    from transports.sync import SMTPClient

    listener = __import__("socket").create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()

    def silent_server() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.sendall(b"220 mx.example ESMTP\r\n")
            sock.recv(1024)  # EHLO
            sock.sendall(b"250 mx.example\r\n")
            sock.recv(1024)  # NOOP: never answered
            done.wait(10)
        listener.close()

    threading.Thread(target=silent_server, daemon=True).start()
    client = SMTPClient("127.0.0.1", port, tls="none", timeout=8.0)
    client.connect()
    errors: list[BaseException] = []

    def noop() -> None:
        try:
            client.noop()
        except BaseException as exc:
            errors.append(exc)

    blocked = threading.Thread(target=noop)
    blocked.start()
    threading.Event().wait(0.3)  # the NOOP now waits for its reply
    client.close()
    blocked.join(10)
    done.set()
    assert not blocked.is_alive()
    # Woken by the close: the connection was lost, not a timeout after 8 s.
    assert len(errors) == 1 and isinstance(errors[0], ConnectionLost), errors
