"""OAUTHBEARER (RFC 7628): a GS2 header, then key=value pairs separated by ^A.

    n,a=user@example.com,^Ahost=server.example.com^Aport=587^Aauth=Bearer <token>^A^A

On failure the server sends a 334 with its JSON error; the client MUST answer
with a single ^A and the server then fails the exchange (RFC 7628 3.2.3).
"""

from __future__ import annotations

from typing import ClassVar

from .._errors import LocalProtocolError
from ._token import TokenClient, check_text, check_token

__all__ = ["OAuthBearerClient"]


class OAuthBearerClient(TokenClient):
    """OAUTHBEARER, client side (RFC 7628 3.1).

    ``username`` becomes the GS2 authzid ("a=", with "," and "=" escaped as
    RFC 5801 says; omitted when empty). ``host`` and ``port`` are sent when
    given (non-empty, non-zero). Raises LocalProtocolError for control
    characters, a port outside 0..65535 or a token that is not a b64token.
    """

    name: ClassVar[str] = "OAUTHBEARER"
    error_ack: ClassVar[bytes] = b"\x01"  # RFC 7628 3.2.3: a single %x01

    def __init__(self, username: str, token: str, *, host: str = "", port: int = 0) -> None:
        super().__init__()
        check_text(self.name, "username", username)
        check_text(self.name, "host", host)
        check_token(self.name, token)
        if not 0 <= port <= 65535:
            raise LocalProtocolError(f"OAUTHBEARER port {port} is outside 0..65535")
        saslname = username.replace("=", "=3D").replace(",", "=2C")
        header = f"n,a={saslname}," if username else "n,,"
        pairs = ""
        if host:
            pairs += f"host={host}\x01"
        if port:
            pairs += f"port={port}\x01"
        pairs += f"auth=Bearer {token}\x01"
        self._message = f"{header}\x01{pairs}\x01".encode()

    def _first_message(self) -> bytes:
        return self._message
