"""The ``Received:`` trace header a server puts in front of each message (RFC 5321 4.4)."""

from __future__ import annotations

import datetime
from typing import Final

from .._errors import InvalidArgument
from .._server import ServerConnection
from ._server_values import Peer

__all__ = ["format_date", "received_header"]

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def format_date(moment: datetime.datetime) -> str:
    """``moment`` as an RFC 5322 3.3 date-time: ``Sun, 29 Nov 2026 06:26:45 +0000``.

    Raises ``ValueError`` for a naive datetime (its zone is unknown).
    """
    offset = moment.utcoffset()
    if offset is None:
        raise InvalidArgument("format_date needs a timezone-aware datetime")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return (
        f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
        f"{sign}{hours:02d}{mins:02d}"
    )


def _address_literal(host: str) -> str:
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


def _protocol(conn: ServerConnection) -> str:
    """The ``with`` keyword (RFC 3848; RFC 6531 3.7.3 for UTF8SMTP)."""
    if conn.config.lmtp:
        base = "LMTP"
    elif conn.is_smtputf8:
        base = "UTF8SMTP"
    elif conn.is_esmtp:
        base = "ESMTP"
    else:
        return "SMTP"  # RFC 3848 has no S/A suffixes for plain SMTP
    suffix = ("S" if conn.is_tls else "") + ("A" if conn.is_authenticated else "")
    return base + suffix


def received_header(
    conn: ServerConnection,
    peer: Peer,
    message_id: str,
    moment: datetime.datetime,
    *,
    date: str | None = None,
) -> bytes:
    """The ``Received:`` trace header for the open transaction (RFC 5321 4.4).

    ``from <helo> (<name> [<ip>]) by <hostname> with <protocol> id <id>
    for <recipient>; <date>``, folded. The ``for`` clause names the recipient
    only when there is exactly one: listing them all would reveal Bcc
    recipients to each other (RFC 5321 7.2). ``date`` is ``moment`` already
    formatted, when the caller has it.
    """
    if date is None:
        date = format_date(moment)
    tcp_info = _address_literal(peer.host)
    if peer.name:
        tcp_info = f"{peer.name} {tcp_info}"
    lines = [
        f"Received: from {conn.hello_domain or 'unknown'} ({tcp_info})",
        f"\tby {conn.config.hostname} with {_protocol(conn)} id {message_id}",
    ]
    recipients = conn.recipients
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
