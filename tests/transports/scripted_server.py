"""A scripted SMTP server on loopback, for testing the clients byte for byte.

It is deliberately independent of the code under test: a thread, a plain
socket and the stdlib ``ssl`` module, nothing from smtpcore. It accepts one
connection and plays a script written like an RFC example session::

    S: 220 mx.example ESMTP          what the server sends (CRLF is added)
    C: EHLO client.example           what the client must send, exactly
    TLS                              a server-side TLS handshake (STARTTLS, implicit TLS)

Consecutive ``S:`` lines go out in one send; consecutive ``C:`` lines are one
expectation, matched byte for byte as they arrive (the first differing byte
fails the script at once, so a wrong command does not wait for a timeout).
Since the server answers nothing before a whole ``C:`` block has arrived, a
block of several commands proves the client pipelined them. Other steps:

    ONE-READ      the next C: block must arrive in a single recv()
    QUIET 0.1     the client must send nothing for 0.1 s (it waits for our reply)
    SLEEP 0.2     the server waits 0.2 s
    TLS-FAIL      a handshake the client must abort (bad certificate)
    QUIT?         the client may say QUIT (answered 221) or simply close
    EOF           the client must close the connection without sending more
    CLOSE         the server closes the connection (FIN)
    RESET         the server resets the connection (RST)

At the end of the script the server waits for the client to close and fails
if it sends anything more. Every socket operation has a timeout, so the
thread always ends; ``check()`` joins it and raises ``AssertionError`` with
the transcript when anything went wrong. When the client stops sending in
the middle of a ``C:`` block for ``stall`` seconds (1 s), the script fails
and the connection is closed, so a client waiting for a reply the script
does not give fails fast.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Final, TypeAlias

__all__ = [
    "Close",
    "Expect",
    "ExpectEOF",
    "Handshake",
    "MaybeQuit",
    "Quiet",
    "ScriptedServer",
    "Send",
    "Sleep",
    "Step",
    "parse_script",
]

CRLF: Final = b"\r\n"


@dataclass(frozen=True)
class Send:
    """``S:`` bytes the server sends."""

    data: bytes


@dataclass(frozen=True)
class Expect:
    """``C:`` bytes the client must send, exactly; ``one_read``: in one recv()."""

    data: bytes
    one_read: bool = False


@dataclass(frozen=True)
class Handshake:
    """A server-side TLS handshake; ``fail``: the client must abort it."""

    fail: bool = False


@dataclass(frozen=True)
class Quiet:
    """The client must stay silent for this many seconds."""

    seconds: float


@dataclass(frozen=True)
class Sleep:
    """The server does nothing for this many seconds."""

    seconds: float


@dataclass(frozen=True)
class MaybeQuit:
    """The client may send QUIT (we answer 221) or close at once; then EOF."""


@dataclass(frozen=True)
class ExpectEOF:
    """The client must close the connection and send nothing more."""


@dataclass(frozen=True)
class Close:
    """The server closes the connection; ``reset``: abruptly, with an RST."""

    reset: bool = False


Step: TypeAlias = Send | Expect | Handshake | Quiet | Sleep | MaybeQuit | ExpectEOF | Close

_WORDS: Final[dict[str, Step]] = {
    "TLS": Handshake(),
    "TLS-FAIL": Handshake(fail=True),
    "QUIT?": MaybeQuit(),
    "EOF": ExpectEOF(),
    "CLOSE": Close(),
    "RESET": Close(reset=True),
}


def parse_script(text: str) -> list[Step]:
    """Turn an RFC-style S:/C: script into steps (see the module docstring).

    Indentation is ignored, so scripts can be indented and concatenated. Lines
    are UTF-8; ``S:``/``C:`` take the rest of the line after one space,
    verbatim, and get CRLF. Blank lines and ``#`` comments are ignored; ``C:``
    alone is an empty line.
    """
    steps: list[Step] = []
    one_read = False
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("S:", "C:")):
            data = line[3:].encode("utf-8") + CRLF
            last = steps[-1] if steps else None
            if line[0] == "S":
                if isinstance(last, Send):
                    steps[-1] = Send(last.data + data)
                else:
                    steps.append(Send(data))
            elif isinstance(last, Expect) and not one_read:
                steps[-1] = Expect(last.data + data, last.one_read)
            else:
                steps.append(Expect(data, one_read))
                one_read = False
            continue
        word, _, argument = line.strip().partition(" ")
        if word == "ONE-READ":
            one_read = True
        elif word == "QUIET":
            steps.append(Quiet(float(argument)))
        elif word == "SLEEP":
            steps.append(Sleep(float(argument)))
        elif word in _WORDS and not argument:
            steps.append(_WORDS[word])
        else:
            raise ValueError(f"script line {raw!r} is not S:, C: or a known step")
    return steps


class ScriptError(Exception):
    """The client did not follow the script."""


class ScriptedServer:
    """One loopback connection that plays a script; see the module docstring.

    ``received`` holds every byte the client sent (decrypted), ``received_tls``
    the part that came over TLS; ``reads`` each recv() result; ``tls_version``
    the negotiated protocol; ``handshake_error`` why a TLS-FAIL handshake
    failed; ``eof`` is set when the client closed the connection.
    """

    def __init__(
        self,
        script: str | list[Step],
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
        stall: float = 1.0,
    ) -> None:
        self.steps = parse_script(script) if isinstance(script, str) else list(script)
        self.tls_context = tls_context
        self.timeout = timeout
        self.stall = stall
        self.received = bytearray()
        self.received_tls = bytearray()
        self.reads: list[bytes] = []
        self.transcript: list[tuple[str, bytes]] = []
        self.errors: list[str] = []
        self.tls_version: str | None = None
        self.handshake_error: str | None = None
        self.eof = threading.Event()
        self._buffer = bytearray()
        self._conn: socket.socket | None = None
        self._index = -1
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(timeout)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=f"scripted:{self.port}")
        self._thread.daemon = True
        self._thread.start()

    # -- the test's side ------------------------------------------------------------

    def check(self) -> None:
        """Wait for the script to end; raise AssertionError if it went wrong."""
        self._join()
        if self.errors:
            raise AssertionError(self.report())

    def stop(self) -> None:
        """Fixture teardown: cut the connection if the script still runs, join the thread.

        It raises nothing: a test asserts with ``check()``, which it must call.
        """
        if self._thread.is_alive():
            self._abort()
        self._thread.join(self.timeout)

    def _abort(self) -> None:
        """Make the server thread's blocking call return (accept, recv or handshake)."""
        for sock in (self._conn, self._listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def report(self) -> str:
        """The errors and the transcript, for a failure message."""
        lines = [*self.errors, "transcript:"]
        lines += [f"  {who}: {data!r}" for who, data in self.transcript]
        return "\n".join(lines)

    def _join(self) -> None:
        self._thread.join(self.timeout * 2 + 1)
        if self._thread.is_alive():
            self._abort()
            self._thread.join(self.timeout)
            self.errors.append("the script did not end in time")

    # -- the server thread ----------------------------------------------------------

    def _run(self) -> None:
        self._index = -1
        try:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                raise ScriptError(f"no client connected within {self.timeout} s") from None
            conn.settimeout(self.timeout)
            self._conn = conn
            ended = False
            for index, step in enumerate(self.steps):
                self._index = index
                ended = self._play(step)
                if ended:
                    break
            self._index = len(self.steps)
            if not ended:
                self._expect_eof("after the end of the script")
        except ScriptError as error:
            self.errors.append(f"step {self._index}: {error}")
        except Exception as error:
            self.errors.append(f"step {self._index}: server crashed: {error!r}")
        finally:
            if self._conn is not None:
                self._conn.close()
            self._listener.close()

    def _play(self, step: Step) -> bool:
        """Play one step; True when it ended the connection."""
        match step:
            case Send(data):
                self.transcript.append(("S", data))
                assert self._conn is not None
                self._conn.sendall(data)
            case Expect(data, one_read):
                self._expect(data, one_read)
            case Handshake(fail):
                self._handshake(fail)
                return fail
            case Quiet(seconds):
                self._quiet(seconds)
            case Sleep(seconds):
                time.sleep(seconds)
            case MaybeQuit():
                self._maybe_quit()
                return True
            case ExpectEOF():
                self._expect_eof("")
                return True
            case Close(reset):
                assert self._conn is not None
                if reset:
                    self._conn.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                self.transcript.append(("S", b"<reset>" if reset else b"<close>"))
                self._conn.close()
                return True
        return False

    def _recv(self, what: str) -> bytes:
        """One recv(); b"" when the client closed (a reset counts as closing)."""
        assert self._conn is not None
        try:
            chunk = self._conn.recv(65536)
        except TimeoutError:
            raise ScriptError(
                f"timed out after {self._conn.gettimeout()} s waiting for {what}; "
                f"unmatched bytes: {bytes(self._buffer)!r}"
            ) from None
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        if chunk:
            self.reads.append(chunk)
            self.received += chunk
            if self.tls_version is not None:
                self.received_tls += chunk
            self.transcript.append(("C", chunk))
        else:
            self.transcript.append(("C", b"<eof>"))
            self.eof.set()
        return chunk

    def _expect(self, data: bytes, one_read: bool) -> None:
        assert self._conn is not None
        # A client that means to send has sent within ``stall``; one waiting for a
        # reply the script does not give should fail fast, not at its own timeout.
        self._conn.settimeout(self.stall)
        try:
            self._match(data, one_read)
        finally:
            self._conn.settimeout(self.timeout)

    def _match(self, data: bytes, one_read: bool) -> None:
        reads = 0
        while True:
            got = bytes(self._buffer[: len(data)])
            if not data.startswith(got):
                raise ScriptError(f"expected {data!r}, got {bytes(self._buffer)!r}")
            if len(got) == len(data):
                break
            chunk = self._recv(repr(data))
            if not chunk:
                raise ScriptError(
                    f"client closed the connection; expected {data!r}, got {bytes(self._buffer)!r}"
                )
            reads += 1
            self._buffer += chunk
        del self._buffer[: len(data)]
        if one_read and reads != 1:
            raise ScriptError(f"{data!r} arrived in {reads} reads, not in one")

    def _handshake(self, fail: bool) -> None:
        assert self._conn is not None
        if self.tls_context is None:
            raise ScriptError("the script has TLS but the server has no tls_context")
        if self._buffer:
            # RFC 3207 5: nothing may follow STARTTLS before the handshake.
            raise ScriptError(f"bytes before the TLS handshake: {bytes(self._buffer)!r}")
        tls = self.tls_context.wrap_socket(
            self._conn, server_side=True, do_handshake_on_connect=False
        )
        self._conn = tls
        tls.settimeout(self.timeout)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as error:
            self.transcript.append(("TLS", f"<handshake failed: {error}>".encode()))
            if not fail:
                raise ScriptError(f"TLS handshake failed: {error}") from None
            self.handshake_error = str(error)
            self.eof.set()
            return
        self.tls_version = tls.version()
        self.transcript.append(("TLS", f"<{self.tls_version}>".encode()))
        if fail:
            # TLS 1.3: a client may reject the certificate only after our side is done.
            self._expect_eof("after a handshake the client had to refuse")
            self.handshake_error = "refused after the handshake"

    def _quiet(self, seconds: float) -> None:
        assert self._conn is not None
        if self._buffer:
            raise ScriptError(f"expected silence, but already got {bytes(self._buffer)!r}")
        self._conn.settimeout(seconds)
        try:
            chunk = self._conn.recv(65536)
        except TimeoutError:
            return
        finally:
            self._conn.settimeout(self.timeout)
        self.transcript.append(("C", chunk))
        self.received += chunk
        raise ScriptError(f"expected {seconds} s of silence, got {chunk!r}")

    def _maybe_quit(self) -> None:
        if not self._buffer and not self._recv_into_buffer("QUIT or EOF"):
            return
        self._expect(b"QUIT\r\n", one_read=False)
        self._play(Send(b"221 2.0.0 bye\r\n"))
        self._expect_eof("after QUIT")

    def _recv_into_buffer(self, what: str) -> bool:
        chunk = self._recv(what)
        self._buffer += chunk
        return bool(chunk)

    def _expect_eof(self, when: str) -> None:
        if self._buffer:
            raise ScriptError(f"unexpected bytes {when}: {bytes(self._buffer)!r}")
        chunk = self._recv(f"the client to close {when}".rstrip())
        if chunk:
            raise ScriptError(f"expected the client to close {when}, got {chunk!r}")
