"""The blocking server: a listener thread and one thread per connection.

Each connection runs ``ServerOptions.session`` (the pure procedure) through
``_drive``, the interpreter loop. Reads wait in short slices when the
procedure allows an interruption, so a shutdown reaches idle sessions within
``_SLICE`` seconds; a session in the middle of a message is left to finish it.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final

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

from ._serving import (
    LOG,
    RESOURCE_ERRORS,
    AcceptBackoff,
    call_hook,
    new_id,
    now,
    session_log,
    tls_info,
    unknown_effect,
    warn_unknown_hooks,
)
from ._spool import spool_write

__all__ = ["SMTPServer", "serve"]

_SLICE: Final = 0.1  # seconds between looks at the shutdown flag while idle
# Errors of accept() about one client that gave up (or a firewall that
# refused it): nothing to wait for, the next accept may work at once.
_CLIENT_ACCEPT_ERRORS: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class SMTPServer:
    """An SMTP server on blocking sockets: a thread per connection.

    ``start()`` binds and listens (port 0 picks a free port: read ``port``);
    ``close(grace)`` stops: sessions waiting for a command get 421, sessions
    in the middle of a message may finish it within ``grace`` seconds, new
    connections meanwhile get 421; what remains is then cut. Use it as a
    context manager to start and close. ``tls_context`` (server side)
    enables STARTTLS, or implicit TLS with ``implicit_tls=True``.

    ``idle_timeout`` bounds each wait for the client and each command line;
    message content may take ``idle_timeout`` plus a second per
    ``min_data_rate`` octets (Postfix smtpd_min_data_rate). A
    ``greeting_delay`` holds the 220 back; a client that talks first gets 554.
    One message may take ``data_timeout`` seconds of waiting at most. A
    message's first ``spool_threshold`` octets are held in memory, the rest
    in a temporary file (None: all in memory); see ``ServerEnvelope``.
    Each failed AUTH waits ``auth_failure_delay`` seconds before its reply;
    a client address with ``auth_failures_per_address`` failures in 10
    minutes gets 421 to AUTH (see ``ServerOptions.create``).
    ``max_connections`` and ``max_connections_per_client`` cap the sessions
    served at once, in total and per client address (None: no cap); beyond
    them a connection gets ``421 4.7.0`` and is closed. Out of descriptors
    or threads, the server pauses accepting and tries again; it never stops
    on its own. ``reuse_port=True`` sets SO_REUSEPORT, so several processes
    can listen on one port and Linux spreads the connections among them
    (what ``smtpcore serve --workers`` does). Raises ``OSError`` when the
    address cannot be bound, ``ValueError`` for an option out of range.
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
        max_connections: int | None = MAX_CONNECTIONS,
        greeting_delay: float = 0.0,
        min_data_rate: float = MIN_DATA_RATE,
        spool_threshold: int | None = SPOOL_THRESHOLD,
        data_timeout: float = DATA_TIMEOUT,
        auth_failure_delay: float = AUTH_FAILURE_DELAY,
        auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS,
        max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT,
        reuse_port: bool = False,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise InvalidArgument("implicit_tls needs a tls_context")
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
            spool_threshold=spool_threshold,
            data_timeout=data_timeout,
            scram_secret=secrets.token_bytes(32),  # this server's own: see ServerOptions
            auth_failure_delay=auth_failure_delay,
            auth_failures_per_address=auth_failures_per_address,
            max_connections_per_client=max_connections_per_client,
        )
        warn_unknown_hooks(handler)
        self._admission = self.options.admission()
        self._reuse_port = reuse_port
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sessions: dict[threading.Thread, socket.socket] = {}
        self._stopping = threading.Event()
        self._cutting = threading.Event()  # the grace ran out: every wait ends now
        self._dropped: set[threading.Thread] = set()  # cut with a message in flight
        self._closed = threading.Event()

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        return self._port

    def start(self) -> SMTPServer:
        """Bind, listen and accept in a background thread; return self."""
        listener = socket.create_server(
            (self.host, self._port), backlog=128, reuse_port=self._reuse_port
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

        Out of descriptors, buffers, memory or threads, it pauses (from 10 ms,
        doubling up to 1 s) and tries again: the connections
        waiting in the backlog are served once resources come back. The
        first failure of a run is logged, and the recovery.
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
            if not self._start_session(sock, address):
                self._closed.wait(backoff.failed("a session thread could not start"))
                continue
            backoff.accepted()

    def _start_session(self, sock: socket.socket, address: tuple[str, int]) -> bool:
        """Start the thread serving ``sock``; False (``sock`` closed) when it cannot start."""
        with self._lock:
            refuse = self._admission.admit(address[0], stopping=self._stopping.is_set())
            thread = threading.Thread(
                target=self._session, args=(sock, address, refuse), daemon=True
            )
            if refuse is None:
                self._sessions[thread] = sock
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread"
            with self._lock:
                if self._sessions.pop(thread, None) is not None:
                    self._admission.release(address[0])
            sock.close()
            return False
        return True

    def _session(self, sock: socket.socket, address: tuple[str, int], refuse: str | None) -> None:
        me = threading.current_thread()
        try:
            peer = Peer(address[0], address[1])
            tls: TLSInfo | None = None
            sock.settimeout(self.options.idle_timeout)
            if self.implicit_tls and refuse is None:
                assert self.tls_context is not None
                sock = self.tls_context.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._sessions[me] = sock
                tls = tls_info(sock)
            procedure = self.options.session(
                peer, new_id(), tls=tls, refuse=refuse, log=session_log()
            )
            self._drive(procedure, sock)
        except (OSError, ssl.SSLError) as error:
            LOG.debug("session with %s ended: %s", address, error)
        except Exception:
            LOG.exception("session with %s failed", address)
        finally:
            with self._lock:
                if refuse is None:
                    self._admission.release(address[0])
                sock = self._sessions.pop(me, sock)
            sock.close()

    def _drive(self, procedure: ServerProcedure[int], sock: socket.socket) -> int:
        """Run a server procedure to its end over a blocking socket."""
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
                    case Write(data, timeout):
                        sock.settimeout(timeout)
                        sock.sendall(data)
                    case Receive(timeout, interruptible):
                        answer = self._receive(sock, timeout, interruptible)
                    case Handshake(_, timeout):
                        assert self.tls_context is not None
                        sock.settimeout(timeout)
                        sock = self.tls_context.wrap_socket(sock, server_side=True)
                        with self._lock:
                            self._sessions[threading.current_thread()] = sock
                        answer = tls_info(sock)
                    case Close():
                        sock.close()
                    case CallHook():
                        answer = call_hook(self.handler, effect)
                    case Now():
                        answer = now()
                    case Clock():
                        answer = time.monotonic()
                    case NewId():
                        answer = new_id()
                    case SpoolWrite():
                        answer = spool_write(effect)
                    case Pause(seconds):
                        time.sleep(seconds)
                    case Notice(message):
                        LOG.warning("%s", message)
                    case _:
                        unknown_effect(effect)
        finally:
            procedure.close()

    def _receive(self, sock: socket.socket, timeout: float, interruptible: bool) -> object:
        deadline = time.monotonic() + timeout
        while True:
            if interruptible and self._stopping.is_set():
                return SHUT_DOWN
            if self._cutting.is_set():
                # A transaction is open (else the wait would be interruptible
                # and have ended above): the session answers 421 and drops it.
                with self._lock:
                    self._dropped.add(threading.current_thread())
                return SHUT_DOWN
            left = deadline - time.monotonic()
            if left <= 0:
                return TIMED_OUT
            # Slices for busy waits too, so the end of a shutdown's grace is seen.
            sock.settimeout(min(left, _SLICE))
            try:
                return sock.recv(65536)
            except TimeoutError:
                continue

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
        self._stopping.set()
        self._wait_for_sessions(grace)
        with self._lock:
            busy = bool(self._sessions)
        if busy:
            self._cutting.set()
            self._wait_for_sessions(1.0)  # for the 421s: waits end within _SLICE
        self._closed.set()
        self._listener.close()
        with self._lock:
            left = dict(self._sessions)
            dropped = len(self._dropped | left.keys())
        for thread, sock in left.items():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            thread.join(1.0)
        if self._acceptor is not None:
            self._acceptor.join(1.0)
        if dropped:
            LOG.warning("shutdown: %d session(s) cut after the %g s grace with a message "
                        "in flight; their clients got no 250", dropped, grace)  # fmt: skip
        return dropped

    def _wait_for_sessions(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not self._sessions:
                    return
            time.sleep(0.02)

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
    ready: Callable[[SMTPServer], object] | None = None,
) -> None:
    """Serve ``handler`` until interrupted (Ctrl-C closes gracefully).

    The options are those of ``SMTPServer``; ``ready(server)`` is called once
    listening (``server.port`` is the port chosen for port 0).
    """
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
        spool_threshold=spool_threshold,
        data_timeout=data_timeout,
        auth_failure_delay=auth_failure_delay,
        auth_failures_per_address=auth_failures_per_address,
        max_connections_per_client=max_connections_per_client,
    )
    with server:
        if ready is not None:
            ready(server)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
