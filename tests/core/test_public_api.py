"""What ``import smtpcore`` offers: the embedding API, and nothing else.

Connections, events, errors, limits, NEED_DATA, the ``codes`` and ``sasl``
modules and the version. The session's value types and the helpers of
``send_message`` live in ``smtpcore.session``; their old top-level names
still work, with a ``DeprecationWarning`` naming the new home.
"""

from __future__ import annotations

import warnings
from typing import Final

import pytest

import smtpcore
import smtpcore.session

SURFACE: Final = {
    # connections
    "ClientConnection", "ClientPhase", "ServerConnection", "ServerPhase", "ServerConfig",
    "Extensions", "Limits", "NEED_DATA",
    # events
    "Event", "Command", "Reply", "ConnectionClosed", "MessageData", "EndOfChunk", "EndOfData",
    "InvalidCommand", "Auth", "AuthCancel", "AuthResponse", "Bdat", "Data", "Ehlo", "Etrn",
    "Expn", "Helo", "Help", "Lhlo", "Mail", "Noop", "Quit", "Rcpt", "Rset", "Saml", "Send",
    "Soml", "StartTLS", "Turn", "Vrfy",
    # errors
    "SMTPError", "InvalidArgument", "ProtocolError", "LocalProtocolError",
    "RemoteProtocolError", "ReplyError", "TransientError", "PermanentError",
    "AuthenticationError", "RecipientsRefused", "ConnectionLost", "SMTPTimeout", "TLSError",
    "NotSupported",
    # the xtext codec of ESMTP parameters (ENVID, ORCPT) events carry
    "xtext_decode", "xtext_encode",
    "codes", "sasl",
}  # fmt: skip

MOVED: Final = (
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
)


def test_the_top_level_exports_the_embedding_api() -> None:
    assert set(smtpcore.__all__) == SURFACE
    assert len(smtpcore.__all__) == len(SURFACE)


def test_every_exported_name_resolves_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        namespace: dict[str, object] = {}
        exec("from smtpcore import *", namespace)
    assert set(namespace) >= SURFACE
    assert isinstance(smtpcore.__version__, str)


@pytest.mark.parametrize("name", MOVED)
def test_a_moved_name_still_works_and_says_where_it_went(name: str) -> None:
    assert name not in smtpcore.__all__
    with pytest.warns(DeprecationWarning, match=rf"smtpcore\.session\.{name}\b"):
        value = getattr(smtpcore, name)
    assert value is getattr(smtpcore.session, name)
    assert name in smtpcore.session.__all__


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    name = "no_such_thing"
    with pytest.raises(AttributeError, match=name):
        getattr(smtpcore, name)
