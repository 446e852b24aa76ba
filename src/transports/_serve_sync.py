"""The blocking server: a listener thread and one thread per connection.

Each connection's thread runs the one driver (``AsyncServing``) itself,
with ``run_blocking``: this stream and runtime are coroutines that do their
work in place (a blocking socket call, ``time.sleep``, the hook called in
the session's thread) and never suspend. Reads wait in short slices, so a
shutdown reaches idle sessions within ``_SLICE`` seconds; a session in the
middle of a message is left to finish it.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final

from smtpcore.session import CallHook, TLSInfo

from ._blocking import run_blocking
from ._driver import AsyncServing
from ._server_settings import ServerBase
from ._serving import LOG, RESOURCE_ERRORS, AcceptBackoff, call_hook, tls_info

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._server_keywords import ServerKeywords

__all__ = ["SMTPServer", "serve"]

_SLICE: Final = 0.1  # seconds between looks at the shutdown flag while waiting
# Errors of accept() about one client that gave up (or a firewall that
# refused it): nothing to wait for, the next accept may work at once.
_CLIENT_ACCEPT_ERRORS: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class _Stream:
    """A blocking socket as the driver's stream (it never suspends); ``wake`` within ``_SLICE``."""

    def __init__(self, sock: socket.socket, tls_context: ssl.SSLContext | None) -> None:
        self.sock = sock
        self.tls_context = tls_context
        self.idle = False
        self.woken = False

    async def receive(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while not self.woken:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, _SLICE))
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        self.woken = False
        return None

    async def send(self, data: bytes, timeout: float) -> None:
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    async def start_tls(self, timeout: float) -> TLSInfo:
        assert self.tls_context is not None
        self.sock.settimeout(timeout)
        self.sock = self.tls_context.wrap_socket(self.sock, server_side=True)
        return tls_info(self.sock)

    async def aclose(self) -> None:
        self.sock.close()

    def wake(self) -> None:
        self.woken = True

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class _Runtime:
    """The threaded server's services, never suspending: every hook runs in its session's thread."""

    clock = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def to_thread(self, function: Callable[[object, CallHook], object], handler: object,
                        effect: CallHook) -> object:  # fmt: skip
        # Not reached: with no hook threads every hook goes to call_hook.
        return function(handler, effect)

    async def call_hook(self, handler: object, effect: CallHook) -> object:
        # A coroutine a hook returns runs in a fresh event loop.
        return call_hook(handler, effect)


class SMTPServer(ServerBase):
    """An SMTP server on blocking sockets: a thread per connection.

    ``start()`` binds and listens (port 0 picks a free port: read ``port``);
    ``close(grace)`` stops: sessions waiting for a command get 421, sessions
    in the middle of a message may finish it within ``grace`` seconds, new
    connections meanwhile get 421; what remains is then cut. Use it as a
    context manager to start and close.

    The ``options`` are the fields of ``smtpcore.session.ServerSettings``
    (timeouts, caps, AUTH throttling, spooling...) and of
    ``TransportSettings`` (``tls_context``, ``implicit_tls``, ``reuse_port``;
    ``hook_threads`` has no effect here: each hook runs in its session's
    thread); an unknown one is a ``TypeError``. Beyond ``max_connections``
    or ``max_connections_per_client`` a connection gets ``421 4.7.0`` and
    is closed. Out of descriptors or threads, the server pauses accepting
    and tries again; it never stops on its own. ``reuse_port=True`` lets
    several processes listen on one port (what ``smtpcore serve --workers``
    does). Raises ``OSError`` when the address cannot be bound,
    ``ValueError`` for an option out of range.
    """

    def _setup(self) -> None:
        handler = self.handler
        self._serving = AsyncServing(
            handler, self.options, _Runtime(), implicit_tls=self.implicit_tls
        )
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._closed = threading.Event()

    def start(self) -> SMTPServer:
        """Bind, listen and accept in a background thread; return self."""
        listener = socket.create_server(
            (self.host, self._port), backlog=128, reuse_port=self.transport.reuse_port
        )
        listener.settimeout(_SLICE)
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="smtp-accept", daemon=True)
        self._acceptor.start()
        return self

    def serve_forever(self) -> None:
        """Block until ``close`` is called from another thread."""
        self._closed.wait()

    def _accept(self) -> None:
        """Accept until closed; never give up while the listener stays open.

        Out of descriptors, buffers, memory or threads, it pauses
        (``AcceptBackoff``) and tries again: the connections waiting in the
        backlog are served once resources come back.
        """
        listener = self._listener
        assert listener is not None
        backoff = AcceptBackoff(self._port)
        while not self._closed.is_set():
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self._closed.is_set():
                    return  # the listener was closed
                if error.errno in _CLIENT_ACCEPT_ERRORS:
                    continue
                if error.errno not in RESOURCE_ERRORS:
                    LOG.error("accept on port %s failed; not accepting any more", self._port,
                              exc_info=error)  # fmt: skip
                    return
                self._closed.wait(backoff.failed(str(error)))
                continue
            sock.settimeout(self.options.idle_timeout)
            stream = _Stream(sock, self.tls_context)
            thread = threading.Thread(target=self._session, args=(stream, address), daemon=True)
            try:
                self._threads.add(thread)
                thread.start()
            except RuntimeError:  # "can't start new thread"
                self._threads.discard(thread)
                sock.close()
                self._closed.wait(backoff.failed("a session thread could not start"))
                continue
            backoff.accepted()

    def _session(self, stream: _Stream, address: tuple[str, int]) -> None:
        try:
            run_blocking(self._serving.session(stream, address))
        finally:
            self._threads.discard(threading.current_thread())

    def close(self, grace: float = 5.0) -> int:
        """Stop gracefully; return the number of sessions cut with a message in flight.

        Sessions waiting for a command get ``421 4.3.2`` now; new connections
        get it instead of a greeting. Sessions with a transaction open (MAIL
        given, content arriving, or ``on_message`` running after the final
        dot) have ``grace`` seconds to finish. Then a session still waiting
        for its client gets ``421 4.3.2`` and its message is dropped (its
        client got no 250 and keeps it); one still in a hook is cut off (its
        hook may finish in its thread, but the client gets no 250). Each
        cut session counts in the result and in the warning logged.
        """
        if self._listener is None or self._closed.is_set():
            return 0
        dropped = run_blocking(self._serving.shut_down(grace))
        self._closed.set()
        self._listener.close()
        for thread in list(self._threads):
            thread.join(1.0)
        if self._acceptor is not None:
            self._acceptor.join(1.0)
        return dropped

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    ready: Callable[[SMTPServer], object] | None = None,
    **options: Unpack[ServerKeywords],
) -> None:
    """Serve ``handler`` until interrupted (Ctrl-C closes gracefully).

    The options are those of ``SMTPServer``; ``ready(server)`` is called once
    listening (``server.port`` is the port chosen for port 0).
    """
    with SMTPServer(handler, host, port, **options) as server:
        if ready is not None:
            ready(server)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
