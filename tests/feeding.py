"""Feed the same bytes three ways and insist on one answer."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from smtpcore import NEED_DATA, ConnectionClosed, Event, MessageData, ProtocolError


class Receiver(Protocol):
    """Anything with the connection's receiving half."""

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> object: ...


Outcome = tuple[list[Event], str | None]
"""The events, and the error as ``"ClassName: message"`` if one was raised."""


def _drain(conn: Receiver, events: list[Event]) -> None:
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return
        assert isinstance(event, Event), event
        # How content is cut into MessageData events depends on how it arrived;
        # the content does not. Adjacent pieces are joined so every way compares.
        if isinstance(event, MessageData) and events and isinstance(events[-1], MessageData):
            events[-1] = MessageData(events[-1].data + event.data)
        else:
            events.append(event)
        if isinstance(event, ConnectionClosed):
            return  # it would be returned again on every call


def feed(make: Callable[[], Receiver], pieces: list[bytes]) -> Outcome:
    """Feed ``pieces`` one after the other; the events, and the error text if one was raised."""
    conn = make()
    events: list[Event] = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            _drain(conn, events)
    except ProtocolError as exc:
        return events, f"{type(exc).__name__}: {exc}"
    return events, None


def cuts(wire: bytes, seed: int) -> list[bytes]:
    """``wire`` cut at seeded random places."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(wire):
        step = rng.randint(1, max(1, len(wire) // 3))
        out.append(wire[i : i + step])
        i += step
    return out


def _verdict(outcome: Outcome) -> tuple[list[Event], str | None]:
    events, error = outcome
    return events, None if error is None else error.split(":", 1)[0]


def _every_way(make: Callable[[], Receiver], wire: bytes, seeds: int) -> Outcome:
    """Feed whole, byte by byte and at random cuts; events and error class must agree.

    Messages may differ (a line too long is reported before or after its end
    arrives); the verdict may not.
    """
    whole = feed(make, [wire])
    ways = [feed(make, [wire[i : i + 1] for i in range(len(wire))])]
    ways += [feed(make, cuts(wire, seed)) for seed in range(seeds)]
    for way in ways:
        assert _verdict(way) == _verdict(whole), f"feeding differs: {whole!r} vs {way!r}"
    return whole


def feed_every_way(make: Callable[[], Receiver], wire: bytes, seeds: int = 5) -> list[Event]:
    """Events from ``wire`` fed whole, byte by byte and at random cuts; they must agree."""
    events, error = _every_way(make, wire, seeds)
    if error is not None:
        raise AssertionError(f"unexpected error after {events!r}: {error}")
    return events


def error_every_way(make: Callable[[], Receiver], wire: bytes, seeds: int = 5) -> str:
    """The error ``wire`` produces fed whole; every other way must fail the same way."""
    events, error = _every_way(make, wire, seeds)
    assert error is not None, f"no error; events: {events!r}"
    return error
