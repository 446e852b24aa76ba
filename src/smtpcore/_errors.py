"""Every exception the library raises on purpose, under one root: ``SMTPError``.

The core's own are here: who broke the rules (``ProtocolError``) and a bad
argument (``InvalidArgument``). What happened to a delivery (a refusal, a
lost connection, a timeout) is told by the session's subclasses, also of
``SMTPError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._events import Reply

__all__ = [
    "InvalidArgument",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "SMTPError",
]


class SMTPError(Exception):
    """Base of everything smtpcore raises on purpose: catch this to catch them all.

    A protocol breach, a refusal, a lost connection, a timeout, a bad
    argument: each is an ``SMTPError``. Anything else escaping the library
    is a bug in it (or the caller's own exception, passed through).
    """


class InvalidArgument(SMTPError, ValueError):
    """An argument the caller passed is out of range or malformed.

    Also a ``ValueError``, so code that validated input that way goes on
    working. Raised before anything is sent.
    """


class ProtocolError(SMTPError):
    """Someone broke the SMTP rules. Raised only as one of the two subclasses."""


class LocalProtocolError(ProtocolError):
    """We were asked to do what SMTP forbids. No byte was produced.

    The connection is left exactly as it was: the caller may correct the
    request and go on.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent what SMTP forbids. This connection cannot go on.

    ``reply`` is, on the server side, what to send before closing (for
    example ``500 5.5.2 Line too long``), or ``None`` when nothing should be
    sent.
    """

    def __init__(self, message: str, *, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply
