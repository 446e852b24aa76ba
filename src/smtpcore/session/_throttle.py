"""AuthBudget: failed AUTH attempts per client address, across the sessions of one server.

How this works: each failure is a timestamp from the session's ``Clock``
effect, kept per client address for ``window`` seconds; an address with
``failures`` of them in the window is refused AUTH until the oldest expires.
One session alone is bounded by ``Limits.auth_failures``; this bounds a
client that reconnects to guess again (Postfix's anvil rate limits are the
model). Memory is bounded: at most ``addresses`` addresses and ``failures``
timestamps each; beyond that the address not seen for longest is forgotten.
An IPv6 client counts by its /64 network: one host usually holds a whole
/64 and could otherwise step to a fresh address for every few guesses.

The server's sessions share one budget, and the sync server runs them in
threads: every step below is a single operation on a built-in container
(atomic under the interpreter lock) or tolerates another thread's step in
between, so no lock is needed and none can be taken here (the core does no
threading).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from typing import Final

from .._errors import InvalidArgument

__all__ = ["AUTH_FAILURES_PER_ADDRESS", "AUTH_FAILURE_WINDOW", "AuthBudget"]

AUTH_FAILURES_PER_ADDRESS: Final = 20
"""Failed AUTH attempts one client address may make in ``AUTH_FAILURE_WINDOW``."""
AUTH_FAILURE_WINDOW: Final = 600.0
"""Seconds a failure counts against its address."""


class AuthBudget:
    """Failed AUTH attempts per client address in a sliding window; pure, times are arguments.

    ``exhausted(host, now)`` says whether ``host`` may not try again now;
    ``fail(host, now)`` records one failure and says whether that used up the
    budget. ``now`` is seconds on a monotonic clock (the ``Clock`` effect).
    Raises ``ValueError`` for a bound below 1 or a window that is not positive.
    """

    __slots__ = ("_failures", "addresses", "failures", "window")

    def __init__(
        self,
        failures: int = AUTH_FAILURES_PER_ADDRESS,
        window: float = AUTH_FAILURE_WINDOW,
        addresses: int = 10_000,
    ) -> None:
        if failures < 1 or addresses < 1:
            raise InvalidArgument("AuthBudget needs failures >= 1 and addresses >= 1")
        if not window > 0:
            raise InvalidArgument(f"AuthBudget window must be > 0 seconds, not {window!r}")
        self.failures = failures
        self.window = window
        self.addresses = addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def key(host: str) -> str:
        """What ``host``'s failures are counted under: the address, or its /64 for IPv6."""
        if ":" not in host:
            return host
        try:
            network = ipaddress.IPv6Network((host.split("%")[0], 64), strict=False)
        except ValueError:
            return host  # not an address we can parse: counted as given
        return str(network)

    def _recent(self, host: str, now: float) -> deque[float] | None:
        times = self._failures.get(self.key(host))
        if times is None:
            return None
        try:
            while times and times[0] <= now - self.window:
                times.popleft()
        except IndexError:  # another thread emptied it meanwhile
            pass
        return times

    def count(self, host: str, now: float) -> int:
        """The failures of ``host`` in the window that ends at ``now``."""
        times = self._recent(host, now)
        return len(times) if times is not None else 0

    def exhausted(self, host: str, now: float) -> bool:
        """Whether ``host`` used up its failures in the window that ends at ``now``."""
        return self.count(host, now) >= self.failures

    def fail(self, host: str, now: float) -> bool:
        """Record a failed AUTH of ``host`` at ``now``; True when its budget is now used up."""
        times = self._recent(host, now)
        host = self.key(host)
        if times is None:
            times = self._failures.setdefault(host, deque(maxlen=self.failures))
            while len(self._failures) > self.addresses:
                try:
                    self._failures.popitem(last=False)  # the one not seen for longest
                except KeyError:  # another thread emptied it meanwhile
                    break
        else:
            try:
                self._failures.move_to_end(host)
            except KeyError:  # evicted by another thread meanwhile: counted afresh
                self._failures[host] = times
        times.append(now)
        return len(times) >= self.failures
