"""Per-source-address budgets for the media port: a token bucket per address, in a table of
bounded size.

The media plane must not depend on the control plane, so this is its own small bucket (the
signaling one is `hubbub.control.ratelimit.TokenBucket`). Every bucket of a table shares its
rate, burst and clock, and a bucket is a tuple of two floats, so an address costs about 200
bytes with its key.

An attacker who sprays source ports (or spoofed addresses) makes a new entry per address. The
table never holds more than `max_addresses`: when it is full, buckets that have refilled (an
address idle long enough is indistinguishable from a new one) are swept out, at most once per
refill period; if that frees nothing, the oldest sixteenth goes. Eviction only ever forgets that
an address was over budget, so a sprayer gains one `burst` per new address, never more, and the
work a datagram costs before its budget is checked must stay cheap (see `MediaPort._on_stun`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from itertools import islice


class AddressBudget:
    """`rate` datagrams a second per address, `burst` at once; at most `max_addresses` kept."""

    __slots__ = ("rate", "burst", "max_addresses", "evictions", "_buckets", "_clock",
                 "_refill", "_next_sweep", "_batch")

    def __init__(self, rate: float, burst: float, max_addresses: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_addresses < 1:
            raise ValueError("an address budget needs rate > 0, burst >= 1, max_addresses >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_addresses = max_addresses
        self.evictions = 0
        # address -> (tokens, last update). Tuples of floats, not lists: the garbage collector
        # stops tracking them (and the address tuples) at its first pass, so a table churned
        # by a spray is not promoted into the old generation, where it would trigger full
        # collections of the whole heap (tens of ms each, the socket filling meanwhile).
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._clock = clock
        self._refill = self.burst / self.rate  # seconds for an empty bucket to fill up
        self._next_sweep = 0.0
        self._batch = max(1, max_addresses // 16)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, addr: Hashable) -> bool:
        """Spend one token of `addr`'s bucket; False when it has none (drop the datagram)."""
        now = self._clock()
        buckets = self._buckets
        bucket = buckets.get(addr)
        if bucket is None:
            if len(buckets) >= self.max_addresses:
                self._make_room(now)
            buckets[addr] = (self.burst - 1.0, now)
            return True
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        if tokens >= 1.0:
            buckets[addr] = (tokens - 1.0, now)
            return True
        buckets[addr] = (tokens, now)
        return False

    def forget(self, addr: Hashable) -> None:
        self._buckets.pop(addr, None)

    def _make_room(self, now: float) -> None:
        buckets = self._buckets
        if now >= self._next_sweep:
            # Full buckets carry no information: drop them all in one pass, at most once per
            # refill period so a table full of busy addresses does not cost a pass per datagram.
            self._next_sweep = now + self._refill
            idle = now - self._refill
            stale = [addr for addr, (_, last) in buckets.items() if last <= idle]
            for addr in stale:
                del buckets[addr]
            self.evictions += len(stale)
        if len(buckets) >= self.max_addresses:
            # The oldest entries (dicts keep insertion order), a sixteenth of the table at a
            # time: deleting one at a time from the front would make every `next(iter())` scan
            # the dead slots the earlier deletions left (about 10 µs per eviction at 16k).
            oldest = list(islice(buckets, self._batch))
            for addr in oldest:
                del buckets[addr]
            self.evictions += len(oldest)
