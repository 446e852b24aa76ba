"""Fuzz the EHLO/LHLO reply parser: ``Extensions.from_reply_lines`` (RFC 5321 4.1.1.1).

Asserts: any reply text gives an ``Extensions`` without raising; keywords are
upper-case ehlo-keywords; ``size`` is None or a non-negative int; ``auth`` is
a set of upper-case words; parsing is idempotent through the server's own
formatting; and what a ``ServerConnection`` with fuzzed flags offers is read
back flag for flag by a ``ClientConnection`` fed its EHLO reply.
"""

from __future__ import annotations

import re

from smtpcore import NEED_DATA, ClientConnection, Ehlo, Extensions, Lhlo, Reply, ServerConnection

from ._harness import Input, run_atheris
from ._peers import server_config

_KEYWORD = re.compile(r"[A-Z0-9][A-Z0-9\-]*")


def check_extensions(ext: Extensions) -> None:
    for keyword in ext:
        assert _KEYWORD.fullmatch(keyword), keyword
        assert keyword in ext and keyword.lower() in ext
        assert isinstance(ext[keyword], str)
    size = ext.size
    assert size is None or (isinstance(size, int) and size >= 0), size
    assert all(name == name.upper() and name for name in ext.auth), ext.auth
    for flag in ("pipelining", "chunking", "starttls", "smtputf8", "dsn", "eightbitmime"):
        assert isinstance(getattr(ext, flag), bool)


def check_served(source: Input) -> None:
    """A server's EHLO reply, read by our client: every flag survives."""
    config = server_config(source)
    server = ServerConnection(config, tls=source.flag())
    reply = server.ehlo_reply(source.text(30).replace("\r", "").replace("\n", "").replace("\0", ""))
    client = ClientConnection(lmtp=config.lmtp)
    client.receive_data(b"220 mx.example ESMTP\r\n")
    assert client.next_event() == Reply(220, ("mx.example ESMTP",))
    client.send(Lhlo("client.example") if config.lmtp else Ehlo("client.example"))
    client.receive_data(reply.to_bytes())
    event = client.next_event()
    assert isinstance(event, Reply) and event.code == 250, event
    assert client.next_event() is NEED_DATA
    ext = client.extensions
    check_extensions(ext)
    assert ext.pipelining == config.pipelining
    assert ext.chunking == config.chunking
    assert ext.smtputf8 == config.smtputf8
    assert ext.dsn == config.dsn
    assert ext.starttls == (config.starttls and not server.is_tls)
    assert ext.size == (server.size_limit if server.size_limit is not None else 0)
    offered = bool(config.auth_mechanisms) and (server.is_tls or config.auth_before_tls)
    assert ext.auth == (frozenset(config.auth_mechanisms) if offered else frozenset())


def test_one_input(data: bytes) -> None:
    """One fuzz case: reply lines from the bytes, then a served configuration."""
    source = Input(data)
    lines = tuple(
        source.text(80).replace("\r", "").replace("\n", "").replace("\0", "")
        for _ in range(source.number(0, 12))
    )
    ext = Extensions.from_reply_lines(lines)
    check_extensions(ext)
    # What we understood, written as a server would, reads back the same.
    again_lines = (ext.domain or "x", *(f"{k} {v}".rstrip() for k, v in ext.items()))
    again = Extensions.from_reply_lines(again_lines)
    assert dict(again) == dict(ext), (ext, again)
    check_served(source)


def main() -> None:
    """Run under atheris."""
    run_atheris(test_one_input)


if __name__ == "__main__":
    main()
