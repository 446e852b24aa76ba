"""The log lines a server session reports: one per session, one per message.

The session procedure calls the ``log`` function a transport gives it with
these lines (the core writes nothing itself). They name the peer, the
HELO name, TLS, the authenticated identity, the sender, the recipient
count, the size, the result and the queue id; never a password or a byte
of message content. Every value the client chose is quoted and escaped,
so a client cannot put a line break or a forged field into the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

from .._events import Reply
from ._tls import TLSInfo

__all__ = ["LogLine", "message_line", "quote", "session_line"]

LogLine: TypeAlias = Callable[[str], object]
"""What a transport gives the procedure to report with (``logger.info``, say)."""

_PLAIN: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@:+/[]")


def quote(value: str) -> str:
    """``value`` as it is when plainly safe, else in double quotes with escapes."""
    if value and all(char in _PLAIN for char in value):
        return value
    escaped = value.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{escaped}"'


def _reply_text(reply: Reply) -> str:
    return quote(f"{reply.code} {' '.join(reply.lines)}".strip())


def session_line(
    session_id: str,
    peer: tuple[str, int],
    *,
    helo: str | None,
    tls: TLSInfo | None,
    identity: str | None,
    messages: int,
    end: str,
    dropped: bool,
) -> str:
    """The line that ends a session: who it was, what it did, how it ended."""
    host, port = peer
    parts = [
        f"session {session_id} peer={quote(host)}:{port}",
        f"helo={quote(helo) if helo is not None else '-'}",
        f"tls={quote(tls.version or 'yes') if tls is not None else 'no'}",
        f"auth={quote(identity) if identity is not None else '-'}",
        f"messages={messages}",
        f"end={quote(end)}",
    ]
    if dropped:
        parts.append("dropped=message-in-flight")
    return " ".join(parts)


def message_line(
    message_id: str,
    session_id: str,
    *,
    sender: str,
    recipients: int,
    size: int,
    replies: Sequence[Reply],
) -> str:
    """The line for one message whose end arrived: queue id, envelope size, result."""
    first = replies[0]
    result = _reply_text(first)
    if any(reply != first for reply in replies[1:]):  # LMTP: one reply per recipient
        result = quote(",".join(str(reply.code) for reply in replies))
    return (
        f"message {message_id} session={session_id} from=<{quote(sender) if sender else ''}>"
        f" recipients={recipients} size={size} result={result}"
    )
