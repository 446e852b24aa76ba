"""The hostile-peer suite: real loopback sockets, every transport, tiny timeouts.

``hostile(play)`` starts a server thread that accepts one connection and runs
``play(peer)``, where ``peer`` can send anything, read what the client sent,
and start TLS. Everything the client sent in clear is kept in
``peer.clear``, so a test can prove that no MAIL, AUTH or message data went
out unencrypted. The client side reuses tests/transports/conftest.py's
facade (five kinds of client); the server side reuses tests/servers/.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from tests.servers.conftest import Memory, Raw, Running, _start_portal, _start_sync
from tests.transports.conftest import KINDS, Smtp, run

__all__ = ["KINDS", "Hostile", "Memory", "Peer", "Raw", "Running", "Smtp", "run"]

TIMEOUT = 1.0  # every client and server operation in this suite


class Peer:
    """The hostile server's side of one connection."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLContext) -> None:
        self.sock: socket.socket = sock
        self.tls = tls
        self.clear = b""  # what the client sent before any TLS
        self.encrypted = b""
        self.is_tls = False
        self.pending = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> bytes:
        """One read from the client ("" when it closed), kept in ``clear`` or ``encrypted``."""
        try:
            chunk = self.sock.recv(65536)
        except (OSError, ssl.SSLError):
            chunk = b""
        if self.is_tls:
            self.encrypted += chunk
        else:
            self.clear += chunk
        self.pending += chunk
        return chunk

    def line(self) -> bytes:
        """The next line the client sent ("" when it closed)."""
        while b"\r\n" not in self.pending:
            if not self.receive():
                line, self.pending = self.pending, b""
                return line
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line + b"\r\n"

    def take_data(self) -> bytes:
        """The octets up to and including the end marker (the client then waits for a reply)."""
        while not self.pending.endswith(b"\r\n.\r\n") and self.pending != b".\r\n":
            if not self.receive():
                break
        data, self.pending = self.pending, b""
        return data

    def take_octets(self, count: int) -> bytes:
        """Exactly ``count`` octets (fewer only if the client closed)."""
        while len(self.pending) < count:
            if not self.receive():
                break
        data, self.pending = self.pending[:count], self.pending[count:]
        return data

    def quiet_for(self, seconds: float) -> bool:
        """True if the client sent nothing more within ``seconds`` (nothing left unread either)."""
        if self.pending:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(5)
        self.encrypted += chunk
        self.pending += chunk
        return False

    def drain(self) -> None:
        """Read until the client closes."""
        while self.line():
            pass

    def starttls(self) -> None:
        self.sock = self.tls.wrap_socket(self.sock, server_side=True)
        self.is_tls = True


class Hostile:
    """One hostile server: ``port``; ``peer`` after the connection; ``error`` of the thread."""

    def __init__(self, play: Callable[[Peer], None], tls: ssl.SSLContext) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.play = play
        self.tls = tls
        self.peer: Peer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(5)
        try:
            sock, _ = self.listener.accept()
            sock.settimeout(5)
            self.peer = Peer(sock, self.tls)
            self.play(self.peer)
        except (OSError, ssl.SSLError) as exc:
            self.error = exc
        finally:
            if self.peer is not None:
                self.peer.sock.close()
            self.listener.close()

    def finished(self) -> Peer:
        """The peer, once its play ended without an error."""
        self.thread.join(5)
        assert not self.thread.is_alive()
        assert self.error is None, self.error
        assert self.peer is not None
        return self.peer

    @property
    def clear(self) -> bytes:
        self.thread.join(5)
        return self.peer.clear if self.peer is not None else b""


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def hostile(server_tls: ssl.SSLContext) -> Iterator[Callable[..., Hostile]]:
    started: list[Hostile] = []

    def start(play: Callable[[Peer], None], tls: ssl.SSLContext | None = None) -> Hostile:
        server = Hostile(play, tls or server_tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.thread.join(5)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start_server(kind: str) -> Iterator[Callable[..., Running]]:
    """``start_server(handler, **options)``: one of our servers of this test's kind."""
    running: list[Running] = []

    def starter(handler: object, *, grace: float = 0.5, **options: Any) -> Running:
        # No pause after a failed AUTH unless a test asks for one: it would only slow them.
        options.setdefault("auth_failure_delay", 0.0)
        server = (
            _start_sync(handler, options, grace)
            if kind == "sync"
            else _start_portal(kind, handler, options, grace)
        )
        running.append(server)
        return server

    yield starter
    for server in running:
        server.close()
