"""Send-side downlink bandwidth estimate for one viewer (issue 17).

Combines, as draft-ietf-rmcat-gcc-02 §4 does, a delay-based estimate (over-use detector → AIMD,
§5) and a loss-based bound (§6), both computed at the sender from transport-cc feedback
(draft-holmer-rmcat-transport-wide-cc-extensions-01): the estimate is the smaller of the two.
A viewer that only sends REMB (draft-alvestrand-rmcat-remb) has its receiver-side estimate used
instead, smoothed on the way up; when both arrive REMB caps the send-side estimate. Probing
(see probe.py) lets the layer selector check a higher rate before switching to it. One addition
to the draft: a standing queue (delay above the base, see delay.py) that the trend no longer
shows, e.g. after a steep drop in capacity, counts as over-use until it drains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hubbub.media.rtcp.twcc import TransportCC
from hubbub.sfu.bwe.delay import DelayDetector, Usage
from hubbub.sfu.bwe.loss import LossController
from hubbub.sfu.bwe.probe import ProbeCluster, ProbeResult, ProbeTracker
from hubbub.sfu.bwe.rate import AimdRateController, RateState
from hubbub.sfu.bwe.send_history import (
    NOT_REPORTED,
    REPORTED_LOST,
    REPORTED_RECEIVED,
    AckedBitrate,
    SendHistory,
)

_REF_US = 64_000  # transport-cc reference time unit (§3.1)


@dataclass(frozen=True, slots=True)
class BweConfig:
    start_bps: float = 1_000_000.0
    min_bps: float = 30_000.0
    max_bps: float = 20_000_000.0
    history_size: int = 8192
    """Packets remembered for feedback (a power of two)."""
    remb_rise_time: float = 1.0
    """Time constant with which a higher REMB is followed; a lower one is taken at once."""
    remb_timeout: float = 5.0
    """A REMB older than this no longer caps the transport-cc estimate."""
    probe_duration: float = 0.1
    """A probe cluster is paced over this long (the sender spreads it: Viewer.pace)."""
    probe_min_packets: int = 5
    probe_timeout: float = 1.0
    """Seconds after a cluster's last packet (or the request) before it is judged as it is."""
    max_queue_delay: float = 0.1
    """Standing queue delay (seconds) above which the estimate does not grow and no probe is
    started: a queue left by a sharp drop in capacity or a probe drains first."""


