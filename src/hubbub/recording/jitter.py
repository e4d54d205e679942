"""Reordering by RTP sequence number, and 32-bit timestamp unwrapping.

The recorder sees packets in the order they reached the publisher's leg: mostly in order, a
few swapped, NACK resends late. `ReorderBuffer` holds up to `depth` packets past a hole and
gives everything back in sequence order; a hole still open when the buffer is full is given
up (the next packet out says so), and a packet older than what was given out is dropped.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

class Unwrapper:
    """A wrapping counter of `BITS` bits → a count that keeps going past the wrap, each value
    taken nearest to the newest one seen (so a late, reordered one lands just before it)."""

    BITS = 32
    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: int | None = None

    def nearest(self, value: int) -> int:
        """`value` unwrapped, without moving on (e.g. an SR's timestamp)."""
        last = self._last
        if last is None:
            return value
        modulus = 1 << self.BITS
        delta = (value - last) & (modulus - 1)
        if delta >= modulus >> 1:
            delta -= modulus
        return last + delta

    def unwrap(self, value: int) -> int:
        """`value` unwrapped; the newest one seen moves on when it is ahead."""
        unwrapped = self.nearest(value)
        if self._last is None or unwrapped > self._last:
            self._last = unwrapped
        return unwrapped


class SeqUnwrapper(Unwrapper):
    """16-bit RTP sequence numbers."""

    BITS = 16
    __slots__ = ()


class TimestampUnwrapper(Unwrapper):
    """32-bit RTP timestamps."""

    __slots__ = ()


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
