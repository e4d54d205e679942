"""Loss-based controller (draft-ietf-rmcat-gcc-02 §6).

Every time enough packets have been reported by transport-cc, the lost fraction p of them sets the
sender-side bound As: p > 10 % → As = rate · (1 − 0.5 p); p < 2 % → As may grow (by ~8 %/s here,
the draft's 5 % per report at a report every ~0.6 s); in between it holds. Decreases are spaced
by at least 300 ms + RTT so that one loss episode, reported over several feedbacks, is answered
once per round trip.
"""

from __future__ import annotations


class LossController:
    __slots__ = ("bitrate", "min_bps", "max_bps", "min_packets", "max_interval", "fraction",
                 "_expected", "_lost", "_since", "_last_decrease", "_last_eval")

    def __init__(self, start_bps: float, min_bps: float, max_bps: float, *,
                 min_packets: int = 20, max_interval: float = 1.0) -> None:
        self.min_bps = min_bps
        self.max_bps = max_bps
        self.bitrate = min(max_bps, max(min_bps, start_bps))
        self.min_packets = min_packets
        self.max_interval = max_interval
        self.fraction = 0.0  # last evaluated lost fraction
        self._expected = 0
        self._lost = 0
        self._since = -1.0
        self._last_decrease = float("-inf")
        self._last_eval = -1.0

    def update(self, expected: int, lost: int, now: float, rtt: float, current: float) -> float:
        """Account one feedback's newly reported packets. `current` is the combined estimate
        the sender uses now; a decrease starts from it. Returns As in bit/s."""
        self._expected += expected
        self._lost += lost
        if self._since < 0.0:
            self._since = now
        if self._expected == 0 or (self._expected < self.min_packets
                                   and now - self._since < self.max_interval):
            return self.bitrate
        p = self._lost / self._expected
        self.fraction = p
        self._expected = self._lost = 0
        self._since = now
        dt = 0.0 if self._last_eval < 0.0 else min(now - self._last_eval, 1.0)
        self._last_eval = now
        if p > 0.10:
            if now - self._last_decrease >= 0.3 + rtt:
                self.bitrate = current * (1.0 - 0.5 * p)
                self._last_decrease = now
        elif p < 0.02:
            self.bitrate *= 1.08 ** dt
        self.bitrate = min(self.max_bps, max(self.min_bps, self.bitrate))
        return self.bitrate

    @property
    def last_decrease(self) -> float:
        """When the bound was last cut (-inf: never); loss among packets sent before then was
        answered by that cut."""
        return self._last_decrease

    def raise_to(self, bps: float) -> None:
        """A probe showed the path carries `bps` without loss to speak of."""
        self.bitrate = min(self.max_bps, max(self.bitrate, bps))
