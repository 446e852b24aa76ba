"""The trio client: smtpcore's procedures over trio streams.

Only I/O lives here: the five primitives of ``transports._async.AsyncClient``
(connect, write, read, STARTTLS, close) and the one-shot ``send``. Timeouts are
``trio.fail_after`` around each step; an outer cancel scope cancels as usual
and the stream is closed at once.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message

try:
    import trio
except ModuleNotFoundError as exc:  # the trio extra is optional: say how to get it
    raise ModuleNotFoundError(
        f"transports.trio needs trio ({exc}): pip install 'smtpcore[trio]'", name=exc.name
    ) from exc

from smtpcore import Limits
from smtpcore.session import ConnectionLost, SendResult, Timeouts, TLSError, TLSMode

from . import _trio_raw
from ._async import AsyncClient, AsyncPool, Trace
from ._serve_trio import serve
from ._tls import TLSLayer

__all__ = ["Pool", "SMTPClient", "send", "serve"]

# == client ===========================================================================


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


class SMTPClient(AsyncClient):
    """An SMTP (or LMTP) client over trio, for one connection; many messages may use it.

    ``async with SMTPClient(host) as smtp:`` connects, greets, says EHLO,
    starts TLS and authenticates; on exit it says QUIT and closes. Errors
    are ``smtpcore.SMTPError`` subclasses. After a timeout, a lost
    connection or a cancellation the connection is closed at once and the
    error propagates.
    """

    # While the connection is clear it is a plain non-blocking socket
    # (transports._trio_raw says why); it becomes a SocketStream, then an
    # SSLStream, at STARTTLS.
    _raw: socket.socket | None = None
    _stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None

    async def _open(self, host: str, port: int, timeout: float) -> str:
        local = self._source_address[0] if self._source_address else None
        with _step(timeout):
            stream = await trio.open_tcp_stream(host, port, local_address=local)
        raw = socket.socket(fileno=stream.socket.detach())
        raw.setblocking(False)
        self._raw, self._stream = raw, None
        return str(raw.getsockname()[0])

    async def _write(self, data: bytes, timeout: float) -> None:
        raw = self._raw
        if raw is None:
            await self._write_stream(data, timeout)
            return
        rest = _trio_raw.send_now(raw, data)
        if rest is None:
            return
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            await _trio_raw.send_rest(raw, rest)
        if scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")

    async def _read(self, timeout: float) -> bytes:
        raw = self._raw
        if raw is None:
            return await self._read_stream(timeout)
        data = None
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            data = await _trio_raw.receive(raw)
        if data is None or scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")
        return data

    async def _write_stream(self, data: bytes, timeout: float) -> None:
        assert self._stream is not None
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ConnectionLost(f"connection lost: {exc.__cause__ or exc}") from exc
        if scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")

    async def _read_stream(self, timeout: float) -> bytes:
        assert self._stream is not None
        data = None
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            try:
                data = bytes(await self._stream.receive_some(65536))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ConnectionLost(f"connection lost: {exc.__cause__ or exc}") from exc
        if data is None or scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")
        return data

    async def _start_tls(
        self, context: ssl.SSLContext, hostname: str | None, timeout: float
    ) -> None:
        raw, self._raw = self._raw, None
        assert raw is not None
        clear = trio.SocketStream(trio.socket.from_stdlib_socket(raw))
        self._stream = clear
        tls = trio.SSLStream(clear, context, server_hostname=hostname)
        try:
            with trio.fail_after(timeout):
                await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            raise TLSError(f"TLS handshake with {hostname} failed: {exc.__cause__}") from exc
        except trio.TooSlowError as exc:
            raise TimeoutError(f"TLS handshake took more than {timeout} s") from exc
        self._stream = tls

    def _new_lock(self) -> trio.Lock:
        # Fair: handed to the waiters in order; a cancelled one drops out.
        return trio.Lock()

    def _ssl_object(self) -> TLSLayer | None:
        stream = self._stream
        return stream if isinstance(stream, trio.SSLStream) else None

    async def _close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            trio.lowlevel.notify_closing(raw)
            raw.close()
        elif self._stream is not None:
            await trio.aclose_forcefully(self._stream)


async def send(
    msg: Message,
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = "starttls",
    ssl_context: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
    oauth_token: str | None = None,
    local_hostname: str | None = None,
    timeout: float | Timeouts | None = None,
    lmtp: bool = False,
    source_address: tuple[str, int] | None = None,
    auth_in_clear: bool = False,
    chunking: bool | None = None,
    limits: Limits | None = None,
    trace: Trace | None = None,
) -> SendResult:
    """Connect, send one message (envelope from its headers), QUIT."""
    async with SMTPClient(
        host, port, tls=tls, ssl_context=ssl_context, username=username, password=password,
        oauth_token=oauth_token, local_hostname=local_hostname, timeout=timeout, lmtp=lmtp,
        source_address=source_address, auth_in_clear=auth_in_clear, chunking=chunking,
        limits=limits, trace=trace,
    ) as client:  # fmt: skip
        return await client.send_message(msg)


class Pool(AsyncPool):
    """Connections to one server for many sends at once; see ``transports._async.AsyncPool``.

    ``async with Pool("mx.example", connections=20, tls="starttls") as pool:``
    then ``await pool.send_message(msg)`` from any number of tasks.
    """

    _client_class = SMTPClient

    def _new_slots(self, count: int) -> trio.Semaphore:
        return trio.Semaphore(count)
