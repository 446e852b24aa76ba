"""Server options: everything a listener needs to start sessions, resolved once.

``ServerSettings`` declares every option a user passes to a server, once:
its fields, defaults and checks. The servers' keyword arguments are typed
from its fields (``transports._server_keywords``, written by
``make generate``), and ``ServerOptions.create`` builds from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Final

from .._errors import InvalidArgument
from .._limits import Limits
from .._server import ServerConfig, ServerConnection
from ._admission import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    SHUTTING_DOWN,
    TOO_MANY,
    Admission,
)
from ._hooks import contextual, hooks_of
from ._report import LogLine
from ._serve import serve_connection
from ._server_auth import AUTH_FAILURE_DELAY
from ._server_effects import ServerProcedure
from ._server_session import DATA_TIMEOUT, IDLE_TIMEOUT, MIN_DATA_RATE, SPOOL_THRESHOLD
from ._server_values import Peer
from ._throttle import AUTH_FAILURE_WINDOW, AUTH_FAILURES_PER_ADDRESS, AuthBudget
from ._tls import TLSInfo

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._server_keywords import SettingsKeywords

__all__ = ["DEFAULT_MESSAGE_SIZE", "ServerOptions", "ServerSettings"]

DEFAULT_MESSAGE_SIZE: Final = 32 * 1024 * 1024
"""The largest message accepted when no ServerConfig says otherwise."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Every option a user gives a server, with its default, checked once.

    ``config``: the ``ServerConfig`` (None: the defaults of
    ``ServerOptions.create``); ``limits``: the ``Limits``; ``hostname``
    replaces ``config.hostname``. ``idle_timeout`` bounds every wait and
    every command line; ``min_data_rate`` (octets per second) stretches it
    for message content (Postfix smtpd_min_data_rate). ``greeting_delay``
    holds the 220 back that many seconds; a client that talks meanwhile
    gets 554. ``spool_threshold``: octets of a message held in memory, the
    rest going to a spool the transport provides (None: everything in
    memory). ``data_timeout``: seconds of waiting one message may take from
    354 (or its first BDAT chunk) to its end. Each failed AUTH waits
    ``auth_failure_delay`` seconds before its reply; a client address that
    failed ``auth_failures_per_address`` times within ``auth_failure_window``
    seconds gets ``421 4.7.0`` to AUTH (None: no bound).
    ``max_connections`` and ``max_connections_per_client`` cap the sessions
    served at once, in total and per client address (None: no cap).

    Raises ``ValueError`` for a non-positive timeout, data rate or
    connection cap, or a negative greeting delay, AUTH delay or spool
    threshold.
    """

    config: ServerConfig | None = None
    limits: Limits | None = None
    hostname: str | None = None
    idle_timeout: float = IDLE_TIMEOUT
    max_connections: int | None = MAX_CONNECTIONS
    greeting_delay: float = 0.0
    min_data_rate: float = MIN_DATA_RATE
    spool_threshold: int | None = SPOOL_THRESHOLD
    data_timeout: float = DATA_TIMEOUT
    auth_failure_delay: float = AUTH_FAILURE_DELAY
    auth_failures_per_address: int | None = AUTH_FAILURES_PER_ADDRESS
    max_connections_per_client: int | None = MAX_CONNECTIONS_PER_CLIENT
    #: Not a server keyword: the window is Postfix anvil's ten minutes.
    auth_failure_window: float = field(default=AUTH_FAILURE_WINDOW, metadata={"keyword": False})

    def __post_init__(self) -> None:
        if not self.auth_failure_delay >= 0:
            raise InvalidArgument(
                f"auth_failure_delay must be >= 0 seconds, not {self.auth_failure_delay!r}"
            )
        if self.auth_failures_per_address is not None:
            AuthBudget(self.auth_failures_per_address, self.auth_failure_window)  # checks both
        if not self.idle_timeout > 0:
            raise InvalidArgument(f"idle_timeout must be > 0, not {self.idle_timeout!r}")
        if not self.min_data_rate > 0:
            raise InvalidArgument(
                f"min_data_rate must be > 0 octets per second, not {self.min_data_rate!r}"
            )
        if not self.greeting_delay >= 0:
            raise InvalidArgument(
                f"greeting_delay must be >= 0 seconds, not {self.greeting_delay!r}"
            )
        Admission(self.max_connections, self.max_connections_per_client)  # checks both caps
        if not self.data_timeout > 0:
            raise InvalidArgument(f"data_timeout must be > 0, not {self.data_timeout!r}")
        threshold = self.spool_threshold
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
        ):
            raise InvalidArgument(f"spool_threshold must be an int >= 0 or None, not {threshold!r}")

    @classmethod
    def keywords(cls) -> frozenset[str]:
        """The names a server takes these settings by (every field but the window)."""
        return frozenset(f.name for f in fields(cls) if f.metadata.get("keyword", True))


@dataclass(frozen=True, slots=True)
class ServerOptions(ServerSettings):
    """Everything a listener needs to start sessions, resolved once.

    The ``ServerSettings`` a user gave, resolved: a ``config`` and ``limits``
    always, the handler's ``hooks``, and what lives as long as the server.
    Build it with ``create``; ``session`` makes the procedure for one
    connection.
    """

    config: ServerConfig = field(default_factory=ServerConfig)
    limits: Limits = field(default_factory=Limits)
    hooks: frozenset[str] = frozenset()
    #: Random octets kept for the server's lifetime: SCRAM salts derive from
    #: them, so unknown users look like known ones (RFC 5802 9).
    scram_secret: bytes | None = field(default=None, repr=False)
    #: Failed AUTH per client address across sessions; None: no such bound.
    auth_budget: AuthBudget | None = field(default=None, compare=False)
    #: The handler is a ``Handler``: each hook gets a ``SessionContext`` first.
    contextual: bool = False

    @classmethod
    def create(
        cls,
        handler: object,
        settings: ServerSettings | None = None,
        *,
        starttls: bool = False,
        scram_secret: bytes | None = None,
        **keywords: Unpack[SettingsKeywords],
    ) -> ServerOptions:
        """Options for ``handler``: any object with hooks (``HOOKS``), or a ``Handler``.

        The options are ``settings`` (a ``ServerSettings``) with ``keywords``
        (its fields) replaced; see ``ServerSettings`` for each.
        A ``Handler``'s hooks are called with a ``SessionContext`` first
        (``contextual``); only the hooks its class defines count.

        Without ``config``, the defaults: SIZE of ``DEFAULT_MESSAGE_SIZE``,
        PIPELINING, 8BITMIME, SMTPUTF8, CHUNKING, ENHANCEDSTATUSCODES; AUTH with
        the mechanisms the handler can check (PLAIN and LOGIN with
        ``authenticate``; SCRAM-SHA-256 and CRAM-MD5 too with
        ``lookup_secret``). ``starttls`` says whether the transport can
        upgrade (a TLS context was given): it sets ``config.starttls``.

        ``scram_secret``: random octets (``secrets.token_bytes(32)``; the
        transports give each server its own) from which SCRAM derives the
        salt of every user, so a user that does not exist gets a challenge
        like one that does and fails only at the proof (RFC 5802 9); without
        it, salts are fresh for each exchange and unknown users fail at once.
        The AUTH failures of a client address (``auth_failures_per_address``)
        are counted over any number of sessions in these options' memory
        (``AuthBudget``). ``max_connections`` and
        ``max_connections_per_client`` are applied by ``admission``.
        Raises ``ValueError`` for an option out of range (``ServerSettings``)
        or a short secret; ``TypeError`` for an unknown keyword.
        """
        if settings is None:
            settings = ServerSettings(**keywords)
        elif keywords:
            settings = replace(settings, **keywords)
        if scram_secret is not None and len(scram_secret) < 16:
            raise InvalidArgument("scram_secret must be None or at least 16 random octets")
        budget = None
        if settings.auth_failures_per_address is not None:
            budget = AuthBudget(settings.auth_failures_per_address, settings.auth_failure_window)
        config = settings.config
        hooks = hooks_of(handler)
        if config is None:
            mechanisms: tuple[str, ...] = ()
            if "lookup_secret" in hooks:
                mechanisms += ("SCRAM-SHA-256", "CRAM-MD5")
            if "lookup_secret" in hooks or "authenticate" in hooks:
                mechanisms += ("PLAIN", "LOGIN")
            config = ServerConfig(
                size=DEFAULT_MESSAGE_SIZE,
                smtputf8=True,
                chunking=True,
                auth_mechanisms=mechanisms,
            )
        config = replace(config, starttls=starttls)
        if settings.hostname is not None:
            config = replace(config, hostname=settings.hostname)
        given = {f.name: getattr(settings, f.name) for f in fields(ServerSettings)}
        return cls(
            **given
            | {
                "config": config,
                "limits": settings.limits if settings.limits is not None else Limits(),
                "hooks": hooks,
                "scram_secret": scram_secret,
                "auth_budget": budget,
                "contextual": contextual(handler),
            }
        )

    def admission(self) -> Admission:
        """A fresh count of sessions, which decides who is served (one per listener)."""
        return Admission(self.max_connections, self.max_connections_per_client)

    def refusal(self, active: int, *, stopping: bool) -> str | None:
        """Why a new connection gets 421 instead of a session, or None to serve it.

        ``active`` is the number of sessions being served; ``stopping`` says a
        graceful shutdown has begun. Only the total cap: ``admission`` also
        counts per client address.
        """
        if stopping:
            return SHUTTING_DOWN
        if self.max_connections is not None and active >= self.max_connections:
            return TOO_MANY
        return None

    def session(
        self,
        peer: Peer,
        session_id: str,
        *,
        tls: TLSInfo | None = None,
        refuse: str | None = None,
        log: LogLine | None = None,
    ) -> ServerProcedure[int]:
        """The procedure serving one connection; see ``serve_connection``."""
        conn = ServerConnection(self.config, self.limits, tls=tls is not None)
        return serve_connection(
            conn, self, peer, session_id=session_id, tls=tls, refuse=refuse, log=log
        )
