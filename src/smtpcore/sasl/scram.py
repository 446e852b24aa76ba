"""SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.

How this works: four messages.

    C: n,,n=user,r=<client nonce>                       client-first
    S: r=<client nonce><server nonce>,s=<salt>,i=<n>    server-first
    C: c=biws,r=<both nonces>,p=<proof>                 client-final
    S: v=<server signature>                             server-final

In SMTP the server-final message travels as one more 334 challenge, which the
client answers with an empty line before the 235 (RFC 4954 4). The client
verifies the server signature; a 235 without it is not a success. The
randomness (both nonces, the salt) comes in as arguments.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import ClassVar, Final

from .._errors import LocalProtocolError, RemoteProtocolError
from ._base import (
    Challenge,
    ClientFirst,
    Failure,
    NeedSecret,
    Refused,
    ScramCredentials,
    ServerMechanism,
    ServerStep,
    Success,
    text_of,
    utf8,
)
from ._saslprep import saslprep

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "MOCK_ITERATIONS",
    "ScramCredentials",
    "ScramSHA1Client",
    "ScramSHA1Server",
    "ScramSHA256Client",
    "ScramSHA256Server",
    "derive_scram_credentials",
    "mock_scram_credentials",
    "scram_salt",
]

DEFAULT_MAX_ITERATIONS: Final = 1_000_000  # ours: bounds the PBKDF2 work a server can ask for
"""The most PBKDF2 iterations a SCRAM client agrees to compute (a server could ask for more)."""
MOCK_ITERATIONS: Final = 4096
"""The iteration count shown to a user that does not exist (RFC 5802 9), and the one a server
uses for credentials it derives from a password (RFC 7677 4: 4096 at least): the two must
look alike."""

# RFC 5802 7: printable = %x21-2B / %x2D-7E (no comma).
_PRINTABLE: Final = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_ATTRIBUTE: Final = re.compile(r"[A-Za-z]=")
_BASE64: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _hmac(key: bytes, message: bytes, hash_name: str) -> bytes:
    return hmac.new(key, message, hash_name).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict base64, or None."""
    if not _BASE64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:  # pragma: no cover - the pattern already refused it
        return None


def escape_saslname(name: str) -> str:
    """RFC 5802 5.1: "=" as "=3D" and "," as "=2C" in a saslname."""
    return name.replace("=", "=3D").replace(",", "=2C")


def unescape_saslname(text: str) -> str | None:
    """The inverse of ``escape_saslname``, or None if ``text`` is not a saslname."""
    if "," in text or re.search(r"=(?!2C|3D)", text):
        return None
    return text.replace("=2C", ",").replace("=3D", "=")


def _attributes(message: str) -> list[tuple[str, str]]:
    """``a=value`` pairs split on commas, or ValueError."""
    pairs = []
    for part in message.split(","):
        if not _ATTRIBUTE.match(part):
            raise ValueError(f"{part[:20]!r} is not an attribute=value pair")
        pairs.append((part[0], part[2:]))
    return pairs


def derive_scram_credentials(
    password: str, salt: bytes, iterations: int, hash_name: str = "sha256"
) -> ScramCredentials:
    """What a SCRAM server stores for ``password`` (RFC 5802 3).

    ``hash_name`` is "sha1" (SCRAM-SHA-1) or "sha256" (SCRAM-SHA-256). The
    password is prepared with SASLprep. Raises LocalProtocolError (SaslprepError)
    for a password SASLprep refuses, an iteration count below 1 or an empty salt.
    """
    if hash_name not in ("sha1", "sha256"):
        raise LocalProtocolError(f"SCRAM hash {hash_name!r} is not sha1 or sha256")
    if iterations < 1:
        raise LocalProtocolError(f"SCRAM iteration count {iterations} is below 1")
    salted = hashlib.pbkdf2_hmac(hash_name, saslprep(password).encode(), salt, iterations)
    client_key = _hmac(salted, b"Client Key", hash_name)
    return ScramCredentials(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.new(hash_name, client_key).digest(),
        server_key=_hmac(salted, b"Server Key", hash_name),
    )


def scram_salt(secret: bytes, username: str) -> bytes:
    """A 16-octet salt for ``username`` derived from the server's ``secret`` (RFC 5802 9).

    The same user gets the same salt every time, as a stored account would,
    and nobody without the secret can tell it from a random one.
    """
    return hmac.new(secret, b"salt\0" + username.encode(), "sha256").digest()[:16]


