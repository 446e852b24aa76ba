"""The trio server: ``await nursery.start(serve, handler, host, port)`` returns the port.

Cancel the surrounding scope to stop at once; set ``shutdown`` (a
``trio.Event``) to stop gracefully: sessions waiting for a command get 421,
sessions in the middle of a message may finish it within ``grace`` seconds,
new connections meanwhile get 421.
"""

from __future__ import annotations

import inspect
import secrets
import socket
import ssl
from typing import Any, Final, cast

import trio

from smtpcore import InvalidArgument, Limits, ServerConfig
from smtpcore.session._admission import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT
from smtpcore.session._effects import Close, Handshake, Write
from smtpcore.session._server import (
    AUTH_FAILURE_DELAY,
    AUTH_FAILURES_PER_ADDRESS,
    DATA_TIMEOUT,
    IDLE_TIMEOUT,
    MIN_DATA_RATE,
    SHUT_DOWN,
    SPOOL_THRESHOLD,
    TIMED_OUT,
    CallHook,
    Clock,
    NewId,
    Notice,
    Now,
    Pause,
    Peer,
    Receive,
    ServerOptions,
    ServerProcedure,
    SpoolWrite,
    TLSInfo,
)

from . import _trio_raw
from ._serving import (
    HOOK_THREADS,
    LOG,
    RESOURCE_ERRORS,
    AcceptBackoff,
    call_hook_async,
    call_sync_hook,
    failed_hook,
    new_id,
    now,
    session_log,
    threaded_hooks,
    tls_info,
    unknown_effect,
    warn_unknown_hooks,
)
from ._spool import spool_write
from ._tls import TLSLayer

__all__ = ["serve"]

_Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]

# A hook thread still running when its session is cancelled is left to finish
# on its own, so a shutdown keeps its deadline (trio 0.23 renamed the flag).
_ABANDON: Final[dict[str, Any]] = (
    {"abandon_on_cancel": True}
    if "abandon_on_cancel" in inspect.signature(trio.to_thread.run_sync).parameters
    else {"cancellable": True}
)


class _Connection:
    """One client: a plain non-blocking socket while clear, a trio stream once TLS is on.

    Why a plain socket: see ``transports._trio_raw`` (the client does the
    same, transports/trio.py).
    """

    def __init__(self, raw: socket.socket | None, stream: _Stream | None) -> None:
        self.raw = raw
        self.stream = stream

    async def receive(self) -> bytes:
        if self.raw is None:
            assert self.stream is not None
            return bytes(await self.stream.receive_some(65536))
        return await _trio_raw.receive(self.raw)

    async def send(self, data: bytes, timeout: float) -> None:
        raw = self.raw
        if raw is None:
            assert self.stream is not None
            with trio.fail_after(timeout):
                await self.stream.send_all(data)
            return
        rest = _trio_raw.send_now(raw, data)
        if rest is not None:
            with trio.fail_after(timeout):
                await _trio_raw.send_rest(raw, rest)

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> TLSInfo:
        raw, self.raw = self.raw, None
        assert raw is not None
        upgraded = trio.SSLStream(
            trio.SocketStream(trio.socket.from_stdlib_socket(raw)), context, server_side=True
        )
        self.stream = upgraded
        with trio.fail_after(timeout):
            await upgraded.do_handshake()
        return tls_info(cast(TLSLayer, upgraded))

    async def aclose(self) -> None:
        if self.raw is not None:
            self.raw.close()
        elif self.stream is not None:
            await trio.aclose_forcefully(self.stream)


