"""A plain non-blocking socket driven with trio's readiness waits (client and server).

A trio SocketStream passes through the scheduler on every receive and send,
even when the bytes are there or go at once: two scheduler rounds per round
trip. Waiting with ``wait_readable``/``wait_writable`` on the socket itself
costs a round only when there is something to wait for. The caller bounds
the waits with its own cancel scope.
"""

from __future__ import annotations

import socket

import trio

__all__ = ["receive", "send_now", "send_rest"]


async def receive(raw: socket.socket) -> bytes:
    """Some bytes from ``raw`` (``b""`` when the peer closed)."""
    while True:
        await trio.lowlevel.wait_readable(raw)
        try:
            return raw.recv(65536)
        except BlockingIOError:
            continue  # a spurious wake-up


def send_now(raw: socket.socket, data: bytes) -> memoryview | None:
    """Send what goes without waiting; the rest of ``data``, or None when all went."""
    try:
        sent = raw.send(data)
    except BlockingIOError:
        sent = 0
    return None if sent == len(data) else memoryview(data)[sent:]


async def send_rest(raw: socket.socket, rest: memoryview) -> None:
    """Send ``rest``, waiting for room as often as it takes."""
    while rest:
        await trio.lowlevel.wait_writable(raw)
        try:
            rest = rest[raw.send(rest) :]
        except BlockingIOError:
            continue
