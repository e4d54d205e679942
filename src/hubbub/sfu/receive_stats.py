"""Reception statistics of one publisher SSRC, for the RR report block (RFC 3550 §6.4.1)."""

from __future__ import annotations

from typing import NamedTuple


class ReportValues(NamedTuple):
    fraction_lost: int  # 8-bit fixed point, lost / expected since the previous report
    cumulative_lost: int  # 24-bit signed, clamped
    highest_seq: int  # extended highest sequence number received (cycles << 16 | seq)
    jitter: int  # interarrival jitter in timestamp units


class ReceiveStats:
    """Sequence/loss accounting after RFC 3550 A.1/A.3 and jitter after A.8.

    Simplified A.1: no probation; a packet ahead of the highest seq by less than half the space
    advances it (and counts a cycle when it wraps), anything else is late or duplicate.
    """

    __slots__ = (
        "received", "base_seq", "max_seq", "cycles", "jitter",
        "_started", "_expected_prior", "_received_prior", "_last_ts", "_last_arrival",
    )

    def __init__(self) -> None:
        self.received = 0
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.jitter = 0.0
        self._started = False
        self._expected_prior = 0
        self._received_prior = 0
        self._last_ts = 0
        self._last_arrival = 0.0

    def update(self, seq: int, ts: int, arrival: float, clock_rate: int) -> None:
        self.received += 1
        if not self._started:
            self._started = True
            self.base_seq = self.max_seq = seq
            self._last_ts = ts
            self._last_arrival = arrival
            return
        delta = (seq - self.max_seq) & 0xFFFF
        if 0 < delta < 0x8000:
            if seq < self.max_seq:
                self.cycles += 0x10000
            self.max_seq = seq
        # A.8: D = (Rj - Ri) - (Sj - Si) in timestamp units; RTP ts difference taken signed so a
        # 32-bit wrap is a small step, not a 2^32 jump.
        dts = (ts - self._last_ts) & 0xFFFFFFFF
        if dts >= 0x80000000:
            dts -= 0x100000000
        d = (arrival - self._last_arrival) * clock_rate - dts
        self._last_ts = ts
        self._last_arrival = arrival
        self.jitter += (abs(d) - self.jitter) / 16.0

    @property
    def started(self) -> bool:
        return self._started

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    def report(self) -> ReportValues:
        """Values for the next report block; resets the interval counters (A.3)."""
        expected = self.extended_max - self.base_seq + 1
        lost = max(-0x800000, min(0x7FFFFF, expected - self.received))
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportValues(fraction, lost, self.extended_max & 0xFFFFFFFF, int(self.jitter))