class DownlinkEstimator:
    """Per viewer. `on_packet_sent` runs per packet; the rest per RTCP packet from the viewer.

    Times (`now`) are seconds on the sender's monotonic clock."""

    __slots__ = (
        "config", "history", "acked", "delay", "rate", "loss", "rtt", "last_probe",
        "_probe", "_next_probe_id", "_twcc", "_ref_ext", "_delay_seq", "_packet_bits",
        "_remb", "_remb_raw", "_remb_at", "_overuse_seen", "_delay_cut_at", "_acked_sent",
        "standing_queue",
    )

    def __init__(self, config: BweConfig | None = None) -> None:
        c = self.config = config or BweConfig()
        self.history = SendHistory(c.history_size)
        self.acked = AckedBitrate()
        self.delay = DelayDetector()
        self.rate = AimdRateController(c.start_bps, c.min_bps, c.max_bps)
        self.loss = LossController(c.start_bps, c.min_bps, c.max_bps)
        self.rtt = 0.1  # seconds, until feedback says otherwise
        self.last_probe: ProbeResult | None = None
        self._probe: ProbeTracker | None = None
        self._next_probe_id = 0
        self._twcc = False  # transport-cc feedback seen: the send-side estimate is live
        self._ref_ext: int | None = None
        self._delay_seq = -1  # highest extended seq fed to the delay detector
        self._packet_bits = 9600.0
        self._remb: float | None = None  # smoothed REMB
        self._remb_raw: float | None = None  # latest REMB while fresh
        self._remb_at = 0.0
        self._overuse_seen = 0
        self._delay_cut_at = float("-inf")  # when the delay side last cut (see on_feedback)
        self._acked_sent = AckedBitrate()  # the acknowledged packets' rate when sent
        # Least queue delay seen over the last feedback's packets (seconds): a queue that stays,
        # as opposed to one packet's jitter.
        self.standing_queue = 0.0

    # --- per packet ---------------------------------------------------------------------------

    def on_packet_sent(self, transport_seq: int, size: int, now: float,
                       probe: bool = False) -> None:
        """Note a packet stamped with `transport_seq` (16-bit) leaving for the viewer; `size` is
        the RTP packet size in bytes. `probe` marks packets of the requested probe cluster."""
        pid = -1
        if probe:
            p = self._probe
            if p is not None and p.sending:
                p.on_sent(size, now)
                pid = p.cluster.id
        self.history.add(transport_seq, now, size, pid)
        self._packet_bits += (size * 8 - self._packet_bits) * 0.0625

    # --- feedback -----------------------------------------------------------------------------

    def on_feedback(self, feedback: TransportCC, now: float) -> ProbeResult | None:
        """Take one transport-cc feedback; returns the probe result it completes, if any."""
        arrivals = feedback.arrivals()
        # The reference time is a signed 24-bit count of 64 ms: keep it continuous across its
        # wrap (~12 days) so that arrival times from successive feedbacks stay comparable.
        ref = feedback.reference_time
        prev = self._ref_ext
        if prev is None:
            ext_ref = ref
        else:
            d = (ref - prev) & 0xFFFFFF
            ext_ref = prev + (d - 0x1000000 if d >= 0x800000 else d)
        self._ref_ext = ext_ref
        offset_us = (ext_ref - ref) * _REF_US

        h = self.history
        times, sizes, probes, reports = h.times, h.sizes, h.probes, h.reports
        acked = self.acked
        delay = self.delay
        probe = self._probe
        pid = probe.cluster.id if probe is not None else -2
        ext = h.unwrap(feedback.base_seq)
        expected = lost = 0
        # One congestion episode is answered once: loss among packets sent before the last
        # loss-based cut was already answered by it (libwebrtc spaces its cuts likewise).
        loss_fresh_after = self.loss.last_decrease
        newest_send = -1.0
        standing = float("inf")
        for a in arrivals:
            i = h.slot(ext)
            if i >= 0:
                state = reports[i]
                if a is None:
                    if state == NOT_REPORTED:
                        reports[i] = REPORTED_LOST
                        if times[i] > loss_fresh_after:
                            expected += 1
                            lost += 1
                        if probe is not None and probes[i] == pid:
                            probe.reported += 1
                elif state != REPORTED_RECEIVED:
                    reports[i] = REPORTED_RECEIVED
                    t = (a + offset_us) * 1e-6
                    size = sizes[i]
                    sent = times[i]
                    acked.add(t, size)
                    self._acked_sent.add(sent, size)
                    if ext > self._delay_seq:
                        self._delay_seq = ext
                        delay.on_packet(sent, t)
                        if delay.queue_delay < standing:
                            standing = delay.queue_delay
                    if state == NOT_REPORTED:
                        if sent > loss_fresh_after:
                            expected += 1
                        if probe is not None and probes[i] == pid:
                            probe.reported += 1
                    if probe is not None and probes[i] == pid:
                        probe.on_received(size, t)
                    newest_send = sent
            ext += 1
        if newest_send >= 0.0:
            # Sent-to-feedback time of the newest packet it acknowledges: the RTT plus however
            # long the viewer sat on it (its feedback interval), an upper bound, smoothed.
            sample = min(max(now - newest_send, 0.001), 2.0)
            self.rtt = sample if not self._twcc else 0.875 * self.rtt + 0.125 * sample
        self._twcc = True
        if self._remb_raw is not None and now - self._remb_at > self.config.remb_timeout:
            self._remb_raw = None

        if standing != float("inf"):
            self.standing_queue = standing
        usage = delay.usage
        if usage is Usage.NORMAL and self.standing_queue > self.config.max_queue_delay:
            # A queue that neither grows (that would be over-use) nor drains (under-use): we
            # send at about the capacity with a backlog. Treat it as over-use: the decrease to
            # 0.85 x the received rate lets it drain, and repeats harmlessly until it has.
            usage = Usage.OVERUSING
        if delay.overuse_events != self._overuse_seen:
            self._overuse_seen = delay.overuse_events
            usage = Usage.OVERUSING
        acked_bps = acked.bps()
        sent_bps = self._acked_sent.bps()
        if (usage is Usage.OVERUSING and 0.0 <= newest_send <= self._delay_cut_at
                and acked_bps is not None and sent_bps is not None
                and acked_bps >= 0.9 * sent_bps):
            # Over-use shown by packets sent before our last cut, while the path carries
            # what we send: a queue from before the cut, draining. Cutting again to 0.85 x
            # the received rate, which falls as we send less (a smaller layer), would spiral
            # down; hold until packets sent since show it too.
            usage = Usage.UNDERUSING  # = hold
        self.rate.update(usage, acked_bps, now, self.rtt, self._packet_bits)
        if self.rate.state is RateState.DECREASE:
            self._delay_cut_at = now
        self.loss.update(expected, lost, now, self.rtt, min(self.rate.bitrate, self.loss.bitrate))
        return self._check_probe(now)

    def _check_probe(self, now: float) -> ProbeResult | None:
        p = self._probe
        if p is None:
            return None
        if p.requested_at < 0.0:
            p.requested_at = now
        timeout = self.config.probe_timeout
        if p.sent == 0:
            if now - p.requested_at > timeout:
                self._probe = None  # never sent: forget it
            return None
        if p.sending and now - p.last_send <= timeout:
            return None
        if p.reported < p.sent and now - p.last_send <= timeout:
            return None
        self._probe = None
        result = self.last_probe = p.result()
        measured = result.bps
        if result.received_fraction >= 0.9 and p.received >= 3 and measured > 0.0:
            # What got through, nearly without loss, is a capacity sample: take a little under
            # it if it is above the estimate (a probe that failed its target still shows the
            # path carries its arrival rate).
            target = 0.95 * measured
            if target > self.rate.bitrate:
                self.rate.set_estimate(target, now)
            self.loss.raise_to(target)
        return result

    def on_remb(self, bitrate_bps: float, now: float) -> None:
        """Take a REMB from the viewer (draft-alvestrand-rmcat-remb §2.2)."""
        raw = float(bitrate_bps)
        smoothed = self._remb
        if smoothed is None or raw <= smoothed:
            self._remb = raw  # a drop means congestion at the viewer: follow at once
        else:
            w = 1.0 - math.exp(-max(now - self._remb_at, 0.0) / self.config.remb_rise_time)
            self._remb = smoothed + (raw - smoothed) * w
        self._remb_raw = raw
        self._remb_at = now

    # --- probing ------------------------------------------------------------------------------

    def probe_request(self, target_bps: float) -> ProbeCluster | None:
        """A cluster to send at `target_bps` to check the path carries it, or None: a probe is
        already under way, the target is not above the estimate, a queue is still draining, or
        the viewer only sends REMB (then nothing measures the probe)."""
        if self._probe is not None or target_bps <= self.estimate_bps:
            return None
        if self.standing_queue > self.config.max_queue_delay:
            return None  # a queue is still draining: a probe would only add to it
        if self._remb is not None and not self._twcc:
            return None
        c = self.config
        cluster = ProbeCluster(self._next_probe_id, min(float(target_bps), c.max_bps),
                               c.probe_duration, c.probe_min_packets)
        self._next_probe_id = (self._next_probe_id + 1) & 0x7FFFFFFF
        self._probe = ProbeTracker(cluster)
        return cluster

    def probe_sent(self) -> None:
        """The sender has sent the whole cluster (and noted every packet): judge it once its
        packets are reported, not at the probe timeout."""
        if self._probe is not None and self._probe.sent > 0:
            self._probe.complete = True

    @property
    def probe_active(self) -> ProbeCluster | None:
        """The cluster that still wants packets flagged `probe=True`, if any."""
        p = self._probe
        return p.cluster if p is not None and p.sending else None

    def cancel_probe(self) -> None:
        self._probe = None

    # --- outputs ------------------------------------------------------------------------------

    @property
    def has_estimate(self) -> bool:
        """Whether any feedback (transport-cc or REMB) has arrived: before that the estimate
        is only the configured start rate."""
        return self._twcc or self._remb is not None

    @property
    def estimate_bps(self) -> float:
        """What the viewer's path is thought to carry now, in bit/s."""
        c = self.config
        if self._twcc:
            est = min(self.rate.bitrate, self.loss.bitrate)
            if self._remb_raw is not None:
                est = min(est, self._remb_raw)
        elif self._remb is not None:
            est = self._remb
        else:
            est = self.rate.bitrate
        return min(c.max_bps, max(c.min_bps, est))

    @property
    def state(self) -> Usage:
        """The delay detector's hypothesis (NORMAL for a REMB-only viewer)."""
        return self.delay.usage

    @property
    def rate_state(self) -> RateState:
        return self.rate.state

    @property
    def loss_fraction(self) -> float:
        """Lost fraction at the last loss evaluation."""
        return self.loss.fraction

    @property
    def acked_bps(self) -> float | None:
        return self.acked.bps()
