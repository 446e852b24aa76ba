"""Hostile clients against our five servers (sync, asyncio, trio, anyio on both), raw sockets.

Each test sends the attack's bytes and checks the exact reply codes, what
was stored (one message in, at most one stored; nothing smuggled), and that
memory stays bounded.
"""

from __future__ import annotations

import ssl
import tracemalloc
from collections.abc import Callable

import pytest

from smtpcore import Limits, ServerConfig

from .conftest import Memory, Raw, Running

Start = Callable[..., Running]
HELLO = b"EHLO client.example\r\n"
ENVELOPE = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"


def session(start: Start, **options: object) -> tuple[Memory, Raw]:
    handler = Memory()
    server = start(handler, **options)
    raw = Raw(server.port, timeout=3.0)
    assert raw.reply().startswith(b"220")
    return handler, raw


def codes(raw: Raw, count: int) -> list[bytes]:
    return [raw.reply()[:3] for _ in range(count)]


def test_commands_pipelined_behind_starttls_are_dropped(
    start_server: Start, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    handler, raw = session(start_server, tls_context=server_tls)
    raw.send(HELLO)
    assert b"STARTTLS" in raw.reply()
    raw.send(b"STARTTLS\r\n" + ENVELOPE + b"DATA\r\nevil\r\n.\r\n")
    assert raw.reply()[:3] == b"220"
    raw.starttls(client_tls)
    raw.send(HELLO)
    assert raw.reply()[:3] == b"250"
    raw.send(b"RCPT TO:<b@example.net>\r\n")  # no MAIL survived the handshake
    assert raw.reply()[:3] == b"503"
    raw.close()
    assert handler.messages == []


SMUGGLING = [
    b"a\n.\nMAIL FROM:<e@example.org>\nRCPT TO:<b@example.net>\nDATA\nevil\n.\n",
    b"a\r.\rMAIL FROM:<e@example.org>\r\n",
    b"a\r\n.\rMAIL FROM:<e@example.org>\r\n",
    b"a\n.\r\nMAIL FROM:<e@example.org>\r\n",
    b"a\r.\r\nMAIL FROM:<e@example.org>\r\n",
]


@pytest.mark.parametrize("bare_lf", ["reject", "normalise"])
@pytest.mark.parametrize("content", SMUGGLING, ids=range(len(SMUGGLING)))
def test_bare_cr_lf_end_markers_never_end_the_message(
    start_server: Start, content: bytes, bare_lf: str
) -> None:
    handler, raw = session(start_server, config=ServerConfig(bare_lf=bare_lf))  # type: ignore[arg-type]
    raw.send(HELLO + ENVELOPE + b"DATA\r\n")
    assert codes(raw, 4) == [b"250", b"250", b"250", b"354"]
    raw.send(content + b"\r\n.\r\nQUIT\r\n")
    final = raw.reply()[:3]
    refused = bare_lf == "reject" or b"\r" in content.replace(b"\r\n", b"")
    assert final == (b"550" if refused else b"250"), final
    assert raw.reply()[:3] == b"221"
    assert len(handler.messages) == (1 if final == b"250" else 0)
    for message in handler.messages:
        assert message.sender == "a@example.org"
        assert b"MAIL FROM:<e@example.org>" in message.original_content


def test_a_cut_over_long_line_is_one_error_not_a_second_command(start_server: Start) -> None:
    _handler, raw = session(start_server, limits=Limits(command_line=512))
    # The rest of a cut line, "QUIT", is skipped; a lone dot is a bad command, not an end.
    raw.send(b"NOOP " + b"x" * 600 + b"QUIT\r\n" + b"x" * 510 + b"\r\n.\r\nNOOP\r\n")
    assert codes(raw, 4) == [b"500", b"500", b"500", b"250"]


@pytest.mark.parametrize("line", [b"BDAT -1\r\n", b"BDAT 1\xd9\xa3\r\n", b"BDAT x LAST\r\n"])
def test_malformed_bdat_size_is_refused_and_closed(start_server: Start, line: bytes) -> None:
    _handler, raw = session(start_server, config=ServerConfig(chunking=True))
    raw.send(HELLO + ENVELOPE + line + b"MAIL FROM:<e@example.org>\r\n")
    assert codes(raw, 4)[1:] == [b"250", b"250", b"501"]
    assert raw.is_closed()


def test_bdat_payload_that_looks_like_commands_is_content(start_server: Start) -> None:
    handler, raw = session(start_server, config=ServerConfig(chunking=True))
    payload = b"MAIL FROM:<e@example.org>\r\n.\r\nQUIT\r\n"
    raw.send(HELLO + ENVELOPE + b"BDAT %d LAST\r\n" % len(payload) + payload + b"QUIT\r\n")
    assert codes(raw, 5)[1:] == [b"250", b"250", b"250", b"221"]
    assert len(handler.messages) == 1
    assert handler.messages[0].original_content == payload


def test_absurd_bdat_size_is_refused_without_holding_it(start_server: Start) -> None:
    handler, raw = session(
        start_server, config=ServerConfig(chunking=True), limits=Limits(message_size=1000)
    )
    raw.send(HELLO + ENVELOPE + b"BDAT 99999999999999999999 LAST\r\n" + b"x" * 70000)
    assert codes(raw, 3)[1:] == [b"250", b"250"]
    raw.close()
    assert handler.messages == []


def test_too_many_recipients_get_452(start_server: Start) -> None:
    _handler, raw = session(start_server, limits=Limits(recipients=2))
    rcpts = b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(3))
    raw.send(HELLO + b"MAIL FROM:<a@example.org>\r\n" + rcpts)
    assert codes(raw, 5)[1:] == [b"250", b"250", b"250", b"452"]