class _Server:
    """The state of one ``serve`` call: its options, sessions and shutdown flag."""

    def __init__(
        self,
        handler: object,
        options: ServerOptions,
        tls_context: ssl.SSLContext | None,
        hook_threads: int = HOOK_THREADS,
    ) -> None:
        self.handler = handler
        self.threaded = threaded_hooks(handler, hook_threads)
        self.limiter = trio.CapacityLimiter(max(hook_threads, 1))
        self.options = options
        self.tls_context = tls_context
        self.implicit_tls = False
        self.sessions = 0
        self.admission = options.admission()
        self.stopping = False
        self.cutting = False  # the shutdown's grace ran out
        self.idle: set[trio.CancelScope] = set()  # waits for a command
        self.busy: set[trio.CancelScope] = set()  # waits inside a transaction
        self.live: set[_Connection] = set()
        self.dropped: set[_Connection] = set()  # cut with a message in flight
        self.all_done = trio.Event()

    def stop(self) -> None:
        self.stopping = True
        for scope in self.idle:
            scope.cancel()

    def cut(self) -> None:
        """The grace ran out: sessions waiting for their client say 421 and drop the message."""
        self.cutting = True
        for scope in self.busy:
            scope.cancel()

    async def session(self, stream: trio.SocketStream) -> None:
        address = stream.socket.getpeername()
        refuse = self.admission.admit(address[0], stopping=self.stopping)
        if refuse is None:
            self.sessions += 1
        connection = _Connection(None, stream)
        try:
            tls: TLSInfo | None = None
            if self.implicit_tls and refuse is None:
                assert self.tls_context is not None
                upgraded = trio.SSLStream(stream, self.tls_context, server_side=True)
                connection.stream = upgraded
                with trio.fail_after(self.options.idle_timeout):
                    await upgraded.do_handshake()
                tls = tls_info(cast(TLSLayer, upgraded))
            else:
                raw = socket.socket(fileno=stream.socket.detach())
                raw.setblocking(False)
                connection = _Connection(raw, None)
            procedure = self.options.session(
                Peer(address[0], address[1]), new_id(), tls=tls, refuse=refuse, log=session_log()
            )
            self.live.add(connection)
            await self._drive(procedure, connection)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ssl.SSLError) as error:
            LOG.debug("session with %s ended: %r", address, error)
        except Exception:
            LOG.exception("session with %s failed", address)
        finally:
            self.live.discard(connection)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await connection.aclose()
            if refuse is None:
                self.admission.release(address[0])
                self.sessions -= 1
                if self.sessions == 0 and self.stopping:
                    self.all_done.set()

    async def accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        """Accept until cancelled; out of descriptors or memory, pause and go on.

        Like ``trio.serve_listeners``, but a run of failures is logged once
        (``AcceptBackoff``), not once per retry.
        """
        backoff = AcceptBackoff(listener.socket.getsockname()[1])
        while True:
            try:
                stream = await listener.accept()
            except OSError as error:
                if error.errno not in RESOURCE_ERRORS:
                    raise
                await trio.sleep(backoff.failed(str(error)))
                continue
            backoff.accepted()
            nursery.start_soon(self.session, stream)

    async def _receive(
        self, connection: _Connection, timeout: float, interruptible: bool
    ) -> object:
        if interruptible and self.stopping:
            return SHUT_DOWN
        if self.cutting:
            self.dropped.add(connection)
            return SHUT_DOWN
        # One scope for both ends of the wait: its deadline, and the shutdown
        # (which cancels the scopes of idle waits, then at the end of the
        # grace those of busy waits).
        waits = self.idle if interruptible else self.busy
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            waits.add(scope)
            try:
                return await connection.receive()
            finally:
                waits.discard(scope)
        if self.cutting and not interruptible:
            self.dropped.add(connection)
            return SHUT_DOWN
        return SHUT_DOWN if interruptible and self.stopping else TIMED_OUT

    async def _threaded_hook(self, effect: CallHook) -> object:
        """A synchronous hook, in a worker thread: the other sessions go on meanwhile."""
        result = await trio.to_thread.run_sync(
            call_sync_hook, self.handler, effect, limiter=self.limiter, **_ABANDON
        )
        if result is not None and inspect.isawaitable(result):
            try:
                result = await result
            except Exception as error:
                result = failed_hook(effect, error)
        return result

    async def _drive(self, procedure: ServerProcedure[int], connection: _Connection) -> int:
        """Run a server procedure to its end over one connection."""
        answer: object = None
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
                        answer = await self._receive(connection, wait, interruptible)
                    case Write(data, wait):
                        await connection.send(data, wait)
                    case Handshake(_, wait):
                        assert self.tls_context is not None
                        answer = await connection.start_tls(self.tls_context, wait)
                    case Close():
                        await connection.aclose()
                    case CallHook():
                        if effect.name in self.threaded:
                            answer = await self._threaded_hook(effect)
                        else:
                            answer = await call_hook_async(self.handler, effect)
                    case Now():
                        answer = now()
                    case Clock():
                        answer = trio.current_time()
                    case NewId():
                        answer = new_id()
                    case SpoolWrite():
                        answer = spool_write(effect)
                    case Pause(seconds):
                        await trio.sleep(seconds)
                    case Notice(message):
                        LOG.warning("%s", message)
                    case _:
                        unknown_effect(effect)
        finally:
            procedure.close()


