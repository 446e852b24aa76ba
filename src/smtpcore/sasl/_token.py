"""What the two OAuth mechanisms share: bearer token syntax and the error dance."""

from __future__ import annotations

import re
from typing import ClassVar, Final

from .._errors import LocalProtocolError, RemoteProtocolError
from ._base import ClientFirst

# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def check_token(mechanism: str, token: str) -> None:
    """LocalProtocolError unless ``token`` is an RFC 6750 b64token."""
    if not _B64TOKEN.fullmatch(token):
        raise LocalProtocolError(f"{mechanism} token is not a bearer token (RFC 6750 2.1)")


def check_text(mechanism: str, what: str, value: str) -> None:
    """LocalProtocolError if ``value`` has a control character (it would end a field)."""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
        raise LocalProtocolError(f"{mechanism} {what} contains a control character")


class TokenClient(ClientFirst):
    """A client that sends one message; a challenge after it is the server's error report.

    The client acknowledges the error with ``error_ack`` and the server then
    answers 535. ``server_error`` keeps the decoded error (JSON) for diagnosis.
    """

    error_ack: ClassVar[bytes]

    def __init__(self) -> None:
        super().__init__()
        self.server_error: bytes | None = None

    @property
    def is_complete(self) -> bool:
        return self._first_sent

    def _next(self, challenge: bytes) -> bytes:
        if self.server_error is not None:
            raise RemoteProtocolError(f"{self.name}: server sent a second error challenge")
        self.server_error = challenge
        return self.error_ack

    def verify_success(self) -> None:
        super().verify_success()
        if self.server_error is not None:
            raise RemoteProtocolError(f"{self.name}: server reported success after an error")
