"""TLS facts from the ssl module's objects, the same way for every transport."""

from __future__ import annotations

import ssl
from typing import Any, Protocol

from smtpcore.session import TLSInfo

__all__ = ["TLSLayer", "tls_info"]


class TLSLayer(Protocol):
    """What ssl.SSLSocket, ssl.SSLObject and trio.SSLStream all offer."""

    @property
    def context(self) -> ssl.SSLContext: ...

    def cipher(self) -> tuple[str, str, int] | None: ...

    def version(self) -> str | None: ...

    def getpeercert(self) -> Any: ...


def tls_info(tls: TLSLayer | None) -> TLSInfo | None:
    """What ``tls`` negotiated, or None when the connection is not encrypted."""
    if tls is None:
        return None
    cipher = tls.cipher()
    verified = tls.context.verify_mode == ssl.CERT_REQUIRED
    return TLSInfo(
        version=tls.version() or "",
        cipher=cipher[0] if cipher else "",
        verified=verified,
        peer_certificate=dict(tls.getpeercert() or {}) if verified else {},
    )
