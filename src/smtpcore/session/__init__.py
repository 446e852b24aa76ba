"""Session procedures: whole client conversations as generators of I/O effects.

A procedure drives a ``ClientConnection`` and yields ``Write``, ``Read``,
``Handshake``, ``Close`` and ``NextChunk`` effects; a transport performs each
one and sends back its answer. The procedures hold every policy of a
delivery (TLS, AUTH, pipelining, RSET after failures), so the four
transports hold nothing but I/O.
"""

from ._client import WRITE_BATCH, deliver, deliver_message, open_session, quit, simple_command
from ._effects import (
    Close,
    Effect,
    Handshake,
    NextChunk,
    Procedure,
    Read,
    Write,
    is_reusable,
    next_reply,
    read,
    waiting_for,
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
    command_text,
    reply_error,
)
from ._options import (
    DSN,
    Body,
    ClientOptions,
    Envelope,
    SendResult,
    Timeouts,
    TLSMode,
    hello_name,
)
from ._tls import TLSInfo

__all__ = [
    "DSN",
    "WRITE_BATCH",
    "AuthenticationError",
    "Body",
    "ClientOptions",
    "Close",
    "ConnectionLost",
    "Effect",
    "Envelope",
    "Handshake",
    "NextChunk",
    "NotSupported",
    "PermanentError",
    "Procedure",
    "Read",
    "RecipientsRefused",
    "ReplyError",
    "SMTPError",
    "SMTPTimeout",
    "SendResult",
    "TLSError",
    "TLSInfo",
    "TLSMode",
    "Timeouts",
    "TransientError",
    "Write",
    "command_text",
    "deliver",
    "deliver_message",
    "hello_name",
    "is_reusable",
    "next_reply",
    "open_session",
    "quit",
    "read",
    "reply_error",
    "simple_command",
    "waiting_for",
]