async def _listen(host: str, port: int, reuse_port: bool) -> list[trio.SocketListener]:
    """Listeners on every address of ``host``; with ``reuse_port``, shared with other processes.

    trio's ``open_tcp_listeners`` has no SO_REUSEPORT, so those are made here.
    """
    if not reuse_port:
        return await trio.open_tcp_listeners(port, host=host)
    listeners: list[trio.SocketListener] = []
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    try:
        for family, kind, proto, _, address in infos:
            sock = trio.socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(address)
                sock.listen(128)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            await listener.aclose()
        raise
    return listeners


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
    max_connections: int | None = MAX_CONNECTIONS,
    greeting_delay: float = 0.0,
    min_data_rate: float = MIN_DATA_RATE,
    spool_threshold: int | None = SPOOL_THRESHOLD,
    data_timeout: float = DATA_TIMEOUT,
    auth_failure_delay: float = AUTH_FAILURE_DELAY,
    auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS,
    max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT,
    hook_threads: int = HOOK_THREADS,
    reuse_port: bool = False,
    shutdown: trio.Event | None = None,
    grace: float = 5.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Serve ``handler`` on ``host``:``port``; report the port through ``task_status``.

    Returns after a graceful shutdown (``shutdown.set()``): the number of
    sessions cut with a message in flight when ``grace`` ran out (as
    ``transports.sync.SMTPServer.close``); runs until cancelled otherwise.
    Options as in ``transports.sync.SMTPServer``;
    ``hook_threads`` as in ``transports.asyncio.SMTPServer`` (synchronous
    hooks run in at most that many worker threads, 0: on the event loop).
    Raises ``OSError`` when the address cannot be bound.
    """
    if implicit_tls and tls_context is None:
        raise InvalidArgument("implicit_tls needs a tls_context")
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
        spool_threshold=spool_threshold,
        data_timeout=data_timeout,
        scram_secret=secrets.token_bytes(32),  # this server's own: see ServerOptions
        auth_failure_delay=auth_failure_delay,
        auth_failures_per_address=auth_failures_per_address,
        max_connections_per_client=max_connections_per_client,
    )
    warn_unknown_hooks(handler)
    server = _Server(handler, options, tls_context, hook_threads)
    server.implicit_tls = implicit_tls
    listeners = await _listen(host, port, reuse_port)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(server.accept, listener, nursery)
        task_status.started(listeners[0].socket.getsockname()[1])
        if shutdown is None:
            await trio.sleep_forever()
        else:
            await shutdown.wait()
            server.stop()
            with trio.move_on_after(grace):
                if server.sessions:
                    await server.all_done.wait()
            if server.sessions:
                server.cut()
                with trio.move_on_after(1.0):  # for the 421s
                    await server.all_done.wait()
            dropped = len(server.dropped | server.live)
            if dropped:
                LOG.warning("shutdown: %d session(s) cut after the %g s grace with a message "
                            "in flight; their clients got no 250", dropped, grace)  # fmt: skip
            nursery.cancel_scope.cancel()
    return dropped if shutdown is not None else 0
