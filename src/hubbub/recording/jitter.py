"""Reordering by RTP sequence number, and 32-bit timestamp unwrapping.

The recorder sees packets in the order they reached the publisher's leg: mostly in order, a
few swapped, NACK resends late. `ReorderBuffer` holds up to `depth` packets past a hole and
gives everything back in sequence order; a hole still open when the buffer is full is given
up (the next packet out says so), and a packet older than what was given out is dropped.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

_SEQ_HALF = 0x8000
_TS_HALF = 0x80000000


class SeqUnwrapper:
    """16-bit sequence numbers → a monotonic count (nearest to the last one seen)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = -1

    def unwrap(self, seq: int) -> int:
        if self._last < 0:
            self._last = seq
            return seq
        delta = (seq - self._last) & 0xFFFF
        if delta >= _SEQ_HALF:
            delta -= 0x10000
        value = self._last + delta
        if delta > 0:
            self._last = value
        return value


class TimestampUnwrapper:
    """32-bit RTP timestamps → a count that keeps going past 2^32 (nearest to the last one)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, ts: int) -> int:
        if self._last is None:
            self._last = ts
            return ts
        delta = (ts - self._last) & 0xFFFFFFFF
        if delta >= _TS_HALF:
            delta -= 0x100000000
        value = self._last + delta
        if delta > 0:
            self._last = value
        return value

    def nearest(self, ts: int) -> int:
        """`ts` unwrapped like `unwrap`, without moving on (an SR's timestamp)."""
        if self._last is None:
            return ts
        delta = (ts - self._last) & 0xFFFFFFFF
        if delta >= _TS_HALF:
            delta -= 0x100000000
        return self._last + delta


class ReorderBuffer(Generic[T]):
    """Items by unwrapped sequence number, given back in order.

    `push` returns the items now ready, each with `gap_before`: True when one or more packets
    before it were given up for lost. `flush` gives back whatever is held (end of recording).
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._seqs = SeqUnwrapper()
        self._held: dict[int, T] = {}
        self._next = -1  # the sequence number we wait for; -1 before the first packet
        self.lost = 0  # packets given up for lost
        self.late = 0  # packets that came after we gave up on them (or duplicates)

    def push(self, seq: int, item: T) -> list[tuple[T, bool]]:
        n = self._seqs.unwrap(seq)
        if self._next < 0:
            self._next = n
        if n < self._next or n in self._held:
            self.late += 1
            return []
        if n - self._next > 8 * self.depth:
            # A jump far ahead (the publisher restarted its sequence): start again there.
            self.lost += len(self._held)
            self._held.clear()
            self._next = n
        self._held[n] = item
        out: list[tuple[T, bool]] = []
        gap = False
        while True:
            self._drain(out, gap)
            if len(self._held) <= self.depth:
                return out
            # Full: give up the hole at the head and carry on from the oldest held packet.
            oldest = min(self._held)
            self.lost += oldest - self._next
            self._next = oldest
            gap = True

    def _drain(self, out: list[tuple[T, bool]], gap: bool) -> None:
        held = self._held
        while self._next in held:
            out.append((held.pop(self._next), gap))
            gap = False
            self._next += 1

    def flush(self) -> list[tuple[T, bool]]:
        out: list[tuple[T, bool]] = []
        while self._held:
            oldest = min(self._held)
            gap = oldest != self._next
            self.lost += oldest - self._next
            self._next = oldest
            self._drain(out, gap)
        return out
