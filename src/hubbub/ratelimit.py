"""Token buckets: a rate with a burst, for commands per socket and requests per client address.

A neutral module: the platform (hubbub.control) and the apps (hubbub.apps.*) both use it, and
the apps may not import the platform's internals. `hubbub.control.ratelimit` re-exports it.

- `TokenBucket`: one budget (a socket's commands).
- `KeyedBuckets`: one budget per key, e.g. per client address, in bounded memory.
- `address_key(host)`: the key of a client address: the address itself, or its /64 for IPv6
  (one subscriber usually holds a whole /64, so per-address budgets would be free to multiply).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `take()` spends one if there is one."""

    __slots__ = ("rate", "burst", "_tokens", "_last", "_clock")

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until `take()` would succeed (0 if it would now)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def full(self) -> bool:
        """Refilled to the burst: forgetting this bucket loses nothing."""
        self._refill()
        return self._tokens >= self.burst


class KeyedBuckets:
    """A `TokenBucket(rate, burst)` per key, made on first use.

    At most `max_keys` buckets are kept. Past that, full buckets are dropped first (a new one
    is the same), then the least recently used: a client that spread itself over more than
    `max_keys` addresses at once can get a fresh burst on some of them, never unbounded memory.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        TokenBucket(rate, burst, clock)  # validates the rate and burst
        self.rate = rate
        self.burst = burst
        self.max_keys = max(1, max_keys)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """0.0 if `key` may go ahead (a token is spent), else the seconds it should wait."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._shrink()
            bucket = TokenBucket(self.rate, self.burst, self._clock)
        self._buckets[key] = bucket  # re-inserted: the dict's order is least recently used
        if bucket.take():
            return 0.0
        return max(bucket.retry_after(), 1e-3)

    def _shrink(self) -> None:
        for key in [k for k, b in self._buckets.items() if b.full()]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]


def address_key(host: str | None) -> str:
    """The budget key of a client address: IPv4 as is, IPv6 by its /64 (IPv4-mapped IPv6 as
    the IPv4 address); anything else (a Unix socket, a test client) as given."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def retry_after_header(seconds: float) -> str:
    """An HTTP Retry-After value (whole seconds, at least 1) for a wait of `seconds`."""
    return str(max(1, math.ceil(seconds)))
