"""The server side of ``smtpcore.session`` in one place, public names and internals alike.

The procedure is ``_serve``; its effects, value types, options, AUTH and
``Received:`` header each have a module of their own. This module only
gathers their names, for the tests and benchmarks that reach past the
public surface; the transports import ``smtpcore.session`` and
``smtpcore.driver`` instead.
"""

from __future__ import annotations

from ._hooks import HOOKS, Handler, hooks_of, unknown_hooks
from ._received import format_date, received_header
from ._serve import serve_connection
from ._server_auth import AUTH_FAILURE_DELAY, SCRAM_ITERATIONS
from ._server_effects import (
    SHUT_DOWN,
    TIMED_OUT,
    CallHook,
    Clock,
    ContentSpool,
    HookFailed,
    Interrupted,
    NewId,
    Notice,
    Now,
    Pause,
    Receive,
    ServerEffect,
    ServerProcedure,
    SpoolWrite,
)
from ._server_options import DEFAULT_MESSAGE_SIZE, ServerOptions
from ._server_session import DATA_TIMEOUT, IDLE_TIMEOUT, MIN_DATA_RATE, SPOOL_THRESHOLD
from ._server_values import CHUNK, Peer, ServerEnvelope, SessionContext, SessionInfo
from ._throttle import AUTH_FAILURES_PER_ADDRESS
from ._tls import TLSInfo

__all__ = [
    "AUTH_FAILURES_PER_ADDRESS",
    "AUTH_FAILURE_DELAY",
    "CHUNK",
    "DATA_TIMEOUT",
    "DEFAULT_MESSAGE_SIZE",
    "HOOKS",
    "IDLE_TIMEOUT",
    "MIN_DATA_RATE",
    "SCRAM_ITERATIONS",
    "SHUT_DOWN",
    "SPOOL_THRESHOLD",
    "TIMED_OUT",
    "CallHook",
    "Clock",
    "ContentSpool",
    "Handler",
    "HookFailed",
    "Interrupted",
    "NewId",
    "Notice",
    "Now",
    "Pause",
    "Peer",
    "Receive",
    "ServerEffect",
    "ServerEnvelope",
    "ServerOptions",
    "ServerProcedure",
    "SessionContext",
    "SessionInfo",
    "SpoolWrite",
    "TLSInfo",
    "format_date",
    "hooks_of",
    "received_header",
    "serve_connection",
    "unknown_hooks",
]
