"""Source: one publisher feed (sourceId) and the demux of its RTP/RTCP onto Tracks."""

from __future__ import annotations

from collections.abc import Callable

from hubbub.media import rtp
from hubbub.sfu import rtcp_io
from hubbub.sfu.config import SfuConfig
from hubbub.sfu.track import Track
from hubbub.sfu.types import Clock, RtpSink, TrackParams


class Source:
    """A publisher's feed within a Stream; `source_id` None is the main source.

    Incoming RTP is demuxed by SSRC; an unknown SSRC is learned from the MID header extension
    (RFC 8843 §15) or, failing that, from a payload type only one Track uses. RTX, FEC/RED
    (any PT other than the Track's codec PT) and padding-only packets are dropped and counted.
    """

    def __init__(
        self,
        source_id: str | None,
        params: list[TrackParams],
        sink: RtpSink,
        config: SfuConfig,
        clock: Clock,
        order: int,
    ) -> None:
        self.source_id = source_id
        self.sink = sink
        self.order = order  # publish order within the Stream: lower = older
        self.tracks = [Track(self, p, sink, config, clock) for p in params]
        self.closed = False
        self.replaced = False
        self.timed_out = False
        self.last_packet_time = clock()
        self.on_replaced: Callable[[], None] | None = None  # set by control
        self.packets_malformed = 0
        self.packets_unknown = 0
        self.packets_dropped = 0  # RTX/FEC payload types and padding-only packets
        self.rtcp_malformed = 0
        self._clock = clock
        self._max_learned = config.max_learned_ssrcs
        self._learned = 0
        self._by_ssrc: dict[int, Track] = {}
        for track in self.tracks:
            for ssrc in track.params.ssrcs:
                self._by_ssrc.setdefault(ssrc, track)
        self._by_mid = {t.mid: t for t in self.tracks}
        # BUNDLE (RFC 8843): one extension id space per transport, so any m-line's MID id will do.
        mid_ids = [t.params.ext_ids.get(rtp.SDES_MID, 0) for t in self.tracks]
        self._mid_ext_id = next((i for i in mid_ids if i), 0)

    def track(self, kind: str, index: int = 0) -> Track | None:
        """The index-th Track of a kind, else the first of that kind, else None."""
        same = [t for t in self.tracks if t.kind == kind]
        if not same:
            return None
        return same[index] if index < len(same) else same[0]

    def on_rtp(self, data: bytes) -> None:
        """Decrypted RTP from the publisher (hot path)."""
        if self.closed:
            return
        try:
            pt, _marker, seq, ts, ssrc = rtp.read_header(data)
            offset = rtp.payload_offset(data)
        except ValueError:
            self.packets_malformed += 1
            return
        track = self._by_ssrc.get(ssrc)
        if track is None:
            track = self._learn(data, pt, ssrc)
            if track is None:
                self.packets_unknown += 1
                return
        end = len(data) - data[-1] if data[0] & 0x20 else len(data)
        # Padding-only packets (bandwidth probes, RFC 3550 §5.1 P bit) are forwarded: they hold
        # sequence numbers, and dropping them would leave holes no NACK can fill.
        if pt != track.params.payload_type:
            self.packets_dropped += 1
            return
        now = self._clock()
        self.last_packet_time = now
        self.timed_out = False
        track.on_rtp(data, seq, ts, ssrc, offset, end - offset, now)

    def _learn(self, data: bytes, pt: int, ssrc: int) -> Track | None:
        if self._learned >= self._max_learned:
            return None
        track: Track | None = None
        if self._mid_ext_id:
            try:
                found = rtp.find_extension(data, self._mid_ext_id)
            except ValueError:
                found = None
            if found is not None:
                mid = data[found[0]:found[0] + found[1]].decode("ascii", "replace")
                track = self._by_mid.get(mid)
        if track is None:
            by_pt = [t for t in self.tracks if t.params.payload_type == pt]
            if len(by_pt) == 1:
                track = by_pt[0]
        if track is not None:
            self._by_ssrc[ssrc] = track
            self._learned += 1
        return track

    def on_rtcp(self, data: bytes) -> None:
        """RTCP from the publisher: SRs give each Track its NTP <-> RTP mapping."""
        if self.closed:
            return
        now = self._clock()
        try:
            for ssrc, ntp, rtp_ts in rtcp_io.sender_reports(data):
                track = self._by_ssrc.get(ssrc)
                if track is not None:
                    track.on_sender_report(ntp, rtp_ts, now)
        except ValueError:
            self.rtcp_malformed += 1

    def close(self) -> None:
        """Stop accepting media; DownTracks must have been moved or unbound by the Stream."""
        self.closed = True
        for track in self.tracks:
            track.detach_all()
