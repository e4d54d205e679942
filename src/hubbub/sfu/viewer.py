"""Viewer: one subscriber's DownTracks and the RTCP feedback it sends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbub.media import rtcp, rtp
from hubbub.sfu import layers, rtcp_io
from hubbub.sfu.bwe import DownlinkEstimator, ProbeResult
from hubbub.sfu.config import SfuConfig
from hubbub.sfu.downtrack import PADDING_BYTES, DownTrack
from hubbub.sfu.totals import Totals
from hubbub.sfu.types import Clock, DownTrackParams, RtpSink

if TYPE_CHECKING:
    from hubbub.sfu.source import Source
    from hubbub.sfu.track import Track

AUDIO_ALLOWANCE = 64_000.0  # bit/s kept for each bound audio DownTrack (Opus ~32-64 kb/s)
UPGRADE_HOLD = 2.0  # seconds a larger layer must fit the budget before we move up
UPGRADE_HEADROOM = 1.15  # ... with this much room above its bitrate
DOWNGRADE_TOLERANCE = 1.2  # the current layer stays while within this of the budget ...
QUEUE_DOWNGRADE = 0.1  # ... and the bottleneck queue stays under this (seconds)
PROBE_INTERVAL = 3.0  # seconds between probes of one viewer's path
# ... doubled after each probe the path did not carry, up to this: a viewer on a small layer
# sends too little to show more capacity any other way (libwebrtc probes an application-
# limited path every 5 s). A wider path is found no later than this after it widened.
PROBE_MAX_INTERVAL = 4.0
PROBE_AGAIN_ABOVE = 1.1  # ... but reset once the estimate exceeds a failed probe's rate so
PROBE_FURTHER = 0.5  # seconds after a probe the path carried before the next one
PROBE_SETTLE = 1.5  # seconds in which a queue is taken for the probe's, not congestion
PROBE_PADDING_SIZE = PADDING_BYTES + 24  # as the send history counts it: RTP header and all
MEDIA_HEADER_BYTES = 28  # RTP header and extensions of a forwarded packet, about


def _larger(a: Track, b: Track) -> bool:
    return (a.width * a.height, a.bitrate) > (b.width * b.height, b.bitrate)


class Viewer:
    """One DownTrack per viewer m-line. The first video and first audio DownTracks carry the
    main source (chosen by the Stream); the other audio DownTracks are left to the multiplexer
    and stay idle until it binds them (`DownTrack.bind`).

    `projected` holds DownTracks added after the answer (`add_down_track`) for mids the client
    created by local renegotiation (the SDK's `addRemoteTrack`); control binds them to the
    projected source. They are never part of `down_tracks`, so the multiplexer never sees them.
    """

    def __init__(
        self,
        params: list[DownTrackParams],
        sink: RtpSink,
        pinned_source_id: str | None,
        excluded: list[str],
        config: SfuConfig,
        clock: Clock,
    ) -> None:
        self.sink = sink
        self.pinned_source_id = pinned_source_id
        self.excluded = frozenset(excluded)
        self.down_tracks = [DownTrack(p, sink, config) for p in params]
        self.main_source: Source | None = None
        self.main_video = next((d for d in self.down_tracks if d.kind == "video"), None)
        self.main_audio = next((d for d in self.down_tracks if d.kind == "audio"), None)
        self.closed = False
        self.rtcp_malformed = 0
        self.projected: dict[str, DownTrack] = {}
        self.retired = Totals()  # counts of projected DownTracks removed (sfu/totals.py)
        self._by_ssrc = {d.ssrc: d for d in self.down_tracks}
        self._clock = clock
        self._config = config
        self.sr_due = float("-inf")  # one SR time for all DownTracks (see `tick`)
        # Simulcast: the layer asked for per video mid (`select` for the main one, `project`
        # entries for others; absent = automatic), and what the last `layers` event said.
        self.layer_requests: dict[str, layers.LayerRequest] = {}
        self._layers_sent: dict[str, tuple[tuple[tuple[str, bool], ...], float]] = {}
        self._upgrade_since: dict[str, float] = {}  # mid -> since when a larger layer fits
        # Probing before moving up (sfu/bwe/probe.py): padding still to send for the cluster
        # under way, the transport seqs that carried probe padding, the next probe's time.
        self.probing = False
        """A probe cluster is under way: `pace` it."""
        self._probe_sent = 0  # padding packets sent in it
        self._probe_start = 0.0
        self._probe_bytes_per_s = 0.0  # its target rate ...
        self._probe_duration = 0.0  # ... over this long
        self._probe_media_start = 0  # `_media_bytes` when it started
        self._probe_min_padding = 0
        # Every packet sent in the probe's window is part of it (media first, padding to make
        # up the rate: as libwebrtc's pacer fills a cluster), so what arrives is the path's.
        self._probe_window = (float("inf"), float("-inf"))
        self._next_probe = float("-inf")
        self._probe_backoff = PROBE_INTERVAL
        self._probe_sent_at = float("-inf")
        self._last_probe: tuple[ProbeResult, float] | None = None  # result, when
        self.choose_at = float("inf")
        """A layer choice due before the Stream's next one: the probe after a carried one."""
        # Downlink bandwidth estimate (sfu/bwe), only for viewers with video: from the
        # viewer's transport-cc feedback on transport-wide seqs we stamp, or its REMB. The
        # estimator (~250 KB of send history) is made when there are layers to choose from.
        self.estimator: DownlinkEstimator | None = None
        self._twcc_id = 0
        if self.main_video is not None:
            twcc_id = self.main_video.params.ext_ids.get(rtp.TRANSPORT_CC, 0)
            enable = getattr(sink, "enable_send_twcc", None)
            if twcc_id and enable is not None:
                enable(twcc_id)
                self._twcc_id = twcc_id
                for down in self.down_tracks:
                    down.stamp_transport_seq(twcc_id)

    @property
    def extra_audio(self) -> list[DownTrack]:
        """Audio DownTracks after the main one: the multiplexer's slots."""
        return [d for d in self.down_tracks if d.kind == "audio" and d is not self.main_audio]

    def down_track(self, ssrc: int) -> DownTrack | None:
        return self._by_ssrc.get(ssrc)

    def down_track_for_mid(self, mid: str) -> DownTrack | None:
        """The DownTrack of `mid`, answered or projected."""
        found = self.projected.get(mid)
        if found is not None:
            return found
        return next((d for d in self.down_tracks if d.mid == mid), None)

    def add_down_track(self, params: DownTrackParams) -> DownTrack:
        """An idle DownTrack for a mid the server never answered (client-side renegotiation).

        `params` must carry the MID extension id: with no SSRC in any SDP the browser can route
        the packets only by the MID header extension (RFC 8843 §9.2).
        """
        if self.closed:
            raise ValueError("viewer is closed")
        if self.down_track_for_mid(params.mid) is not None:
            raise ValueError(f"mid {params.mid!r} already has a DownTrack")
        if params.ssrc in self._by_ssrc:
            raise ValueError(f"ssrc {params.ssrc} already in use by this viewer")
        if not params.ext_ids.get(rtp.SDES_MID):
            raise ValueError("a projected DownTrack needs the MID header extension id")
        down = DownTrack(params, self.sink, self._config)
        if self._twcc_id:
            down.stamp_transport_seq(self._twcc_id)
        self.projected[params.mid] = down
        self._by_ssrc[params.ssrc] = down
        return down

    def remove_down_track(self, mid: str) -> DownTrack | None:
        """Unbind and forget a projected DownTrack; returns it (None if `mid` has none)."""
        down = self.projected.pop(mid, None)
        if down is not None:
            down.bind(None)
            self._by_ssrc.pop(down.ssrc, None)
            self.retired.add_down(down)
        return down

    def set_main(self, source: Source | None) -> None:
        """Bind the main DownTracks to `source`'s first video/audio Tracks (None = idle)."""
        self.main_source = source
        for down in (self.main_video, self.main_audio):
            if down is not None:
                down.bind(source.track(down.kind) if source is not None else None)

    def request_layer(self, mid: str, request: layers.LayerRequest) -> None:
        """The layer `mid` should carry from now on (the move starts now, at a keyframe)."""
        previous = self.layer_requests.get(mid, layers.AUTOMATIC)
        if request.automatic and not previous.automatic:
            # Back to automatic after a pin: the estimate may have stalled at the pinned
            # layer's rate (it never grows past what is used), so probe again at once.
            self._next_probe = float("-inf")
            self._probe_backoff = PROBE_INTERVAL
            self._upgrade_since.pop(mid, None)
        self.layer_requests[mid] = request
        down = self.down_track_for_mid(mid)
        if down is not None:
            self._choose_layer(down, self._clock())

    def update_layers(self, now: float, resend_after: float) -> list[tuple[str, dict[str, object]]]:
        """Follow each simulcast video's best layer; the `layers` events due: (mid, entry)
        for a mid whose active layers changed, or every `resend_after` seconds."""
        due: list[tuple[str, dict[str, object]]] = []
        if now >= self.choose_at:
            self.choose_at = float("inf")
        for down in (self.main_video, *self.projected.values()):
            if down is None or down.kind != "video":
                continue
            track = down.pending or down.track
            if track is None or not track.simulcast:
                continue
            self._choose_layer(down, now)
            track = down.pending or down.track
            assert track is not None
            ids = layers.active_ids(track.layers, now)
            last = self._layers_sent.get(down.mid)
            if last is None or last[0] != ids or now - last[1] >= resend_after:
                self._layers_sent[down.mid] = (ids, now)
                due.append((down.mid, layers.describe(track.layers, now)))
        return due

    def _choose_layer(self, down: DownTrack, now: float) -> None:
        track = down.pending or down.track
        if track is None or not track.simulcast:
            return
        if self.estimator is None and self._twcc_id:
            self.estimator = DownlinkEstimator(self._config.bwe)  # feedback will come
        request = self.layer_requests.get(down.mid, layers.AUTOMATIC)
        budget = self.video_budget() if request.automatic else None
        target = layers.choose(track.layers, request, now, budget)
        if target is None:
            return
        if budget is not None:
            self._maybe_probe(down, track, target, now)
            probing = now - self._probe_sent_at < PROBE_SETTLE
            if (target is not track and _larger(track, target) and track.active(now)
                    and 0 < track.bitrate <= budget * DOWNGRADE_TOLERANCE
                    and self.estimator is not None
                    and (probing or self.estimator.standing_queue < QUEUE_DOWNGRADE)):
                # About fits and no queue builds (but the one our own probe left): an
                # estimate dipping is no reason to change.
                return
        if budget is not None and target is not track and _larger(target, track):
            # Up only once the larger layer has fitted for a while (no oscillation around
            # the estimate), or at once after a probe showed the path carries it.
            since = self._upgrade_since.setdefault(down.mid, now)
            probed = self._probed(target.bitrate * UPGRADE_HEADROOM, now)
            if not probed and (now - since < UPGRADE_HOLD
                               or target.bitrate * UPGRADE_HEADROOM > budget):
                return
        self._upgrade_since.pop(down.mid, None)
        self._choose_temporal(down, request, target, budget, now)
        if target is not track:
            down.switch_to(target)
        elif down.pending is not None:
            target.request_keyframe()  # still waiting: ask again (rate-limited at the Track)

    def _choose_temporal(self, down: DownTrack, request: layers.LayerRequest, target: Track,
                         budget: float | None, now: float) -> None:
        """The application's temporal cap, else, when even the smallest layer is over the
        budget, dropping VP8 temporal layers is what is left before the picture freezes."""
        cap = request.temporal_layer_id
        if cap is None and budget is not None:
            smallest = next((t for t in layers.ranked(target.layers) if t.active(now)), None)
            if smallest is target:
                cap = layers.temporal_cap(target, budget, down.max_temporal_layer,
                                          UPGRADE_HEADROOM)
        down.set_max_temporal_layer(cap, now)

    def _maybe_probe(self, down: DownTrack, track: Track, target: Track, now: float) -> None:
        """A larger live layer than the viewer gets: check the path with a probe at what the
        next one up needs (at most twice the estimate: probes climb, they do not leap)."""
        estimator = self.estimator
        if estimator is None or down is not self.main_video:
            return
        last = self._last_probe
        if (last is not None and last[0].congested
                and estimator.estimate_bps > PROBE_AGAIN_ABOVE * last[0].bps):
            # The estimate grew well past what the failed probe got through: the path
            # changed, so the backoff that failure earned no longer holds.
            self._probe_backoff = PROBE_INTERVAL
            self._next_probe = min(self._next_probe, last[1] + PROBE_INTERVAL)
        if now < self._next_probe:
            return
        # The next layer up from what the viewer gets now.
        larger = [t for t in layers.ranked(track.layers)
                  if t.active(now, layers.ACTIVE_WITHIN) and _larger(t, track)]
        if not larger:
            return
        audio = self._audio_allowance()
        want = min(larger[0].bitrate * UPGRADE_HEADROOM + audio, 2 * estimator.estimate_bps)
        if last is not None and last[0].congested:
            # The path did not carry the last one: wait longer each time (a probe that fails
            # fills the bottleneck's queue for everything else).
            self._probe_backoff = min(self._probe_backoff * 2, PROBE_MAX_INTERVAL)
        else:
            self._probe_backoff = PROBE_INTERVAL
        cluster = estimator.probe_request(want)
        self._next_probe = now + self._probe_backoff
        if cluster is not None:
            self._probe_sent_at = now
            self._probe_bytes_per_s = cluster.target_bps / 8
            self._probe_duration = cluster.duration
            self._probe_window = (float("inf"), float("-inf"))
            self._probe_sent = 0
            self._probe_start = now
            self._probe_media_start = self._media_bytes()
            self._probe_min_padding = cluster.min_packets
            self.probing = True
            self.pace(now)

    def _media_bytes(self) -> int:
        """Bytes of media sent to this viewer so far, as the send history counts them."""
        return sum(d.octets_sent + MEDIA_HEADER_BYTES * d.packets_sent for d in self.down_tracks)

    def pace(self, now: float) -> bool:
        """Make up the probe's rate with padding: every packet sent in its window counts, the
        media first (libwebrtc's pacer fills a cluster likewise), so the padding is what the
        media left short by `now`, one packet ahead. True while the probe runs. Called every
        tick, and by control's pacer every 5 ms while a probe is under way: a burst would
        overflow a shallow bottleneck queue and read as a path that cannot carry it."""
        if not self.probing:
            return False
        down = self.main_video
        elapsed = min(now - self._probe_start, self._probe_duration)
        media = self._media_bytes() - self._probe_media_start
        due = self._probe_bytes_per_s * elapsed + PROBE_PADDING_SIZE
        sent = media + self._probe_sent * PROBE_PADDING_SIZE
        done = elapsed >= self._probe_duration
        while sent < due or (done and self._probe_sent < self._probe_min_padding):
            if self.closed or down is None or not down.send_padding(1):
                self.probing = False  # nothing to carry it (idle, closed): drop the probe
                return False
            self._probe_sent += 1
            sent += PROBE_PADDING_SIZE
        if self._probe_sent:
            # Up to after the send: the sink stamps each packet as it leaves, after `now`.
            self._probe_window = (min(self._probe_window[0], now), self._clock())
        if done:
            self.probing = False
        return self.probing

    def _probed(self, bps: float, now: float) -> bool:
        """A probe showed the path carries at least `bps` within the last PROBE_INTERVAL
        (what arrived, not what was aimed at: under load a probe leaves late and slower)."""
        last = self._last_probe
        # 90 %: the probe's own arrival rate leaves out the media sharing the path with it.
        return (last is not None and not last[0].congested and last[0].bps >= 0.9 * bps
                and now - last[1] < PROBE_INTERVAL)

    def _audio_allowance(self) -> float:
        return sum(AUDIO_ALLOWANCE for d in self.down_tracks
                   if d.kind == "audio" and d.track is not None)

    def video_budget(self) -> float | None:
        """Bit/s for this viewer's video: the downlink estimate less what its audio takes
        (audio always goes first); None for a viewer that sends neither transport-cc nor
        REMB (then the largest live layer). A viewer whose feedback never comes stays on
        what the start rate fits: the cautious side."""
        estimator = self.estimator
        if estimator is None:
            return None
        # Before any feedback this is the start rate: a viewer starts on a layer that fits
        # it, not on the largest one whatever its link (sfu/bwe BweConfig.start_bps).
        return max(0.0, estimator.estimate_bps - self._audio_allowance())

    def on_rtcp(self, data: bytes) -> None:
        """NACK / PLI / FIR / receiver reports from the viewer."""
        if self.closed:
            return
        now = self._clock()
        try:
            events, bad = rtcp_io.read_feedback(data)
        except ValueError:
            self.rtcp_malformed += 1
            return
        self.rtcp_malformed += bad
        for event in events:
            if isinstance(event, rtcp_io.NackEvent):
                down = self._by_ssrc.get(event.media_ssrc)
                if down is not None:
                    down.on_nack(event.lost, now)
            elif isinstance(event, rtcp_io.KeyframeEvent):
                down = self._by_ssrc.get(event.media_ssrc)
                if down is not None:
                    down.request_keyframe()
            elif isinstance(event, rtcp_io.BlockEvent):
                down = self._by_ssrc.get(event.ssrc)
                if down is not None:
                    down.on_report_block(event.fraction_lost, event.cumulative_lost,
                                         event.jitter, event.lsr, event.dlsr, now)
            elif isinstance(event, rtcp_io.TransportFeedbackEvent):
                self._on_transport_feedback(event.packet, now)
            elif self.main_video is not None:  # REMB: a video viewer's own estimate
                if self.estimator is None:
                    self.estimator = DownlinkEstimator(self._config.bwe)
                self.estimator.on_remb(event.bitrate, now)

    def _on_transport_feedback(self, packet: bytes, now: float) -> None:
        """Feed the estimate, but only while it chooses something: a video with simulcast
        layers. Otherwise the send records are dropped unread (the estimate costs a few
        hundred µs per feedback in Python, ten times a second per viewer)."""
        estimator = self.estimator
        if estimator is None or not self._choosing_layers():
            discard = getattr(self.sink, "discard_sent", None)
            if discard is not None:
                discard()
            return
        drain = getattr(self.sink, "drain_sent", None)
        if drain is None:
            return
        sent = drain()
        first, last = self._probe_window
        for seq, size, sent_at in sent:
            estimator.on_packet_sent(seq, size, sent_at, first <= sent_at <= last)
        if not self.probing:
            estimator.probe_sent()  # paced out in full: every packet of it is noted above
        try:
            feedback = rtcp.TransportCC.parse(packet)
        except ValueError:
            self.rtcp_malformed += 1
            return
        result = estimator.on_feedback(feedback, now)
        if result is not None:
            down = self.main_video
            self._last_probe = (result, now)
            if not result.congested:
                # Carried: climb on (the next probe aims at what the next layer needs, at
                # most twice the new estimate) instead of waiting out a backoff set earlier.
                self._probe_backoff = PROBE_INTERVAL
                self._next_probe = min(self._next_probe, now + PROBE_FURTHER)
                self.choose_at = self._next_probe
            if down is not None:
                self._choose_layer(down, now)  # a move up the probe allows, now
            return
        down = self.main_video
        track = down.track if down is not None else None
        budget = self.video_budget()
        if (down is not None and track is not None and down.pending is None
                and budget is not None and track.bitrate > budget * DOWNGRADE_TOLERANCE):
            # Over budget: move down now, not at the next layer choice (up to 0.5 s later),
            # while the bottleneck's queue and the freeze it brings still grow.
            self._choose_layer(down, now)

    def _choosing_layers(self) -> bool:
        """A video with simulcast layers whose choice is automatic: only then does the
        estimate choose anything (it costs ~0.2-0.3 ms of Python per feedback; a pinned
        viewer's is left to rest, and probing starts afresh when it goes automatic)."""
        for down in (self.main_video, *self.projected.values()):
            if down is None or down.track is None or not down.track.simulcast:
                continue
            if self.layer_requests.get(down.mid, layers.AUTOMATIC).automatic:
                return True
        return False

    def tick(self, now: float, ntp_now: int, sr_interval: float) -> None:
        """Every `sr_interval`: the SRs of all DownTracks that have sent something (answered
        and projected), aggregated into as few compound packets as fit (one for a typical
        viewer), one SRTCP protect and one datagram each instead of one per DownTrack."""
        if self.probing:
            self.pace(now)
        if now < self.sr_due or self.closed:
            return
        self.sr_due = now + sr_interval
        reports: list[bytes] = []
        chunks: list[bytes] = []
        for downs in (self.down_tracks, self.projected.values()):
            for down in downs:
                report = down.sr_packet(now, ntp_now)
                if report is not None:
                    reports.append(report)
                    chunks.append(down.sdes_chunk)
        if reports:
            send = self.sink.send_rtcp
            for packet in rtcp_io.sender_report_compounds(reports, chunks):
                send(packet)

    def close(self) -> None:
        self.closed = True
        self.main_source = None
        for down in self.down_tracks:
            down.bind(None)
        for down in self.projected.values():
            down.bind(None)
