"""A deterministic application around ``ServerConnection``, for the server-side targets.

``answer`` replies to every event the way a permissive server would (accept
every command it can, 354 to DATA, 334 then 235 to AUTH), so the fuzzer
reaches every phase. It never calls ``tls_established``: a real handshake
would stand between the 220 and the next byte, and bytes fed after the 220
must be dropped either way.
"""

from __future__ import annotations

from smtpcore import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfData,
    Event,
    Expn,
    Help,
    InvalidCommand,
    Lhlo,
    Limits,
    MessageData,
    Quit,
    Reply,
    ServerConfig,
    ServerConnection,
    ServerPhase,
    StartTLS,
    Vrfy,
)

from ._harness import Input

__all__ = ["answer", "server_config", "server_limits"]


def server_config(source: Input) -> ServerConfig:
    """A configuration with the flags read from ``source``."""
    bits = source.byte() | source.byte() << 8
    return ServerConfig(
        hostname="mx.example",
        lmtp=bool(bits & 1),
        size=source.number(0, 400) if bits & 2 else None,
        pipelining=not bits & 4,
        smtputf8=bool(bits & 8),
        chunking=bool(bits & 16),
        binarymime=bool(bits & 32),
        dsn=bool(bits & 64),
        starttls=bool(bits & 128),
        auth_mechanisms=("PLAIN", "LOGIN") if bits & 256 else (),
        auth_before_tls=bool(bits & 512),
        etrn=bool(bits & 1024),
        expn=bool(bits & 2048),
        legacy_send=bool(bits & 4096),
        bare_lf="reject" if bits & 8192 else "normalise",
        enhanced_status_codes=not bits & 16384,
    )


def server_limits(source: Input) -> Limits:
    """Small limits read from ``source``, so the fuzzer meets them quickly."""
    return Limits(
        command_line=source.number(8, 600),
        parameter_line=source.number(1, 800),
        auth_line=source.number(1, 800),
        recipients=source.number(1, 6),
        errors=source.number(1, 25),
        message_size=source.number(0, 500) if source.flag() else None,
    )


def _reply_to(server: ServerConnection, event: Event) -> Reply:
    if isinstance(event, InvalidCommand):
        return event.reply
    if isinstance(event, (Ehlo, Lhlo)):
        return server.ehlo_reply()
    if isinstance(event, Data):
        return Reply(354, ("End data with <CR><LF>.<CR><LF>",))
    if isinstance(event, StartTLS):
        return Reply(220, ("2.0.0 Ready to start TLS",))
    if isinstance(event, Auth):
        return Reply(334, ("",))
    if isinstance(event, AuthResponse):
        if event.data:
            server.authenticated("user")
            return Reply(235, ("2.7.0 Authentication successful",))
        return Reply(535, ("5.7.8 Authentication credentials invalid",))
    if isinstance(event, AuthCancel):
        return Reply(501, ("5.7.0 Authentication cancelled",))
    if isinstance(event, Quit):
        return Reply(221, ("2.0.0 Bye",))
    if isinstance(event, (Vrfy, Expn)):
        return Reply(252, ("2.5.0 Cannot verify",))
    if isinstance(event, Help):
        return Reply(214, ("2.0.0 See RFC 5321",))
    if isinstance(event, (EndOfData, EndOfChunk)):
        return Reply(250, ("2.0.0 Ok",))
    return Reply(250, ("2.0.0 Ok",))


def answer(server: ServerConnection, event: Event) -> list[bytes]:
    """Send every reply ``event`` needs; the bytes sent."""
    if isinstance(event, (MessageData, Bdat, ConnectionClosed)):
        assert server.awaiting is None, (event, server.awaiting)
        return []
    wire = []
    assert server.awaiting is event, (event, server.awaiting)
    while server.awaiting is not None and server.phase is not ServerPhase.CLOSED:
        wire.append(server.send(_reply_to(server, event)))
    return wire
