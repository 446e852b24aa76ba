"""The pure server procedure, driven by a scripted loop: no socket, fixed time and ids."""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Iterator
from typing import Any, Final

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import Limits, Reply, ServerConfig
from smtpcore.sasl import client_mechanism, derive_scram_credentials, scram_salt
from smtpcore.session._effects import Close, Handshake, Write
from smtpcore.session._server import (
    SHUT_DOWN,
    TIMED_OUT,
    CallHook,
    Clock,
    HookFailed,
    NewId,
    Now,
    Peer,
    Receive,
    ServerEnvelope,
    ServerOptions,
    TLSInfo,
    format_date,
)

MOMENT = datetime.datetime(
    2026, 11, 29, 6, 26, 45, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
)
PEER = Peer("192.0.2.7", 40000, "client.example")


class Script:
    """Runs a procedure: answers Receive with the next chunk (then b""), records writes."""

    def __init__(self, handler: object, chunks: list[bytes | object]) -> None:
        self.handler = handler
        self.chunks: Iterator[bytes | object] = iter(chunks)
        self.ids = (f"ID{n}" for n in range(1, 100))
        self.wire = b""
        self.closed = False
        self.interruptible: list[bool] = []

    def run(self, options: ServerOptions, *, tls: TLSInfo | None = None) -> int:
        procedure = options.session(PEER, "S1", tls=tls)
        answer: object = None
        while True:
            try:
                effect = procedure.send(answer)
            except StopIteration as done:
                return int(done.value)
            answer = None
            assert not self.closed, f"{effect} after Close"
            if isinstance(effect, Write):
                self.wire += effect.data
            elif isinstance(effect, Receive):
                self.interruptible.append(effect.interruptible)
                answer = next(self.chunks, b"")
            elif isinstance(effect, CallHook):
                try:
                    answer = getattr(self.handler, effect.name)(*effect.args)
                except Exception as error:
                    answer = HookFailed(error)
            elif isinstance(effect, Handshake):
                answer = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384")
            elif isinstance(effect, Now):
                answer = MOMENT
            elif isinstance(effect, Clock):
                answer = 0.0  # time stands still: no deadline ever runs out
            elif isinstance(effect, NewId):
                answer = next(self.ids)
            elif isinstance(effect, Close):
                self.closed = True


class Keep:
    def __init__(self) -> None:
        self.messages: list[ServerEnvelope] = []

    def on_message(self, envelope: ServerEnvelope) -> None:
        self.messages.append(envelope)


def options(handler: object, **config: Any) -> ServerOptions:
    return ServerOptions.create(
        handler, config=ServerConfig(hostname="mx.test", **config), limits=Limits()
    )


def test_classic_session_exact_bytes_and_received_header() -> None:
    handler = Keep()
    script = Script(
        handler,
        [
            b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n",
            b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
        ],
    )
    assert script.run(options(handler)) == 1
    assert script.wire == (
        b"220 mx.test ESMTP\r\n"
        b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
        b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n"
        b"250 2.0.0 OK queued as ID1\r\n"
        b"221 2.0.0 mx.test closing connection\r\n"
    )
    assert script.closed
    (envelope,) = handler.messages
    assert envelope.content == (
        b"Received: from c.example (client.example [192.0.2.7])\r\n"
        b"\tby mx.test with ESMTP id ID1\r\n"
        b"\tfor <b@y.example>; Sun, 29 Nov 2026 06:26:45 +0100\r\n"
        b"Subject: hi\r\n\r\n.dot\r\n"
    )
    assert envelope.message_id == "ID1" and envelope.session_id == "S1"


def test_format_date_negative_offset() -> None:
    moment = datetime.datetime(
        2024, 2, 29, 23, 5, 1, tzinfo=datetime.timezone(-datetime.timedelta(hours=3, minutes=30))
    )
    assert format_date(moment) == "Thu, 29 Feb 2024 23:05:01 -0330"


def test_a_session_formats_the_date_once_per_second_and_per_zone() -> None:
    from smtpcore import ServerConfig, ServerConnection
    from smtpcore.session._server_session import _Session

    session = _Session(ServerConnection(ServerConfig()), (), PEER, "S1", None, 300.0)
    later = MOMENT + datetime.timedelta(microseconds=999_000)  # the same second
    assert session.date(MOMENT) == session.date(later) == "Sun, 29 Nov 2026 06:26:45 +0100"
    assert session.date(MOMENT + datetime.timedelta(seconds=1)).endswith("06:26:46 +0100")
    # The same instant in another zone is written in that zone.
    utc = MOMENT.astimezone(datetime.timezone.utc)
    assert session.date(utc) == "Sun, 29 Nov 2026 05:26:45 +0000"


