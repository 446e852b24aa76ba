"""The two shapes every SASL mechanism takes here, one per role.

How this works: a mechanism is a small state machine over raw (decoded)
bytes. Base64 is the connection's business (``Auth``, ``AuthResponse``); the
only base64 done here is ``decode_challenge`` for the text of a 334 reply.

Client: ``initial_response()`` gives the first message, or None for a
mechanism where the server speaks first; ``respond(challenge)`` answers each
334. When the server says 235, ``verify_success()`` insists the mechanism saw
everything it needed (for SCRAM: a verified server signature).

Server: the mechanism never calls user code. ``start`` and ``receive`` return a
step (``ServerStep``): a ``Challenge`` to send as 334, a request the session
turns into a handler call (``VerifyPassword``, ``NeedSecret``), or the verdict
(``Success``, ``Failure``). The session hands the handler's answer back with
``password_checked`` or ``supply_secret``. Which call may come next is a table
from the last step returned.
"""

from __future__ import annotations

import abc
import base64
import binascii
import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, TypeAlias

from .._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "Challenge",
    "ClientMechanism",
    "Failure",
    "NeedSecret",
    "ScramCredentials",
    "ServerMechanism",
    "ServerStep",
    "Success",
    "VerifyPassword",
    "decode_challenge",
]


_BASE64: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def decode_challenge(text: str) -> bytes:
    """The raw bytes of a 334 reply's text (RFC 4954 4).

    Empty text is an empty challenge. Anything but strict base64 (RFC 4648,
    no whitespace, correct padding) raises RemoteProtocolError.
    """
    if not text:
        return b""
    try:
        # b64decode(validate=True) still takes surplus padding after a full
        # quantum ("QUJD=" and "VXNl====" decode): insist on the RFC 4648 4
        # grammar, padding only to complete the last group.
        if not _BASE64.fullmatch(text):
            raise binascii.Error("not RFC 4648 base64 with exact padding")
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise RemoteProtocolError(
            f"334 challenge {shown!r} is not valid base64 (RFC 4954 4)"
        ) from exc


def utf8(data: bytes, what: str) -> str:
    """``data`` decoded as UTF-8, or RemoteProtocolError naming ``what``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what} is not valid UTF-8") from exc


class ClientMechanism(abc.ABC):
    """The client side of one SASL exchange (RFC 4422 3, RFC 4954 4).

    Use one object per AUTH command. Bytes in and out are raw, not base64.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def initial_response(self) -> bytes | None:
        """The initial response to send with AUTH, or None if the server speaks first.

        Raises LocalProtocolError if called twice.
        """

    @abc.abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """The answer to one decoded 334 challenge.

        Raises RemoteProtocolError when the challenge is malformed, fails
        verification, or is one more than the mechanism expects.
        """

    @property
    @abc.abstractmethod
    def is_complete(self) -> bool:
        """True once the mechanism has all it needs from the server.

        For SCRAM this means the server signature was verified.
        """

    def verify_success(self) -> None:
        """Call on the 235 reply: raises RemoteProtocolError if the exchange is unfinished.

        A server that says 235 before, say, proving its SCRAM signature is
        not trusted (RFC 5802 5: the client MUST verify the server signature).
        """
        if not self.is_complete:
            raise RemoteProtocolError(
                f"server reported {self.name} success before the exchange was complete"
            )


class ClientFirst(ClientMechanism):
    """A mechanism where the client speaks first.

    If the connection sent AUTH without the initial response, the server
    answers with an empty 334 and ``respond(b"")`` gives the first message
    instead (RFC 4422 3.3).
    """

    def __init__(self) -> None:
        self._first_sent = False

    @abc.abstractmethod
    def _first_message(self) -> bytes:
        """The client's first message."""

    @abc.abstractmethod
    def _next(self, challenge: bytes) -> bytes:
        """The answer to a challenge after the first message."""

    def initial_response(self) -> bytes:
        if self._first_sent:
            raise LocalProtocolError(f"{self.name} initial response was already produced")
        self._first_sent = True
        return self._first_message()

    def respond(self, challenge: bytes) -> bytes:
        if not self._first_sent:
            if challenge:
                raise RemoteProtocolError(
                    f"{self.name}: the client speaks first, but the server sent a "
                    f"challenge of {len(challenge)} octets"
                )
            self._first_sent = True
            return self._first_message()
        return self._next(challenge)

    def _too_many(self) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"{self.name}: server sent a challenge after the exchange was complete"
        )


# --- server side -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``data`` to the client as a 334 reply (base64 is the connection's job)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class VerifyPassword:
    """Ask the application whether ``password`` is right for ``username``.

    ``authzid`` is the identity the client asks to act as ("" for itself):
    the application decides whether ``username`` may (RFC 4616 2). Answer
    with ``ServerMechanism.password_checked(ok)``.
    """

    username: str
    password: str = field(repr=False)
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class NeedSecret:
    """Ask the application for ``username``'s secret; answer with ``supply_secret``.

    CRAM-MD5 wants the password (a str); SCRAM wants ``ScramCredentials``
    (for its ``hash_name``). ``None`` means no such user.
    """

    mechanism: str
    username: str
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class Success:
    """The client proved it is ``authcid``; ``authzid`` is the identity asked for ("" if none)."""

    authcid: str
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """Authentication failed.

    ``malformed`` is True when the client's message broke the mechanism's
    syntax (answer 501, RFC 4954 4), False when credentials were wrong or
    refused (answer 535 5.7.8, RFC 4954 6).
    """

    reason: str
    malformed: bool = False


