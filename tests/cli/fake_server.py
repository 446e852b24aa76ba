"""A small SMTP server on loopback whose replies a test writes, hostile ones included.

Independent of the code under test: a thread and a plain socket. It serves
one connection: it sends ``greeting``, then answers each command line with
``replies[VERB]`` (sent as given, so a test can put escape sequences or
control characters in them), reads message content after a 354 up to the
line ".", and answers the end of the content with ``replies["."]``. Every
byte the client sent is kept in ``received``. Every socket operation has a
timeout, so the thread always ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from typing import Final

__all__ = ["FakeServer"]

DEFAULT_REPLIES: Final[Mapping[str, bytes]] = {
    "EHLO": b"250-fake.example\r\n250 PIPELINING\r\n",
    "HELO": b"250 fake.example\r\n",
    "MAIL": b"250 2.1.0 ok\r\n",
    "RCPT": b"250 2.1.5 ok\r\n",
    "DATA": b"354 go ahead\r\n",
    ".": b"250 2.0.0 queued\r\n",
    "RSET": b"250 2.0.0 ok\r\n",
    "NOOP": b"250 2.0.0 ok\r\n",
    "QUIT": b"221 2.0.0 bye\r\n",
}


class FakeServer:
    """One loopback connection answered from a table of replies."""

    def __init__(
        self,
        greeting: bytes = b"220 fake.example ESMTP\r\n",
        replies: Mapping[str, bytes | list[bytes]] | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.greeting = greeting
        self.replies: dict[str, bytes | list[bytes]] = {**DEFAULT_REPLIES, **(replies or {})}
        self.timeout = timeout
        self.received = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(timeout)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(self.timeout)

    def _reply(self, key: str) -> bytes:
        answer = self.replies.get(key, b"502 5.5.1 not scripted\r\n")
        if isinstance(answer, list):  # one reply per use, in order; the last repeats
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(self.timeout)
            try:
                self._serve(conn)
            except OSError:
                return

    def _serve(self, conn: socket.socket) -> None:
        conn.sendall(self.greeting)
        buffer = b""
        in_content = False
        in_sasl = False  # the last reply was a 334: the next line answers it
        while True:
            while b"\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                self.received += data
                buffer += data
            line, _, buffer = buffer.partition(b"\r\n")
            if in_content:
                if line == b".":
                    in_content = False
                    conn.sendall(self._reply("."))
                continue
            verb = line.split(b" ", 1)[0].decode("ascii", "replace").upper()
            if in_sasl:
                verb = "AUTH-STEP"
            answer = self._reply(verb)
            in_sasl = answer.startswith(b"334")
            conn.sendall(answer)
            if verb == "DATA" and answer.startswith(b"354"):
                in_content = True
            if verb == "QUIT":
                return
