"""What was sent to one viewer, by transport-wide sequence number, and how fast it got there.

Transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) names packets only
by their 16-bit transport-wide sequence number and says when each arrived; turning that into delay
and rate samples needs the send time and size of every packet. This sits on the per-packet hot
path, so the record is a ring of preallocated `array`s indexed by the extended sequence number:
O(1) insert, no object per packet, and old entries simply get overwritten (a ring of 8192 holds a
few seconds even at 20 Mb/s of 1200-byte packets, more than any feedback is late).
"""

from __future__ import annotations

from array import array

NOT_REPORTED, REPORTED_LOST, REPORTED_RECEIVED = 0, 1, 2
"""Per packet feedback state, so a packet reported twice (overlapping feedback) counts once."""


class SendHistory:
    """Ring of (send time, size, probe cluster, feedback state) per extended transport seq.

    The arrays are public for the estimator's feedback loop: index them with `slot(ext)`."""

    __slots__ = ("_mask", "_ext", "times", "sizes", "probes", "reports", "highest")

    def __init__(self, capacity: int = 8192) -> None:
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError("SendHistory capacity must be a power of two")
        self._mask = capacity - 1
        self._ext = array("q", [-1]) * capacity
        self.times = array("d", [0.0]) * capacity
        self.sizes = array("i", [0]) * capacity
        self.probes = array("i", [-1]) * capacity  # probe cluster id, -1 = ordinary packet
        self.reports = array("b", [NOT_REPORTED]) * capacity
        self.highest = -1  # highest extended seq sent so far

    def unwrap(self, seq: int) -> int:
        """Extended seq nearest to the highest sent one (RFC 3550 A.1 style 16-bit unwrap)."""
        h = self.highest
        if h < 0:
            return seq & 0xFFFF
        d = (seq - h) & 0xFFFF
        if d >= 0x8000:
            d -= 0x10000
        return h + d

    def add(self, seq: int, now: float, size: int, probe: int = -1) -> int:
        """Record a packet handed to the socket; returns its extended seq."""
        h = self.highest
        if h < 0:
            ext = seq & 0xFFFF
        else:
            d = (seq - h) & 0xFFFF
            ext = h + (d - 0x10000 if d >= 0x8000 else d)
        if ext > h:
            self.highest = ext
        i = ext & self._mask
        self._ext[i] = ext
        self.times[i] = now
        self.sizes[i] = size
        self.probes[i] = probe
        self.reports[i] = NOT_REPORTED
        return ext

    def slot(self, ext: int) -> int:
        """Ring index holding `ext`, or -1 if it was never sent or has been overwritten."""
        i = ext & self._mask
        return i if ext >= 0 and self._ext[i] == ext else -1


class AckedBitrate:
    """Rate at which the viewer received our packets: bytes acknowledged over a sliding window
    of arrival times (the receive rate R̂ of draft-ietf-rmcat-gcc-02 §5.5, measured from
    transport-cc instead of by the receiver).

    The window keeps `window` seconds of arrivals but never fewer than `min_packets`, so a low
    rate (a packet every 300 ms) still yields a figure; the rate is taken over the span of what
    is kept, not the nominal window, so a window not yet full does not read low."""

    __slots__ = ("window", "min_packets", "_mask", "_t", "_b", "_head", "_tail", "_bytes",
                 "_newest")

    def __init__(self, window: float = 0.25, min_packets: int = 8, capacity: int = 4096) -> None:
        if capacity <= min_packets or capacity & (capacity - 1):
            raise ValueError("AckedBitrate capacity must be a power of two above min_packets")
        self.window = window
        self.min_packets = min_packets
        self._mask = capacity - 1
        self._t = array("d", [0.0]) * capacity
        self._b = array("i", [0]) * capacity
        self._head = 0  # next write position (monotonic counter)
        self._tail = 0  # oldest kept
        self._bytes = 0
        self._newest = float("-inf")

    def add(self, arrival: float, size: int) -> None:
        """Note `size` bytes that arrived at `arrival` (receiver clock, seconds)."""
        mask = self._mask
        if self._head - self._tail > mask:  # full: the oldest goes regardless of the window
            self._bytes -= self._b[self._tail & mask]
            self._tail += 1
        i = self._head & mask
        self._t[i] = arrival
        self._b[i] = size
        self._head += 1
        self._bytes += size
        if arrival > self._newest:
            self._newest = arrival
        horizon = self._newest - self.window
        while self._head - self._tail > self.min_packets and self._t[self._tail & mask] < horizon:
            self._bytes -= self._b[self._tail & mask]
            self._tail += 1

    def bps(self) -> float | None:
        """Received bit/s over the kept arrivals, None until two arrivals span some time."""
        n = self._head - self._tail
        if n < 2:
            return None
        mask = self._mask
        first = self._tail & mask
        span = self._newest - self._t[first]
        if span <= 0.0:
            return None
        # The first arrival opens the span; its bytes came in before it.
        return (self._bytes - self._b[first]) * 8.0 / span
