"""The asyncio server on the event loop asked for: asyncio's own or uvloop's.

The whole server suite also runs on uvloop (the ``asyncio-uvloop`` kind);
these tests cover ``transports.asyncio.run`` and what happens without uvloop.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from transports.asyncio import event_loop_factory, run, start_server

from .conftest import NO_UVLOOP, Memory, Raw

SESSION = (
    b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
    b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n"
)


def _talk(port: int) -> list[bytes]:
    client = Raw(port)
    try:
        replies = [client.reply()]
        client.send(SESSION)
        replies += [client.reply() for _ in range(6)]
        return replies
    finally:
        client.close()


@pytest.mark.skipif(NO_UVLOOP, reason="uvloop is not installed")
def test_run_serves_on_uvloop() -> None:
    handler = Memory()

    async def main() -> tuple[str, list[bytes]]:
        server = await start_server(handler, hostname="mx.test")
        try:
            replies = await asyncio.to_thread(_talk, server.port)
        finally:
            assert await server.aclose(1.0) == 0
        return type(asyncio.get_running_loop()).__module__, replies

    module, replies = run(main(), loop="uvloop")
    assert module.startswith("uvloop")
    assert replies[0] == b"220 mx.test ESMTP\r\n"
    assert replies[1] == (
        b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n"
        b"250-SMTPUTF8\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n"
    )
    assert replies[2:5] == [b"250 2.1.0 Sender OK\r\n", b"250 2.1.5 Recipient OK\r\n",
                            b"354 End data with <CR><LF>.<CR><LF>\r\n"]  # fmt: skip
    assert replies[5].startswith(b"250 2.0.0 OK queued as ")
    assert replies[6] == b"221 2.0.0 mx.test closing connection\r\n"
    [envelope] = handler.messages
    assert envelope.content.endswith(b"Subject: hi\r\n\r\n.dot\r\n")


def test_run_on_asyncio_is_asyncio_run() -> None:
    async def main() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert run(main()) is type(asyncio.new_event_loop())


def test_without_uvloop_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ModuleNotFoundError) as caught:
        event_loop_factory("uvloop")
    assert str(caught.value) == (
        "loop='uvloop' needs uvloop, which is not installed: pip install 'smtpcore[uvloop]'"
    )

    async def main() -> None:  # pragma: no cover - never runs
        raise AssertionError

    with pytest.raises(ModuleNotFoundError, match=r"smtpcore\[uvloop\]"):
        run(main(), loop="uvloop")


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="loop must be one of asyncio, uvloop, not 'tokio'"):
        event_loop_factory("tokio")  # type: ignore[arg-type]
