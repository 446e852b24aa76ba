"""smtpcore: a Sans-IO SMTP implementation.

The pure protocol core: bytes go in (``receive_data``), events come out
(``next_event``); events go in (``send``), bytes come out. No socket, clock or
thread is used here; the ``transports`` package binds this core to blocking
sockets, asyncio, trio and anyio.
"""

from . import codes, sasl
from ._client import ClientConnection, ClientPhase
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
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
from ._message import PreparedMessage, content_is_8bit, prepare_message, to_7bit
from ._server import ServerConfig, ServerConnection, ServerPhase
from ._syntax import xtext_decode, xtext_encode

__all__ = [
    "NEED_DATA",
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Bdat",
    "ClientConnection",
    "ClientPhase",
    "Command",
    "ConnectionClosed",
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
    "InvalidCommand",
    "Lhlo",
    "Limits",
    "LocalProtocolError",
    "Mail",
    "MessageData",
    "Noop",
    "PreparedMessage",
    "ProtocolError",
    "Quit",
    "Rcpt",
    "RemoteProtocolError",
    "Reply",
    "Rset",
    "Saml",
    "Send",
    "ServerConfig",
    "ServerConnection",
    "ServerPhase",
    "Soml",
    "StartTLS",
    "Turn",
    "Vrfy",
    "codes",
    "content_is_8bit",
    "prepare_message",
    "sasl",
    "to_7bit",
    "xtext_decode",
    "xtext_encode",
]
