"""Bandwidth probing: a short burst at a higher rate, measured by its transport-cc feedback.

Before taking a higher simulcast layer the sender checks that the path carries it: it sends a
cluster of packets (media plus padding) at the target rate and compares how fast they left with
how fast they arrived. If the bottleneck is slower than the target, the cluster queues there and
arrives at the bottleneck rate; if not, it arrives as fast as it left. The idea is the probing
of draft-ietf-rmcat-gcc-02 §5.5 ("ramp-up ... can be done with probing") and the packet-pair /
packet-train measurement of Keshav (SIGCOMM 1991) and Dovrolis et al. (INFOCOM 2001).
"""

from __future__ import annotations

from dataclasses import dataclass

BURST_FRACTION = 0.5
"""A cluster whose packets left within less than this share of its duration was a burst."""


@dataclass(frozen=True, slots=True)
class ProbeCluster:
    """A probe to send: every packet (media or padding) flagged `probe=True` at `target_bps` in
    total, for at least `duration` seconds and `min_packets` packets."""

    id: int
    target_bps: float
    duration: float
    min_packets: int


@dataclass(frozen=True, slots=True)
class ProbeResult:
    cluster_id: int
    target_bps: float
    send_bps: float  # rate the cluster left at
    receive_bps: float  # rate it arrived at (0 if fewer than two arrived)
    received_fraction: float
    delivered: bool  # the path carried target_bps: arrived at >= 90 % of it, <= 10 % lost

    @property
    def bps(self) -> float:
        """What the probe showed the path carries: the slower of leaving and arriving."""
        return min(self.send_bps, self.receive_bps)

    @property
    def congested(self) -> bool:
        """The path did not carry the probe: loss, or it arrived slower than both its
        target and the rate it left at. A probe that merely left slower than its target (a
        busy server's ticks run late) says nothing against the path."""
        return (self.received_fraction < 0.9
                or self.receive_bps < 0.9 * min(self.send_bps, self.target_bps))


class ProbeTracker:
    """Accounting of one cluster while it is sent and acknowledged."""

    __slots__ = ("cluster", "requested_at", "sent", "sent_bytes", "last_size", "first_send",
                 "last_send", "reported", "received", "recv_bytes", "first_arr", "first_arr_size",
                 "last_arr", "complete")

    def __init__(self, cluster: ProbeCluster) -> None:
        self.cluster = cluster
        self.requested_at = -1.0  # stamped by the first feedback seen after the request
        self.sent = 0
        self.sent_bytes = 0
        self.last_size = 0
        self.first_send = 0.0
        self.last_send = 0.0
        self.reported = 0
        self.received = 0
        self.recv_bytes = 0
        self.first_arr = float("inf")
        self.first_arr_size = 0
        self.last_arr = float("-inf")
        self.complete = False  # the sender said it sent all of it (`DownlinkEstimator.probe_sent`)

    @property
    def sending(self) -> bool:
        """True until the cluster has been sent in full: the sender says so, or it reached
        its packets and duration. (A paced cluster's last packet leaves just before the
        duration is up, so without the sender's word it would wait out the probe timeout.)"""
        if self.complete:
            return False
        c = self.cluster
        return self.sent < c.min_packets or self.last_send - self.first_send < c.duration

    def on_sent(self, size: int, now: float) -> None:
        if self.sent == 0:
            self.first_send = now
        self.sent += 1
        self.sent_bytes += size
        self.last_size = size
        self.last_send = now

    def on_received(self, size: int, arrival: float) -> None:
        self.received += 1
        self.recv_bytes += size
        if arrival < self.first_arr:
            self.first_arr = arrival
            self.first_arr_size = size
        if arrival > self.last_arr:
            self.last_arr = arrival

    def result(self) -> ProbeResult:
        c = self.cluster
        span = self.last_send - self.first_send
        # n packets span n - 1 gaps: leave out the last one sent and the first one received.
        # A cluster that left as a burst (the sender's loop ran late) has no send rate: it
        # shows nothing about the path (seen: a 0.36 Mb/s probe read as 1.5 Mb/s through a
        # 0.3 Mb/s link), so it is neither a capacity sample nor congestion.
        paced = span >= BURST_FRACTION * c.duration
        send_bps = (self.sent_bytes - self.last_size) * 8.0 / span if paced else 0.0
        arr_span = self.last_arr - self.first_arr
        receive_bps = 0.0
        if self.received >= 2 and arr_span > 0.0:
            receive_bps = (self.recv_bytes - self.first_arr_size) * 8.0 / arr_span
        fraction = self.received / self.sent if self.sent else 0.0
        delivered = fraction >= 0.9 and min(send_bps, receive_bps) >= 0.9 * c.target_bps
        return ProbeResult(c.id, c.target_bps, send_bps, receive_bps, fraction, delivered)
