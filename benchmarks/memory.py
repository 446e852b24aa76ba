"""What message content costs a server in memory: parked DATA, and one delivery to a Maildir.

    python benchmarks/memory.py                      # every transport, both measurements
    python benchmarks/memory.py --transports sync,trio --connections 16 --mebibytes 31

Each server runs in a process of its own (``--serve KIND``, started by this
script) with a ``MaildirHandler`` in a temporary directory, so what is
measured is that process's resident memory (``VmRSS``, and ``VmHWM``, the
peak, reset through ``/proc/PID/clear_refs``: Linux only).

park     ``--connections`` clients each send EHLO, MAIL, RCPT, DATA and then
         ``--mebibytes`` MiB of content without the final dot, and stay. Once
         the server has read every byte (every receive queue on its port is
         empty, as ``/proc/net/tcp`` shows), its RSS is compared with the RSS
         it had idle.
deliver  one client sends one message of ``--mebibytes`` MiB to the end; the
         server's peak RSS during the delivery is compared with its idle RSS.

The figures are printed as a Markdown table, in MiB above idle.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

HOST: Final = "127.0.0.1"
KINDS: Final = ("sync", "asyncio", "trio", "anyio-asyncio", "anyio-trio")
MIB: Final = 1024 * 1024
LINE: Final = b"x" * 76 + b"\r\n"


# -- the server process ------------------------------------------------------------------


def serve(kind: str, directory: str) -> None:
    """Run one server with a MaildirHandler; print its port; stop when stdin closes."""
    import threading

    from transports.mailboxes import MaildirHandler

    handler = MaildirHandler(directory)

    def announce(port: int) -> None:
        print(port, flush=True)

    def wait_for_stdin_eof() -> None:
        sys.stdin.read()
        os._exit(0)  # the measurement is over: no graceful close needed

    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    if kind == "sync":
        from transports.sync import serve as serve_sync

        serve_sync(handler, HOST, 0, ready=lambda server: announce(server.port))
    elif kind == "asyncio":
        import asyncio

        from transports.asyncio import start_server

        async def main_asyncio() -> None:
            server = await start_server(handler, HOST, 0)
            announce(server.port)
            await asyncio.Event().wait()

        asyncio.run(main_asyncio())
    elif kind == "trio":
        import trio

        from transports.trio import serve as serve_trio

        async def main_trio() -> None:
            async with trio.open_nursery() as nursery:
                announce(await nursery.start(serve_trio, handler, HOST, 0))

        trio.run(main_trio)
    else:
        import anyio

        from transports.anyio import serve as serve_anyio

        async def main_anyio() -> None:
            async with anyio.create_task_group() as group:
                announce(await group.start(serve_anyio, handler, HOST, 0))

        anyio.run(main_anyio, backend=kind.split("-")[1])


# -- measuring -----------------------------------------------------------------------------


def status(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` figure in octets (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Make ``VmHWM`` start again from the current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def queues(port: int) -> tuple[int, int]:
    """(octets waiting to be read, octets not yet acknowledged) on TCP sockets of ``port``."""
    unread = unsent = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, (tx, rx) = parts[1], parts[2], parts[4].split(":")
            if int(local.rsplit(":", 1)[1], 16) == port:
                unread += int(rx, 16)
            if int(remote.rsplit(":", 1)[1], 16) == port:
                unsent += int(tx, 16)
    return unread, unsent


def settle(port: int, seconds: float = 120.0) -> None:
    """Wait until the server has read every byte sent to it."""
    deadline = time.monotonic() + seconds
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if queues(port) == (0, 0) else 0
        if quiet >= 5:  # five looks in a row, 0.5 s: nothing in flight
            return
        time.sleep(0.1)
    raise TimeoutError(f"the server on port {port} did not read everything in {seconds} s")


def reply(sock: socket.socket) -> bytes:
    """One whole reply (the last line has a space after the code)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
        last = data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if data.endswith(b"\r\n") and len(last) >= 4 and last[3:4] == b" ":
            return data


def open_message(port: int) -> socket.socket:
    """A connection that has just received 354."""
    sock = socket.create_connection((HOST, port), timeout=60)
    reply(sock)
    for command, code in (
        (b"EHLO bench.example", b"250"),
        (b"MAIL FROM:<a@bench.example>", b"250"),
        (b"RCPT TO:<b@bench.example>", b"250"),
        (b"DATA", b"354"),
    ):
        sock.sendall(command + b"\r\n")
        answer = reply(sock)
        if not answer.startswith(code):
            raise RuntimeError(f"{command!r} got {answer!r}")
    return sock


def content(mebibytes: int) -> bytes:
    return b"Subject: big\r\n\r\n" + LINE * (mebibytes * MIB // len(LINE))


def start(kind: str, directory: str) -> tuple[subprocess.Popen[str], int]:
    worker = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--maildir", directory],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    port = int(worker.stdout.readline())
    time.sleep(0.3)  # let the import-time allocations settle
    return worker, port


def stop(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.close()
    worker.wait(10)


def park(kind: str, connections: int, mebibytes: int) -> tuple[float, float]:
    """(RSS above idle, peak RSS above idle), in MiB, with the connections parked."""
    body = content(mebibytes)
    with tempfile.TemporaryDirectory() as top:
        worker, port = start(kind, os.path.join(top, "Maildir"))
        try:
            idle = status(worker.pid, "VmRSS")
            reset_peak(worker.pid)
            socks = []
            for _ in range(connections):
                sock = open_message(port)
                sock.sendall(body)
                socks.append(sock)
            settle(port)
            rss = status(worker.pid, "VmRSS") - idle
            peak = status(worker.pid, "VmHWM") - idle
            for sock in socks:
                sock.close()
        finally:
            stop(worker)
    return rss / MIB, peak / MIB


def deliver(kind: str, mebibytes: int) -> float:
    """Peak RSS above idle, in MiB, while one message goes into the Maildir."""
    body = content(mebibytes)
    with tempfile.TemporaryDirectory() as top:
        directory = os.path.join(top, "Maildir")
        worker, port = start(kind, directory)
        try:
            idle = status(worker.pid, "VmRSS")
            reset_peak(worker.pid)
            sock = open_message(port)
            sock.sendall(body + b".\r\n")
            answer = reply(sock)
            if not answer.startswith(b"250"):
                raise RuntimeError(f"the message got {answer!r}")
            peak = status(worker.pid, "VmHWM") - idle
            sock.close()
            stored = list(Path(directory, "new").iterdir())
            if len(stored) != 1 or stored[0].stat().st_size < mebibytes * MIB - MIB:
                raise RuntimeError(f"the Maildir holds {stored}")
        finally:
            stop(worker)
    return peak / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transports", default=",".join(KINDS))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--mebibytes", type=int, default=31)
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--maildir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.maildir)
        return
    print(
        f"| transport | {args.connections} parked at {args.mebibytes} MiB: RSS above idle"
        f" (peak) | one {args.mebibytes} MiB message to a Maildir: peak above idle |"
    )
    print("|---|---|---|")
    for kind in args.transports.split(","):
        rss, peak = park(kind, args.connections, args.mebibytes)
        stored = deliver(kind, args.mebibytes)
        print(f"| {kind} | {rss:.0f} MiB ({peak:.0f} MiB) | {stored:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
