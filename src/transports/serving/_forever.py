"""``serve_forever``: one server, or N forked workers on one port, until SIGINT or SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from smtpcore import InvalidArgument
from smtpcore.session import ServerSettings

from . import _run, _workers

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._server_keywords import ServerKeywords

__all__ = ["SHARED_BOUNDS", "Stopped", "serve_forever"]

SHARED_BOUNDS: Final = (
    "max_connections",
    "max_connections_per_client",
    "auth_failures_per_address",
)
"""The bounds on a whole server that its workers share out: a client's
connections land on any worker, so each gets its part (rounded up)."""


@dataclass(frozen=True)
class Stopped:
    """How ``serve_forever`` ended.

    ``signal``: the signal that stopped it (SIGTERM when a worker ended by
    itself and the others were stopped). ``dropped``: the sessions cut after
    the grace with a message in flight, whose clients got no 250 (added up
    over the workers that said). ``unknown``: a line for each worker that
    ended without saying what it dropped (killed, crashed); what those had
    in flight is not known, and is not counted as nothing.
    """

    signal: int
    dropped: int
    unknown: tuple[str, ...] = ()


def serve_forever(
    handler: object,
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    transport: Literal["sync", "asyncio", "trio", "anyio"] = "asyncio",
    workers: int = 1,
    grace: float = 30.0,
    loop: Literal["asyncio", "uvloop"] = "asyncio",
    ready: Callable[[int], None] | None = None,
    **options: Unpack[ServerKeywords],
) -> Stopped:
    """Serve on ``transport`` until SIGINT or SIGTERM, then stop gracefully within ``grace`` s.

    Blocks; call it from the main thread (it handles the two signals).
    ``workers`` above 1 forks that many processes, each with its own server
    on the same port (SO_REUSEPORT: Linux spreads the connections among
    them); one signal stops them all, and each worker stops as one server
    would. The bounds on the whole server (``SHARED_BOUNDS``) are divided
    among the workers, rounded up, so that together they stay what was
    asked. ``ready(port)`` is called once listening (the port the first
    worker bound when ``port`` is 0). ``loop="uvloop"`` runs the asyncio
    server on uvloop. Other keywords are the servers' own.

    Raises ``InvalidArgument`` for fewer than one worker, or for more than
    one where connections are not spread among processes (not Linux), and
    ``OSError`` when the address cannot be bound.
    """
    if workers < 1:
        raise InvalidArgument(f"workers must be at least 1, not {workers}")
    if workers > 1 and not _workers.REUSE_PORT_BALANCES:
        raise InvalidArgument(
            f"{workers} workers need SO_REUSEPORT spreading connections among processes, "
            f"which only Linux does (this is {sys.platform})"
        )
    keywords: dict[str, Any] = dict(options)
    if workers > 1:
        keywords["reuse_port"] = True
        defaults = ServerSettings()
        for name in SHARED_BOUNDS:
            bound = keywords.get(name, getattr(defaults, name))
            if bound is not None:
                keywords[name] = _workers.worker_share(bound, workers)

    def serve(port: int, listening: Callable[[int], None]) -> tuple[int, int]:
        return _run.run(transport, handler, host, port, listening, grace=grace, loop=loop,
                        options=keywords)  # fmt: skip

    told = ready or (lambda port: None)
    if workers == 1:
        signum, dropped = serve(port, told)
        return Stopped(signum, dropped)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else each worker would write the parent's buffered text again
    signum, dropped, unknown = _workers.run_workers(workers, port, told, serve)
    return Stopped(signum, dropped, tuple(unknown))
