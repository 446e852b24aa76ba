"""The asyncio server: ``loop.create_server`` and one task per connection.

A small ``asyncio.Protocol`` (``_Stream``) holds what was received, so the
STARTTLS upgrade can drop every plaintext byte that arrived before it (RFC
3207 5); asyncio's StreamReader would keep them and hand them out as if they
came through TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from types import TracebackType
from typing import Final

from smtpcore import Limits, ServerConfig
from smtpcore.session._effects import Close, Handshake, Write
from smtpcore.session._server import (
    IDLE_TIMEOUT,
    MIN_DATA_RATE,
    SHUT_DOWN,
    TIMED_OUT,
    CallHook,
    Clock,
    NewId,
    Now,
    Peer,
    Receive,
    ServerOptions,
    ServerProcedure,
)

from ._serving import LOG, call_hook_async, new_id, now, tls_info, unknown_effect

__all__ = ["SMTPServer", "serve", "start_server"]

_HIGH_WATER: Final = 256 * 1024  # octets held before reading pauses


class _Stream(asyncio.Protocol):
    """The bytes of one connection, received into a bounded buffer."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.waiter: asyncio.Future[object] | None = None
        self.writable: asyncio.Future[None] | None = None
        self.interruptible = False
        self.paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._connected(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self.wake()

    def eof_received(self) -> None:
        self.eof = True
        self.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.wake()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _time_out(self) -> None:
        # One timer per connection, re-armed lazily: a fresh timer for every
        # read (asyncio.wait_for) costs more than the SMTP work of the read.
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self.deadline:
            waiter.set_result(TIMED_OUT)
        else:
            self.timer = loop.call_at(self.deadline, self._time_out)

    async def receive(self, timeout: float, interruptible: bool) -> object:
        if not self.buffer and not self.eof:
            if interruptible and self.server._stopping:
                return SHUT_DOWN
            loop = asyncio.get_running_loop()
            self.deadline = deadline = loop.time() + timeout
            timer = self.timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self.timer = loop.call_at(deadline, self._time_out)
            self.waiter = waiter = loop.create_future()
            self.interruptible = interruptible
            try:
                woken = await waiter
            finally:
                self.waiter, self.interruptible = None, False
            if woken is TIMED_OUT:
                return TIMED_OUT
            if not self.buffer and not self.eof:
                return SHUT_DOWN  # woken by the shutdown
        return self.take()

    def take(self) -> bytes:
        """Everything received so far (``b""`` once the client closed and all was taken)."""
        data = bytes(self.buffer)
        self.buffer.clear()
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()
        return data

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def write(self, data: bytes, timeout: float) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        self.transport.write(data)
        if self.writable is not None:
            await asyncio.wait_for(asyncio.shield(self.writable), timeout)


class SMTPServer:
    """An SMTP server on asyncio: ``await start()``, ``port``, ``await aclose(grace)``.

    ``aclose`` stops gracefully: sessions waiting for a command get 421,
    sessions in the middle of a message may finish it within ``grace``
    seconds, new connections meanwhile get 421. Also an async context
    manager. Options as in ``transports.sync.SMTPServer``.
    """

    def __init__(
        self,
        handler: object,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        config: ServerConfig | None = None,
        limits: Limits | None = None,
        hostname: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int | None = None,
        greeting_delay: float = 0.0,
        min_data_rate: float = MIN_DATA_RATE,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        self.handler = handler
        self.host = host
        self._port = port
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.options = ServerOptions.create(
            handler,
            config=config,
            limits=limits,
            starttls=tls_context is not None and not implicit_tls,
            hostname=hostname,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            greeting_delay=greeting_delay,
            min_data_rate=min_data_rate,
        )
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], _Stream] = {}
        self._stopping = False

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        return self._port

    async def start(self) -> SMTPServer:
        """Bind and listen; return self. Raises ``OSError`` when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Stream(self),
            self.host,
            self._port,
            ssl=self.tls_context if self.implicit_tls else None,
            ssl_handshake_timeout=self.options.idle_timeout if self.implicit_tls else None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    def _connected(self, stream: _Stream) -> None:
        refuse = self.options.refusal(len(self._sessions), stopping=self._stopping)
        task = asyncio.get_running_loop().create_task(self._session(stream, refuse))
        if refuse is None:
            self._sessions[task] = stream
            task.add_done_callback(lambda done: self._sessions.pop(done, None))

    async def _session(self, stream: _Stream, refuse: str | None) -> None:
        transport = stream.transport
        assert transport is not None
        address = transport.get_extra_info("peername") or ("", 0)
        try:
            tls = tls_info(transport.get_extra_info("ssl_object")) if self.implicit_tls else None
            procedure = self.options.session(
                Peer(address[0], address[1]), new_id(), tls=tls, refuse=refuse
            )
            await self._drive(procedure, stream)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as error:
            LOG.debug("session with %s ended: %r", address, error)
        except Exception:
            LOG.exception("session with %s failed", address)
        finally:
            stream.stop_timer()
            if stream.transport is not None:
                stream.transport.close()

    async def _drive(self, procedure: ServerProcedure[int], stream: _Stream) -> int:
        """Run a server procedure to its end over one connection."""
        answer: object = None
        timeout = self.options.idle_timeout
        try:
            while True:
                try:
                    effect = procedure.send(answer)
                except StopIteration as done:
                    result: int = done.value
                    return result
                answer = None
                # The effects of every command first, without a coroutine each.
                if type(effect) is Receive:
                    if stream.buffer:
                        answer = stream.take()
                    else:
                        answer = await stream.receive(effect.timeout, effect.interruptible)
                    continue
                if type(effect) is Write:
                    transport = stream.transport
                    if (
                        stream.writable is None
                        and transport is not None
                        and not transport.is_closing()
                    ):
                        transport.write(effect.data)
                    else:
                        await stream.write(effect.data, timeout)
                    continue
                match effect:
                    case Handshake(_, wait):
                        answer = await self._handshake(stream, wait)
                    case Close():
                        assert stream.transport is not None
                        stream.transport.close()
                    case CallHook():
                        answer = await call_hook_async(self.handler, effect)
                    case Now():
                        answer = now()
                    case Clock():
                        answer = asyncio.get_running_loop().time()
                    case NewId():
                        answer = new_id()
                    case Write() | Receive():  # pragma: no cover - handled above
                        raise AssertionError(effect)
                    case _:
                        unknown_effect(effect)
        finally:
            procedure.close()

    async def _handshake(self, stream: _Stream, timeout: float) -> object:
        assert self.tls_context is not None and stream.transport is not None
        # RFC 3207 5: plaintext sent behind STARTTLS is dropped. start_tls pauses
        # the plain transport before its first await, so no later byte gets in.
        stream.buffer.clear()
        loop = asyncio.get_running_loop()
        upgraded = await loop.start_tls(
            stream.transport,
            stream,
            self.tls_context,
            server_side=True,
            ssl_handshake_timeout=timeout,
        )
        if upgraded is None:
            raise ConnectionResetError("the client closed during the TLS handshake")
        # Keep the buffer: the client may have sent EHLO through TLS already.
        stream.transport = upgraded
        return tls_info(upgraded.get_extra_info("ssl_object"))

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop: idle sessions get 421 now, busy ones get ``grace`` seconds to finish."""
        if self._server is None or self._stopping:
            return
        self._stopping = True
        for stream in list(self._sessions.values()):
            if stream.interruptible:
                stream.wake()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=grace)
        for task, stream in list(self._sessions.items()):
            if stream.transport is not None:
                stream.transport.abort()
            task.cancel()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=1.0)
        self._server.close()
        await self._server.wait_closed()

    async def __aenter__(self) -> SMTPServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def start_server(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    config: ServerConfig | None = None,
    limits: Limits | None = None,
    hostname: str | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int | None = None,
    greeting_delay: float = 0.0,
    min_data_rate: float = MIN_DATA_RATE,
) -> SMTPServer:
    """A started ``SMTPServer``; ``await server.aclose()`` stops it."""
    server = SMTPServer(
        handler,
        host,
        port,
        tls_context=tls_context,
        implicit_tls=implicit_tls,
        config=config,
        limits=limits,
        hostname=hostname,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        greeting_delay=greeting_delay,
        min_data_rate=min_data_rate,
    )
    return await server.start()


async def serve(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    config: ServerConfig | None = None,
    limits: Limits | None = None,
    hostname: str | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int | None = None,
    greeting_delay: float = 0.0,
    min_data_rate: float = MIN_DATA_RATE,
    grace: float = 5.0,
) -> None:
    """Serve ``handler`` until cancelled; on cancellation, close gracefully within ``grace``."""
    server = await start_server(
        handler,
        host,
        port,
        tls_context=tls_context,
        implicit_tls=implicit_tls,
        config=config,
        limits=limits,
        hostname=hostname,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        greeting_delay=greeting_delay,
        min_data_rate=min_data_rate,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(server.aclose(grace))
