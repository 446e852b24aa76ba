"""The context a ``Handler``'s hooks get, hook by hook, with no socket; hooks found by name."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from smtpcore import Reply
from smtpcore.session import (
    CallHook,
    Handler,
    ServerEnvelope,
    SessionContext,
    SessionInfo,
    TLSInfo,
)
from smtpcore.session._hooks import contextual, hooks_of, unknown_hooks
from tests.core.test_server_defences import PEER, Keep, Timed, fast, options

TOKEN = base64.b64encode(b"\0alice\0secret")
TLS = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384")  # AUTH is offered only over TLS


class Recorder(Handler):
    """Records the context of every call; a plain ``on_connect`` for the old form alongside."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, SessionContext]] = []

    def on_connect(self, session: SessionContext) -> None:
        self.calls.append(("on_connect", session))

    def on_ehlo(self, session: SessionContext, domain: str) -> None:
        self.calls.append(("on_ehlo", session))

    def on_mail(
        self, session: SessionContext, sender: str, params: Mapping[str, str | None]
    ) -> None:
        self.calls.append(("on_mail", session))

    def on_rcpt(
        self, session: SessionContext, recipient: str, params: Mapping[str, str | None]
    ) -> Reply | None:
        self.calls.append(("on_rcpt", session))
        return None

    def on_data_chunk(self, session: SessionContext, data: bytes) -> None:
        self.calls.append(("on_data_chunk", session))

    def on_message(self, session: SessionContext, envelope: ServerEnvelope) -> None:
        self.calls.append(("on_message", session))

    def authenticate(self, session: SessionContext, username: str, password: str) -> bool:
        self.calls.append(("authenticate", session))
        return (username, password) == ("alice", "secret")


def test_each_hook_gets_the_session_as_of_its_call() -> None:
    handler = Recorder()
    steps = fast(
        b"EHLO client.test\r\n",
        b"AUTH PLAIN " + TOKEN + b"\r\n",
        b"MAIL FROM:<a@x.test>\r\n",
        b"RCPT TO:<b@y.test>\r\n",
        b"RCPT TO:<c@y.test>\r\n",
        b"DATA\r\n",
        b"hi\r\n.\r\n",
        b"QUIT\r\n",
    )
    timed = Timed(handler, steps)
    assert timed.run(options(handler, auth_failure_delay=0), tls=TLS) == 1
    names = [name for name, _ in handler.calls]
    assert names == [
        "on_connect",
        "on_ehlo",
        "authenticate",
        "on_mail",
        "on_rcpt",
        "on_rcpt",
        "on_data_chunk",  # the Received: header
        "on_data_chunk",
        "on_message",
    ]
    contexts = [session for _, session in handler.calls]
    assert {c.session_id for c in contexts} == {"S1"}
    assert {c.peer for c in contexts} == {PEER}
    assert {c.hostname for c in contexts} == {"mx.test"}
    connect, ehlo, auth, mail, rcpt1, rcpt2, header, chunk, message = contexts
    assert connect == SessionContext("S1", PEER, "mx.test", tls=TLS)
    assert all(c.is_tls and c.tls == TLS for c in contexts)
    assert ehlo.hello_domain is None and auth.hello_domain == "client.test"
    assert auth.auth_identity is None and mail.auth_identity == "alice"
    assert mail.sender is None and rcpt1.sender == "a@x.test"
    assert rcpt1.recipients == () and rcpt2.recipients == ("b@y.test",)
    assert rcpt2.message_id is None
    assert header.message_id == chunk.message_id == message.message_id == "ID1"
    assert message.recipients == ("b@y.test", "c@y.test")
    assert b"250 2.0.0 OK queued as ID1\r\n" in timed.wire


def test_a_plain_handler_gets_no_context() -> None:
    handler = Keep()
    timed = Timed(handler, fast(b"EHLO c\r\n", b"MAIL FROM:<a@x>\r\n", b"RCPT TO:<b@y>\r\n",
                                b"DATA\r\n", b"hi\r\n.\r\n", b"QUIT\r\n"))  # fmt: skip
    assert timed.run(options(handler)) == 1
    calls = [e for e in timed.effects if isinstance(e, CallHook)]
    assert [(c.name, len(c.args)) for c in calls] == [("on_message", 1)]
    assert isinstance(calls[0].args[0], ServerEnvelope)


def test_a_plain_on_connect_still_gets_session_info() -> None:
    class Plain:
        def __init__(self) -> None:
            self.infos: list[object] = []

        def on_connect(self, info: SessionInfo) -> None:
            self.infos.append(info)

    handler = Plain()
    Timed(handler, fast(b"QUIT\r\n")).run(options(handler))
    assert handler.infos == [SessionInfo(PEER, "mx.test", "S1", None)]


def test_only_the_hooks_a_handler_subclass_defines_count() -> None:
    class Empty(Handler):
        pass

    class JustMessage(Handler):
        async def on_message(self, session: SessionContext, envelope: ServerEnvelope) -> None:
            del session, envelope

    assert hooks_of(Empty()) == frozenset()
    assert hooks_of(JustMessage()) == {"on_message"}
    assert contextual(JustMessage()) and not contextual(Keep())
    # No AUTH offered: the base class's authenticate does not count.
    assert options(Empty()).hooks == frozenset()


def test_unknown_on_methods_are_named() -> None:
    class Typo:
        on_size = 3  # not callable: not a hook that was meant

        def on_rcpt_to(self, recipient: str) -> None:
            del recipient

        def on_message(self, envelope: ServerEnvelope) -> None:
            del envelope

    assert unknown_hooks(Typo()) == ["on_rcpt_to"]
    assert unknown_hooks(Recorder()) == []
