"""SASL mechanisms for SMTP AUTH (RFC 4954), both roles, as pure state machines.

Client: ``choose_client_mechanism`` picks the strongest mechanism both sides
have; ``client_mechanism`` builds one by name. Server: ``server_mechanism``
builds one by name; its steps (``Challenge``, ``VerifyPassword``,
``NeedSecret``, ``Success``, ``Failure``) tell the session what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from .._errors import LocalProtocolError
from ._base import (
    Challenge,
    ClientMechanism,
    Failure,
    NeedSecret,
    ScramCredentials,
    ServerMechanism,
    ServerStep,
    Success,
    VerifyPassword,
    decode_challenge,
)
from ._saslprep import SaslprepError, saslprep
from .cram_md5 import CramMD5Client, CramMD5Server
from .login import LoginClient, LoginServer
from .oauthbearer import OAuthBearerClient
from .plain import PlainClient, PlainServer
from .scram import (
    DEFAULT_MAX_ITERATIONS,
    MOCK_ITERATIONS,
    ScramSHA1Client,
    ScramSHA1Server,
    ScramSHA256Client,
    ScramSHA256Server,
    derive_scram_credentials,
    mock_scram_credentials,
    scram_salt,
)
from .xoauth2 import XOAuth2Client

__all__ = [
    "CLIENT_MECHANISMS",
    "DEFAULT_MAX_ITERATIONS",
    "MOCK_ITERATIONS",
    "PASSWORD_MECHANISMS",
    "SERVER_MECHANISMS",
    "TOKEN_MECHANISMS",
    "Challenge",
    "ClientMechanism",
    "CramMD5Client",
    "CramMD5Server",
    "Failure",
    "LoginClient",
    "LoginServer",
    "NeedSecret",
    "OAuthBearerClient",
    "PlainClient",
    "PlainServer",
    "SaslprepError",
    "ScramCredentials",
    "ScramSHA1Client",
    "ScramSHA1Server",
    "ScramSHA256Client",
    "ScramSHA256Server",
    "ServerMechanism",
    "ServerStep",
    "Success",
    "VerifyPassword",
    "XOAuth2Client",
    "choose_client_mechanism",
    "client_mechanism",
    "decode_challenge",
    "derive_scram_credentials",
    "mock_scram_credentials",
    "saslprep",
    "scram_salt",
    "server_mechanism",
]

# Strongest first: what a password can prove, and what a token can.
PASSWORD_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
"""The client mechanisms a password can prove, strongest first."""
TOKEN_MECHANISMS: Final = ("OAUTHBEARER", "XOAUTH2")
"""The client mechanisms an OAuth 2.0 bearer token can prove, standard first."""
CLIENT_MECHANISMS: Final = PASSWORD_MECHANISMS + TOKEN_MECHANISMS
"""Every mechanism the client side implements."""
# Strongest first, the order to advertise in EHLO's AUTH keyword.
SERVER_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
"""Every mechanism the server side implements, in the order EHLO advertises them."""


def client_mechanism(
    name: str,
    *,
    username: str,
    password: str | None = None,
    oauth_token: str | None = None,
    nonce: str = "",
    host: str = "",
    port: int = 0,
    authzid: str = "",
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> ClientMechanism:
    """A client mechanism by name (case-insensitive), ready for one exchange.

    Password mechanisms need ``password``; SCRAM also ``nonce`` (random,
    printable ASCII without ","); OAUTHBEARER and XOAUTH2 need ``oauth_token``.
    ``authzid`` is used by PLAIN and SCRAM. Raises LocalProtocolError for an
    unknown name or a missing or invalid credential.
    """
    upper = name.upper()
    if upper in TOKEN_MECHANISMS:
        if oauth_token is None:
            raise LocalProtocolError(f"{upper} needs an OAuth token")
        if upper == "XOAUTH2":
            return XOAuth2Client(username, oauth_token)
        return OAuthBearerClient(username, oauth_token, host=host, port=port)
    if upper not in PASSWORD_MECHANISMS:
        raise LocalProtocolError(f"SASL mechanism {name!r} is not supported by this client")
    if password is None:
        raise LocalProtocolError(f"{upper} needs a password")
    if upper == "PLAIN":
        return PlainClient(username, password, authzid=authzid)
    if upper == "LOGIN":
        return LoginClient(username, password)
    if upper == "CRAM-MD5":
        return CramMD5Client(username, password)
    scram = ScramSHA256Client if upper == "SCRAM-SHA-256" else ScramSHA1Client
    return scram(username, password, nonce, authzid=authzid, max_iterations=max_iterations)


def choose_client_mechanism(
    offered: Iterable[str],
    *,
    username: str | None,
    password: str | None,
    oauth_token: str | None,
    nonce: str,
    host: str = "",
    port: int = 0,
) -> ClientMechanism | None:
    """The strongest mechanism the server offered that our credentials can use, or None.

    With a token: OAUTHBEARER > XOAUTH2 (tried before any password
    mechanism). With a password: SCRAM-SHA-256 > SCRAM-SHA-1 > CRAM-MD5 >
    PLAIN > LOGIN. Names compare case-insensitively (RFC 4954 3: the
    mechanism names of EHLO's AUTH keyword). None when ``username`` is None
    or nothing fits. Raises LocalProtocolError for invalid credentials.
    """
    if username is None:
        return None
    names = {name.upper() for name in offered}
    candidates: list[str] = []
    if oauth_token is not None:
        candidates += TOKEN_MECHANISMS
    if password is not None:
        candidates += PASSWORD_MECHANISMS
    for name in candidates:
        if name in names:
            return client_mechanism(
                name,
                username=username,
                password=password,
                oauth_token=oauth_token,
                nonce=nonce,
                host=host,
                port=port,
            )
    return None


_SERVER_FACTORIES: Final[Mapping[str, Callable[[str, str, bytes | None], ServerMechanism]]] = {
    "PLAIN": lambda nonce, hostname, secret: PlainServer(),
    "LOGIN": lambda nonce, hostname, secret: LoginServer(),
    "CRAM-MD5": lambda nonce, hostname, secret: CramMD5Server(f"<{nonce}@{hostname}>"),
    "SCRAM-SHA-1": lambda nonce, hostname, secret: ScramSHA1Server(nonce, secret=secret),
    "SCRAM-SHA-256": lambda nonce, hostname, secret: ScramSHA256Server(nonce, secret=secret),
}


def server_mechanism(
    name: str, *, nonce: str = "", hostname: str = "localhost", secret: bytes | None = None
) -> ServerMechanism:
    """A server mechanism by name (case-insensitive), for one exchange.

    ``nonce`` is fresh randomness from the caller (printable ASCII without
    ","): the SCRAM server nonce, and for CRAM-MD5 the "random.timestamp" part
    of the challenge ``<nonce@hostname>`` (RFC 2195 2). ``secret`` is the
    server's own random secret, with which SCRAM answers an unknown user like
    a known one (RFC 5802 9; see ``mock_scram_credentials``). Raises
    LocalProtocolError for an unknown name, or a nonce the mechanism needs
    but did not get.
    """
    factory = _SERVER_FACTORIES.get(name.upper())
    if factory is None:
        raise LocalProtocolError(f"SASL mechanism {name!r} is not supported by this server")
    return factory(nonce, hostname, secret)
