"""The rules every driver applies the same way, for those who bind smtpcore to their own I/O.

A driver is the loop that performs a procedure's effects on a real
connection; ``transports.sync``, ``transports.asyncio``, ``transports.trio``
and ``transports.anyio`` are four. The procedures and their effects are in
``smtpcore.session``. This module holds what a driver decides around them,
so that one written outside this package behaves as ours do:

- **Clients**: ``io_failure`` turns what the I/O raised into the error the
  session reports (a timeout, a lost connection, a TLS failure, worded with
  what was awaited); ``is_reusable`` says whether a connection may carry
  another message; ``hello_name`` picks the EHLO name from the local
  address when none is configured; ``batches``, ``BATCH``, ``unsent`` and
  ``connection_failed`` split many messages into pipelined groups and say
  what became of those a failure left unsent.
- **Servers**: ``Admission`` counts the sessions served at once, in all and
  per client address, and says which connection to refuse with 421;
  ``HOOKS``, ``hooks_of`` and ``unknown_hooks`` tell which hooks a handler
  has and which ``on_*`` names it misspelled; ``LogLine`` is the one line a
  session or a message writes to the log.
"""

from __future__ import annotations

from .session._admission import Admission
from .session._effects import io_failure, is_reusable
from .session._hooks import HOOKS, hooks_of, unknown_hooks
from .session._many import BATCH, batches, connection_failed, unsent
from .session._options import hello_name
from .session._report import LogLine

__all__ = [
    "BATCH",
    "HOOKS",
    "Admission",
    "LogLine",
    "batches",
    "connection_failed",
    "hello_name",
    "hooks_of",
    "io_failure",
    "is_reusable",
    "unknown_hooks",
    "unsent",
]
