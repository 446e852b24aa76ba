"""What the server procedure tells a handler: the client's address, the connection, the message."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from .._errors import InvalidArgument
from ._server_effects import ContentSpool
from ._tls import TLSInfo

__all__ = ["CHUNK", "Peer", "ServerEnvelope", "SessionContext", "SessionInfo"]


@dataclass(frozen=True, slots=True)
class Peer:
    """The client's address: ``host`` is the IP address as text, ``name`` its DNS name if known."""

    host: str
    port: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What ``on_connect`` learns about a new connection."""

    peer: Peer
    hostname: str
    session_id: str
    tls: TLSInfo | None = None


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What a hook of a ``Handler`` knows about its session, as of the moment it is called.

    Each call gets a fresh snapshot: the facts of one connection, never of
    another served at the same time. ``sender`` is None until MAIL is
    accepted (``""`` for the null reverse-path ``<>``); ``recipients`` are
    those accepted so far, the one an ``on_rcpt`` is asked about not yet among
    them. ``message_id`` is set from the 354 (or the first BDAT chunk) to the
    message's end: the hooks ``on_data_chunk`` and ``on_message`` tell
    concurrent messages apart by it. ``tls`` describes the TLS layer (with the
    client's certificate, when the server's context asked for one), None in
    clear; ``auth_identity`` is the user AUTH accepted, None before.
    """

    session_id: str
    peer: Peer
    hostname: str  # ours, as the greeting says it
    tls: TLSInfo | None = None
    hello_domain: str | None = None
    auth_identity: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    message_id: str | None = None

    @property
    def is_tls(self) -> bool:
        """Whether the session runs over TLS (STARTTLS done, or implicit TLS)."""
        return self.tls is not None

    @property
    def is_authenticated(self) -> bool:
        """Whether AUTH succeeded in this session (and still holds after STARTTLS)."""
        return self.auth_identity is not None


#: Octets ``ServerEnvelope.chunks`` gives at a time unless asked otherwise.
CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServerEnvelope:
    """One message received, as ``on_message`` gets it.

    ``content`` is the message as received (unstuffed, CRLF line ends) with
    our ``Received:`` header in front; ``received_header`` is that header
    alone. When the handler streams with ``on_data_chunk``, ``content`` is
    ``b""``: the chunks went to the hook.

    A message larger than the server's spool threshold is not in memory:
    ``spool`` holds it (a temporary file the transport made), ``held`` is
    empty, and ``content`` reads the whole of it from the spool each time it
    is asked for. To store or scan such a message without holding it, read
    it with ``chunks()``. ``size`` is its length in octets either way.
    """

    sender: str  # "" for the null reverse-path <>
    recipients: tuple[str, ...]
    mail_params: Mapping[str, str | None]
    recipient_params: tuple[Mapping[str, str | None], ...]
    peer: Peer
    hello_domain: str | None
    is_tls: bool
    tls: TLSInfo | None
    auth_identity: str | None
    message_id: str
    session_id: str
    received_header: bytes = field(repr=False)
    held: bytes = field(repr=False)  # the content when it stayed in memory, else b""
    spool: ContentSpool | None = field(default=None, repr=False)
    size: int = 0

    @property
    def content(self) -> bytes:
        """The whole message as bytes (read from the spool, when there is one)."""
        if self.spool is None:
            return self.held
        return b"".join(self.spool.chunks(CHUNK))

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The message in pieces of at most ``size`` octets, from the start, never all at once."""
        if size < 1:
            raise InvalidArgument(f"chunk size must be >= 1, not {size!r}")
        if self.spool is not None:
            yield from self.spool.chunks(size)
            return
        held = memoryview(self.held)
        for start in range(0, len(held), size):
            yield bytes(held[start : start + size])

    @property
    def original_content(self) -> bytes:
        """The content as the client sent it, without our ``Received:`` header."""
        if self.content.startswith(self.received_header):
            return self.content[len(self.received_header) :]
        return self.content
