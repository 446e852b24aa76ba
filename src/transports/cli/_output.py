"""What the command line prints: exit statuses, printable server text, the trace, results."""

from __future__ import annotations

from typing import Final, TextIO

from smtpcore import InvalidArgument, LocalProtocolError, ProtocolError
from smtpcore.session import (
    AuthenticationError,
    ConnectionLost,
    SendResult,
    SMTPTimeout,
    TLSError,
    TransientError,
)

__all__ = [
    "EX_BROKEN_PIPE",
    "EX_DATAERR",
    "EX_NOINPUT",
    "EX_NOPERM",
    "EX_OK",
    "EX_PROTOCOL",
    "EX_TEMPFAIL",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "Failure",
    "OutputClosed",
    "Tracer",
    "exit_status",
    "print_result",
    "printable",
    "server_text",
]

EX_OK: Final = 0
EX_USAGE: Final = 64
EX_DATAERR: Final = 65
EX_NOINPUT: Final = 66
EX_UNAVAILABLE: Final = 69
EX_TEMPFAIL: Final = 75
EX_PROTOCOL: Final = 76
EX_NOPERM: Final = 77
EX_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE: what a shell shows for a reader gone


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as an escape.

    A server's replies reach the user's terminal: an ESC, a bell or a
    carriage return in them could recolour, retitle or overwrite what the
    user sees. Such characters are shown as ``\\x1b``, ``\\x07``, ``\\u202e``.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def server_text(data: bytes) -> str:
    """Bytes from the network as printable text (octets not UTF-8 shown as ``\\xNN``)."""
    return printable(data.decode("utf-8", "backslashreplace"))


class OutputClosed(BaseException):
    """The reader of our output went away (``smtpcore demo | head``): stop quietly.

    A BaseException, so that no handler of I/O errors on the way up (a
    client's, which would report a lost connection) mistakes it for its own.
    """


class Tracer:
    """Prints the conversation: ``>`` what we sent, ``<`` what the server answered.

    Every line is made printable first. The client's side of a SASL exchange
    (the AUTH command's initial response and every line the client sends until
    the server's final reply) is shown as ``***``: it carries the credentials,
    in base64 or as a proof an attacker could replay or crack offline.
    """

    def __init__(self, out: TextIO, *, limit: int = 2000) -> None:
        self.out = out
        self.limit = limit  # content lines shown before "..." (big messages)
        self._shown = 0
        self._partial = {">": b"", "<": b""}
        self._in_auth = False  # between an AUTH command and the server's final reply
        self._data_asked = False  # DATA sent, its reply not yet seen
        self._in_content = False  # after 354, until the line "."
        self._chunk_left = 0  # octets of the current BDAT chunk not yet seen

    def __call__(self, direction: str, data: bytes) -> None:
        buffered = self._partial[direction] + data
        *lines, rest = buffered.split(b"\r\n")
        self._partial[direction] = rest
        try:
            for line in lines:
                self._shown += 1
                if self._shown == self.limit:
                    print(f"{direction} ...", file=self.out)
                if self._shown < self.limit:
                    print(f"{direction} {self._masked(direction, line)}", file=self.out)
            self.out.flush()
        except BrokenPipeError:
            # Called from inside a client's I/O: an OSError here would be taken
            # for the connection's and reported as a lost connection.
            raise OutputClosed from None

    def _masked(self, direction: str, line: bytes) -> str:
        if direction == "<":
            final = line[3:4] != b"-"
            if self._in_auth and final and line[:3] != b"334":
                self._in_auth = False  # 235, 535...: the exchange is over
            # The server speaks after the content it was sent: whatever we
            # counted, the client's next line is a command again, so an AUTH
            # is never taken for content and shown in clear.
            self._in_content = False
            self._chunk_left = 0
            if self._data_asked and final:
                self._data_asked = False
                self._in_content = line[:3] == b"354"
            return server_text(line)
        if self._in_auth:
            return "***"
        if self._in_content:  # message lines: an "AUTH" there is text, not a command
            self._in_content = line != b"."
            return server_text(line)
        if self._chunk_left > 0:  # inside a BDAT chunk, counted in octets
            self._chunk_left -= len(line) + 2
            return server_text(line)
        verb, _, rest = line.partition(b" ")
        verb = verb.upper()
        if verb == b"DATA":
            self._data_asked = True
        elif verb == b"BDAT":
            size = rest.split(b" ", 1)[0]
            self._chunk_left = int(size) if size.isdigit() else 0
        elif verb == b"AUTH":
            self._in_auth = True
            mechanism, space, initial = rest.partition(b" ")
            if space and initial:
                return server_text(b"AUTH " + mechanism) + " ***"
        return server_text(line)


class Failure(Exception):
    """A mistake the user can correct: one line on stderr, then exit with ``status``."""

    def __init__(self, message: str, status: int = EX_USAGE) -> None:
        super().__init__(message)
        self.status = status


def print_result(result: SendResult, out: TextIO, *, prefix: str = "") -> None:
    """One line per recipient: ``accepted ADDRESS: 250 ...`` or ``refused  ADDRESS: 550 ...``."""
    for rcpt in result.accepted:
        final = result.data_replies.get(rcpt, result.reply)
        print(f"{prefix}accepted {printable(rcpt)}: {final.code} {printable(final.text)}",
              file=out)  # fmt: skip
    for rcpt, reply in result.refused.items():
        print(f"{prefix}refused  {printable(rcpt)}: {reply.code} {printable(reply.text)}",
              file=out)  # fmt: skip


def exit_status(exc: BaseException) -> int:
    """The sysexits status for a failure."""
    if isinstance(exc, AuthenticationError):
        return EX_NOPERM
    if isinstance(exc, (LocalProtocolError, InvalidArgument)):
        return EX_USAGE
    if isinstance(exc, (TLSError, ProtocolError)):
        return EX_PROTOCOL
    if isinstance(exc, (TransientError, ConnectionLost, SMTPTimeout)):
        return EX_TEMPFAIL
    if getattr(exc, "is_transient", False):
        return EX_TEMPFAIL
    return EX_UNAVAILABLE
