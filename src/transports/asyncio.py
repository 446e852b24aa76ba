"""The asyncio client: smtpcore's procedures over asyncio streams.

Only I/O lives here: the five primitives of ``transports._async.AsyncClient``
(connect, write, read, STARTTLS, close) and the one-shot ``send``.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Awaitable
from email.message import Message
from typing import TypeVar

from smtpcore import Limits
from smtpcore.session import SendResult, Timeouts, TLSError, TLSMode

from ._async import AsyncClient, Trace
from ._serve_asyncio import SMTPServer, serve, start_server
from ._tls import TLSLayer

__all__ = ["SMTPClient", "SMTPServer", "send", "serve", "start_server"]

T = TypeVar("T")

# == client ===========================================================================


async def _within(timeout: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``, or TimeoutError after ``timeout`` seconds (no extra task on 3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError as exc:  # not yet TimeoutError on 3.10
        raise TimeoutError(str(exc)) from exc


class SMTPClient(AsyncClient):
    __doc__ = AsyncClient.__doc__

    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter

    async def _open(self, host: str, port: int, timeout: float) -> str:
        connecting = asyncio.open_connection(host, port, local_addr=self._source_address)
        self._reader, self._writer = await _within(timeout, connecting)
        return str(self._writer.get_extra_info("sockname")[0])

    async def _write(self, data: bytes, timeout: float) -> None:
        self._writer.write(data)
        await _within(timeout, self._writer.drain())

    async def _read(self, timeout: float) -> bytes:
        return await _within(timeout, self._reader.read(65536))

    async def _start_tls(
        self, context: ssl.SSLContext, hostname: str | None, timeout: float
    ) -> None:
        writer = self._writer
        try:
            if sys.version_info >= (3, 11):
                await _within(timeout, writer.start_tls(context, server_hostname=hostname))
            else:  # pragma: no cover - Python 3.10: no StreamWriter.start_tls yet
                loop = asyncio.get_running_loop()
                protocol = writer.transport.get_protocol()
                new = await _within(
                    timeout,
                    loop.start_tls(writer.transport, protocol, context, server_hostname=hostname),
                )
                writer._transport = new  # type: ignore[attr-defined]
                protocol._transport = new  # type: ignore[attr-defined]
                protocol._over_ssl = True  # type: ignore[attr-defined]
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSError(f"TLS handshake with {hostname} failed: {exc}") from exc

    def _ssl_object(self) -> TLSLayer | None:
        obj = self._writer.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    async def _close(self) -> None:
        # abort(): at once, even when cancelled; nothing buffered is worth sending.
        self._writer.transport.abort()


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
