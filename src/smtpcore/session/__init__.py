"""Session procedures: whole client conversations as generators of I/O effects.

A procedure drives a ``ClientConnection`` and yields ``Write``, ``Read``,
``Handshake``, ``Close`` and ``NextChunk`` effects; a transport performs each
one and sends back its answer. The procedures hold every policy of a
delivery (TLS, AUTH, pipelining, RSET after failures), so the four
transports hold nothing but I/O.
"""

from .._message import PreparedMessage, content_is_8bit, prepare_message, to_7bit
from ._client import deliver, deliver_message, open_session, quit, simple_command
from ._effects import (
    Close,
    Effect,
    Handshake,
    NextChunk,
    Procedure,
    Read,
    StageClock,
    Write,
)
from ._errors import (
    AuthenticationError,
    ConnectionLost,
    NotSupported,
    PermanentError,
    RecipientsRefused,
    ReplyError,
    SMTPError,
    SMTPTimeout,
    TLSError,
    TransientError,
)
from ._hooks import Handler
from ._many import (
    Outcome,
    Outgoing,
    Status,
    deliver_many,
)
from ._options import (
    DSN,
    Body,
    ClientOptions,
    Envelope,
    SendResult,
    Timeouts,
    TLSMode,
)
from ._received import received_header
from ._serve import serve_connection
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
from ._server_options import ServerOptions, ServerSettings
from ._server_values import Peer, ServerEnvelope, SessionContext, SessionInfo
from ._throttle import AuthBudget
from ._tls import TLSInfo

__all__ = [
    "DSN",
    "SHUT_DOWN",
    "TIMED_OUT",
    "AuthBudget",
    "AuthenticationError",
    "Body",
    "CallHook",
    "ClientOptions",
    "Clock",
    "Close",
    "ConnectionLost",
    "ContentSpool",
    "Effect",
    "Envelope",
    "Handler",
    "Handshake",
    "HookFailed",
    "Interrupted",
    "NewId",
    "NextChunk",
    "NotSupported",
    "Notice",
    "Now",
    "Outcome",
    "Outgoing",
    "Pause",
    "Peer",
    "PermanentError",
    "PreparedMessage",
    "Procedure",
    "Read",
    "Receive",
    "RecipientsRefused",
    "ReplyError",
    "SMTPError",
    "SMTPTimeout",
    "SendResult",
    "ServerEffect",
    "ServerEnvelope",
    "ServerOptions",
    "ServerProcedure",
    "ServerSettings",
    "SessionContext",
    "SessionInfo",
    "SpoolWrite",
    "StageClock",
    "Status",
    "TLSError",
    "TLSInfo",
    "TLSMode",
    "Timeouts",
    "TransientError",
    "Write",
    "content_is_8bit",
    "deliver",
    "deliver_many",
    "deliver_message",
    "open_session",
    "prepare_message",
    "quit",
    "received_header",
    "serve_connection",
    "simple_command",
    "to_7bit",
]
