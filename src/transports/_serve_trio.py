"""The trio server: ``await nursery.start(serve, handler, host, port)`` returns the port.

Cancel the surrounding scope to stop at once; set ``shutdown`` (a
``trio.Event``) to stop gracefully: sessions waiting for a command get 421,
sessions in the middle of a message may finish it within ``grace`` seconds,
new connections meanwhile get 421. Each connection runs through
``AsyncServing`` (the one driver) over a ``_Stream``.
"""

from __future__ import annotations

import inspect
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

import trio

from smtpcore.session import CallHook, TLSInfo

from . import _trio_raw
from ._driver import AsyncServing
from ._server_settings import resolve
from ._serving import RESOURCE_ERRORS, AcceptBackoff, call_hook_async, tls_info
from ._tls import TLSLayer

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._server_keywords import ServerKeywords

__all__ = ["serve"]

# A hook thread still running when its session is cancelled is left to finish
# on its own, so a shutdown keeps its deadline (trio 0.23 renamed the flag).
_ABANDON: Final[dict[str, Any]] = (
    {"abandon_on_cancel": True}
    if "abandon_on_cancel" in inspect.signature(trio.to_thread.run_sync).parameters
    else {"cancellable": True}
)


class _Stream:
    """One client: a plain non-blocking socket while clear, a trio stream once TLS is on.

    Why a plain socket: see ``transports._trio_raw`` (the client does the
    same, transports/trio.py). trio's own errors leave as the ``OSError``
    and ``TimeoutError`` the driver knows.
    """

    def __init__(self, stream: trio.SocketStream, tls_context: ssl.SSLContext | None) -> None:
        self.socket_stream: trio.SocketStream | None = stream
        self.raw: socket.socket | None = None
        self.tls: trio.SSLStream[trio.SocketStream] | None = None
        self.tls_context = tls_context
        self.idle = False
        self.scope: trio.CancelScope | None = None  # the receive in progress

    def plain(self) -> socket.socket:
        """The connection's socket, taken from trio's stream at the first use in clear."""
        if self.raw is None:
            assert self.socket_stream is not None
            self.raw = socket.socket(fileno=self.socket_stream.socket.detach())
            self.raw.setblocking(False)
            self.socket_stream = None
        return self.raw

    async def receive(self, timeout: float) -> bytes | None:
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            self.scope = scope
            try:
                if self.tls is not None:
                    return bytes(await self.tls.receive_some(65536))
                return await _trio_raw.receive(self.plain())
            except trio.BrokenResourceError as error:
                raise ConnectionResetError(str(error)) from error
            finally:
                self.scope = None
        return None

    async def send(self, data: bytes, timeout: float) -> None:
        try:
            if self.tls is not None:
                with trio.fail_after(timeout):
                    await self.tls.send_all(data)
                return
            raw = self.plain()
            rest = _trio_raw.send_now(raw, data)
            if rest is not None:
                with trio.fail_after(timeout):
                    await _trio_raw.send_rest(raw, rest)
        except trio.TooSlowError as error:
            raise TimeoutError("the client reads no replies") from error
        except trio.BrokenResourceError as error:
            raise ConnectionResetError(str(error)) from error

    async def start_tls(self, timeout: float) -> TLSInfo:
        assert self.tls_context is not None
        if self.socket_stream is not None:
            inner = self.socket_stream
        else:
            inner = trio.SocketStream(trio.socket.from_stdlib_socket(self.plain()))
        self.socket_stream = self.raw = None
        self.tls = trio.SSLStream(inner, self.tls_context, server_side=True)
        try:
            with trio.fail_after(timeout):
                await self.tls.do_handshake()
        except trio.TooSlowError as error:
            raise TimeoutError("the TLS handshake took too long") from error
        except trio.BrokenResourceError as error:
            raise ConnectionResetError(str(error)) from error
        return tls_info(cast(TLSLayer, self.tls))

    async def aclose(self) -> None:
        if self.raw is not None:
            self.raw.close()
        stream = self.tls or self.socket_stream
        if stream is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await trio.aclose_forcefully(stream)

    def wake(self) -> None:
        if self.scope is not None:
            self.scope.cancel()

    def abort(self) -> None:
        """Nothing: ``serve`` cancels every session's task at once."""


class _Runtime:
    """trio's services: synchronous hooks in worker threads, at most ``hook_threads``."""

    clock = staticmethod(trio.current_time)
    sleep = staticmethod(trio.sleep)
    call_hook = staticmethod(call_hook_async)

    def __init__(self, hook_threads: int) -> None:
        self.limiter = trio.CapacityLimiter(max(hook_threads, 1))

    async def to_thread(self, function: Callable[[object, CallHook], object], handler: object,
                        effect: CallHook) -> object:  # fmt: skip
        return await trio.to_thread.run_sync(
            function, handler, effect, limiter=self.limiter, **_ABANDON
        )


async def _accept(serving: AsyncServing, listener: trio.SocketListener,
                  nursery: trio.Nursery, tls_context: ssl.SSLContext | None) -> None:  # fmt: skip
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
        address = stream.socket.getpeername()
        nursery.start_soon(serving.session, _Stream(stream, tls_context), address)


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
    shutdown: trio.Event | None = None,
    grace: float = 5.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    **options: Unpack[ServerKeywords],
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
    transport, resolved = resolve(handler, "serve", dict(options))
    serving = AsyncServing(
        handler, resolved, _Runtime(transport.hook_threads),
        implicit_tls=transport.implicit_tls, hook_threads=transport.hook_threads,
    )  # fmt: skip
    listeners = await _listen(host, port, transport.reuse_port)
    dropped = 0
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept, serving, listener, nursery, transport.tls_context)
        task_status.started(listeners[0].socket.getsockname()[1])
        if shutdown is None:
            await trio.sleep_forever()
        await shutdown.wait()
        dropped = await serving.shut_down(grace)
        nursery.cancel_scope.cancel()
    return dropped
