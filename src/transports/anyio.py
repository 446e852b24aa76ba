"""The anyio client: smtpcore's procedures over anyio streams (asyncio or trio backend).

Only I/O lives here: the five primitives of ``transports._async.AsyncClient``
(connect, write, read, STARTTLS, close) and the one-shot ``send``. Timeouts are
``anyio.fail_after`` around each step; an outer cancel scope cancels as usual
and the stream is closed at once.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from smtpcore import Limits
from smtpcore.session import ConnectionLost, SendResult, Timeouts, TLSError, TLSMode

from ._async import AsyncClient, Trace
from ._serve_anyio import serve
from ._tls import TLSLayer

__all__ = ["SMTPClient", "send", "serve"]

# == client ===========================================================================


@contextmanager
def _step(timeout: float) -> Iterator[None]:
    """One I/O step: TimeoutError after ``timeout`` s, ConnectionLost when the stream broke."""
    try:
        with anyio.fail_after(timeout):
            yield
    except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectionLost(f"connection lost: {exc.__cause__ or exc}") from exc


class SMTPClient(AsyncClient):
    __doc__ = AsyncClient.__doc__

    _stream: ByteStream

    async def _open(self, host: str, port: int, timeout: float) -> str:
        local = self._source_address[0] if self._source_address else None
        with _step(timeout):
            stream = await anyio.connect_tcp(host, port, local_host=local)
        self._stream = stream
        return str(stream.extra(SocketAttribute.local_address)[0])

    # The two calls of every round trip use a bare CancelScope rather than
    # _step: the same deadline and errors without two generator-based
    # context managers around each read and write.

    async def _write(self, data: bytes, timeout: float) -> None:
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise ConnectionLost(f"connection lost: {exc.__cause__ or exc}") from exc
        if scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")

    async def _read(self, timeout: float) -> bytes:
        data = None
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            try:
                data = await self._stream.receive(65536)
            except anyio.EndOfStream:
                data = b""
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise ConnectionLost(f"connection lost: {exc.__cause__ or exc}") from exc
        if data is None or scope.cancelled_caught:
            raise TimeoutError(f"no progress within {timeout} s")
        return data

    async def _start_tls(
        self, context: ssl.SSLContext, hostname: str | None, timeout: float
    ) -> None:
        try:
            with anyio.fail_after(timeout):
                self._stream = await TLSStream.wrap(
                    self._stream, server_side=False, hostname=hostname, ssl_context=context,
                    standard_compatible=False,
                )  # fmt: skip
        except (ssl.SSLError, ssl.CertificateError, anyio.BrokenResourceError) as exc:
            cause = exc.__cause__ or exc
            raise TLSError(f"TLS handshake with {hostname} failed: {cause}") from exc

    def _ssl_object(self) -> TLSLayer | None:
        obj = self._stream.extra(TLSAttribute.ssl_object, None)
        return obj if isinstance(obj, ssl.SSLObject) else None

    async def _close(self) -> None:
        await anyio.aclose_forcefully(self._stream)


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
