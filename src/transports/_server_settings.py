"""The options only a transport knows, and the split of a server's keywords.

Every option a user passes to a server is declared once: the session's in
``smtpcore.session.ServerSettings``, the transport's here
(``TransportSettings``). ``ServerKeywords`` (``_server_keywords``, written by
``make generate`` from both) types the ``**options`` of every server.
"""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Final

from smtpcore import InvalidArgument
from smtpcore.session import ServerOptions, ServerSettings

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._server_keywords import ServerKeywords

__all__ = ["HOOK_THREADS", "ServerBase", "TransportSettings", "resolve", "split_options"]

#: Default number of worker threads per async server for synchronous hooks.
HOOK_THREADS: Final = 8


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """The server options of the transports: TLS, hook threads, the listening socket.

    ``tls_context`` (server side) enables STARTTLS, or implicit TLS with
    ``implicit_tls=True``. ``hook_threads``: an async server runs
    synchronous hooks in a pool of that many worker threads, so one slow hook
    does not hold up the other sessions (0: every hook on the event loop;
    the threaded server runs each hook in its session's thread and ignores
    it). ``reuse_port=True`` sets SO_REUSEPORT, so several processes can
    listen on one port and Linux spreads the connections among them.
    Raises ``ValueError`` for implicit TLS without a context or a negative
    ``hook_threads``.
    """

    tls_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    hook_threads: int = HOOK_THREADS
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if self.implicit_tls and self.tls_context is None:
            raise InvalidArgument("implicit_tls needs a tls_context")
        if self.hook_threads < 0:
            raise InvalidArgument(f"hook_threads must be >= 0, not {self.hook_threads!r}")


_TRANSPORT: Final = frozenset(f.name for f in fields(TransportSettings))
_SESSION: Final = ServerSettings.keywords()


def split_options(
    where: str, options: dict[str, object]
) -> tuple[TransportSettings, ServerSettings]:
    """A server's keyword arguments as the two settings; ``TypeError`` names an unknown one."""
    for name in options:
        if name not in _TRANSPORT and name not in _SESSION:
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")
    transport = {k: v for k, v in options.items() if k in _TRANSPORT}
    session = {k: v for k, v in options.items() if k in _SESSION}
    return TransportSettings(**transport), ServerSettings(**session)  # type: ignore[arg-type]


def resolve(
    handler: object, where: str, options: dict[str, object]
) -> tuple[TransportSettings, ServerOptions]:
    """A server's keyword arguments, checked: its transport settings and session options."""
    transport, settings = split_options(where, options)
    resolved = ServerOptions.create(
        handler,
        settings,
        starttls=transport.tls_context is not None and not transport.implicit_tls,
        scram_secret=secrets.token_bytes(32),  # this server's own: see ServerOptions
    )
    return transport, resolved


class ServerBase:
    """What every server class holds: its handler, its address and its options, resolved.

    A server class adds what its framework needs in ``_setup``.
    """

    def __init__(
        self,
        handler: object,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Unpack[ServerKeywords],
    ) -> None:
        self.transport, self.options = resolve(handler, type(self).__name__, dict(options))
        self.handler = handler
        self.host = host
        self._port = port
        self.tls_context = self.transport.tls_context
        self.implicit_tls = self.transport.implicit_tls
        self._setup()

    def _setup(self) -> None:
        """The framework's own state, once the options are resolved."""

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        return self._port
