"""A deterministic bottleneck link and a sender/receiver pair around a DownlinkEstimator.

The sender paces 1200-byte packets at the estimate (or at a probe cluster's target while one is
being sent), stamped with 16-bit transport-wide seqs that wrap early on. The link is a FIFO with a
capacity in bit/s, a base one-way delay, an optional byte limit (tail drop), optional random loss
and jitter, all from a seeded RNG. The receiver sends real transport-cc feedback every 100 ms
(serialized and parsed again), on a clock with an arbitrary offset from the sender's.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hubbub.media.rtcp.twcc import TransportCC
from hubbub.sfu.bwe import DownlinkEstimator, ProbeResult


class Link:
    """FIFO bottleneck. A packet's service time uses the capacity when it starts service."""

    def __init__(self, capacity_bps: float, delay: float = 0.025, *,
                 queue_limit: int | None = None, loss: float = 0.0, jitter: float = 0.0,
                 seed: int = 1) -> None:
        self.capacity = capacity_bps
        self.delay = delay
        self.queue_limit = queue_limit  # bytes waiting, tail drop above
        self.loss = loss
        self.jitter = jitter
        self._rng = random.Random(seed)
        self._free = 0.0  # when the bottleneck finishes what it holds
        self._last_arrival = 0.0
        self.dropped = 0

    def queue_delay(self, now: float) -> float:
        return max(0.0, self._free - now)

    def send(self, now: float, size: int) -> float | None:
        """Arrival time at the receiver, or None if dropped."""
        if self.loss and self._rng.random() < self.loss:
            self.dropped += 1
            return None
        start = max(now, self._free)
        if self.queue_limit is not None and (start - now) * self.capacity / 8 > self.queue_limit:
            self.dropped += 1
            return None
        self._free = start + size * 8 / self.capacity
        arrival = self._free + self.delay
        if self.jitter:
            arrival += self.jitter * self._rng.random()
        arrival = max(arrival, self._last_arrival)  # jitter does not reorder
        self._last_arrival = arrival
        return arrival


@dataclass
class Trace:
    t: list[float] = field(default_factory=list)
    estimate: list[float] = field(default_factory=list)
    capacity: list[float] = field(default_factory=list)
    queue: list[float] = field(default_factory=list)
    probes: list[tuple[float, ProbeResult]] = field(default_factory=list)
    sent_bytes: int = 0

    def window(self, t0: float, t1: float) -> list[tuple[float, float, float, float]]:
        return [(t, e, c, q) for t, e, c, q in zip(self.t, self.estimate, self.capacity,
                                                   self.queue, strict=True) if t0 <= t < t1]


ProbePolicy = Callable[[DownlinkEstimator, float, "Sim"], None]


class Sim:
    """Event loop: packet sends, feedback generation at the receiver, feedback delivery."""

    def __init__(self, est: DownlinkEstimator, link: Link, *, packet_size: int = 1200,
                 feedback_interval: float = 0.1, first_seq: int = 65_000,
                 receiver_clock_offset: float = 4321.0, probing: bool = True,
                 probe_period: float = 5.0) -> None:
        self.est = est
        self.link = link
        self.packet_size = packet_size
        self.feedback_interval = feedback_interval
        self.seq = first_seq
        self.offset = receiver_clock_offset
        self.probing = probing
        self.probe_period = probe_period
        self.trace = Trace()
        self.now = 0.0
        self._inflight: deque[tuple[int, float | None]] = deque()
        self._deliveries: list[tuple[float, int, bytes]] = []
        self._fb_count = 0
        self._next_send = 0.0
        self._next_feedback = feedback_interval
        self._next_probe = 0.0
        self._capacity_steps: list[tuple[float, float]] = []

    def step_capacity(self, at: float, capacity_bps: float) -> None:
        self._capacity_steps.append((at, capacity_bps))
        self._capacity_steps.sort()

    def _send_one(self, now: float) -> None:
        est = self.est
        cluster = est.probe_active
        rate = cluster.target_bps if cluster is not None else est.estimate_bps
        seq = self.seq & 0xFFFF
        self.seq += 1
        est.on_packet_sent(seq, self.packet_size, now, probe=cluster is not None)
        self.trace.sent_bytes += self.packet_size
        self._inflight.append((seq, self.link.send(now, self.packet_size)))
        self._next_send = now + self.packet_size * 8 / rate

    def _make_feedback(self, now: float) -> None:
        # Everything that arrived by now; a loss is known once a later packet has arrived.
        batch: list[tuple[int, float | None]] = []
        inflight = self._inflight
        while inflight:
            arrival = inflight[0][1]
            if arrival is not None and arrival > now:
                break
            batch.append(inflight.popleft())
        while batch and batch[-1][1] is None:
            inflight.appendleft(batch.pop())
        if not batch:
            return
        arrivals = [None if a is None else int((a + self.offset) * 1e6) for _, a in batch]
        fb = TransportCC.from_arrivals(batch[0][0], arrivals, self._fb_count,
                                       sender_ssrc=1, media_ssrc=2)
        self._fb_count += 1
        heapq.heappush(self._deliveries, (now + self.link.delay, self._fb_count, fb.serialize()))

    def _deliver(self, now: float, data: bytes) -> None:
        est = self.est
        result = est.on_feedback(TransportCC.parse(data), now)
        if result is not None:
            self.trace.probes.append((now, result))
            if self.probing:
                # Keep climbing while probes get through; otherwise look again later.
                self._next_probe = now if result.delivered else now + self.probe_period
        tr = self.trace
        tr.t.append(now)
        tr.estimate.append(est.estimate_bps)
        tr.capacity.append(self.link.capacity)
        tr.queue.append(self.link.queue_delay(now))

    def run(self, until: float) -> Trace:
        est = self.est
        while True:
            t_delivery = self._deliveries[0][0] if self._deliveries else float("inf")
            t = min(self._next_send, self._next_feedback, t_delivery)
            if t >= until:
                self.now = until
                return self.trace
            while self._capacity_steps and self._capacity_steps[0][0] <= t:
                self.link.capacity = self._capacity_steps.pop(0)[1]
            self.now = t
            if t == t_delivery:
                _, _, data = heapq.heappop(self._deliveries)
                self._deliver(t, data)
            elif t == self._next_feedback:
                self._make_feedback(t)
                self._next_feedback = t + self.feedback_interval
            else:
                if self.probing and t >= self._next_probe and est.probe_active is None:
                    factor = 3.0 if self._next_probe == 0.0 else 2.0
                    if est.probe_request(factor * est.estimate_bps) is not None:
                        self._next_probe = float("inf")  # until the result is in
                self._send_one(t)


def settle_time(trace: Trace, t0: float, t1: float, target: float, tol: float = 0.2) -> float:
    """Seconds after t0 from which the estimate stays within ±tol of target until t1 (inf if
    it never does)."""
    samples = [(t, e) for t, e in zip(trace.t, trace.estimate, strict=True) if t0 <= t < t1]
    settled = float("inf")
    for t, e in reversed(samples):
        if abs(e - target) > tol * target:
            break
        settled = t - t0
    return settled


def first_time(trace: Trace, t0: float, pred: Callable[[float], bool]) -> float:
    for t, e in zip(trace.t, trace.estimate, strict=True):
        if t >= t0 and pred(e):
            return t - t0
    return float("inf")
