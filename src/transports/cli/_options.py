"""The commands of ``smtpcore`` and their options, as data for the parser."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

__all__ = ["COMMANDS", "TOP_EXAMPLES", "Command", "Option"]


class Option(NamedTuple):
    """One argument of a command: what ``add_argument`` is given."""

    flag: str  # "--host"; a name without a dash is a positional argument
    help: str  # ends with its default: the help test checks every option says it
    exclusive: (
        str  # "" alone; "any": at most one of the command's "any" options; "one": exactly one
    )
    keywords: dict[str, Any]


def _option(flag: str, help: str, *, exclusive: str = "", **keywords: Any) -> Option:
    return Option(flag, help, exclusive, keywords)


def _ready(flag: str, metavar: str, text: str) -> Option:
    """An option of ``send`` that sends ready messages, instead of the one it would build."""
    return _option(flag, f"{text} (default: build one)", exclusive="any", metavar=metavar)


def _store(flag: str, metavar: str, text: str, other: str) -> Option:
    """The store ``serve`` writes into: this option or the ``other`` one."""
    return _option(flag, f"{text}, created if missing (this or {other})", exclusive="one",
                   metavar=metavar)  # fmt: skip


class Command(NamedTuple):
    """A subcommand: its name, its one-line summary, its examples and its options."""

    name: str
    summary: str
    examples: str
    options: tuple[Option, ...]


_SEND_EXAMPLES: Final = """\
examples:
  smtpcore send --host smtp.example.org:587 --user me --password-env SMTP_PASSWORD \\
      --from me@example.org --to you@example.net --subject Report \\
      --body report.txt --attach figures.pdf
  echo "it works" | smtpcore send --host localhost:2525 --tls none \\
      --from a@example.org --to b@example.net --body -
  smtpcore send --host localhost:2525 --tls none --eml ready.eml --trace
"""

_SERVE_EXAMPLES: Final = """\
examples:
  smtpcore serve --port 2525 --maildir ./Maildir
  smtpcore serve --port 0 --mbox ./mail.mbox --transport trio
  smtpcore serve --port 2525 --maildir ./Maildir --tls-cert server.pem --users users.txt
"""

_PROBE_EXAMPLES: Final = """\
examples:
  smtpcore probe smtp.example.org:587
  smtpcore probe smtp.example.org --implicit
  smtpcore probe localhost:2525 --cafile ca.pem
"""

_DEMO_EXAMPLES: Final = """\
examples:
  smtpcore demo
  smtpcore demo --keep
"""

TOP_EXAMPLES: Final = """\
exit statuses: 0 done, 64 usage, 66 no input file, 69 unavailable or refused (5xx),
75 try again later (4xx, timeout), 76 TLS or protocol error, 77 authentication refused

examples:
  smtpcore demo
  smtpcore serve --port 2525 --maildir ./Maildir
  smtpcore send --host localhost:2525 --tls none --from a@example.org --to b@example.net
  smtpcore probe smtp.example.org:587
