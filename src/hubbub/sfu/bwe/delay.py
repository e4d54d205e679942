"""Delay-based over-use detection in the spirit of Google Congestion Control.

Follows draft-ietf-rmcat-gcc-02 §5 (pre-filtering into send-time bursts, inter-group delay
variation, over-use detector with the adaptive threshold of §5.4, also in Carlucci et al.,
"Analysis and Design of the Google Congestion Control", MMSys 2016, and "Congestion Control for
Web Real-Time Communication", IEEE/ACM ToN 2017). In place of the draft's Kalman filter it uses
the later trendline estimate published with libwebrtc: the slope of a least-squares line through
the smoothed accumulated delay variation of the last ~20 groups, scaled by the number of samples
so that a sustained trend stands out from noise. A growing queue makes the slope positive.

The detector also keeps the standing queue delay: one-way delay (arrival minus send, whatever the
clock offset) above its minimum over the last ~30 s, the base delay of LEDBAT (RFC 6817 §3.4.2)
with a shorter history. The trend only sees changes; this says whether a queue is still there.
"""

from __future__ import annotations

import math
from array import array
from enum import Enum

_BASE_BUCKET = 3.0  # seconds per base-delay bucket
_BASE_BUCKETS = 10


class Usage(Enum):
    """Hypothesis of the over-use detector (gcc-02 §5.4)."""

    NORMAL = "normal"
    OVERUSING = "overusing"
    UNDERUSING = "underusing"


