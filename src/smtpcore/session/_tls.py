"""What a transport reports about an established TLS connection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["TLSInfo"]


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The facts of one TLS connection, as the transport's TLS library gave them.

    Both roles use it: a client learns the server's certificate; a server
    learns the client's, when its context asked for one.

    ``peer_certificate`` is the decoded certificate (``ssl.SSLSocket.getpeercert()``
    form: ``subject``, ``issuer``, ``notAfter``, ``subjectAltName``...), empty when
    the certificate was not verified and so not decoded. ``verified`` says
    whether the chain and the host name were checked.
    """

    version: str = ""
    cipher: str = ""
    verified: bool = False
    peer_certificate: Mapping[str, object] = field(default_factory=dict, repr=False)

    @property
    def subject(self) -> str:
        """The certificate's subject as ``CN=..., O=...``, or ``""``."""
        return _name(self.peer_certificate.get("subject"))

    @property
    def issuer(self) -> str:
        """The certificate's issuer as ``CN=..., O=...``, or ``""``."""
        return _name(self.peer_certificate.get("issuer"))

    @property
    def not_after(self) -> str:
        """The certificate's expiry as the TLS library printed it, or ``""``."""
        value = self.peer_certificate.get("notAfter")
        return value if isinstance(value, str) else ""


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "countryName": "C",
    "organizationalUnitName": "OU",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


def _name(value: object) -> str:
    """``((('commonName', 'x'),), ...)`` as ``CN=x, ...``."""
    if not isinstance(value, tuple):
        return ""
    parts = []
    for rdn in value:
        for pair in rdn if isinstance(rdn, tuple) else ():
            if isinstance(pair, tuple) and len(pair) == 2:
                parts.append(f"{_SHORT.get(str(pair[0]), str(pair[0]))}={pair[1]}")
    return ", ".join(parts)
