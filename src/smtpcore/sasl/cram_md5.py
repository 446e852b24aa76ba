"""CRAM-MD5 (RFC 2195): the client answers the server's msg-id with an HMAC-MD5 of it."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import ClassVar, Final

from .._errors import LocalProtocolError, RemoteProtocolError
from ._base import (
    Challenge,
    ClientMechanism,
    Failure,
    NeedSecret,
    Refused,
    ScramCredentials,
    ServerMechanism,
    ServerStep,
    Success,
    text_of,
)

__all__ = ["CramMD5Client", "CramMD5Server"]

# RFC 2195 2: digest = 32(DIGIT / %x61-66), lower-case hex.
_DIGEST: Final = re.compile(r"[0-9a-f]{32}")
# RFC 2195 2 / RFC 1939: the challenge is a msg-id, "<" printable ">".
_MSG_ID: Final = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")


def _digest(password: str, challenge: bytes) -> str:
    return hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()


class CramMD5Client(ClientMechanism):
    """CRAM-MD5, client side (RFC 2195 2): ``username SP hex(HMAC-MD5(password, challenge))``.

    Raises LocalProtocolError for an empty username or one with a control character.
    """

    name: ClassVar[str] = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        if not username or any(ord(ch) < 0x20 or ch == "\x7f" for ch in username):
            raise LocalProtocolError("CRAM-MD5 username is empty or contains a control character")
        self._username = username
        self._password = password
        self._answered = False

    def initial_response(self) -> bytes | None:
        return None  # the server speaks first

    def respond(self, challenge: bytes) -> bytes:
        if self._answered:
            raise RemoteProtocolError("CRAM-MD5: server sent a second challenge")
        if not challenge:
            raise RemoteProtocolError("CRAM-MD5: server sent an empty challenge (RFC 2195 2)")
        self._answered = True
        return f"{self._username} {_digest(self._password, challenge)}".encode()

    @property
    def is_complete(self) -> bool:
        return self._answered


class CramMD5Server(ServerMechanism):
    """CRAM-MD5, server side: sends ``msg_id``, then ``NeedSecret`` for the password.

    ``msg_id`` must be unique per exchange, of the form ``<random.timestamp@host>``
    (RFC 2195 2); LocalProtocolError if it is not ``<printable>``.
    """

    name: ClassVar[str] = "CRAM-MD5"

    def __init__(self, msg_id: str) -> None:
        super().__init__()
        if not _MSG_ID.fullmatch(msg_id):
            raise LocalProtocolError(f"CRAM-MD5 challenge {msg_id!r} is not a <msg-id>")
        self._challenge = msg_id.encode("ascii")
        self._username = ""
        self._digest = ""

    def _on_start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is not None:
            raise Refused("CRAM-MD5 takes no initial response (RFC 2195 2)")
        return Challenge(self._challenge)

    def _on_response(self, response: bytes) -> ServerStep:
        username, space, digest = text_of(response, "CRAM-MD5 response").rpartition(" ")
        if not space or not username or not _DIGEST.fullmatch(digest):
            raise Refused("CRAM-MD5 response is not 'username SP 32 hex digits' (RFC 2195 2)")
        self._username, self._digest = username, digest
        return NeedSecret(self.name, username)

    def _check_secret(self, secret: str | ScramCredentials | None) -> None:
        if isinstance(secret, ScramCredentials):
            raise LocalProtocolError("CRAM-MD5 needs the password, not SCRAM credentials")

    def _on_secret(self, secret: str | ScramCredentials | None) -> ServerStep:
        if not isinstance(secret, str):
            return Failure("no such user")
        expected = _digest(secret, self._challenge)
        if not hmac.compare_digest(expected, self._digest):
            return Failure("invalid credentials")
        return Success(self._username)
