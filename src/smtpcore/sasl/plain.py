"""PLAIN (RFC 4616): ``[authzid] NUL authcid NUL passwd`` in one message."""

from __future__ import annotations

from typing import ClassVar

from .._errors import LocalProtocolError
from ._base import (
    Challenge,
    ClientFirst,
    Failure,
    Refused,
    ServerMechanism,
    ServerStep,
    Success,
    VerifyPassword,
    text_of,
)

__all__ = ["PlainClient", "PlainServer"]


class PlainClient(ClientFirst):
    """PLAIN, client side (RFC 4616 2).

    Raises LocalProtocolError at construction for a NUL in any field or an
    empty username or password (RFC 4616 2: ``1*SAFE``, SAFE excludes NUL).
    """

    name: ClassVar[str] = "PLAIN"

    def __init__(self, username: str, password: str, *, authzid: str = "") -> None:
        super().__init__()
        for what, value in (("authzid", authzid), ("username", username), ("password", password)):
            if "\0" in value:
                raise LocalProtocolError(f"PLAIN {what} contains NUL (RFC 4616 2)")
        if not username:
            raise LocalProtocolError("PLAIN username is empty (RFC 4616 2)")
        if not password:
            raise LocalProtocolError("PLAIN password is empty (RFC 4616 2)")
        self._message = f"{authzid}\0{username}\0{password}".encode()

    @property
    def is_complete(self) -> bool:
        return self._first_sent

    def _first_message(self) -> bytes:
        return self._message

    def _next(self, challenge: bytes) -> bytes:
        raise self._too_many()


class PlainServer(ServerMechanism):
    """PLAIN, server side: one message, then ``VerifyPassword`` (RFC 4616 2)."""

    name: ClassVar[str] = "PLAIN"

    def __init__(self) -> None:
        super().__init__()
        self._asked: VerifyPassword | None = None

    def _on_start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is None:
            return Challenge(b"")  # RFC 4422 3.3: the client then sends its message
        return self._on_response(initial_response)

    def _on_response(self, response: bytes) -> ServerStep:
        fields = response.split(b"\0")
        if len(fields) != 3:
            raise Refused(f"PLAIN message has {len(fields) - 1} NUL separators, not 2")
        authzid, username, password = (text_of(f, "PLAIN message") for f in fields)
        if not username or not password:
            raise Refused("PLAIN message has an empty username or password (RFC 4616 2)")
        self._asked = VerifyPassword(username, password, authzid)
        return self._asked

    def _on_password_checked(self, ok: bool) -> ServerStep:
        assert self._asked is not None  # the _Expect table guarantees it
        if not ok:
            return Failure("invalid credentials")
        return Success(self._asked.username, self._asked.authzid)
