"""Fixtures for the server suite: five servers behind one interface, certificates, helpers.

Every server runs in a background thread (the async ones in an anyio
blocking portal with their own event loop), so test bodies are plain
functions driving real clients: smtplib, aiosmtplib (``asyncio.run``), swaks,
and raw sockets.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import anyio
import anyio.from_thread
import pytest
import trio
import trustme

from smtpcore import Reply
from smtpcore.session._server import ServerEnvelope

KINDS: Final = ("sync", "asyncio", "asyncio-uvloop", "trio", "anyio-asyncio", "anyio-trio")
# uvloop is in the tests extra; a developer without it skips its servers, CI never does.
NO_UVLOOP: Final = importlib.util.find_spec("uvloop") is None and not os.environ.get("CI")
USER: Final = "alice"
PASSWORD: Final = "wonderland"


class Memory:
    """A handler keeping every envelope; AUTH for alice; hooks can be told to fail."""

    def __init__(self) -> None:
        self.messages: list[ServerEnvelope] = []
        self.fail_rcpt: set[str] = set()

    def on_rcpt(self, recipient: str, params: object) -> Reply | None:
        if recipient in self.fail_rcpt:
            raise RuntimeError(f"hook failure for {recipient}")
        if recipient.startswith("nobody@"):
            return Reply(550, ("5.1.1 No such user",))
        return None

    def on_message(self, envelope: ServerEnvelope) -> None:
        self.messages.append(envelope)

    def authenticate(self, username: str, password: str) -> bool:
        return (username, password) == (USER, PASSWORD)

    def lookup_secret(self, mechanism: str, username: str) -> str | None:
        return PASSWORD if username == USER else None


@dataclass
class Running:
    """One started server: its port, and how to stop it (gracefully within ``grace``)."""

    port: int
    stop: Callable[[], object]
    stopped: bool = field(default=False)
    dropped: object = None  # what the graceful close returned: sessions cut

    def close(self) -> None:
        """Stop gracefully (within the ``grace`` given to ``start``) and wait for the end."""
        if not self.stopped:
            self.stopped = True
            self.dropped = self.stop()


def _start_sync(handler: object, options: dict[str, Any], grace: float) -> Running:
    from transports._serve_sync import SMTPServer

    server = SMTPServer(handler, "127.0.0.1", 0, **options).start()
    return Running(server.port, partial(server.close, grace))


async def _run_asyncio(
    handler: object,
    options: dict[str, Any],
    stop: asyncio.Event,
    grace: float,
    uvloop: bool,
    *,
    task_status: anyio.abc.TaskStatus[int],
) -> int:
    from transports._serve_asyncio import start_server

    server = await start_server(handler, "127.0.0.1", 0, **options)
    if uvloop:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    task_status.started(server.port)
    await stop.wait()
    return await server.aclose(grace)


def _start_portal(kind: str, handler: object, options: dict[str, Any], grace: float) -> Running:
    backend = "trio" if kind in ("trio", "anyio-trio") else "asyncio"
    stack = ExitStack()
    backend_options = {"use_uvloop": True} if kind == "asyncio-uvloop" else {}
    portal = stack.enter_context(anyio.from_thread.start_blocking_portal(backend, backend_options))
    future: Future[int]
    if kind in ("asyncio", "asyncio-uvloop"):
        event: Any = portal.call(asyncio.Event)
        job = partial(_run_asyncio, handler, options, event, grace, kind == "asyncio-uvloop")
        future, port = portal.start_task(job)
    elif kind == "trio":
        from transports._serve_trio import serve as trio_serve

        event = portal.call(trio.Event)
        job = partial(trio_serve, handler, "127.0.0.1", 0, shutdown=event, grace=grace, **options)
        future, port = portal.start_task(job)
    else:
        from transports._serve_anyio import serve as anyio_serve

        event = portal.call(anyio.Event)
        job = partial(anyio_serve, handler, "127.0.0.1", 0, shutdown=event, grace=grace, **options)
        future, port = portal.start_task(job)

    def stop() -> int:
        portal.call(event.set)
        dropped = future.result(timeout=grace + 10)
        stack.close()
        return dropped

    return Running(port, stop)


#: ``KINDS`` for ``pytest.mark.parametrize``: uvloop's skipped where it may be.
KIND_PARAMS: Final = [
    pytest.param(kind, marks=pytest.mark.skipif(NO_UVLOOP, reason="uvloop is not installed"))
    if kind == "asyncio-uvloop"
    else kind
    for kind in KINDS
]


@pytest.fixture(params=KIND_PARAMS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Starter = Callable[..., Running]


@pytest.fixture
def start(kind: str) -> Iterator[Starter]:
    """``start(handler, **options)``: a server of this test's kind on 127.0.0.1, port 0."""
    running: list[Running] = []

    def starter(handler: object, *, grace: float = 0.5, **options: Any) -> Running:
        # No pause after a failed AUTH unless a test asks for one: it would only slow them.
        options.setdefault("auth_failure_delay", 0.0)
        if kind == "sync":
            server = _start_sync(handler, options, grace)
        else:
            server = _start_portal(kind, handler, options, grace)
        running.append(server)
        return server

    yield starter
    for server in running:
        server.close()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class Raw:
    """A raw client socket: send bytes, read replies line by line, exact."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout
        )
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed; buffered {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def reply(self) -> bytes:
        """One whole reply, all its lines."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return b"".join(lines)

    def is_closed(self) -> bool:
        """True when the server closed (EOF) with nothing more to read."""
        if self.buffer:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def starttls(self, context: ssl.SSLContext) -> None:
        assert not self.buffer
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Callable[[int], Raw]]:
    opened: list[Raw] = []

    def connect(port: int, timeout: float = 5.0) -> Raw:
        client = Raw(port, timeout)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; the servers store from other threads."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()
