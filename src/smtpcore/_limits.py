"""Bounds on what a peer can make us hold."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import InvalidArgument

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a peer can make us hold. Exceeding one is a RemoteProtocolError.

    Every buffer of a connection is bounded by one of these numbers, so a
    hostile peer costs bounded memory whatever it sends. Defaults follow
    RFC 5321 4.5.3.1 where it gives a number; the others say where they come
    from.
    """

    #: RFC 5321 4.5.3.1.4: a command line, CRLF included.
    command_line: int = 512
    #: MAIL and RCPT lines with every parameter the extensions allow on top of
    #: the 512 octets of RFC 5321: SIZE +26 (RFC 1870), RET/ENVID +100 and
    #: NOTIFY/ORCPT +500 (RFC 3461 5), AUTH= +500 (RFC 4954 5), rounded up.
    parameter_line: int = 2048
    #: RFC 4954 4: AUTH lines and SASL responses may be 12288 octets long.
    auth_line: int = 12288
    #: A reply line, code and CRLF included. RFC 5321 4.5.3.1.5 says 512, but
    #: real servers send longer texts (policy rejections, DNSBL reasons);
    #: 2048 is Postfix's own line_length_limit.
    reply_line: int = 2048
    #: Ours: RFC 5321 sets no bound on the lines of one reply; more is hostile.
    reply_lines: int = 100
    #: Recipients a server takes in one transaction; RCPTs beyond get
    #: ``452 4.5.3`` and the client goes on with those accepted (RFC 5321
    #: 4.5.3.1.10). 1000 is Postfix's smtpd_recipient_limit; RFC 5321 4.5.3.1.8
    #: asks for at least 100.
    recipients: int = 1000
    #: RCPTs beyond ``recipients`` in one transaction that are answered 452
    #: without counting as errors (Postfix's smtpd_recipient_overshoot_limit);
    #: after this many, each one also counts toward ``errors``, so endless
    #: RCPTs are not free. Ours is 10000 (Postfix: 1000), so a client that
    #: pipelines a list of 11000 addresses still delivers to the first 1000.
    recipient_overshoot: int = 10000
    #: Ours: the largest message we accept or send, in octets; None: no limit
    #: of our own (a server's advertised SIZE still applies).
    message_size: int | None = None
    #: Ours, like Postfix's smtpd_hard_error_limit: after this many errors in
    #: one session, a server answers 421 and closes.
    errors: int = 20
    #: Ours: failed AUTH attempts a server allows in one session.
    auth_failures: int = 3
    #: Ours: challenges in one SASL exchange before it is called endless.
    sasl_rounds: int = 10
    #: Postfix's smtpd_junk_command_limit (default 100): NOOP, RSET, VRFY,
    #: EXPN, HELP, ETRN, a repeated EHLO/HELO/LHLO and an empty BDAT chunk
    #: (``BDAT 0`` without LAST) beyond this many in one session each count as an
    #: error toward ``errors``; the count starts again after an accepted message.
    junk_commands: int = 100
    #: Ours: the largest refused BDAT chunk a server reads to drop it (RFC 3030
    #: 2 asks it to read the chunk). A larger one is answered and the
    #: connection closed, as Postfix hangs up: reading gigabytes only to drop
    #: them would be a free resource drain.
    skipped_chunk: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "command_line",
            "parameter_line",
            "auth_line",
            "reply_line",
            "reply_lines",
            "recipients",
            "recipient_overshoot",
            "errors",
            "auth_failures",
            "sasl_rounds",
            "junk_commands",
            "skipped_chunk",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"Limits.{name} must be a positive int, not {value!r}")
        if self.command_line < 8 or self.reply_line < 8:
            raise InvalidArgument("Limits.command_line and Limits.reply_line must be at least 8")
        if self.message_size is not None and self.message_size < 0:
            raise InvalidArgument("Limits.message_size must be None or >= 0")

    @property
    def shortest_line(self) -> int:
        """The line length, CRLF included, that every command line limit allows.

        A command, parameter or AUTH line no longer than this needs no look
        at which limit is its own.
        """
        return min(self.command_line, self.parameter_line, self.auth_line)
