"""The exceptions of the protocol core: who broke the rules, and what to answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._events import Reply

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
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
