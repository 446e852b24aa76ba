"""One server in its own process, with a handler that discards every message.

    python benchmarks/server_worker.py KIND PORT

KIND is one of ``SERVERS``. Prints ``ready`` once it listens; stops on
SIGTERM. The smtpcore servers stream the content to ``on_data_chunk``, which
drops it, so nothing of a message is held; aiosmtpd has no streaming hook
and holds each message whole before its ``handle_DATA``.

The discarding hooks never block, so the async servers run them on the
event loop (``hook_threads=0``): the figures are the servers' own work per
message, not a hand-off to a worker thread that hooks which never block
do not need.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Final

from _common import HOST

SERVERS = (
    "smtpcore-sync",
    "smtpcore-asyncio",
    "smtpcore-asyncio-uvloop",
    "smtpcore-trio",
    "smtpcore-anyio",
    "aiosmtpd",
    "asyncio-floor",
)

#: The discarding hooks never block: no worker threads for them (see above).
HOOK_THREADS: Final = 0

#: Large enough for the 500 MB message; every other default (limits, checks) stays.
MAX_SIZE = 1 << 30


class Discard:
    """Takes every message and keeps nothing of it."""

    def on_data_chunk(self, data: bytes) -> None:
        del data

    def on_message(self, envelope: object) -> None:
        del envelope


def _config() -> Any:
    from smtpcore import ServerConfig

    return ServerConfig(size=MAX_SIZE, smtputf8=True, chunking=True)


def _ready() -> None:
    print("ready", flush=True)


class _Floor:
    """The asyncio floor: canned replies, no SMTP at all (what the event loop alone costs).

    It answers each line with 250 (354 to DATA) and, in the content, looks
    only for the CRLF.CRLF that ends it. No server built on asyncio streams
    or protocols can spend less per message than this.
    """

    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(b"220 floor ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        out = []
        while True:
            if self.in_data:
                end = buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                buffer = buffer[end + 5 :]
                self.in_data = False
                out.append(b"250 2.0.0 OK\r\n")
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            verb, buffer = buffer[:4].upper(), buffer[end + 2 :]
            if verb == b"DATA":
                self.in_data = True
                buffer = b"\r\n" + buffer  # the marker's leading CRLF may be the first line's
                out.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                out.append(b"221 bye\r\n")
            else:
                out.append(b"250 OK\r\n")
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))

    def eof_received(self) -> None:
        self.transport.close()

    def connection_lost(self, exc: object) -> None:
        del exc


def serve(kind: str, port: int) -> None:
    if kind == "asyncio-floor":
        import asyncio

        async def floor() -> None:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(_Floor, HOST, port)  # type: ignore[arg-type]
            stop = asyncio.Event()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            _ready()
            await stop.wait()
            server.close()

        asyncio.run(floor())
    elif kind == "smtpcore-sync":
        import threading

        from transports.sync import SMTPServer

        server = SMTPServer(Discard(), HOST, port, config=_config()).start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        _ready()
        while not stop.wait(0.5):
            pass
        server.close(grace=0.5)
    elif kind in ("smtpcore-asyncio", "smtpcore-asyncio-uvloop"):
        import asyncio

        from transports.asyncio import run, start_server

        async def main() -> None:
            server = await start_server(
                Discard(), HOST, port, config=_config(), hook_threads=HOOK_THREADS
            )
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            _ready()
            await stop.wait()
            await server.aclose(0.5)

        run(main(), loop="uvloop" if kind.endswith("uvloop") else "asyncio")
    elif kind in ("smtpcore-trio", "smtpcore-anyio"):
        import functools

        import anyio

        from transports import anyio as anyio_transport
        from transports import trio as trio_transport

        serve_here: Any = trio_transport.serve if kind == "smtpcore-trio" else anyio_transport.serve

        async def main_anyio() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async with anyio.create_task_group() as group:
                    await group.start(
                        functools.partial(
                            serve_here,
                            Discard(),
                            HOST,
                            port,
                            config=_config(),
                            hook_threads=HOOK_THREADS,
                        )
                    )
                    _ready()
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        break

        anyio.run(main_anyio, backend="trio" if kind == "smtpcore-trio" else "asyncio")
    else:
        import threading

        from aiosmtpd.controller import Controller

        class Sink:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                return "250 OK"

        controller = Controller(Sink(), hostname=HOST, port=port, data_size_limit=MAX_SIZE)
        controller.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        _ready()
        while not stop.wait(0.5):
            pass
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=SERVERS)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    serve(args.kind, args.port)
    sys.exit(0)


if __name__ == "__main__":
    main()