def mock_scram_credentials(
    secret: bytes, username: str, hash_name: str = "sha256", iterations: int = MOCK_ITERATIONS
) -> ScramCredentials:
    """Credentials for a user that does not exist, so the exchange fails only at the proof.

    RFC 5802 9: a server that answers an unknown user at once tells which
    accounts exist. These credentials have ``scram_salt``'s salt and
    ``iterations``, and a password derived from ``secret`` that no client
    knows. They cost the same PBKDF2 work as credentials derived from a
    real password, so the time taken tells nothing either.
    """
    password = hmac.new(secret, b"password\0" + username.encode(), "sha256").hexdigest()
    return derive_scram_credentials(password, scram_salt(secret, username), iterations, hash_name)


class _ScramClient(ClientFirst):
    hash_name: ClassVar[str]

    def __init__(
        self,
        username: str,
        password: str,
        nonce: str,
        *,
        authzid: str = "",
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
    ) -> None:
        super().__init__()
        # RFC 5802 5.1: the username is SASLprep'd, and an empty result aborts.
        prepared = saslprep(username)
        if not prepared:
            raise LocalProtocolError(f"{self.name} username is empty after SASLprep")
        self._password = saslprep(password).encode()
        if not _PRINTABLE.fullmatch(nonce):
            raise LocalProtocolError(
                f"{self.name} client nonce must be printable ASCII without ',' (RFC 5802 7)"
            )
        if max_iterations < 1:
            raise LocalProtocolError(f"{self.name} max_iterations {max_iterations} is below 1")
        self._max_iterations = max_iterations
        self._nonce = nonce
        authz = f"a={escape_saslname(saslprep(authzid))}" if authzid else ""
        self._gs2_header = f"n,{authz},"  # RFC 5802 7: "n": no channel binding
        self._client_first_bare = f"n={escape_saslname(prepared)},r={nonce}"
        self._server_signature: bytes | None = None
        self._verified = False

    @property
    def is_complete(self) -> bool:
        return self._verified

    def _first_message(self) -> bytes:
        return (self._gs2_header + self._client_first_bare).encode()

    def _next(self, challenge: bytes) -> bytes:
        if self._server_signature is None:
            return self._client_final(utf8(challenge, f"{self.name} server-first-message"))
        if self._verified:
            raise self._too_many()
        self._verify(utf8(challenge, f"{self.name} server-final-message"))
        return b""

    def _fail(self, what: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"{self.name}: {what}")

    def _client_final(self, server_first: str) -> bytes:
        try:
            pairs = _attributes(server_first)
        except ValueError as exc:
            raise self._fail(f"server-first-message: {exc} (RFC 5802 7)") from None
        if pairs and pairs[0][0] == "m":
            raise self._fail("server requires an extension we do not support (RFC 5802 5.1)")
        if len(pairs) < 3 or [key for key, _ in pairs[:3]] != ["r", "s", "i"]:
            raise self._fail("server-first-message is not 'r=...,s=...,i=...' (RFC 5802 7)")
        nonce, salt_text, count = (value for _, value in pairs[:3])
        # RFC 5802 5.1: the server's nonce starts with ours. We also insist it
        # adds a part of its own: a bare echo would let the exchange be replayed.
        if not nonce.startswith(self._nonce) or not _PRINTABLE.fullmatch(nonce):
            raise self._fail("server nonce does not start with the client nonce (RFC 5802 5.1)")
        if len(nonce) == len(self._nonce):
            raise self._fail("server nonce adds nothing to the client nonce (RFC 5802 5.1)")
        salt = _b64decode(salt_text)
        if not salt:
            raise self._fail(f"salt {salt_text[:40]!r} is empty or not base64 (RFC 5802 7)")
        if not count.isascii() or not count.isdigit() or count.startswith("0"):
            raise self._fail(f"iteration count {count[:20]!r} is not a positive number")
        if len(count) > len(str(self._max_iterations)) or int(count) > self._max_iterations:
            raise self._fail(
                f"iteration count {count[:20]} exceeds the maximum {self._max_iterations}"
            )
        iterations = int(count)

        hash_name = self.hash_name
        salted = hashlib.pbkdf2_hmac(hash_name, self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key", hash_name)
        stored_key = hashlib.new(hash_name, client_key).digest()
        channel = _b64(self._gs2_header.encode())
        without_proof = f"c={channel},r={nonce}"
        auth_message = f"{self._client_first_bare},{server_first},{without_proof}".encode()
        signature = _hmac(stored_key, auth_message, hash_name)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = _hmac(salted, b"Server Key", hash_name)
        self._server_signature = _hmac(server_key, auth_message, hash_name)
        return f"{without_proof},p={_b64(proof)}".encode()

    def _verify(self, server_final: str) -> None:
        assert self._server_signature is not None
        key, equals, value = server_final.partition("=")
        if key == "e" and equals:
            shown = value.split(",")[0][:80]
            raise self._fail(f"server refused authentication: {shown!r} (RFC 5802 7)")
        if key != "v" or not equals:
            raise self._fail("server-final-message has no verifier 'v=' (RFC 5802 7)")
        signature = _b64decode(value.split(",")[0])
        # RFC 5802 5: the client MUST verify the server signature.
        if signature is None or not hmac.compare_digest(signature, self._server_signature):
            raise self._fail("server signature does not match: the server is not authentic")
        self._verified = True


class ScramSHA1Client(_ScramClient):
    """SCRAM-SHA-1, client side (RFC 5802), without channel binding ("n,,").

    ``nonce`` is the client nonce (printable ASCII, no ","; random, from the
    caller). ``max_iterations`` bounds the iteration count a server may ask for.
    Raises LocalProtocolError at construction for inputs SASLprep refuses,
    an empty username or a bad nonce; RemoteProtocolError for a bad server
    message, wrong nonce, absurd iteration count, or missing or wrong signature.
    """

    name: ClassVar[str] = "SCRAM-SHA-1"
    hash_name: ClassVar[str] = "sha1"


class ScramSHA256Client(_ScramClient):
    """SCRAM-SHA-256, client side (RFC 7677); otherwise as ``ScramSHA1Client``."""

    name: ClassVar[str] = "SCRAM-SHA-256"
    hash_name: ClassVar[str] = "sha256"


class _ScramServer(ServerMechanism):
    hash_name: ClassVar[str]

    def __init__(self, nonce: str, *, secret: bytes | None = None) -> None:
        super().__init__()
        if not _PRINTABLE.fullmatch(nonce):
            raise LocalProtocolError(
                f"{self.name} server nonce must be printable ASCII without ',' (RFC 5802 7)"
            )
        if secret is not None and not secret:
            raise LocalProtocolError(f"{self.name} server secret must not be empty")
        self._secret = secret
        self._server_nonce = nonce
        self._gs2_header = ""
        self._client_first_bare = ""
        self._nonce = ""
        self._username = ""
        self._authzid = ""
        self._server_first = ""
        self._credentials: ScramCredentials | None = None
        self._sent_final = False

    def _on_start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is None:
            return Challenge(b"")
        return self._client_first(initial_response)

    def _on_response(self, response: bytes) -> ServerStep:
        if not self._client_first_bare:
            return self._client_first(response)
        if not self._sent_final:
            return self._client_final(text_of(response, f"{self.name} client-final-message"))
        # RFC 4954 4: the client acknowledges the server-final challenge with an empty line.
        if response:
            raise Refused(f"{self.name}: expected an empty response after server-final-message")
        return Success(self._username, self._authzid)

    def _client_first(self, data: bytes) -> ServerStep:
        text = text_of(data, f"{self.name} client-first-message")
        flag, comma1, rest = text.partition(",")
        authz, comma2, bare = rest.partition(",")
        if not comma1 or not comma2:
            raise Refused(f"{self.name} client-first-message has no gs2 header (RFC 5802 7)")
        if flag.startswith("p="):
            raise Refused(
                f"{self.name}: channel binding requested, but not offered (RFC 5802 6)",
                malformed=False,
            )
        if flag not in ("n", "y"):
            raise Refused(f"{self.name}: gs2 flag {flag[:20]!r} is not n, y or p= (RFC 5802 7)")
        authzid = ""
        if authz:
            unescaped = unescape_saslname(authz[2:]) if authz.startswith("a=") else None
            if not unescaped:
                raise Refused(f"{self.name}: authzid {authz[:40]!r} is not a=saslname")
            authzid = unescaped
        try:
            pairs = _attributes(bare)
        except ValueError as exc:
            raise Refused(f"{self.name} client-first-message: {exc}") from None
        if pairs and pairs[0][0] == "m":
            raise Refused(f"{self.name}: unsupported mandatory extension (RFC 5802 5.1)")
        if len(pairs) < 2 or [key for key, _ in pairs[:2]] != ["n", "r"]:
            raise Refused(f"{self.name} client-first-message is not 'n=...,r=...'")
        username = unescape_saslname(pairs[0][1])
        if not username:
            raise Refused(f"{self.name}: username is empty or not a saslname (RFC 5802 5.1)")
        if not _PRINTABLE.fullmatch(pairs[1][1]):
            raise Refused(f"{self.name}: client nonce is empty or not printable (RFC 5802 7)")
        self._gs2_header = f"{flag},{authz},"
        self._client_first_bare = bare
        self._nonce = pairs[1][1] + self._server_nonce
        self._username, self._authzid = username, authzid
        return NeedSecret(self.name, username, authzid)

    def _check_secret(self, secret: str | ScramCredentials | None) -> None:
        if isinstance(secret, str):
            raise LocalProtocolError(
                f"{self.name} needs ScramCredentials (see derive_scram_credentials), not a password"
            )
        size = hashlib.new(self.hash_name).digest_size
        if secret is not None and (
            len(secret.stored_key) != size or len(secret.server_key) != size
        ):
            raise LocalProtocolError(
                f"{self.name} credentials have keys of {len(secret.stored_key)} and "
                f"{len(secret.server_key)} octets, not {size} ({self.hash_name})"
            )

    def _on_secret(self, secret: str | ScramCredentials | None) -> ServerStep:
        if not isinstance(secret, ScramCredentials):
            if self._secret is None:
                return Failure("no such user")
            # RFC 5802 9: go on as for a real account; the proof cannot match.
            secret = mock_scram_credentials(self._secret, self._username, self.hash_name)
        self._credentials = secret
        self._server_first = f"r={self._nonce},s={_b64(secret.salt)},i={secret.iterations}"
        return Challenge(self._server_first.encode())

    def _client_final(self, text: str) -> ServerStep:
        assert self._credentials is not None
        head, sep, proof_text = text.rpartition(",p=")
        try:
            pairs = _attributes(head) if sep else []
        except ValueError as exc:
            raise Refused(f"{self.name} client-final-message: {exc}") from None
        if len(pairs) < 2 or [key for key, _ in pairs[:2]] != ["c", "r"]:
            raise Refused(f"{self.name} client-final-message is not 'c=...,r=...,p=...'")
        # Without channel binding, c= carries the gs2 header again (RFC 5802 7).
        if _b64decode(pairs[0][1]) != self._gs2_header.encode():
            raise Refused(f"{self.name}: channel binding data does not match the gs2 header")
        if not hmac.compare_digest(pairs[1][1].encode(), self._nonce.encode()):
            raise Refused(f"{self.name}: nonce in client-final-message does not match")
        proof = _b64decode(proof_text)
        size = hashlib.new(self.hash_name).digest_size
        if proof is None or len(proof) != size:
            raise Refused(f"{self.name}: proof is not {size} octets of base64")
        creds = self._credentials
        auth_message = f"{self._client_first_bare},{self._server_first},{head}".encode()
        signature = _hmac(creds.stored_key, auth_message, self.hash_name)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self.hash_name, client_key).digest(), creds.stored_key
        ):
            return Failure("invalid credentials")
        self._sent_final = True
        server_signature = _hmac(creds.server_key, auth_message, self.hash_name)
        return Challenge(f"v={_b64(server_signature)}".encode())


class ScramSHA1Server(_ScramServer):
    """SCRAM-SHA-1, server side (RFC 5802), without channel binding.

    ``nonce`` is the server's nonce part (printable ASCII, no ","; random,
    from the caller); LocalProtocolError otherwise. Asks ``NeedSecret`` for
    ``ScramCredentials``; sends server-final as a challenge (RFC 4954 4), then
    ``Success`` on the client's empty answer. A request for channel binding
    ("p="), a bad message, a wrong nonce or proof give ``Failure``.

    ``secret`` (random octets the server keeps for its lifetime) hides which
    accounts exist (RFC 5802 9): for an unknown user (``supply_secret(None)``)
    the exchange goes on with ``mock_scram_credentials`` and fails at the
    proof. Without it an unknown user fails at once.
    """

    name: ClassVar[str] = "SCRAM-SHA-1"
    hash_name: ClassVar[str] = "sha1"


class ScramSHA256Server(_ScramServer):
    """SCRAM-SHA-256, server side (RFC 7677); otherwise as ``ScramSHA1Server``."""

    name: ClassVar[str] = "SCRAM-SHA-256"
    hash_name: ClassVar[str] = "sha256"
