"""AIMD rate controller driven by the over-use detector (draft-ietf-rmcat-gcc-02 §5.5).

States hold / increase / decrease, switched by the detector's signal: over-use → decrease,
under-use → hold (the queue is draining, let it), normal → increase (or hold right after a
decrease). Increase is multiplicative (~8 %/s) while the link capacity is unknown and additive
(about half a packet per response time) once the rate is near the capacity measured at earlier
decreases; decrease goes to beta = 0.85 times the rate the viewer actually received. The capacity
estimate is the running mean and deviation of that received rate at decreases, as in gcc-02 §5.5
and Carlucci et al. (IEEE/ACM ToN 2017).
"""

from __future__ import annotations

import math
from enum import Enum

from hubbub.sfu.bwe.delay import Usage


class RateState(Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


class AimdRateController:
    __slots__ = ("bitrate", "min_bps", "max_bps", "beta", "state", "_last_update", "_cap",
                 "_cap_var")

    def __init__(self, start_bps: float, min_bps: float, max_bps: float,
                 beta: float = 0.85) -> None:
        self.min_bps = min_bps
        self.max_bps = max_bps
        self.beta = beta
        self.bitrate = min(max_bps, max(min_bps, start_bps))
        self.state = RateState.INCREASE
        self._last_update = -1.0
        self._cap: float | None = None  # mean received rate at decreases, bit/s
        self._cap_var = 0.0  # its relative variance

    @property
    def capacity(self) -> float | None:
        """The link capacity estimate, None while unknown (far from convergence)."""
        return self._cap

    def _cap_dev(self) -> float:
        # Deviation relative to the mean, floored so that one lucky decrease does not make the
        # "near convergence" band vanish.
        return max(0.06, math.sqrt(self._cap_var))

    def update(self, usage: Usage, acked_bps: float | None, now: float, rtt: float,
               packet_bits: float = 9600.0) -> float:
        """Run once per feedback; returns the new delay-based estimate in bit/s."""
        if usage is Usage.OVERUSING:
            self.state = RateState.DECREASE
        elif usage is Usage.UNDERUSING:
            self.state = RateState.HOLD
        elif self.state is RateState.DECREASE:
            self.state = RateState.HOLD
        else:
            self.state = RateState.INCREASE
        dt = 0.0 if self._last_update < 0.0 else min(max(now - self._last_update, 0.0), 1.0)
        self._last_update = now
        cap = self._cap
        if (cap is not None and acked_bps is not None
                and acked_bps > cap * (1 + 3 * self._cap_dev())):
            self._cap = cap = None  # the link got faster than we thought: search again
        rate = self.bitrate
        if self.state is RateState.INCREASE:
            if cap is not None and rate >= cap * (1 - 3 * self._cap_dev()):
                # Near convergence: alpha = 0.5 * min(dt / response_time, 1) * packet bits per
                # update, at least 1 kb/s (gcc-02 §5.5); response time = RTT + 100 ms.
                response = 0.1 + rtt
                rate += max(1000.0, 0.5 * min(dt / response, 1.0) * packet_bits)
            else:
                rate *= 1.08 ** dt  # eta = 1.08^min(dt, 1 s)
            if acked_bps is not None:
                # Never grow past 1.5 x what actually gets through (plus 10 kb/s so that a
                # slow start is not stuck), but this limit does not lower the rate by itself.
                rate = min(rate, max(self.bitrate, 1.5 * acked_bps + 10_000.0))
        elif self.state is RateState.DECREASE:
            measured = acked_bps if acked_bps is not None else rate
            rate = min(rate, self.beta * measured)
            if acked_bps is not None:
                self._note_capacity(acked_bps)
        self.bitrate = min(self.max_bps, max(self.min_bps, rate))
        return self.bitrate

    def _note_capacity(self, acked: float) -> None:
        cap = self._cap
        if cap is None or acked < cap * (1 - 3 * self._cap_dev()):
            self._cap = acked  # first sample, or the link got slower: start the average over
            self._cap_var = 0.0
            return
        rel = (acked - cap) / cap
        self._cap = 0.95 * cap + 0.05 * acked
        self._cap_var = 0.95 * self._cap_var + 0.05 * rel * rel

    def set_estimate(self, bps: float, now: float) -> None:
        """Take an estimate measured otherwise (a probe); forgets the capacity if it is above."""
        self.bitrate = min(self.max_bps, max(self.min_bps, bps))
        cap = self._cap
        if cap is not None and self.bitrate > cap * (1 + 3 * self._cap_dev()):
            self._cap = None
        self._last_update = now