def test_no_storage_hook_means_451_not_a_silent_250() -> None:
    script = Script(
        object(), [b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@y.example>\r\nDATA\r\nx\r\n.\r\n"]
    )
    assert script.run(options(object())) == 0
    assert script.wire.endswith(b"451 4.3.0 No handler stores messages here\r\n")


def test_on_message_exception_is_451_and_the_session_goes_on() -> None:
    class Broken:
        def on_message(self, envelope: ServerEnvelope) -> None:
            raise OSError("disk full")

    script = Script(
        Broken(),
        [
            b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
            b"DATA\r\nx\r\n.\r\nNOOP\r\n"
        ],
    )
    assert script.run(options(Broken())) == 0
    assert script.wire.endswith(
        b"451 4.3.0 Requested action aborted: local error\r\n250 2.0.0 OK\r\n"
    )


def test_hook_reply_the_phase_cannot_take_becomes_451() -> None:
    class Odd:
        def on_mail(self, sender: str, params: object) -> Reply:
            return Reply(354, ("go on",))

    script = Script(Odd(), [b"EHLO c\r\nMAIL FROM:<a@x.example>\r\n"])
    script.run(options(Odd()))
    assert script.wire.endswith(b"451 4.3.0 Requested action aborted: local error\r\n")


def test_streaming_hook_gets_the_header_then_the_content() -> None:
    class Stream:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def on_data_chunk(self, data: bytes) -> None:
            self.chunks.append(data)

    handler = Stream()
    script = Script(
        handler,
        [
            b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n",
            b"one\r\n",
            b"two\r\n.\r\n",
        ],
    )
    assert script.run(options(handler)) == 1
    assert handler.chunks[0].startswith(b"Received: from c ")
    assert b"".join(handler.chunks[1:]) == b"one\r\ntwo\r\n"


def test_idle_timeout_and_shutdown_answers() -> None:
    script = Script(Keep(), [TIMED_OUT])
    script.run(options(Keep()))
    assert (
        script.wire
        == b"220 mx.test ESMTP\r\n421 mx.test 4.4.2 Idle timeout, closing connection\r\n"
    )
    script = Script(Keep(), [b"EHLO c\r\nMAIL FROM:<a@x.example>\r\n", SHUT_DOWN])
    script.run(options(Keep()))
    assert script.wire.endswith(b"421 mx.test 4.3.2 Service shutting down, closing connection\r\n")
    # Waiting for a command is interruptible; inside a transaction it is not.
    assert script.interruptible == [True, False]


def test_refused_connection_is_one_421() -> None:
    procedure = options(Keep()).session(PEER, "S1", refuse="4.7.0 Too many connections")
    effects = list(procedure)
    assert effects == [Write(b"421 mx.test 4.7.0 Too many connections\r\n", 300.0), Close()]


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_scram_sha_256_with_stored_credentials() -> None:
    credentials = derive_scram_credentials("pencil", b"salt1234", 4096)

    class Scram(Keep):
        def lookup_secret(self, mechanism: str, username: str) -> object:
            return credentials if username == "user" else None

    client = client_mechanism(
        "SCRAM-SHA-256", username="user", password="pencil", nonce="clientnonce"
    )
    first = client.initial_response() or b""
    handler = Scram()

    class Conversation(Script):
        """Answers each 334 with the client mechanism's response."""

        def __init__(self) -> None:
            super().__init__(handler, [])
            self.seen = 0

        def run(self, opts: ServerOptions, *, tls: TLSInfo | None = None) -> int:
            self.chunks = self._talk()
            return super().run(opts, tls=tls)

        def _talk(self) -> Iterator[bytes]:
            yield b"EHLO c\r\nAUTH SCRAM-SHA-256 " + b64(first) + b"\r\n"
            while True:
                lines = self.wire[self.seen :].split(b"\r\n")
                last = [line for line in lines if line][-1]
                self.seen = len(self.wire)
                if not last.startswith(b"334 "):
                    yield b"QUIT\r\n"
                    return
                challenge = base64.b64decode(last[4:])
                yield b64(client.respond(challenge)) + b"\r\n"

    script = Conversation()
    script.run(options(handler, auth_mechanisms=("SCRAM-SHA-256",)), tls=TLSInfo())
    assert b"235 2.7.0 Authentication successful\r\n" in script.wire
    client.verify_success()


def test_auth_failures_limit_closes_with_421() -> None:
    class Nobody(Keep):
        def authenticate(self, username: str, password: str) -> bool:
            return False

    wrong = b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"
    script = Script(Nobody(), [b"EHLO c\r\n" + wrong * 3 + b"NOOP\r\n"])
    script.run(options(Nobody(), auth_mechanisms=("PLAIN",)), tls=TLSInfo())
    assert script.wire.endswith(
        b"535 5.7.8 Authentication credentials invalid\r\n" * 2
        + b"421 mx.test 4.7.0 Too many failed authentication attempts, closing\r\n"
    )


def test_lmtp_mapping_gives_each_recipient_its_reply() -> None:
    class PerRecipient:
        def on_message(self, envelope: ServerEnvelope) -> dict[str, Reply]:
            return {"full@y.example": Reply(452, ("4.2.2 Mailbox full",))}

    script = Script(
        PerRecipient(),
        [
            b"LHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
            b"RCPT TO:<full@y.example>\r\nDATA\r\nx\r\n.\r\n"
        ],
    )
    script.run(options(PerRecipient(), lmtp=True))
    assert script.wire.endswith(b"250 2.0.0 OK queued as ID1\r\n452 4.2.2 Mailbox full\r\n")


content_lines = st.lists(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=8
)


@settings(max_examples=60, deadline=None)
@given(content_lines, st.lists(st.integers(1, 30), min_size=1, max_size=30))
def test_any_content_any_cut_is_stored_as_sent(lines: list[bytes], cuts: list[int]) -> None:
    content = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    wire = (
        b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
        + stuffed
        + b".\r\nQUIT\r\n"
    )
    chunks: list[bytes | object] = []
    position = 0
    for cut in cuts * (len(wire) // sum(cuts) + 1):
        if position >= len(wire):
            break
        chunks.append(wire[position : position + cut])
        position += cut
    handler = Keep()
    Script(handler, chunks).run(options(handler, eightbitmime=True))
    (envelope,) = handler.messages
    assert envelope.original_content == content


def test_empty_challenge_is_334_space() -> None:
    """RFC 4954 4: the continuation is ``334 SP [base64]``, the space even when empty.

    s-nail's AUTH PLAIN and msmtp's SCRAM wait for exactly ``334 \\r\\n``.
    """

    class Users(Keep):
        def authenticate(self, username: str, password: str) -> bool:
            return (username, password) == ("u", "p")

    script = Script(Users(), [b"EHLO c\r\nAUTH PLAIN\r\n", b64(b"\0u\0p") + b"\r\nQUIT\r\n"])
    script.run(options(Users(), auth_mechanisms=("PLAIN",)), tls=TLSInfo())
    assert b"\r\n334 \r\n235 2.7.0 Authentication successful\r\n" in script.wire


REPLY_LINE = re.compile(rb"[2-5][0-5][0-9][ -][^\r\n]*\r\n")


def _every_reply_line(wire: bytes) -> None:
    """Every line of ``wire`` is a code, then SP or '-', then text, then CRLF (RFC 5321 4.2)."""
    assert wire.endswith(b"\r\n")
    for line in wire.splitlines(keepends=True):
        assert REPLY_LINE.fullmatch(line), line


class Everything(Keep):
    """A handler with every hook, so each kind of reply can be drawn out."""

    def authenticate(self, username: str, password: str) -> bool:
        return password == "p"

    def lookup_secret(self, mechanism: str, username: str) -> object:
        return "p" if username == "u" else None

    def on_vrfy(self, argument: str) -> None:
        return None

    def on_expn(self, argument: str) -> None:
        return None


#: Conversations that between them draw every reply the session procedure builds:
#: greeting, EHLO/HELO/LHLO, every command's answers, refusals, 334s (empty and
#: not), limits, timeouts, 421s.
EVERY_CONVERSATION: Final[list[list[bytes | object]]] = [
    [b"EHLO c\r\nHELO c\r\nNOOP\r\nRSET\r\nHELP\r\nVRFY u\r\nEXPN u\r\nETRN x\r\nTURN\r\n"
     b"SEND FROM:<a@x.example>\r\nBOGUS\r\nMAIL FROM:<a@x.example> SIZE=999999999999\r\n"
     b"MAIL FROM:<a@x.example>\r\nMAIL FROM:<a@x.example>\r\nDATA\r\nRCPT TO:<b@y.example>\r\n"
     b"DATA\r\n", b"x\r\n.\r\nBDAT 3 LAST\r\nabcSTARTTLS\r\n", b"QUIT\r\n"],
    [b"EHLO c\r\nAUTH PLAIN\r\n", b"*\r\n", b"AUTH LOGIN\r\n", b"dQ==\r\n", b"cA==\r\n",
     b"AUTH PLAIN AHUAcA==\r\n", b"QUIT\r\n"],
    [b"EHLO c\r\nAUTH CRAM-MD5\r\n", b"!!\r\nAUTH SCRAM-SHA-256 " + b64(b"n,,n=u,r=abc")
     + b"\r\n", b"x\r\nAUTH PLAIN " + b64(b"\0u\0q") + b"\r\n" + b"AUTH PLAIN =\r\n"],
    [b"EHLO c\r\n" + b"NOOP x\r\n" * 30],
    [b"EHLO c\r\nMAIL FROM:<a@x.example>\r\n" + b"RCPT TO:<b@y.example>\r\n" * 3
     + b"BDAT 2\r\nabBDAT 1 LAST\r\nc", b"NOOP\r\n" + b"x" * 3000 + b"\r\n", TIMED_OUT],
    [b"LHLO c\r\nEHLO c\r\n", SHUT_DOWN],
    [b"EHLO c\r\nSTARTTLS\r\n", b"EHLO c\r\nSTARTTLS\r\nQUIT\r\n"],
    [b"NOOP\r\n"],
]  # fmt: skip


def test_every_reply_line_has_a_code_then_space_or_dash() -> None:
    """RFC 5321 4.2: ``Reply-code SP text`` or ``Reply-code "-" text``, on every line."""
    configs: list[dict[str, Any]] = [
        {"auth_mechanisms": ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"), "chunking": True,
         "starttls": True, "expn": True, "etrn": True, "legacy_send": True, "size": 1000},
        {"lmtp": True, "enhanced_status_codes": False},
        {"enhanced_status_codes": False, "auth_mechanisms": ("PLAIN",), "chunking": True},
    ]  # fmt: skip
    for config in configs:
        for chunks in EVERY_CONVERSATION:
            script = Script(Everything(), chunks)
            opts = options(Everything(), **config)
            script.run(opts, tls=TLSInfo() if config.get("auth_mechanisms") else None)
            _every_reply_line(script.wire)
    for refuse in (None, "Too many connections"):
        effects = list(options(Keep()).session(PEER, "S1", refuse=refuse or "x"))
        _every_reply_line(b"".join(e.data for e in effects if isinstance(e, Write)))


def test_reply_to_bytes_always_has_the_separator() -> None:
    assert Reply(334).to_bytes() == b"334 \r\n"
    assert Reply(334, ("",)).to_bytes() == b"334 \r\n"
    assert Reply(250, ("", "")).to_bytes() == b"250-\r\n250 \r\n"
    assert Reply(250, ("a", "b")).to_bytes() == b"250-a\r\n250 b\r\n"


SECRET = b"0123456789abcdef0123456789abcdef"


class Alice(Keep):
    def lookup_secret(self, mechanism: str, username: str) -> object:
        return "pencil" if username == "alice" else None


def _scram_first_challenge(username: str, secret: bytes | None = SECRET) -> bytes:
    """The server-first message a SCRAM-SHA-256 client gets for ``username``."""
    first = b"n,,n=" + username.encode() + b",r=clientnonce"
    script = Script(Alice(), [b"EHLO c\r\nAUTH SCRAM-SHA-256 " + b64(first) + b"\r\n"])
    opts = ServerOptions.create(
        Alice(),
        config=ServerConfig(hostname="mx.test", auth_mechanisms=("SCRAM-SHA-256",)),
        scram_secret=secret,
    )
    script.run(opts, tls=TLSInfo())
    last = script.wire.split(b"\r\n")[-2]
    assert last.startswith(b"334 "), script.wire
    return base64.b64decode(last[4:])


def test_scram_unknown_user_looks_like_a_known_one() -> None:
    """RFC 5802 9: the same form of challenge, the salt derived from the server's
    secret (stable per user, as a stored account's), the same iteration count."""
    known = _scram_first_challenge("alice").split(b",")
    unknown = _scram_first_challenge("nobody").split(b",")
    assert known[0] == b"r=clientnonceID1" and unknown[0] == b"r=clientnonceID1"
    assert known[2] == unknown[2] == b"i=4096"
    assert known[1] == b"s=" + b64(scram_salt(SECRET, "alice"))
    assert unknown[1] == b"s=" + b64(scram_salt(SECRET, "nobody"))
    assert _scram_first_challenge("nobody") == _scram_first_challenge("nobody")


def test_scram_unknown_user_fails_at_the_proof_with_535() -> None:
    client = client_mechanism("SCRAM-SHA-256", username="nobody", password="x", nonce="cn")
    first = client.initial_response() or b""
    challenge = _scram_first_challenge("nobody").replace(b"r=clientnonce", b"r=cn")
    final = client.respond(challenge)
    script = Script(
        Alice(),
        [b"EHLO c\r\nAUTH SCRAM-SHA-256 " + b64(first) + b"\r\n", b64(final) + b"\r\nQUIT\r\n"],
    )
    opts = ServerOptions.create(
        Alice(),
        config=ServerConfig(hostname="mx.test", auth_mechanisms=("SCRAM-SHA-256",)),
        scram_secret=SECRET,
    )
    script.run(opts, tls=TLSInfo())
    assert script.wire.endswith(
        b"334 " + b64(challenge) + b"\r\n"
        b"535 5.7.8 Authentication credentials invalid\r\n"
        b"221 2.0.0 mx.test closing connection\r\n"
    )
