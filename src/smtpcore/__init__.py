"""smtpcore: a Sans-IO SMTP implementation.

The pure protocol core: bytes go in (``receive_data``), events come out
(``next_event``); events go in (``send``), bytes come out. No socket, clock or
thread is used here; the ``transports`` package binds this core to blocking
sockets, asyncio, trio and anyio.

This module is the embedding API: the two connections and their
configuration, the events, the errors (all under ``SMTPError``), ``Limits``,
``NEED_DATA``, ``codes`` and ``sasl``. Whole conversations, their options and
results are in ``smtpcore.session``.
"""

# The one place the version is written: the build reads it from here (hatch's
# version source), so the wheel's metadata and ``smtpcore.__version__`` agree.
__version__ = "0.1.0"

import warnings
from typing import TYPE_CHECKING, Final

from . import codes, sasl
from ._client import ClientConnection, ClientPhase
from ._errors import (
    InvalidArgument,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SMTPError,
)
from ._events import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfData,
    Etrn,
    Event,
    Expn,
    Helo,
    Help,
    InvalidCommand,
    Lhlo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    Saml,
    Send,
    Soml,
    StartTLS,
    Turn,
    Vrfy,
)
from ._extensions import Extensions
from ._limits import Limits
from ._server import ServerConfig, ServerConnection, ServerPhase
from ._syntax import xtext_decode, xtext_encode
from .session._errors import (
    AuthenticationError,
    ConnectionLost,
    NotSupported,
    PermanentError,
    RecipientsRefused,
    ReplyError,
    SMTPTimeout,
    TLSError,
    TransientError,
)

__all__ = [
    "NEED_DATA",
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "AuthenticationError",
    "Bdat",
    "ClientConnection",
    "ClientPhase",
    "Command",
    "ConnectionClosed",
    "ConnectionLost",
    "Data",
    "Ehlo",
    "EndOfChunk",
    "EndOfData",
    "Etrn",
    "Event",
    "Expn",
    "Extensions",
    "Helo",
    "Help",
    "InvalidArgument",
    "InvalidCommand",
    "Lhlo",
    "Limits",
    "LocalProtocolError",
    "Mail",
    "MessageData",
    "Noop",
    "NotSupported",
    "PermanentError",
    "ProtocolError",
    "Quit",
    "Rcpt",
    "RecipientsRefused",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "Rset",
    "SMTPError",
    "SMTPTimeout",
    "Saml",
    "Send",
    "ServerConfig",
    "ServerConnection",
    "ServerPhase",
    "Soml",
    "StartTLS",
    "TLSError",
    "TransientError",
    "Turn",
    "Vrfy",
    "codes",
    "sasl",
    "xtext_decode",
    "xtext_encode",
]


#: Names this module exported before they found their home in
#: ``smtpcore.session``: the session's value types and the helpers of
#: ``send_message``. Still importable from here, with a warning.
_MOVED: Final = frozenset(
    {
        "DSN",
        "ClientOptions",
        "Peer",
        "PreparedMessage",
        "SendResult",
        "ServerEnvelope",
        "SessionInfo",
        "TLSInfo",
        "Timeouts",
        "content_is_8bit",
        "prepare_message",
        "to_7bit",
    }
)


# Hidden from type checkers, so that they point at the new home at once.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        if name in _MOVED:
            from . import session

            warnings.warn(
                f"smtpcore.{name} moved to smtpcore.session.{name}; import it from there",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(session, name)
        raise AttributeError(f"module 'smtpcore' has no attribute {name!r}")
