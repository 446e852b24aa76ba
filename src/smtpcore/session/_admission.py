"""Who gets a session: the connection caps every server applies the same way.

A server asks ``Admission.admit`` for each accepted connection and calls
``release`` when the session ends. The caps follow Postfix: a total
(``default_process_limit``) and one per client address
(``smtpd_client_connection_count_limit``), so one address cannot take every
slot. Beyond a cap the connection is greeted with ``421 4.7.0`` and closed at
once (RFC 5321 3.8), instead of failing later when the process runs out of
descriptors or threads.

Not thread-safe: a threaded server holds its own lock around both calls.
"""

from __future__ import annotations

from typing import Final

from .._errors import InvalidArgument

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_CLIENT",
    "SHUTTING_DOWN",
    "TOO_MANY",
    "TOO_MANY_FROM_CLIENT",
    "Admission",
]

MAX_CONNECTIONS: Final = 500
"""Default cap on sessions served at once (below a 1,024-descriptor limit)."""
MAX_CONNECTIONS_PER_CLIENT: Final = 50
"""Default cap on sessions from one client address (Postfix's default)."""

#: The refusal texts: what follows ``421 <hostname>`` in the greeting.
SHUTTING_DOWN: Final = "4.3.2 Service shutting down, try again later"
TOO_MANY: Final = "4.7.0 Too many connections, try again later"
TOO_MANY_FROM_CLIENT: Final = "4.7.0 Too many connections from your address, try again later"


class Admission:
    """The sessions being served, in total and per client address."""

    def __init__(self, total: int | None, per_client: int | None) -> None:
        if total is not None and total < 1:
            raise InvalidArgument(f"max_connections must be >= 1 or None, not {total!r}")
        if per_client is not None and per_client < 1:
            raise InvalidArgument(
                f"max_connections_per_client must be >= 1 or None, not {per_client!r}"
            )
        self.total = total
        self.per_client = per_client
        self.active = 0
        self._by_client: dict[str, int] = {}

    def admit(self, client: str, *, stopping: bool = False) -> str | None:
        """Count a session from ``client`` in and return None, or return why not.

        The reason is the text of the ``421`` greeting after the host name;
        a refused connection is not counted and needs no ``release``.
        """
        if stopping:
            return SHUTTING_DOWN
        if self.total is not None and self.active >= self.total:
            return TOO_MANY
        count = self._by_client.get(client, 0)
        if self.per_client is not None and count >= self.per_client:
            return TOO_MANY_FROM_CLIENT
        self.active += 1
        self._by_client[client] = count + 1
        return None

    def release(self, client: str) -> None:
        """A session that ``admit`` let in has ended."""
        self.active -= 1
        count = self._by_client.pop(client, 0) - 1
        if count > 0:
            self._by_client[client] = count

    def from_client(self, client: str) -> int:
        """The sessions from ``client`` being served now."""
        return self._by_client.get(client, 0)