class DelayDetector:
    """Fed with every acknowledged packet in transport seq order (send and arrival in seconds;
    the two clocks need not agree, only differences are used)."""

    __slots__ = (
        "burst", "window", "smoothing", "gain", "k_up", "k_down", "overuse_time",
        "usage", "threshold", "trend", "overuse_events",
        "_in_group", "_g_first_send", "_g_last_send", "_g_first_arr", "_g_last_arr",
        "_have_prev", "_p_last_send", "_p_last_arr",
        "_acc", "_smoothed", "_x", "_y", "_count", "_pos", "_t0", "_deltas",
        "_over_time", "_over_count", "_prev_trend", "_thr_updated",
        "queue_delay", "_base", "_base_pos", "_bucket_min", "_bucket_start",
    )

    def __init__(
        self,
        burst: float = 0.005,
        window: int = 20,
        smoothing: float = 0.9,
        gain: float = 4.0,
        k_up: float = 0.0087,
        k_down: float = 0.039,
        overuse_time: float = 10.0,
    ) -> None:
        self.burst = burst  # gcc-02 §5.2 burst_time
        self.window = window
        self.smoothing = smoothing
        self.gain = gain
        # §5.4: gamma moves towards |m| at k_up when |m| is above it, k_down when below. These
        # are the values published for the trendline's scale (the draft's 0.01 / 0.00018 go with
        # its Kalman estimate).
        self.k_up = k_up
        self.k_down = k_down
        self.overuse_time = overuse_time  # ms above the threshold before over-use is declared
        self.usage = Usage.NORMAL
        self.threshold = 12.5  # gamma, ms (§5.4 initial value)
        self.trend = 0.0  # last modified trend m(i), ms
        # Over-use declarations, so that one between two feedbacks is not missed.
        self.overuse_events = 0
        self._in_group = False
        self._g_first_send = self._g_last_send = 0.0
        self._g_first_arr = self._g_last_arr = 0.0
        self._have_prev = False
        self._p_last_send = self._p_last_arr = 0.0
        self._acc = 0.0
        self._smoothed = 0.0
        self._x = array("d", [0.0]) * window
        self._y = array("d", [0.0]) * window
        self._count = 0
        self._pos = 0
        self._t0 = 0.0
        self._deltas = 0
        self._over_time = -1.0
        self._over_count = 0
        self._prev_trend = 0.0
        self._thr_updated = -1.0
        self.queue_delay = 0.0  # seconds, last one-way delay above the base
        self._base = array("d", [math.inf]) * _BASE_BUCKETS  # minima of past buckets
        self._base_pos = 0
        self._bucket_min = math.inf
        self._bucket_start = -math.inf

    def on_packet(self, send: float, arrival: float) -> None:
        owd = arrival - send
        if arrival - self._bucket_start >= _BASE_BUCKET:
            self._base[self._base_pos] = self._bucket_min
            self._base_pos = (self._base_pos + 1) % _BASE_BUCKETS
            self._bucket_min = math.inf
            self._bucket_start = arrival
        if owd < self._bucket_min:
            self._bucket_min = owd
        self.queue_delay = owd - min(self._bucket_min, min(self._base))
        if not self._in_group:
            self._start_group(send, arrival)
            return
        if send < self._g_first_send:
            return  # sent before the current group: stale, it says nothing about the queue now
        if send - self._g_first_send <= self.burst or self._burst_arrival(send, arrival):
            if send > self._g_last_send:
                self._g_last_send = send
            if arrival > self._g_last_arr:
                self._g_last_arr = arrival
            return
        if self._have_prev:
            # §5.2/§5.3: d(i) = t(i) - t(i-1) - (T(i) - T(i-1)), last packet of each group.
            send_delta = (self._g_last_send - self._p_last_send) * 1000.0
            arr_delta = (self._g_last_arr - self._p_last_arr) * 1000.0
            self._on_delta(arr_delta - send_delta, self._g_last_arr * 1000.0, send_delta)
        self._have_prev = True
        self._p_last_send = self._g_last_send
        self._p_last_arr = self._g_last_arr
        self._start_group(send, arrival)

    def _start_group(self, send: float, arrival: float) -> None:
        self._in_group = True
        self._g_first_send = self._g_last_send = send
        self._g_first_arr = self._g_last_arr = arrival

    def _burst_arrival(self, send: float, arrival: float) -> bool:
        # §5.2: a packet arriving less than burst_time after the group with a negative delay
        # variation was queued behind it (e.g. released together after a radio stall); it joins
        # the group. Bounded so that a long train does not become one endless group.
        arr_delta = arrival - self._g_last_arr
        return (arr_delta < self.burst and arr_delta - (send - self._g_last_send) < 0.0
                and arrival - self._g_first_arr < 0.1)

    def _on_delta(self, d: float, arrival_ms: float, send_delta: float) -> None:
        if self._deltas < 1000:
            self._deltas += 1
        self._acc += d
        a = self.smoothing
        self._smoothed = a * self._smoothed + (1.0 - a) * self._acc
        if self._count == 0:
            self._t0 = arrival_ms
        n = self.window
        self._x[self._pos] = arrival_ms - self._t0
        self._y[self._pos] = self._smoothed
        self._pos = (self._pos + 1) % n
        slope = 0.0
        if self._count < n:
            self._count += 1
        if self._count == n:
            xs, ys = self._x, self._y
            xm = sum(xs) / n
            ym = sum(ys) / n
            num = den = 0.0
            for k in range(n):
                dx = xs[k] - xm
                num += dx * (ys[k] - ym)
                den += dx * dx
            if den > 0.0:
                slope = num / den
        self._detect(slope, send_delta, arrival_ms)

    def _detect(self, slope: float, send_delta: float, now_ms: float) -> None:
        m = min(self._deltas, 60) * slope * self.gain
        self.trend = m
        thr = self.threshold
        if m > thr:
            # §5.4: over-use only when m stays above gamma for overuse_time and is not falling.
            if self._over_time < 0.0:
                self._over_time = send_delta / 2.0
            else:
                self._over_time += send_delta
            self._over_count += 1
            if (self._over_time > self.overuse_time and self._over_count > 1
                    and m >= self._prev_trend):
                self._over_time = 0.0
                self._over_count = 0
                self.overuse_events += 1
                self.usage = Usage.OVERUSING
        elif m < -thr:
            self._over_time = -1.0
            self._over_count = 0
            self.usage = Usage.UNDERUSING
        else:
            self._over_time = -1.0
            self._over_count = 0
            self.usage = Usage.NORMAL
        self._prev_trend = m
        self._update_threshold(m, now_ms)

    def _update_threshold(self, m: float, now_ms: float) -> None:
        # §5.4: gamma(i) = gamma(i-1) + dt * k(i) * (|m(i)| - gamma(i-1)), dt capped at 100 ms,
        # clamped to [6, 600] ms; a sample far above gamma (a sudden spike) does not move it.
        if self._thr_updated < 0.0:
            self._thr_updated = now_ms
        am = abs(m)
        if am > self.threshold + 15.0:
            self._thr_updated = now_ms
            return
        k = self.k_down if am < self.threshold else self.k_up
        dt = min(now_ms - self._thr_updated, 100.0)
        self.threshold = min(600.0, max(6.0, self.threshold + k * (am - self.threshold) * dt))
        self._thr_updated = now_ms