"""


_CAFILE: Final = _option("--cafile", "trust the CAs in this PEM file (default: the system's)",
                         metavar="FILE")  # fmt: skip
_LMTP: Final = _option("--lmtp", "speak LMTP (default: SMTP)", action="store_true")

_DEMO: Final = (
    _option("--keep", "keep the Maildir afterwards (default: removed)", action="store_true"),
)

_SEND: Final = (
    _option("--host", "the server: HOST, HOST:PORT or [IPv6]:PORT (required)", required=True),
    _option("--port", "the port, if not in --host (default: 25; 465 with --tls implicit)",
            type=int, default=None),
    _option("--tls", "starttls: required; implicit: TLS from the first byte; "
                     "opportunistic: when offered; none (default: %(default)s)",
            choices=["starttls", "implicit", "opportunistic", "none"], default="starttls"),
    _CAFILE,
    _option("--insecure", "do not verify the certificate (default: verify)", action="store_true"),
    _option("--user", "AUTH user name (default: no AUTH)"),
    _option("--password-env", "read the password from the environment variable VAR "
                              "(default: ask on the terminal)", metavar="VAR"),
    _option("--auth-in-clear", "allow AUTH without TLS (default: refused)", action="store_true"),
    _LMTP,
    _option("--timeout", "seconds allowed for every step "
                         "(default: RFC 5321's, 5 to 10 minutes a step)",
            type=float, default=None, metavar="SECONDS"),
    _option("--from", "sender address (default: From of --eml)", dest="sender", default="",
            metavar="ADDRESS"),
    _option("--to", "recipient, repeatable (default: none)", action="append", default=[],
            metavar="ADDRESS"),
    _option("--cc", "copy recipient, repeatable (default: none)", action="append", default=[],
            metavar="ADDRESS"),
    _option("--bcc", "blind copy recipient, not shown in the message, repeatable (default: none)",
            action="append", default=[], metavar="ADDRESS"),
    _option("--subject", "the Subject (default: none)", default=""),
    _option("--body", "the body text from FILE, or - for stdin (default: empty)", metavar="FILE"),
    _option("--attach", "attach FILE, MIME type guessed from its name, repeatable "
                        "(default: none)", action="append", metavar="FILE"),
    _ready("--eml", "PATH", "send this ready message file, or every .eml file of this directory, "
                            "instead"),
    _ready("--maildir", "DIR", "send every message of this Maildir (new/ and cur/)"),
    _ready("--mbox", "FILE", "send every message of this mbox file"),
    _option("--trace", "show the conversation on stderr, credentials as *** (default: off)",
            action="store_true"),
)  # fmt: skip

_SERVE: Final = (
    _option("--host", "the address to listen on (default: %(default)s)", default="127.0.0.1"),
    _option("--port", "the port; 0 picks a free one (default: %(default)s)", type=int,
            default=2525),
    _store("--maildir", "DIR", "store into this Maildir", "--mbox"),
    _store("--mbox", "FILE", "append to this mbox file", "--maildir"),
    _option("--tls-cert", "certificate chain (PEM) for STARTTLS (default: no STARTTLS)",
            metavar="FILE"),
    _option("--tls-key", "its private key (PEM) (default: in --tls-cert)", metavar="FILE"),
    _option("--users", "AUTH users, one user:password a line (default: no AUTH)", metavar="FILE"),
    _LMTP,
    _option("--hostname", "the name in greetings and Received fields (default: %(default)s)",
            default="localhost"),
    _option("--transport", "which server runs; trio and anyio need their extra "
                           "(default: %(default)s)",
            choices=["sync", "asyncio", "trio", "anyio"], default="asyncio"),
    _option("--loop", "the event loop of --transport asyncio; uvloop needs the uvloop extra "
                      "(default: %(default)s)", choices=["asyncio", "uvloop"], default="asyncio"),
    _option("--grace", "seconds messages in flight get to finish on SIGINT/SIGTERM "
                       "(default: %(default)s)", type=float, default=10.0),
    _option("--max-connections", "sessions served at once; more get 421 4.7.0 "
                                 "(default: %(default)s)", type=int, default=500),
    _option("--max-connections-per-client", "sessions served at once from one client address "
                                            "(default: %(default)s)", type=int, default=50),
    _option("--workers", "serve in N processes sharing the port (SO_REUSEPORT, Linux); "
                         "the caps are divided among them (default: %(default)s)",
            type=int, default=1, metavar="N"),
)  # fmt: skip

_PROBE: Final = (
    _option("target", "HOST or HOST:PORT (port 25, or 465 with --implicit)"),
    _option("--implicit", "TLS from the first byte, as on port 465 (default: STARTTLS)",
            action="store_true"),
    _CAFILE,
    _option("--timeout", "seconds allowed for every step (default: %(default)s)", type=float,
            default=10.0, metavar="SECONDS"),
)  # fmt: skip

#: The subcommands, in the order ``--help`` lists them.
COMMANDS: Final = (
    Command("demo", "send real mail through every transport to a server on loopback",
            _DEMO_EXAMPLES, _DEMO),
    Command("send", "send one message", _SEND_EXAMPLES, _SEND),
    Command("serve", "receive mail into a Maildir or mbox", _SERVE_EXAMPLES, _SERVE),
    Command("probe", "show what a server offers; sends no mail", _PROBE_EXAMPLES, _PROBE),
)  # fmt: skip
