"""The trio client's streams: a plain socket while clear, a trio SSLStream once TLS is on.

While the connection is clear it is a plain non-blocking socket driven with
trio's readiness waits (``transports._trio_raw`` says why); at STARTTLS (or
implicit TLS) it becomes a SocketStream under an SSLStream. Both are the
``AsyncStream`` of ``transports._async_client`` on trio (and on anyio over
trio). Timeouts are each step's own cancel scope; an outer cancel scope
cancels as usual.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from smtpcore.session import ConnectionLost, TLSError

from . import _trio_raw
from ._client_options import ConnectOptions

__all__ = ["TrioSocket", "TrioTLSStream", "open_stream"]


@contextmanager
def _step(timeout: float) -> Iterator[None]:
    """One I/O step: TimeoutError after ``timeout`` s, ConnectionLost when the stream broke."""
    try:
        with trio.fail_after(timeout):
            yield
    except trio.TooSlowError as exc:
        raise TimeoutError(f"no progress within {timeout} s") from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ConnectionLost(f"connection lost: {exc.__cause__ or exc}") from exc


async def open_stream(how: ConnectOptions, host: str, port: int, timeout: float) -> TrioSocket:
    """The connection ``how`` asks for (the given socket, a unix socket's, or TCP's)."""
    if how.sock is not None:
        return TrioSocket(how.sock)
    with _step(timeout):
        if how.socket_path is not None:
            stream = await trio.open_unix_socket(os.fspath(how.socket_path))
        else:
            local = how.source_address[0] if how.source_address else None
            stream = await trio.open_tcp_stream(host, port, local_address=local)
    return TrioSocket(socket.socket(fileno=stream.socket.detach()))


def _local_address(sock: socket.socket | trio.socket.SocketType) -> str:
    name = sock.getsockname()  # (address, port, ...) for IP; a path (or "") for unix
    return str(name[0]) if isinstance(name, tuple) else ""


class TrioSocket:
    """A clear connection: a non-blocking socket and trio's readiness waits."""

    def __init__(self, raw: socket.socket) -> None:
        raw.setblocking(False)
        self._raw = raw

    async def write(self, data: bytes, timeout: float) -> None:
        """All of ``data``; TimeoutError when it takes more than ``timeout`` s."""
        raw = self._raw
        rest = _trio_raw.send_now(raw, data)
        if rest is None:
            return
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            await _trio_raw.send_rest(raw, rest)
        if scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")

    async def read(self, timeout: float) -> bytes:
        """Some bytes (b"" at the end); TimeoutError after ``timeout`` s without any."""
        data = None
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            data = await _trio_raw.receive(self._raw)
        if data is None or scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")
        return data

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> TrioTLSStream:
        """The TLS client handshake; the TLS stream from now on (TLSError when it fails)."""
        clear = trio.SocketStream(trio.socket.from_stdlib_socket(self._raw))
        tls = trio.SSLStream(clear, context, server_hostname=server_hostname)
        try:
            with trio.fail_after(timeout):
                await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            raise TLSError(f"TLS handshake with {server_hostname} failed: {exc.__cause__}") from exc
        except trio.TooSlowError as exc:
            raise TimeoutError(f"TLS handshake took more than {timeout} s") from exc
        return TrioTLSStream(tls)

    def tls_layer(self) -> None:
        """None: the connection is clear."""
        return

    def local_address(self) -> str:
        """Our own IP address, or "" when the connection has none (a unix socket)."""
        return _local_address(self._raw)

    async def close(self) -> None:
        """Close at once, waking any task waiting on the socket."""
        raw = self._raw
        if raw.fileno() != -1:
            trio.lowlevel.notify_closing(raw)
            raw.close()


class TrioTLSStream:
    """A TLS connection: trio's SSLStream, each step within its timeout."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self._stream = stream

    async def write(self, data: bytes, timeout: float) -> None:
        """All of ``data``; TimeoutError when it takes more than ``timeout`` s."""
        with _step(timeout):
            await self._stream.send_all(data)

    async def read(self, timeout: float) -> bytes:
        """Some bytes (b"" at the end); TimeoutError after ``timeout`` s without any."""
        with _step(timeout):
            return bytes(await self._stream.receive_some(65536))

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> TrioTLSStream:
        """Refused: TLS is on already."""
        raise TLSError("TLS is on already")

    def tls_layer(self) -> trio.SSLStream[trio.SocketStream]:
        """The SSLStream itself (it offers what ``tls_info`` reads)."""
        return self._stream

    def local_address(self) -> str:
        """Our own IP address, or "" when the connection has none (a unix socket)."""
        return _local_address(self._stream.transport_stream.socket)

    async def close(self) -> None:
        """Close at once, even inside a cancelled scope."""
        await trio.aclose_forcefully(self._stream)
