"""Our clients against real servers: Postfix, Exim, OpenSMTPD, aiosmtpd, smtp-sink,
nodemailer's smtp-server, Dovecot LMTP.

Plain delivery runs over every client kind against every server; the other
features run over the blocking client (the transports share one session
procedure; tests/transports/ proves the kinds agree). Every delivered message
is read back from the peer's Maildir and must equal what was sent, byte for
byte, after the header lines the server put in front (line ends as stored:
the peers store LF).

Test names are ``test_<feature>[<peer>-<kind>]``: tools/interop_matrix.py
reads them into docs/interop.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any, Final

import anyio
import pytest

import smtpcore.session._client as session_client
from smtpcore.sasl import choose_client_mechanism
from smtpcore.session import (
    DSN,
    AuthenticationError,
    ConnectionLost,
    NotSupported,
    PermanentError,
    RecipientsRefused,
    ReplyError,
    TLSError,
)
from tests.transports.conftest import ASYNC_KINDS, KINDS, Smtp, run, transport_module

from .conftest import HOST, PASSWORD, USER, Peer, peer_by_name

SMTP_PEERS: Final = ("postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-sink", "smtp-server")
ALL_PEERS: Final = (*SMTP_PEERS, "dovecot-lmtp")
STORING: Final = ("postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-server", "dovecot-lmtp")
TLS_PEERS: Final = STORING
AUTH_PEERS: Final = ("postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-server")
# Every peer that refuses refused@example.test and enforces a 10 MiB SIZE.
REFUSING: Final = AUTH_PEERS
SIZE_LIMIT: Final = 10 * 1024 * 1024  # every peer's configured limit (scripts/peers.sh)
HEADER_LINE: Final = re.compile(rb"^([!-9;-~]+:|[ \t])")


def message(marker: str, *, body: bytes | None = None, extra: bytes = b"") -> bytes:
    """A complete message whose Message-ID carries ``marker`` (so nobody adds one)."""
    head = (
        "From: Alice <a@example.org>\r\n"
        "To: Bob <b@example.test>\r\n"
        f"Subject: interop {marker}\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        f"Message-ID: <{marker}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
    ).encode() + extra
    if body is None:
        body = (
            b"first line\r\n"
            b".a line that starts with a dot\r\n"
            b"..two dots\r\n"
            b"\r\n"
            b"trailing spaces   \r\n" + b"x" * 998 + b"\r\n" + b"last line\r\n"
        )
    return head + b"\r\n" + body


def new_marker() -> str:
    return "m" + uuid.uuid4().hex


def assert_intact(delivered: bytes, sent: bytes) -> None:
    """``delivered`` is header lines the server added, then exactly ``sent`` (LF-normalised)."""
    stored = delivered.replace(b"\r\n", b"\n")
    expected = sent.replace(b"\r\n", b"\n")
    assert stored.endswith(expected), (
        f"the stored message does not end with what was sent:\n{stored[-400:]!r}"
    )
    added = stored[: len(stored) - len(expected)]
    for line in added.splitlines():
        assert HEADER_LINE.match(line), f"the server put a non-header line in front: {line!r}"


class Trace:
    """Everything the client wrote and read, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.reads: list[bytes] = []

    def __call__(self, direction: str, data: bytes) -> None:
        (self.writes if direction == ">" else self.reads).append(bytes(data))

    @property
    def sent(self) -> bytes:
        return b"".join(self.writes)

    def write_with(self, needle: bytes) -> bytes:
        return next(w for w in self.writes if needle in w)

    def lines(self, prefix: bytes) -> list[bytes]:
        return [line for line in self.sent.split(b"\r\n") if line.startswith(prefix)]


def client_options(peer: Peer, **options: Any) -> dict[str, Any]:
    """What every client of these tests is given, with ``options`` on top."""
    defaults = {"tls": "none", "local_hostname": "client.example", "timeout": 20.0}
    return {**defaults, "lmtp": peer.lmtp, **options}


def smtp(peer: Peer, kind: str = "sync", **options: Any) -> Smtp:
    options = client_options(peer, **options)
    return Smtp(kind, options.pop("host", HOST), peer.port, **options)


def recipient(peer: Peer, local: str = "b") -> str:
    return f"{local}@example.test"


