"""XOAUTH2 (Google's format): ``user=`` name ``^Aauth=Bearer `` token ``^A^A``.

On a bad token the server sends a 334 carrying base64 JSON
(``{"status":"401",...}``); the client answers with an empty line and the
server then replies 535.
"""

from __future__ import annotations

from typing import ClassVar

from ._token import TokenClient, check_text, check_token

__all__ = ["XOAuth2Client"]


class XOAuth2Client(TokenClient):
    """XOAUTH2, client side.

    Raises LocalProtocolError for a username with a control character or a
    token that is not an RFC 6750 b64token. After an error challenge,
    ``server_error`` holds the server's JSON.
    """

    name: ClassVar[str] = "XOAUTH2"
    error_ack: ClassVar[bytes] = b""

    def __init__(self, username: str, token: str) -> None:
        super().__init__()
        check_text(self.name, "username", username)
        check_token(self.name, token)
        self._message = f"user={username}\x01auth=Bearer {token}\x01\x01".encode()

    def _first_message(self) -> bytes:
        return self._message
