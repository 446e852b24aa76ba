"""The trio server: ``await nursery.start(serve, handler, host, port)`` returns the port.

Cancel the surrounding scope to stop at once; set ``shutdown`` (a
``trio.Event``) to stop gracefully: sessions waiting for a command get 421,
sessions in the middle of a message may finish it within ``grace`` seconds,
new connections meanwhile get 421.
"""

from __future__ import annotations

import ssl
from typing import cast

import trio

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

_Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]


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
        self.idle: set[trio.CancelScope] = set()
        self.all_done = trio.Event()

    def stop(self) -> None:
        self.stopping = True
        for scope in self.idle:
            scope.cancel()

    async def session(self, stream: trio.SocketStream) -> None:
        refuse = self.options.refusal(self.sessions, stopping=self.stopping)
        if refuse is None:
            self.sessions += 1
        address = stream.socket.getpeername()
        current: _Stream = stream
        try:
            tls: TLSInfo | None = None
            if self.implicit_tls and refuse is None:
                current = await self._handshake(stream, self.options.idle_timeout)
                tls = tls_info(cast(TLSLayer, current))
            procedure = self.options.session(
                Peer(address[0], address[1]), new_id(), tls=tls, refuse=refuse
            )
            await self._drive(procedure, current)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ssl.SSLError) as error:
            LOG.debug("session with %s ended: %r", address, error)
        except Exception:
            LOG.exception("session with %s failed", address)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await trio.aclose_forcefully(current)
            if refuse is None:
                self.sessions -= 1
                if self.sessions == 0 and self.stopping:
                    self.all_done.set()

    async def _handshake(self, stream: trio.SocketStream, timeout: float) -> _Stream:
        assert self.tls_context is not None
        upgraded = trio.SSLStream(stream, self.tls_context, server_side=True)
        with trio.fail_after(timeout):
            await upgraded.do_handshake()
        return upgraded

    async def _receive(self, stream: _Stream, timeout: float, interruptible: bool) -> object:
        if interruptible and self.stopping:
            return SHUT_DOWN
        with trio.CancelScope() as stop:
            if interruptible:
                self.idle.add(stop)
            try:
                with trio.move_on_after(timeout):
                    return await stream.receive_some(65536)
                return TIMED_OUT
            finally:
                self.idle.discard(stop)
        return SHUT_DOWN  # ``stop`` was cancelled by the shutdown

    async def _drive(self, procedure: ServerProcedure[int], stream: _Stream) -> int:
        """Run a server procedure to its end over one trio stream."""
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
                    case Write(data):
                        with trio.fail_after(timeout):
                            await stream.send_all(data)
                    case Receive(wait, interruptible):
                        answer = await self._receive(stream, wait, interruptible)
                    case Handshake(_, wait):
                        assert isinstance(stream, trio.SocketStream)
                        stream = await self._handshake(stream, wait)
                        answer = tls_info(cast(TLSLayer, stream))
                    case Close():
                        await trio.aclose_forcefully(stream)
                    case CallHook():
                        answer = await call_hook_async(self.handler, effect)
                    case Now():
                        answer = now()
                    case Clock():
                        answer = trio.current_time()
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
    shutdown: trio.Event | None = None,
    grace: float = 5.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
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
    listeners = await trio.open_tcp_listeners(port, host=host)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(trio.serve_listeners, server.session, [listener])
        task_status.started(listeners[0].socket.getsockname()[1])
        if shutdown is None:
            await trio.sleep_forever()
        else:
            await shutdown.wait()
            server.stop()
            with trio.move_on_after(grace):
                if server.sessions:
                    await server.all_done.wait()
            nursery.cancel_scope.cancel()
