"""The blocking client's stream: a socket, with timeouts at the fewest system calls.

A clear socket is a ``PlainSocket``; STARTTLS or implicit TLS turns it into a
``TLSSocket``. Both are an ``AsyncStream`` of ``transports._async_driver``
whose coroutines do their I/O in place, blocking, and never suspend: the
blocking client runs the one async driver over them with
``transports._blocking.run_blocking``, no event loop.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import sys
import time
from typing import Final

from smtpcore.session import TLSError

from ._client_options import ConnectOptions

__all__ = ["PlainSocket", "TLSSocket", "local_address", "open_socket"]


def open_socket(how: ConnectOptions, host: str, port: int, timeout: float) -> PlainSocket:
    """The connection ``how`` asks for: the given socket, a unix socket's, or TCP's."""
    if how.sock is not None:
        return PlainSocket(how.sock)
    if how.socket_path is None:
        return PlainSocket(socket.create_connection((host, port), timeout, how.source_address))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(how.socket_path))
    except BaseException:
        sock.close()
        raise
    return PlainSocket(sock)


def local_address(sock: socket.socket) -> str:
    """The socket's own IP address, or "" when it has none (a unix socket)."""
    name = sock.getsockname()  # (address, port, ...) for IP; a path (or "") for unix
    return str(name[0]) if isinstance(name, tuple) else ""


def _close(sock: socket.socket) -> None:
    # shutdown() first: close() alone would not wake another thread blocked
    # reading this socket (it would wait out its timeout).
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# A clear socket's I/O, at the fewest system calls per round trip.
#
# On Linux the socket stays blocking, with the kernel's receive timeout
# (SO_RCVTIMEO) standing for the Read's: one recv() per read, where a
# non-blocking socket needs poll() and recv(), and where settimeout() would
# add an ioctl per call and a poll before every send and recv. Sends pass
# MSG_DONTWAIT and wait with poll() only when the kernel's buffer is full.
# The kernel timeout is set only when a Read allows less than it: a longer
# Read waits in several kernel timeouts, checking its own deadline after
# each, so the timeouts of the stages (5 and 10 minutes) need no system call
# per message. Elsewhere the socket is non-blocking and waits with poll().
# A TLS socket keeps settimeout(), since its reads and writes may need the
# other direction.

_KERNEL_TIMEOUT: Final = sys.platform == "linux" and hasattr(socket, "MSG_DONTWAIT")
_DONTWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0)


class PlainSocket:
    """Send and receive on a clear socket, with timeouts, at the least cost."""

    __slots__ = ("_kernel_timeout", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(_KERNEL_TIMEOUT)  # see above; a handshake sets its own timeout
        self._sock = sock
        self._kernel_timeout = 0.0  # SO_RCVTIMEO now; 0: not set (would block forever)

    async def write(self, data: bytes, timeout: float) -> None:
        """All of ``data`` within ``timeout`` seconds in total (as sendall with a timeout)."""
        sock = self._sock
        try:
            sent = sock.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        deadline = time.monotonic() + timeout
        while True:
            _wait(sock, select.POLLOUT, deadline - time.monotonic())
            try:
                view = view[sock.send(view, _DONTWAIT) :]
            except BlockingIOError:
                continue  # a spurious wake-up
            if not view:
                return

    async def read(self, timeout: float) -> bytes:
        """Some bytes (b"" when the server closed) within ``timeout`` seconds."""
        sock = self._sock
        if not _KERNEL_TIMEOUT:
            # poll() first: a read follows a write, and the reply is rarely in
            # yet, so trying recv() first would mostly cost one failed call.
            end = time.monotonic() + timeout
            while True:
                _wait(sock, select.POLLIN, end - time.monotonic())
                try:
                    return sock.recv(65536)
                except BlockingIOError:
                    continue  # a spurious wake-up
        kernel = self._kernel_timeout
        if timeout == kernel:  # the usual case: one system call
            try:
                return sock.recv(65536)
            except BlockingIOError:  # the kernel timeout ran out
                raise TimeoutError(f"no progress within {timeout} s") from None
        # The kernel timeout may stand for this Read's when it is shorter but
        # not so short that waking up would cost much: then the Read waits in
        # several of them, up to its deadline. Otherwise it is set to this one.
        deadline: float | None = None
        if not min(timeout, 1.0) <= kernel <= timeout:  # also when not yet set
            kernel = self._set_kernel_timeout(timeout)
        if kernel < timeout:
            deadline = time.monotonic() + timeout
        while True:
            try:
                return sock.recv(65536)
            except BlockingIOError:  # the kernel timeout ran out
                if deadline is None:
                    raise TimeoutError(f"no progress within {timeout} s") from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no progress within {timeout} s") from None
                if left < self._kernel_timeout:
                    self._set_kernel_timeout(left)
                    deadline = None  # the next wait ends at the deadline itself

    def _set_kernel_timeout(self, seconds: float) -> float:
        """Set SO_RCVTIMEO to ``seconds`` (a day at most); return what was set."""
        seconds = min(seconds, 86400.0)
        whole = int(seconds)
        # A struct timeval; at least a microsecond, since 0 would mean "never".
        micro = max(int((seconds - whole) * 1e6), 0 if whole else 1)
        self._sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", whole, micro)
        )
        self._kernel_timeout = seconds
        return seconds

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> TLSSocket:
        """The TLS client handshake over this socket; the TLS socket from now on."""
        sock = self._sock
        sock.settimeout(timeout)
        try:
            return TLSSocket(context.wrap_socket(sock, server_hostname=server_hostname))
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSError(f"TLS handshake with {server_hostname} failed: {exc}") from exc

    def tls_layer(self) -> None:
        """None: the socket is clear."""
        return

    def local_address(self) -> str:
        """Our own IP address, or "" (see ``local_address``)."""
        return local_address(self._sock)

    async def close(self) -> None:
        """Shut down and close the socket; twice is harmless."""
        _close(self._sock)


class TLSSocket:
    """Send and receive on a TLS socket, each step with its own timeout."""

    __slots__ = ("_sock",)

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock

    async def write(self, data: bytes, timeout: float) -> None:
        """All of ``data``, each step within ``timeout`` seconds."""
        self._sock.settimeout(timeout)
        self._sock.sendall(data)

    async def read(self, timeout: float) -> bytes:
        """Some bytes (b"" when the server closed) within ``timeout`` seconds."""
        self._sock.settimeout(timeout)
        return self._sock.recv(65536)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> TLSSocket:
        """Refused: TLS is on already."""
        raise TLSError("TLS is on already")

    def tls_layer(self) -> ssl.SSLSocket:
        """The TLS socket itself."""
        return self._sock

    def local_address(self) -> str:
        """Our own IP address, or "" (see ``local_address``)."""
        return local_address(self._sock)

    async def close(self) -> None:
        """Shut down and close the socket; twice is harmless."""
        _close(self._sock)


def _wait(sock: socket.socket, events: int, timeout: float) -> None:
    """Wait until ``sock`` is ready for ``events``; TimeoutError after ``timeout`` s."""
    poller = select.poll()
    poller.register(sock, events)
    if not poller.poll(max(timeout, 0.0) * 1000):
        raise TimeoutError(f"no progress within {timeout} s")
