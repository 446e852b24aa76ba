"""The pure server procedure, driven by a scripted loop: no socket, fixed time and ids."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import Limits, Reply, ServerConfig
from smtpcore.sasl import client_mechanism, derive_scram_credentials
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
    assert effects == [Write(b"421 mx.test 4.7.0 Too many connections\r\n"), Close()]


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
