"""The clients over a unix socket (``socket_path=``) and over a connected socket (``sock=``).

The servers listen on loopback TCP; a relay in front of them accepts on a
unix socket in a temporary directory (or takes one end of a
``socket.socketpair()``) and moves the bytes both ways unchanged, so TLS
runs end to end between the client and the server behind it, with the
server's certificate checked against ``host``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from smtpcore import InvalidArgument
from smtpcore.session import ConnectionLost

from .conftest import PASSWORD, USER, Smtp, run, transport_module

MESSAGE: Final = b"Subject: hi\r\n\r\nover a socket given or a unix one\r\n"


class Relay:
    """Pipes between client sockets and a TCP server on loopback, each way in a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def listen_unix(self, path: Path) -> None:
        """Accept on a unix socket at ``path``; relay each connection."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen()
        listener.settimeout(10.0)
        self.sockets.append(listener)
        self._start(self._accept, listener)

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                self.relay(client)

    def relay(self, client: socket.socket) -> None:
        """Relay ``client`` (a connected socket) to the server."""
        server = socket.create_connection(("127.0.0.1", self.port), timeout=10.0)
        client.settimeout(10.0)
        self.sockets += [client, server]
        self._start(self._pipe, client, server)
        self._start(self._pipe, server, client)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(10.0)


@pytest.fixture
def relay() -> Iterator[Any]:
    relays: list[Relay] = []

    def start(port: int) -> Relay:
        relays.append(Relay(port))
        return relays[-1]

    yield start
    for one in relays:
        one.close()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short temporary directory: a unix socket's path has at most about 100 octets."""
    with tempfile.TemporaryDirectory(prefix="smtpcore-") as path:
        yield Path(path)


def starttls_client(kind: str, context: ssl.SSLContext, **options: Any) -> Smtp:
    """A verifying STARTTLS client with the test credentials; ``host`` names the certificate."""
    return Smtp(
        kind, "localhost", None, tls="starttls", ssl_context=context, username=USER,
        password=PASSWORD, local_hostname="client.example", timeout=10.0, **options,
    )  # fmt: skip


def assert_arrived(server: Any) -> None:
    [received] = server.handler.messages
    assert received.tls
    assert received.login == b"test"
    assert received.rcpt_tos == ["b@example.test"]
    assert received.content == MESSAGE


def send_one(kind: str, smtp: Smtp) -> Any:
    async def body() -> Any:
        async with smtp:
            return await smtp.sendmail("a@example.org", ["b@example.test"], MESSAGE)

    return run(kind, body)


def test_a_unix_socket_with_starttls_and_auth(
    kind: str, aiosmtpd_server: Any, relay: Any, socket_dir: Path, client_context: ssl.SSLContext
) -> None:
    server = aiosmtpd_server()
    path = socket_dir / "smtp.sock"
    relay(server.port).listen_unix(path)
    result = send_one(kind, starttls_client(kind, client_context, socket_path=path))
    assert result.reply.code == 250
    assert_arrived(server)


def test_a_connected_tcp_socket_with_starttls_and_auth(
    kind: str, aiosmtpd_server: Any, client_context: ssl.SSLContext
) -> None:
    server = aiosmtpd_server()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10.0)
    result = send_one(kind, starttls_client(kind, client_context, sock=sock))
    assert result.reply.code == 250
    assert_arrived(server)
    assert sock.fileno() == -1  # the client owned it, and closed it


def test_one_end_of_a_socketpair(
    kind: str, aiosmtpd_server: Any, relay: Any, client_context: ssl.SSLContext
) -> None:
    server = aiosmtpd_server()
    ours, theirs = socket.socketpair()
    relay(server.port).relay(theirs)
    result = send_one(kind, starttls_client(kind, client_context, sock=ours))
    assert result.reply.code == 250
    assert_arrived(server)


IMPLICIT: Final = """
TLS
S: 220 mx.example ESMTP
C: EHLO client.example
S: 250-mx.example
S: 250 8BITMIME
C: MAIL FROM:<a@example.org>
S: 250 ok
C: RCPT TO:<b@example.test>
S: 250 ok
C: DATA
S: 354 go
C: Subject: hi
C:
C: over a socket given or a unix one
C: .
S: 250 queued
C: QUIT
S: 221 bye
"""


def test_implicit_tls_over_a_unix_socket(
    kind: str, scripted: Any, relay: Any, socket_dir: Path, client_context: ssl.SSLContext
) -> None:
    server = scripted(IMPLICIT)
    path = socket_dir / "smtps.sock"
    relay(server.port).listen_unix(path)
    smtp = Smtp(
        kind, "localhost", None, tls="implicit", ssl_context=client_context, socket_path=path,
        local_hostname="client.example", timeout=10.0,
    )  # fmt: skip

    async def body() -> Any:
        async with smtp:
            assert smtp.client.tls_info is not None
            assert smtp.client.tls_info.verified
            return await smtp.sendmail("a@example.org", ["b@example.test"], MESSAGE)

    assert run(kind, body).reply.code == 250
    server.check()


def test_a_unix_socket_nobody_listens_on(kind: str, socket_dir: Path) -> None:
    path = socket_dir / "nobody.sock"
    smtp = Smtp(kind, "localhost", None, tls="none", socket_path=path, timeout=5.0)

    async def body() -> None:
        await smtp.connect()

    with pytest.raises(ConnectionLost, match=r"unix socket .*nobody\.sock"):
        run(kind, body)


@pytest.mark.parametrize("module", ["sync", "asyncio", "trio", "anyio"])
def test_sock_and_socket_path_exclude_each_other(module: str) -> None:
    cls = transport_module(module).SMTPClient
    ours, theirs = socket.socketpair()
    datagrams = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with ours, theirs, datagrams:
        with pytest.raises(InvalidArgument, match="not both"):
            cls("localhost", sock=ours, socket_path="/tmp/x.sock")
        with pytest.raises(InvalidArgument, match="source_address"):
            cls("localhost", sock=ours, source_address=("127.0.0.1", 0))
        with pytest.raises(InvalidArgument, match="stream socket"):
            cls("localhost", sock=datagrams)
        if module != "sync":
            with pytest.raises(InvalidArgument, match="socket_path, not sock"):
                transport_module(module).Pool("localhost", sock=ours)


def test_a_pool_over_a_unix_socket(
    async_kind: str,
    aiosmtpd_server: Any,
    relay: Any,
    socket_dir: Path,
    client_context: ssl.SSLContext,
) -> None:
    server = aiosmtpd_server()
    path = socket_dir / "pool.sock"
    relay(server.port).listen_unix(path)
    pool = transport_module(async_kind).Pool(
        "localhost", connections=2, socket_path=path, ssl_context=client_context,
        username=USER, password=PASSWORD, local_hostname="client.example", timeout=10.0,
    )  # fmt: skip

    async def body() -> list[int]:
        async with pool:
            items = [("a@example.org", ["b@example.test"], MESSAGE)] * 3
            return [outcome.result.reply.code async for outcome in pool.send_many(items)]

    assert run(async_kind, body) == [250, 250, 250]
    assert len(server.handler.messages) == 3
    assert_arrived_all(server)


def assert_arrived_all(server: Any) -> None:
    for received in server.handler.messages:
        assert received.tls
        assert received.content == MESSAGE