def test_too_many_errors_end_in_421_and_close(start_server: Start) -> None:
    _handler, raw = session(start_server, limits=Limits(errors=3))
    raw.send(b"BOGUS\r\n" * 6)
    assert codes(raw, 4) == [b"500", b"500", b"500", b"421"]
    assert raw.is_closed()


def test_rcpt_and_data_after_a_rejected_transaction_need_a_new_mail(start_server: Start) -> None:
    _handler, raw = session(start_server)
    raw.send(HELLO + b"MAIL FROM:<a@example.org>\r\nRCPT TO:<nobody@example.net>\r\nDATA\r\n")
    ehlo, mail, rcpt, data = codes(raw, 4)
    assert (ehlo, mail, rcpt) == (b"250", b"250", b"550")
    assert data in (b"503", b"554")  # RFC 5321 3.3: either, when no RCPT was accepted
    raw.send(b"RSET\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
    assert codes(raw, 3) == [b"250", b"503", b"503"]


def test_endless_failing_auth_ends_in_421(start_server: Start) -> None:
    config = ServerConfig(auth_before_tls=True, auth_mechanisms=("PLAIN",))
    _handler, raw = session(start_server, config=config, limits=Limits(auth_failures=2, errors=4))
    raw.send(HELLO)
    raw.reply()
    seen: list[bytes] = []
    for _ in range(10):
        raw.send(b"AUTH PLAIN AHUAcA==\r\n")  # \0u\0p: wrong
        seen.append(raw.reply()[:3])
        if seen[-1] == b"421":
            break
    assert seen[-1] == b"421" and len(seen) <= 5, seen


def test_gigabytes_without_a_line_end_cost_bounded_memory(start_server: Start) -> None:
    _handler, raw = session(start_server)
    block = b"x" * 65536
    tracemalloc.start()
    try:
        for _ in range(160):  # 10 MB
            raw.send(block)
        raw.send(b"\r\nNOOP\r\n")
        assert codes(raw, 2) == [b"500", b"250"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, peak


def test_message_beyond_the_size_limit_is_552_with_bounded_memory(start_server: Start) -> None:
    handler, raw = session(start_server, limits=Limits(message_size=100_000))
    raw.send(HELLO + ENVELOPE + b"DATA\r\n")
    assert codes(raw, 4)[-1] == b"354"
    line = b"y" * 998 + b"\r\n"
    tracemalloc.start()
    try:
        for _ in range(5000):  # 5 MB
            raw.send(line)
        raw.send(b".\r\nNOOP\r\n")
        assert codes(raw, 2) == [b"552", b"250"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, peak
    assert handler.messages == []