def find_one(peer: Peer, marker: str, local: str = "b") -> bytes:
    """The one stored copy of the message ``marker`` (Dovecot: in the user's own Maildir)."""
    maildir = peer.maildir / local if peer.lmtp and peer.maildir else None
    hits = peer.find(marker.encode(), 1, maildir)
    assert len(hits) == 1, f"{peer.name}: {len(hits)} copies of {marker} stored, expected 1"
    return hits[0]


def deliver(
    peer: Peer,
    kind: str = "sync",
    recipients: Iterable[str] = ("b",),
    content: bytes | None = None,
    **options: Any,
) -> tuple[Any, Trace, bytes, str]:
    """Send one message with ``options``; return (result, trace, content, marker)."""
    marker = new_marker()
    content = content if content is not None else message(marker)
    trace = Trace()
    rcpts = [recipient(peer, r) for r in recipients]

    async def body() -> Any:
        async with smtp(peer, kind, trace=trace, **options) as client:
            return await client.sendmail("a@example.org", rcpts, content)

    return run(kind, body), trace, content, marker


# -- plain delivery, every peer, every kind ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL_PEERS)
def test_plain(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    result, trace, content, marker = deliver(peer, kind)
    assert list(result.accepted) == ["b@example.test"]
    assert result.refused == {}
    assert result.reply.code == 250
    # PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write when offered, else one by one.
    mail = trace.write_with(b"MAIL FROM:")
    hello = trace.write_with(b"HLO ")
    if b"PIPELINING" in b"".join(trace.reads):
        assert b"RCPT TO:" in mail and b"DATA\r\n" in mail, mail
    else:
        assert mail.count(b"\r\n") == 1, f"pipelined without PIPELINING: {mail!r}"
    assert hello.startswith((b"EHLO client.example", b"LHLO client.example"))
    if peer.maildir is not None:
        assert_intact(find_one(peer, marker), content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["postfix", "exim"])
def test_ipv6(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    result, _, content, marker = deliver(peer, kind, host="::1")
    assert result.reply.code == 250
    assert_intact(find_one(peer, marker), content)


# -- TLS and AUTH --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", TLS_PEERS)
def test_starttls(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    result, trace, content, marker = deliver(
        peer, kind, tls="starttls", ssl_context=peer.tls_context()
    )
    assert result.reply.code == 250
    assert trace.lines(b"STARTTLS") == [b"STARTTLS"]
    assert len(trace.lines(b"EHLO ") + trace.lines(b"LHLO ")) == 2  # again after TLS
    assert_intact(find_one(peer, marker), content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", TLS_PEERS)
def test_starttls_untrusted_refused(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    import ssl

    peer = peer_by_name(request, name)
    with pytest.raises(TLSError):
        deliver(peer, kind, tls="starttls", ssl_context=ssl.create_default_context())


def only(mechanism: str) -> Any:
    def choose(offered: Iterable[str], **kw: Any) -> Any:
        return choose_client_mechanism([m for m in offered if m.upper() == mechanism], **kw)

    return choose


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("name", AUTH_PEERS)
def test_auth(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    mechanism: str,
    kind: str,
) -> None:
    # The client has no option to pick a mechanism (it takes the strongest offered):
    # narrow what it sees so that each offered mechanism is exercised.
    monkeypatch.setattr(session_client, "choose_client_mechanism", only(mechanism))
    peer = peer_by_name(request, name)
    result, trace, content, marker = deliver(
        peer, kind, tls="starttls", ssl_context=peer.tls_context(), username=USER, password=PASSWORD
    )
    assert trace.lines(b"AUTH ")[0].startswith(f"AUTH {mechanism}".encode())
    assert any(r.startswith(b"235") for r in trace.reads)
    assert result.reply.code == 250
    assert_intact(find_one(peer, marker), content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", AUTH_PEERS)
def test_auth_wrong_password(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    with pytest.raises(AuthenticationError) as caught:
        deliver(peer, kind, tls="starttls", ssl_context=peer.tls_context(), username=USER,
                password="wrong")  # fmt: skip
    assert caught.value.reply.code == 535


# -- CHUNKING, SMTPUTF8, 8BITMIME, DSN, SIZE ------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [*SMTP_PEERS, "dovecot-lmtp"])
def test_chunking(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    if name == "smtp-sink":
        pytest.skip("smtp-sink offers no CHUNKING and never answers BDAT")
    result, trace, content, marker = deliver(peer, kind, chunking=True)
    offered = b"CHUNKING" in b"".join(trace.reads)
    assert bool(trace.lines(b"BDAT ")) == offered
    assert bool(trace.lines(b"DATA")) != offered
    assert result.reply.code == 250
    assert_intact(find_one(peer, marker), content)


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL_PEERS)
def test_send_many(request: pytest.FixtureRequest, name: str, kind: str, chunking: bool) -> None:
    """Pipelined across messages: each stored intact, a refused one alone refused."""
    peer = peer_by_name(request, name)
    if chunking and name == "smtp-sink":
        pytest.skip("smtp-sink offers no CHUNKING and never answers BDAT")
    markers = [new_marker() for _ in range(4)]
    contents = [message(marker) for marker in markers]
    refused = 1 if name in REFUSING else None
    items = [
        ("a@example.org", [recipient(peer, "refused" if n == refused else "b")], content)
        for n, content in enumerate(contents)
    ]
    trace = Trace()

    async def body() -> Any:
        async with smtp(peer, kind, trace=trace, chunking=chunking) as client:
            return await client.send_many(items)

    outcomes = run(kind, body)
    expected = ["refused" if n == refused else "accepted" for n in range(4)]
    assert [outcome.status for outcome in outcomes] == expected
    replies = b"".join(trace.reads)
    if b"PIPELINING" in replies and not (chunking and b"CHUNKING" in replies):
        # RFC 2920 3.1: a message's end went out with the next envelope.
        assert any(b"\r\n.\r\nMAIL FROM:" in w for w in trace.writes), trace.writes
    if chunking:
        assert bool(trace.lines(b"BDAT ")) == (b"CHUNKING" in replies)
    if peer.maildir is not None:
        for n, (marker, content) in enumerate(zip(markers, contents, strict=True)):
            if n != refused:
                assert_intact(find_one(peer, marker), content)


@pytest.mark.parametrize("kind", ASYNC_KINDS)
@pytest.mark.parametrize("name", ALL_PEERS)
def test_pool(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    """Concurrent sends share the pool's connections; each message stored intact, once."""
    peer = peer_by_name(request, name)
    markers = [new_marker() for _ in range(9)]
    contents = [message(marker) for marker in markers]
    refused = 2 if name in REFUSING else None
    rcpts = [recipient(peer, "refused" if n == refused else "b") for n in range(9)]
    trace = Trace()
    statuses: dict[int, str] = {}

    async def one(pool: Any, n: int) -> None:
        try:
            result = await pool.sendmail("a@example.org", rcpts[n], contents[n])
        except RecipientsRefused:
            statuses[n] = "refused"
        else:
            assert list(result.accepted) == [rcpts[n]]
            statuses[n] = "accepted"

    async def body() -> list[str]:
        pool_class = transport_module(kind).Pool
        options = client_options(peer, trace=trace)
        async with pool_class(HOST, peer.port, connections=2, **options) as pool:
            async with anyio.create_task_group() as group:
                for n in range(6):
                    group.start_soon(one, pool, n)
            items = [("a@example.org", [rcpts[n]], contents[n]) for n in range(6, 9)]
            return [outcome.status async for outcome in pool.send_many(items)]

    tail = run(kind, body)
    expected = ["refused" if n == refused else "accepted" for n in range(9)]
    assert [statuses[n] for n in range(6)] + tail == expected
    hellos = trace.lines(b"EHLO ") + trace.lines(b"LHLO ")
    assert 1 <= len(hellos) <= 2, f"{len(hellos)} connections for a pool of 2"
    assert len(trace.lines(b"QUIT")) == len(hellos)
    if peer.maildir is not None:
        for n, (marker, content) in enumerate(zip(markers, contents, strict=True)):
            if n != refused:
                assert_intact(find_one(peer, marker), content)


UTF8_SENDER: Final = "älice@example.org"
UTF8_RCPT: Final = "bøb@example.test"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL_PEERS)
def test_smtputf8(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    marker = new_marker()
    content = message(marker, extra=f"X-Sender: {UTF8_SENDER}\r\n".encode())
    trace = Trace()

    async def body() -> Any:
        async with smtp(peer, kind, trace=trace) as client:
            offered = "SMTPUTF8" in client.extensions
            if not offered:
                with pytest.raises(NotSupported):
                    await client.sendmail(UTF8_SENDER, [UTF8_RCPT], content)
                return None
            return await client.sendmail(UTF8_SENDER, [UTF8_RCPT], content)

    result = run(kind, body)
    if result is None:
        assert not trace.lines(b"MAIL "), "MAIL went out although SMTPUTF8 is not offered"
        return
    [mail] = trace.lines(b"MAIL ")
    assert mail == f"MAIL FROM:<{UTF8_SENDER}> SMTPUTF8".encode() or mail.startswith(
        f"MAIL FROM:<{UTF8_SENDER}>".encode()
    )
    assert b" SMTPUTF8" in mail
    assert list(result.accepted) == [UTF8_RCPT]
    if peer.maildir is not None:
        maildir = peer.maildir / "bøb" if peer.lmtp else None
        [stored] = peer.find(marker.encode(), 1, maildir)
        assert_intact(stored, content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL_PEERS)
def test_8bitmime(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    """send_message with an 8-bit body: BODY=8BITMIME where offered, else a 7-bit conversion."""
    from email.message import EmailMessage

    peer = peer_by_name(request, name)
    marker = new_marker()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.test", marker
    msg["Message-ID"] = f"<{marker}@example.org>"
    msg["Date"] = "Thu, 01 Jan 2026 00:00:00 +0000"
    msg.set_content("Grüße aus Köln, naïve café.\n", cte="8bit")
    trace = Trace()

    async def body() -> Any:
        async with smtp(peer, kind, trace=trace) as client:
            return await client.send_message(msg), "8BITMIME" in client.extensions

    result, offered = run(kind, body)
    assert result.reply.code == 250
    [mail] = trace.lines(b"MAIL ")
    data = trace.sent[trace.sent.index(b"Message-ID: <" + marker.encode()) :]
    if offered:
        assert b" BODY=8BITMIME" in mail
        assert "Grüße aus Köln".encode() in data
    else:
        assert b"BODY=" not in mail
        assert max(data) < 128, "8-bit bytes sent to a server without 8BITMIME"
    if peer.maildir is not None:
        stored = find_one(peer, marker).replace(b"\r\n", b"\n")
        assert "Grüße aus Köln".encode() in stored if offered else True


DSN_OPTIONS: Final = DSN(ret="HDRS", envid="id+1 x", notify=("FAILURE", "DELAY"), orcpt=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL_PEERS)
def test_dsn(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    marker = new_marker()
    content = message(marker)
    trace = Trace()

    async def body() -> Any:
        async with smtp(peer, kind, trace=trace) as client:
            result = await client.sendmail(
                "a@example.org", ["b@example.test"], content, dsn=DSN_OPTIONS
            )
            return result, "DSN" in client.extensions

    result, offered = run(kind, body)
    assert result.reply.code == 250
    [mail] = trace.lines(b"MAIL ")
    [rcpt] = trace.lines(b"RCPT ")
    if offered:  # RFC 3461 4.3-4.4: xtext for ENVID (+ and space) and ORCPT
        assert mail.endswith(b" RET=HDRS ENVID=id+2B1+20x"), mail
        assert rcpt == b"RCPT TO:<b@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@example.test"
    else:
        assert b"RET=" not in mail and b"ENVID=" not in mail
        assert rcpt == b"RCPT TO:<b@example.test>"
    if peer.maildir is not None:
        assert_intact(find_one(peer, marker), content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", REFUSING)
def test_size_refused_before_data(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    big = message(new_marker(), body=(b"y" * 998 + b"\r\n") * (SIZE_LIMIT // 1000 + 10))
    trace = Trace()

    async def body() -> Any:
        async with smtp(peer, kind, trace=trace) as client:
            assert client.extensions.size == SIZE_LIMIT
            with pytest.raises(NotSupported):
                await client.sendmail("a@example.org", ["b@example.test"], big)
            return await client.noop()

    reply = run(kind, body)
    assert reply.code == 250  # the connection still serves
    assert not trace.lines(b"MAIL "), "MAIL sent for a message over the server's SIZE"
    assert len(trace.sent) < 10_000


# -- recipients --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", REFUSING)
def test_one_recipient_refused(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    result, _, content, marker = deliver(peer, kind, recipients=("b", "refused", "c"))
    assert list(result.accepted) == ["b@example.test", "c@example.test"]
    assert list(result.refused) == ["refused@example.test"]
    assert result.refused["refused@example.test"].code in (550, 553, 554)
    # aiosmtpd_peer.py and smtp_server_peer.js store once per message, the MTAs per recipient.
    copies = 1 if name in ("aiosmtpd", "smtp-server") else 2
    hits = peer.find(marker.encode(), copies)
    assert len(hits) == copies, f"{len(hits)} copies stored, expected {copies}"
    for stored in hits:
        assert_intact(stored, content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["dovecot-lmtp"])
def test_lmtp_per_recipient_replies(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    result, trace, content, marker = deliver(peer, kind, recipients=("u1", "broken", "u2"))
    assert trace.lines(b"LHLO ")
    assert list(result.accepted) == ["u1@example.test", "broken@example.test", "u2@example.test"]
    codes = {rcpt: reply.code for rcpt, reply in result.data_replies.items()}
    assert codes == {"u1@example.test": 250, "broken@example.test": 451, "u2@example.test": 250}
    assert result.data_replies["broken@example.test"].text.startswith("4.2.0 <broken@")
    for local in ("u1", "u2"):
        assert_intact(find_one(peer, marker, local), content)


# -- the small commands ------------------------------------------------------------------

# What each server answers (code of NOOP, RSET, VRFY b@example.test, EXPN b, HELP).
COMMAND_CODES: Final = {
    "postfix": (250, 250, 252, 500, 500),  # no EXPN, no HELP: "502"-worthy, it says 500
    "exim": (250, 250, 250, 250, 214),  # acl_smtp_vrfy/expn = accept
    "opensmtpd": (250, 250, 500, 500, 214),
    "aiosmtpd": (250, 250, 252, 502, 250),
    "smtp-sink": (250, 250, 250, 500, 500),
    "smtp-server": (250, 250, 252, 500, 214),
    "dovecot-lmtp": (250, 250, 501, 500, 500),  # VRFY needs an argument it cannot parse
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL_PEERS)
def test_commands(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)

    async def body() -> Any:
        async with smtp(peer, kind) as client:
            replies = [
                await client.noop(),
                await client.rset(),
                await client.vrfy("b@example.test"),
                await client.expn("b"),
                await client.help(),
            ]
            return [r.code for r in replies], (await client.noop()).code

    codes, after = run(kind, body)
    assert tuple(codes) == COMMAND_CODES[name]
    assert after == 250


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["opensmtpd"])
def test_many_messages_one_connection(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    """Ten transactions on one connection to OpenSMTPD (strict about command order)."""
    peer = peer_by_name(request, name)
    markers = [new_marker() for _ in range(10)]

    async def body() -> list[int]:
        async with smtp(peer, kind) as client:
            return [
                (await client.sendmail("a@example.org", "b@example.test", message(m))).reply.code
                for m in markers
            ]

    assert run(kind, body) == [250] * 10
    for m in markers:
        assert_intact(find_one(peer, m), message(m))


# -- a server that replies, then closes ------------------------------------------------------

# Exim's "drop" ACL (scripts/peers.sh) answers 550 and closes the connection at once: at MAIL
# for the sender dropped@example.org, at RCPT for the recipient dropped@example.test. The
# reply arrived before the close, so it is the answer: a permanent refusal with its text,
# never a ConnectionLost (which a caller would retry), and the clean-up that fails on the
# closed connection does not replace it.
DROPPED: Final = {
    "mail": ("dropped@example.org", "b@example.test", "sender dropped"),
    "rcpt": ("a@example.org", "dropped@example.test", "recipient dropped"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stage", list(DROPPED))
@pytest.mark.parametrize("name", ["exim"])
def test_reply_then_close(request: pytest.FixtureRequest, name: str, stage: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    sender, rcpt, words = DROPPED[stage]
    trace = Trace()

    async def body() -> BaseException:
        async with smtp(peer, kind, trace=trace) as client:
            try:
                await client.sendmail(sender, [rcpt], message(new_marker()))
            except (ReplyError, ConnectionLost) as error:
                return error
        raise AssertionError("the message was reported sent")

    error = run(kind, body)
    # The server's words are on the wire, whatever the client made of them.
    assert any(words.encode() in read for read in trace.reads), trace.reads
    assert not isinstance(error, ConnectionLost), f"the 550 reply was lost: {error!r}"
    if isinstance(error, RecipientsRefused):  # the only recipient refused: nothing was sent
        assert stage == "rcpt", repr(error)
        assert not error.is_transient
        assert {r: reply.code for r, reply in error.refused.items()} == {rcpt: 550}
    else:
        assert isinstance(error, PermanentError), repr(error)
    assert error.reply.code == 550
    assert error.reply.text == f"5.7.1 {words} by the interop configuration"
