"""What every benchmark piece shares: paths, the test message, free ports, readiness."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
BENCH: Final = ROOT / "benchmarks"
PROFILES: Final = BENCH / "profiles"
DATA: Final = Path(os.environ.get("SMTPCORE_BENCH_DATA", "/tmp/smtpcore-bench"))
PYTHON: Final = sys.executable

HOST: Final = "127.0.0.1"
SENDER: Final = "a@example.org"
RECIPIENT: Final = "b@example.test"
HELO: Final = "client.example"

#: The code under test: this work tree's src/, or another copy of it (to compare
#: a change with what came before it, on the same machine in the same hour).
SRC: Final = Path(os.environ.get("SMTPCORE_BENCH_SRC", ROOT / "src"))
sys.path.insert(0, str(SRC))


def message(size: int = 1024) -> bytes:
    """A message of exactly ``size`` octets: four headers and lines of 78 letters."""
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
        "Date: Sun, 29 Nov 2026 07:00:00 +0000\r\n"
        "Message-Id: <bench.1@client.example>\r\nSubject: benchmark\r\n\r\n"
    ).encode()
    body = bytearray()
    line = b"x" * 78 + b"\r\n"
    while len(head) + len(body) + len(line) <= size:
        body += line
    rest = size - len(head) - len(body)
    if rest >= 2:
        body += b"y" * (rest - 2) + b"\r\n"
    return head + bytes(body)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, timeout: float = 15.0) -> None:
    """Connect until a ``220`` greeting comes, then QUIT; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), 1.0) as sock:
                if sock.recv(512).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    sock.recv(512)
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no 220 greeting on {HOST}:{port} within {timeout} s")
        time.sleep(0.05)


def big_file(megabytes: int) -> Path:
    """A message file of ``megabytes`` MB (10**6 octets), made once and kept in DATA."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"message-{megabytes}mb.eml"
    size = megabytes * 1_000_000
    if path.exists() and size - 1 <= path.stat().st_size <= size:
        return path
    head = message(1024)
    line = b"z" * 77 + b"\r\n"
    block = line * (1024 * 1024 // len(line))
    with open(path, "wb") as out:
        out.write(head)
        left = size - len(head)
        while left >= len(block):
            out.write(block)
            left -= len(block)
        while left >= len(line):
            out.write(line)
            left -= len(line)
        if left >= 2:  # one octet short at worst: a lone CR or LF would be a bare newline
            out.write(b"w" * (left - 2) + b"\r\n")
    return path
