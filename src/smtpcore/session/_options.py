"""What a client session is asked to do: options, timeouts, envelopes, results.

All frozen, checked once at birth, and shared by the four transports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from .._errors import InvalidArgument
from .._events import Reply
from .._limits import Limits
from .._syntax import ehlo_argument_error

if TYPE_CHECKING:
    import sys

    from ._option_keywords import ClientOptionKeywords

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = [
    "DSN",
    "Body",
    "ClientOptions",
    "Envelope",
    "SendResult",
    "TLSMode",
    "Timeouts",
    "hello_name",
]

TLSMode: TypeAlias = Literal["starttls", "implicit", "opportunistic", "none"]
"""The client's TLS policy: require STARTTLS, TLS from the first byte, STARTTLS when
offered, or never."""
Body: TypeAlias = Literal["7BIT", "8BITMIME", "BINARYMIME"]
"""The MAIL BODY parameter values (RFC 6152, RFC 3030)."""
_TLS_MODES: Final = ("starttls", "implicit", "opportunistic", "none")
_BODIES: Final = ("7BIT", "8BITMIME", "BINARYMIME")
_NOTIFY: Final = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_set: Final = object.__setattr__


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long to wait at each stage, in seconds (RFC 5321 4.5.3.2).

    ``connect`` covers the TCP connection and an implicit TLS handshake;
    ``greeting`` the 220 (4.5.3.2.1: 5 minutes); ``ehlo`` every command
    without a stage of its own (EHLO, STARTTLS and its handshake, AUTH,
    RSET, NOOP, VRFY, ...); ``mail`` (4.5.3.2.2) and ``rcpt`` (4.5.3.2.3)
    5 minutes; ``data_initiation`` the 354 (4.5.3.2.4: 2 minutes);
    ``data_block`` each block of content we send and each piece we wait
    for from the caller's source (4.5.3.2.5: 3 minutes); ``data_termination``
    the reply after the final dot (4.5.3.2.6: 10 minutes). ``connect`` (30 s)
    and ``quit`` (30 s) are ours: RFC 5321 names neither.
    """

    connect: float = 30.0
    greeting: float = 300.0
    ehlo: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_initiation: float = 120.0
    data_block: float = 180.0
    data_termination: float = 600.0
    quit: float = 30.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidArgument(
                    f"Timeouts.{item.name} must be a positive number, not {value!r}"
                )

    @classmethod
    def uniform(cls, timeout: float) -> Timeouts:
        """The same ``timeout`` for every stage."""
        return cls(**{item.name: timeout for item in fields(cls)})