ServerStep: TypeAlias = Challenge | VerifyPassword | NeedSecret | Success | Failure
"""What a server mechanism asks of its caller next: one of the five step types."""
_Producer: TypeAlias = Callable[[], ServerStep]


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What a server stores for SCRAM instead of the password (RFC 5802 3).

    Build it with ``derive_scram_credentials``. Raises LocalProtocolError for
    an iteration count below 1 or an empty salt.
    """

    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise LocalProtocolError(f"SCRAM iteration count {self.iterations} is below 1")
        if not self.salt:
            raise LocalProtocolError("SCRAM salt is empty")


class Refused(Exception):
    """Internal: a server mechanism gives up; turned into ``Failure``."""

    def __init__(self, reason: str, *, malformed: bool = True) -> None:
        super().__init__(reason)
        self.failure = Failure(reason, malformed)


class _Expect(enum.Enum):
    START = enum.auto()  # nothing happened yet: start() next
    RESPONSE = enum.auto()  # a Challenge went out: receive() next
    PASSWORD = enum.auto()  # VerifyPassword went out: password_checked() next
    SECRET = enum.auto()  # NeedSecret went out: supply_secret() next
    DONE = enum.auto()  # Success or Failure: nothing more


# Which call the last step returned calls for.
_EXPECT_AFTER: Final[Mapping[type[ServerStep], _Expect]] = {
    Challenge: _Expect.RESPONSE,
    VerifyPassword: _Expect.PASSWORD,
    NeedSecret: _Expect.SECRET,
    Success: _Expect.DONE,
    Failure: _Expect.DONE,
}


class ServerMechanism(abc.ABC):
    """The server side of one SASL exchange: a pure state machine.

    Call ``start`` once, then whatever the last step asks for: ``receive``
    after a ``Challenge``, ``password_checked`` after ``VerifyPassword``,
    ``supply_secret`` after ``NeedSecret``. Any other call raises
    LocalProtocolError and changes nothing. A malformed client message gives
    ``Failure(malformed=True)``, never an exception. A "*" (cancel) is the
    connection's (RFC 4954 4), never seen here.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self._expect = _Expect.START

    @property
    def is_done(self) -> bool:
        """True once ``Success`` or ``Failure`` was returned."""
        return self._expect is _Expect.DONE

    def start(self, initial_response: bytes | None) -> ServerStep:
        """Begin, with the AUTH command's initial response (None if it had none)."""
        self._require(_Expect.START, "start")
        return self._settle(lambda: self._on_start(initial_response))

    def receive(self, response: bytes) -> ServerStep:
        """The client's decoded answer to our last ``Challenge``."""
        self._require(_Expect.RESPONSE, "receive")
        return self._settle(lambda: self._on_response(response))

    def password_checked(self, ok: bool) -> ServerStep:
        """The application's verdict on the last ``VerifyPassword``."""
        self._require(_Expect.PASSWORD, "password_checked")
        return self._settle(lambda: self._on_password_checked(ok))

    def supply_secret(self, secret: str | ScramCredentials | None) -> ServerStep:
        """The application's answer to ``NeedSecret``: the secret, or None for no such user.

        Raises LocalProtocolError if the secret is of the wrong kind.
        """
        self._require(_Expect.SECRET, "supply_secret")
        self._check_secret(secret)
        return self._settle(lambda: self._on_secret(secret))

    def _require(self, expected: _Expect, call: str) -> None:
        if self._expect is not expected:
            raise LocalProtocolError(
                f"{self.name} server: {call}() called while expecting {self._expect.name.lower()}"
            )

    def _settle(self, produce: _Producer) -> ServerStep:
        try:
            step = produce()
        except Refused as refused:
            step = refused.failure
        self._expect = _EXPECT_AFTER[type(step)]
        return step

    @abc.abstractmethod
    def _on_start(self, initial_response: bytes | None) -> ServerStep: ...

    @abc.abstractmethod
    def _on_response(self, response: bytes) -> ServerStep: ...

    def _on_password_checked(self, ok: bool) -> ServerStep:  # pragma: no cover
        raise LocalProtocolError(f"{self.name} server never asks to verify a password")

    def _check_secret(self, secret: str | ScramCredentials | None) -> None:
        """Raise LocalProtocolError when ``secret`` is not the kind this mechanism needs."""
        del secret  # mechanisms that ask for a secret say which kind

    def _on_secret(self, secret: str | ScramCredentials | None) -> ServerStep:  # pragma: no cover
        raise LocalProtocolError(f"{self.name} server never asks for a secret")


def text_of(data: bytes, what: str) -> str:
    """Server side: ``data`` as UTF-8, or ``Refused`` (malformed)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"{what} is not valid UTF-8") from None
