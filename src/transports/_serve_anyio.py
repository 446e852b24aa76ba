"""The anyio server (asyncio or trio): ``await task_group.start(serve, handler, host, port)``.

The same shape as the trio server: the port comes back through
``task_status``; cancel the scope to stop at once, or set ``shutdown`` (an
``anyio.Event``) to stop gracefully within ``grace`` seconds.
"""

from __future__ import annotations

import ssl
from typing import cast

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

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
    TLSInfo,
)

from ._serving import LOG, call_hook_async, new_id, now, tls_info, unknown_effect
from ._tls import TLSLayer

__all__ = ["serve"]

_Stream = anyio.abc.SocketStream | TLSStream


def _facts(stream: TLSStream) -> TLSLayer:
    return cast(TLSLayer, stream.extra(TLSAttribute.ssl_object))


class _Server:
    """The state of one ``serve`` call: its options, sessions and shutdown flag."""

    def __init__(
        self, handler: object, options: ServerOptions, tls_context: ssl.SSLContext | None
    ) -> None:
        self.handler = handler
        self.options = options
        self.tls_context = tls_context
        self.implicit_tls = False
        self.sessions = 0
        self.stopping = False
        self.idle: set[anyio.CancelScope] = set()
        self.all_done = anyio.Event()

    def stop(self) -> None:
        self.stopping = True
        for scope in self.idle:
            scope.cancel()

    async def session(self, stream: anyio.abc.SocketStream) -> None:
        refuse = self.options.refusal(self.sessions, stopping=self.stopping)
        if refuse is None:
            self.sessions += 1
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
        host, port = (address[0], address[1]) if isinstance(address, tuple) else (str(address), 0)
        current: _Stream = stream
        try:
            tls: TLSInfo | None = None
            if self.implicit_tls and refuse is None:
                current = await self._handshake(stream, self.options.idle_timeout)
                tls = tls_info(_facts(current))
            procedure = self.options.session(Peer(host, port), new_id(), tls=tls, refuse=refuse)
            await self._drive(procedure, current)
        except (OSError, anyio.BrokenResourceError, TimeoutError, ssl.SSLError) as error:
            LOG.debug("session with %s ended: %r", address, error)
        except Exception:
            LOG.exception("session with %s failed", address)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(current)
            if refuse is None:
                self.sessions -= 1
                if self.sessions == 0 and self.stopping:
                    self.all_done.set()

    async def _handshake(self, stream: anyio.abc.SocketStream, timeout: float) -> TLSStream:
        assert self.tls_context is not None
        with anyio.fail_after(timeout):
            return await TLSStream.wrap(
                stream, server_side=True, ssl_context=self.tls_context, standard_compatible=False
            )

    async def _receive(self, stream: _Stream, timeout: float, interruptible: bool) -> object:
        if interruptible and self.stopping:
            return SHUT_DOWN
        # One scope for both ends of the wait: its deadline, and the shutdown
        # (which cancels the scopes of interruptible waits).
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            if interruptible:
                self.idle.add(scope)
            try:
                return await stream.receive(65536)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return b""
            finally:
                if interruptible:
                    self.idle.discard(scope)
        return SHUT_DOWN if interruptible and self.stopping else TIMED_OUT

    async def _drive(self, procedure: ServerProcedure[int], stream: _Stream) -> int:
        """Run a server procedure to its end over one anyio stream."""
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
                match effect:
                    case Receive(wait, interruptible):
                        answer = await self._receive(stream, wait, interruptible)
                    case Write(data):
                        with anyio.fail_after(timeout):
                            await stream.send(data)
                    case Handshake(_, wait):
                        assert not isinstance(stream, TLSStream)
                        stream = await self._handshake(stream, wait)
                        answer = tls_info(_facts(stream))
                    case Close():
                        await anyio.aclose_forcefully(stream)
                    case CallHook():
                        answer = await call_hook_async(self.handler, effect)
                    case Now():
                        answer = now()
                    case Clock():
                        answer = anyio.current_time()
                    case NewId():
                        answer = new_id()
                    case _:
                        unknown_effect(effect)
        finally:
            procedure.close()


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
    shutdown: anyio.Event | None = None,
    grace: float = 5.0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``host``:``port``; report the port through ``task_status``.

    Returns after a graceful shutdown (``shutdown.set()``); runs until
    cancelled otherwise. Options as in ``transports.sync.SMTPServer``.
    Raises ``OSError`` when the address cannot be bound.
    """
    if implicit_tls and tls_context is None:
        raise ValueError("implicit_tls needs a tls_context")
    options = ServerOptions.create(
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
    server = _Server(handler, options, tls_context)
    server.implicit_tls = implicit_tls
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, server.session)
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        if shutdown is None:
            await anyio.sleep_forever()
        else:
            await shutdown.wait()
            server.stop()
            with anyio.move_on_after(grace):
                if server.sessions:
                    await server.all_done.wait()
            group.cancel_scope.cancel()