def _has_control(text: str) -> bool:
    """Whether ``text`` holds a C0 control character or DEL."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


@dataclass(frozen=True, slots=True)
class DSN:
    """Delivery status notification requests (RFC 3461), sent only when the server offers DSN.

    ``ret``: return the full message or only its headers in a bounce (MAIL's
    RET=). ``envid``: our identifier for this transmission, plain text
    (xtext-encoded on the wire, MAIL's ENVID=). ``notify``: when to notify,
    any of "SUCCESS", "FAILURE", "DELAY", or ("NEVER",) (RCPT's NOTIFY=).
    ``orcpt``: send each recipient's original address (RCPT's
    ORCPT=rfc822;xtext). Raises ``ValueError`` for a value RFC 3461 forbids.
    """

    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    notify: tuple[str, ...] | None = None
    orcpt: bool = False

    def __post_init__(self) -> None:
        if self.ret is not None and self.ret not in ("FULL", "HDRS"):
            raise InvalidArgument(f"DSN ret must be 'FULL' or 'HDRS', not {self.ret!r}")
        if self.envid is not None and (not self.envid or len(self.envid.encode()) > 100):
            # RFC 3461 4.4: ENVID is at most 100 characters.
            raise InvalidArgument(f"DSN envid must be 1 to 100 octets, not {self.envid!r}")
        if self.envid is not None and (not self.envid.isascii() or _has_control(self.envid)):
            # RFC 3461 4.4: printable US-ASCII (xtext would carry anything, but a
            # CR or LF there is an application's mistake, not an identifier).
            raise InvalidArgument(f"DSN envid must be printable ASCII, not {self.envid!r}")
        if self.notify is not None:
            notify = tuple(word.upper() for word in self.notify)
            # RFC 3461 4.1: NEVER alone, or any of the other three.
            if not notify or (notify != ("NEVER",) and not set(notify) <= _NOTIFY):
                raise InvalidArgument(
                    f"DSN notify must be ('NEVER',) or SUCCESS/FAILURE/DELAY, not {self.notify!r}"
                )
            object.__setattr__(self, "notify", tuple(dict.fromkeys(notify)))


def hello_name(fqdn: str, local_address: str) -> str:
    """The name for EHLO/HELO: ``fqdn`` if it is a usable domain, else an address literal.

    RFC 5321 4.1.4: the client names itself by its FQDN, or by an address
    literal when it has none. ``local_address`` is the socket's own address.
    """
    if "." in fqdn and fqdn.isascii() and ehlo_argument_error(fqdn) is None:
        return fqdn
    literal = f"[IPv6:{local_address}]" if ":" in local_address else f"[{local_address}]"
    return literal if ehlo_argument_error(literal) is None else "[127.0.0.1]"


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """A client session's settings, checked once and shared by the four transports.

    ``port`` defaults by mode: 465 for implicit TLS (RFC 8314), 24 for LMTP,
    587 when credentials are given (submission, RFC 6409), else 25.
    ``tls``: "starttls" (required: ``TLSError`` before any MAIL or AUTH if not
    offered), "opportunistic" (STARTTLS when offered), "implicit" (TLS from
    the first byte), "none". ``chunking``: None uses BDAT only when
    BINARYMIME needs it; True whenever CHUNKING is offered; False never.
    ``local_hostname`` None lets the transport choose (see ``hello_name``).
    Raises ``ValueError`` for an inconsistent combination.
    """

    host: str = field(metadata={"keyword": False})
    port: int | None = field(default=None, metadata={"keyword": False})
    tls: TLSMode = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    oauth_token: str | None = field(default=None, repr=False)
    local_hostname: str | None = None
    timeouts: Timeouts = field(
        default_factory=Timeouts,
        metadata={"keyword": "timeout", "accepts": "float | Timeouts | None"},
    )
    lmtp: bool = False
    auth_in_clear: bool = False
    chunking: bool | None = None
    limits: Limits = field(default_factory=Limits, metadata={"accepts": "Limits | None"})

    def __post_init__(self) -> None:
        if self.tls not in _TLS_MODES:
            raise InvalidArgument(f"tls must be one of {', '.join(_TLS_MODES)}, not {self.tls!r}")
        if not self.host:
            raise InvalidArgument("host is empty")
        if self.username is None and (self.password is not None or self.oauth_token is not None):
            raise InvalidArgument("a password or OAuth token needs a username")
        if self.username is not None and self.password is None and self.oauth_token is None:
            raise InvalidArgument("a username needs a password or an OAuth token")
        if self.username is not None and (not self.username or _has_control(self.username)):
            # SASL identities are text (RFC 4616 2, RFC 4013): no CR, LF, NUL
            # or other control characters, whatever the mechanism's encoding.
            raise InvalidArgument(f"username {self.username!r} is empty or has a control character")
        for secret in ("password", "oauth_token"):
            value = getattr(self, secret)
            if value is not None and ("\x00" in value or "\r" in value or "\n" in value):
                raise InvalidArgument(f"{secret} contains NUL, CR or LF")  # never shown
        if self.local_hostname is not None:
            reason = ehlo_argument_error(self.local_hostname)
            if reason is not None:
                raise InvalidArgument(f"local_hostname: {reason}")
        if self.port is None:
            if self.tls == "implicit":
                port = 465
            elif self.lmtp:
                port = 24
            elif self.username is not None:
                port = 587
            else:
                port = 25
            object.__setattr__(self, "port", port)
        elif isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise InvalidArgument(f"port {self.port!r} is not 1-65535")

    @classmethod
    def build(
        cls, host: str, port: int | None = None, **keywords: Unpack[ClientOptionKeywords]
    ) -> ClientOptions:
        """Options from the ``SMTPClient`` keywords: ``timeout`` may be one number for all.

        The keywords are the fields (``timeouts`` is spelled ``timeout``); an
        unknown one raises ``TypeError`` naming it.
        """
        values: dict[str, object] = {}
        for name, value in keywords.items():
            field_name = _FIELD_OF_KEYWORD.get(name)
            if field_name is None:
                raise TypeError(f"unexpected keyword argument {name!r}")
            values[field_name] = value
        # What a keyword accepts beyond its field's type, turned into the field's:
        # None for "the default", and one number for every stage's timeout.
        for name in ("timeouts", "limits"):
            if name in values and values[name] is None:
                del values[name]
        timeout = values.get("timeouts")
        if timeout is not None and not isinstance(timeout, Timeouts):
            values["timeouts"] = Timeouts.uniform(timeout)  # type: ignore[arg-type]
        return cls(host, port, **values)  # type: ignore[arg-type]

    @property
    def resolved_port(self) -> int:
        """The port, its default applied (``port`` is never None after construction)."""
        assert self.port is not None
        return self.port


#: Each keyword of ``ClientOptions.build`` to the field it sets.
_FIELD_OF_KEYWORD: Final = {
    item.metadata.get("keyword", item.name): item.name
    for item in fields(ClientOptions)
    if item.metadata.get("keyword", item.name) is not False
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message to send: addresses, what the content needs, and the content if in hand.

    ``content`` None means the content is streamed: the procedure asks for it
    piece by piece with ``NextChunk``. ``size`` is the content's size in
    octets if known (SIZE=, RFC 1870); with ``content`` it defaults to its
    length. ``body``: "8BITMIME" or "BINARYMIME" when the content has octets
    above 127 (or binary data); None means: found from ``content`` when in
    hand, else assumed 7BIT. ``smtputf8`` None means: needed when an address
    is not ASCII. ``verb`` picks MAIL or an old RFC 821 SEND/SOML/SAML.
    Recipients are kept in order, duplicates dropped. Raises ``ValueError``
    for no recipient or an unknown body.
    """

    sender: str
    recipients: tuple[str, ...]
    content: bytes | None = field(default=None, repr=False)
    size: int | None = None
    body: Body | None = None
    smtputf8: bool | None = None
    dsn: DSN | None = None
    requiretls: bool = False
    verb: Literal["MAIL", "SEND", "SOML", "SAML"] = "MAIL"

    def __post_init__(self) -> None:
        recipients = (self.recipients,) if isinstance(self.recipients, str) else self.recipients
        object.__setattr__(self, "recipients", tuple(dict.fromkeys(recipients)))
        if not self.recipients:
            raise InvalidArgument("no recipient: SMTP needs at least one RCPT")
        if self.body is not None and self.body not in _BODIES:
            raise InvalidArgument(f"body must be one of {', '.join(_BODIES)}, not {self.body!r}")
        if self.size is None and self.content is not None:
            object.__setattr__(self, "size", len(self.content))
        if self.size is not None and (isinstance(self.size, bool) or self.size < 0):
            raise InvalidArgument(f"size {self.size!r} is not a number of octets")

    @classmethod
    def build(
        cls,
        sender: str,
        recipients: str | Sequence[str],
        content: bytes | bytearray | memoryview | str | None,
        *,
        smtputf8: bool | None = None,
        body: Body | None = None,
        size: int | None = None,
        dsn: DSN | None = None,
        requiretls: bool = False,
        verb: Literal["MAIL", "SEND", "SOML", "SAML"] = "MAIL",
    ) -> Envelope:
        """The envelope for ``sendmail``'s arguments; str content is sent as UTF-8."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        return cls(
            sender=sender,
            recipients=(recipients,) if isinstance(recipients, str) else tuple(recipients),
            content=None if data is None else bytes(data),
            size=size,
            body=body,
            smtputf8=smtputf8,
            dsn=dsn,
            requiretls=requiretls,
            verb=verb,
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one message.

    ``accepted`` and ``refused`` map each recipient to its RCPT reply.
    ``reply`` is the reply to the end of the data (LMTP: the last one).
    ``data_replies`` maps each accepted recipient to its final reply: in
    LMTP each has its own (RFC 2033 4.2), some may be refusals; in SMTP all
    share ``reply``.
    """

    accepted: Mapping[str, Reply]
    refused: Mapping[str, Reply]
    reply: Reply
    data_replies: Mapping[str, Reply]

    def __post_init__(self) -> None:
        for name in ("accepted", "refused", "data_replies"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @classmethod
    def _owned(
        cls,
        accepted: dict[str, Reply],
        refused: dict[str, Reply],
        reply: Reply,
        data_replies: dict[str, Reply],
    ) -> SendResult:
        """A result over dicts nobody else holds: wrapped read-only, not copied.

        For ``deliver``, which builds the three dicts for this result alone;
        copying them again would cost three dicts per message for nothing.
        """
        result = object.__new__(cls)
        _set(result, "accepted", MappingProxyType(accepted))
        _set(result, "refused", MappingProxyType(refused))
        _set(result, "reply", reply)
        _set(result, "data_replies", MappingProxyType(data_replies))
        return result
