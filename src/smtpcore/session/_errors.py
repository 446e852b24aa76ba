"""The session's exceptions: what failed, and whether to retry.

All are ``SMTPError`` (the core's root, re-exported here). ``ProtocolError``
says who broke the rules; these say what happened to a delivery: the server
refused (``ReplyError`` and its subclasses, carrying the reply), the
connection broke, a timeout, TLS, or a feature the server lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .._errors import SMTPError
from .._events import Auth, AuthCancel, AuthResponse, Command, EndOfData, Reply

__all__ = [
    "AuthenticationError",
    "ConnectionLost",
    "NotSupported",
    "PermanentError",
    "RecipientsRefused",
    "ReplyError",
    "SMTPError",
    "SMTPTimeout",
    "TLSError",
    "TransientError",
    "command_text",
    "reply_error",
]


def command_text(command: Command | EndOfData | None) -> str:
    """The command as a person reads it in an error message; never a credential.

    ``"MAIL FROM:<a@x.org> SIZE=12"``, ``"AUTH PLAIN"`` (the initial response
    left out), ``"end of data"``.
    """
    if command is None:
        return "the greeting"
    if isinstance(command, EndOfData):
        return "end of data"
    if isinstance(command, Auth):
        return f"AUTH {command.mechanism}"
    if isinstance(command, AuthResponse):
        return "AUTH response"
    if isinstance(command, AuthCancel):
        return "AUTH cancel (*)"
    return command.to_bytes().decode("utf-8", "replace").rstrip("\r\n")


class ReplyError(SMTPError):
    """The server refused a command.

    ``reply`` is its reply; ``command`` the line it answered (credentials
    left out), e.g. ``"MAIL FROM:<a@x.org>"``.
    """

    def __init__(self, reply: Reply, command: str | None = None, note: str = "") -> None:
        self.reply = reply
        self.command = command if command is not None else command_text(reply.command)
        words = " / ".join(line for line in reply.lines if line)
        message = f"{self.command} refused: {reply.code} {words!r}"
        super().__init__(f"{message} ({note})" if note else message)


class TransientError(ReplyError):
    """A 4xx reply (RFC 5321 4.2.1): not now; the same request may succeed later.

    421 also means the server closed the connection (RFC 5321 3.8).
    """


class PermanentError(ReplyError):
    """A 5xx reply (RFC 5321 4.2.1): refused; repeating it will fail again."""


class AuthenticationError(ReplyError):
    """AUTH was refused (RFC 4954 6): wrong credentials, or a mechanism the server dislikes."""


class RecipientsRefused(ReplyError):
    """No recipient was accepted, so no message was sent.

    ``refused`` maps each recipient to its reply; ``reply`` is the first
    refusal. ``is_transient`` is True when every refusal was 4xx (retry later).
    """

    def __init__(self, refused: Mapping[str, Reply]) -> None:
        self.refused: Mapping[str, Reply] = MappingProxyType(dict(refused))
        first_address, first = next(iter(self.refused.items()))
        others = len(self.refused) - 1
        note = f"and {others} other recipient{'s' if others != 1 else ''} refused" if others else ""
        command = f"RCPT TO:<{first_address}>" if first.command is None else None
        super().__init__(first, command, note)

    @property
    def is_transient(self) -> bool:
        """True when every refusal was 4xx: the whole message may be retried later."""
        return all(reply.is_transient for reply in self.refused.values())


class ConnectionLost(SMTPError, ConnectionError):
    """The connection broke or the server closed it before the conversation ended.

    Also a ``ConnectionError`` (an ``OSError``), as the standard library's
    clients report a broken connection.
    """


class SMTPTimeout(SMTPError, TimeoutError):
    """The server did not answer within the timeout of that stage (RFC 5321 4.5.3.2).

    The connection is closed: a late reply could no longer be matched.
    """


class TLSError(SMTPError):
    """TLS was required but not offered or refused, or the handshake or its
    certificate verification failed. No mail or credential was sent in clear."""


class NotSupported(SMTPError):
    """The server lacks what the message needs (SMTPUTF8, 8BITMIME for raw
    8-bit bytes, BINARYMIME, REQUIRETLS, a large enough SIZE, an AUTH
    mechanism we share). Raised before MAIL: nothing was sent."""


def reply_error(reply: Reply, command: str | None = None, note: str = "") -> ReplyError:
    """The error for a refusing reply: ``TransientError`` for 4xx, else ``PermanentError``."""
    if reply.is_transient:
        return TransientError(reply, command, note)
    return PermanentError(reply, command, note)
