"""Source: one publisher feed (sourceId) and the demux of its RTP/RTCP onto Tracks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

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
        # One Track per m-line (what events, projection and replacement name), and per
        # simulcast m-line one more per further layer: `all_tracks` holds them all.
        self.tracks: list[Track] = []
        self.all_tracks: list[Track] = []
        for p in params:
            layers = _layers(self, p, sink, config, clock)
            self.tracks.append(layers[-1])  # a viewer starts on the last-listed layer
            self.all_tracks += layers
        self.closed = False
        self.replaced = False
        self.timed_out = False
        self.last_packet_time = clock()
        self.started_at = self.last_packet_time  # when it was published (stats API)
        self.on_replaced: Callable[[], None] | None = None  # set by control
        self.packets_malformed = 0
        self.packets_unknown = 0
        self.packets_dropped = 0  # FEC/RED payload types, RTX we cannot place
        self.packets_repaired = 0  # RTX packets (RFC 4588) unwrapped into their layer
        self.packets_redundant = 0  # RTX of packets we have (libwebrtc's payload padding)
        self.rtcp_malformed = 0
        self._clock = clock
        self._max_learned = config.max_learned_ssrcs
        self._learned = 0
        self._by_ssrc: dict[int, Track] = {}
        self._rtx_by_ssrc: dict[int, Track] = {}  # RTX SSRC -> the layer it repairs
        for track in self.all_tracks:
            for ssrc in track.params.ssrcs:
                self._by_ssrc.setdefault(ssrc, track)
        for track in self.all_tracks:
            for rtx_ssrc, media_ssrc in track.params.repair_ssrcs.items():
                repaired = self._by_ssrc.get(media_ssrc)
                if repaired is not None:
                    self._rtx_by_ssrc[rtx_ssrc] = repaired
        self._by_mid = {t.mid: t for t in self.tracks}
        self._by_rid = {(t.mid, t.rid): t for t in self.all_tracks if t.rid is not None}
        self._rtx_pts = {t.params.rtx_payload_type for t in self.tracks
                         if t.params.rtx_payload_type}
        # BUNDLE (RFC 8843): one extension id space per transport, so any m-line's ids will do.
        self._mid_ext_id = _ext_id(self.tracks, rtp.SDES_MID)
        self._rid_ext_id = _ext_id(self.tracks, rtp.RID)
        self._repaired_rid_ext_id = _ext_id(self.tracks, rtp.REPAIRED_RID)

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
            if pt in self._rtx_pts:
                self._on_rtx(data, pt, ssrc, offset)
                return
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

    def _on_rtx(self, data: bytes, pt: int, ssrc: int, offset: int) -> None:
        """A retransmission (RFC 4588 §4): the original sequence number (OSN) leads the
        payload. Rebuilt as the original packet of its layer (same header and extensions, the
        layer's PT, SSRC and OSN) and handed on as if it had arrived the first time; one
        allocation per retransmitted packet, which is rare."""
        track = self._rtx_by_ssrc.get(ssrc)
        if track is None:
            track = self._learn_rtx(data, pt, ssrc)
            if track is None:
                self.packets_unknown += 1
                return
        end = len(data) - data[-1] if data[0] & 0x20 else len(data)
        if end - offset < 2 or not track.media_ssrc:
            # Padding-only RTX (a bandwidth probe) or nothing known to repair yet.
            self.packets_dropped += 1
            return
        seq = (data[offset] << 8) | data[offset + 1]
        if track.nacks is None or not track.nacks.is_missing(seq):
            # libwebrtc probes with "payload padding": RTX copies of packets already sent.
            # Unwrapped they would count as layer bitrate (misranking layers against the
            # budget) and reach every viewer twice; only a gap we asked for is repaired.
            self.packets_redundant += 1
            return
        header = bytearray(data[:offset])
        header[0] &= 0xDF  # P: the RTX packet's padding is not carried over
        header[1] = (header[1] & 0x80) | track.params.payload_type
        header[2:4] = data[offset:offset + 2]
        header[8:12] = track.media_ssrc.to_bytes(4, "big")
        original = bytes(header) + data[offset + 2:end]
        self.packets_repaired += 1
        ts = int.from_bytes(data[4:8], "big")
        now = self._clock()
        self.last_packet_time = now
        track.on_rtp(original, seq, ts, track.media_ssrc, offset, end - offset - 2, now)

    def _learn_rtx(self, data: bytes, pt: int, ssrc: int) -> Track | None:
        """The layer an RTX SSRC repairs, from the repaired-RID extension (RFC 8852 §3.2) or,
        for an m-line with a single encoding, from the RTX payload type."""
        if self._learned >= self._max_learned:
            return None
        track: Track | None = None
        rid = self._extension_text(data, self._repaired_rid_ext_id)
        mid = self._extension_text(data, self._mid_ext_id)
        if rid is not None:
            track = self._by_rid.get((mid, rid)) if mid is not None else next(
                (t for (_, r), t in self._by_rid.items() if r == rid), None)
        if track is None:
            by_pt = [t for t in self.tracks if t.params.rtx_payload_type == pt]
            if len(by_pt) == 1 and not by_pt[0].simulcast:
                track = by_pt[0]
        if track is not None:
            self._rtx_by_ssrc[ssrc] = track
            self._learned += 1
        return track

    def _extension_text(self, data: bytes, ext_id: int) -> str | None:
        if not ext_id:
            return None
        try:
            found = rtp.find_extension(data, ext_id)
        except ValueError:
            return None
        if found is None:
            return None
        return data[found[0]:found[0] + found[1]].decode("ascii", "replace")

    def _learn(self, data: bytes, pt: int, ssrc: int) -> Track | None:
        if self._learned >= self._max_learned:
            return None
        track: Track | None = None
        mid = self._extension_text(data, self._mid_ext_id)
        rid = self._extension_text(data, self._rid_ext_id)
        if rid is not None:
            # RFC 8852: the RID names the simulcast layer; the MID (if sent) the m-line.
            track = self._by_rid.get((mid, rid)) if mid is not None else next(
                (t for (_, r), t in self._by_rid.items() if r == rid), None)
        elif mid is not None:
            track = self._by_mid.get(mid)
            if track is not None and track.simulcast and track.rid is not None:
                track = None  # a RID layer without its RID: cannot tell which
        if track is None:
            by_pt = [t for t in self.tracks if t.params.payload_type == pt]
            if len(by_pt) == 1 and not by_pt[0].simulcast:
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
        for track in self.all_tracks:
            track.detach_all()


def _ext_id(tracks: list[Track], uri: str) -> int:
    return next((i for i in (t.params.ext_ids.get(uri, 0) for t in tracks) if i), 0)


def _layers(source: Source, params: TrackParams, sink: RtpSink, config: SfuConfig,
            clock: Clock) -> list[Track]:
    """The Tracks of one m-line: one, or one per simulcast layer (sharing `layers`)."""
    if params.kind == "video" and len(params.layer_ssrcs) > 1 and len(params.rids) == len(
            params.layer_ssrcs):
        # Layers known by SSRC but named: a relay copy (sfu/relay.py) keeps the origin's
        # encoding ids, so `select` means the same on every node; RIDs are not relayed.
        layers = [Track(source, replace(params, ssrcs=[ssrc]), sink, config, clock, rid=rid)
                  for ssrc, rid in zip(params.layer_ssrcs, params.rids, strict=True)]
    elif params.kind == "video" and len(params.rids) > 1:
        layers = [Track(source, replace(params, ssrcs=[]), sink, config, clock, rid=rid)
                  for rid in params.rids]
    elif params.kind == "video" and len(params.layer_ssrcs) > 1:
        layers = [Track(source, replace(params, ssrcs=[ssrc]), sink, config, clock)
                  for ssrc in params.layer_ssrcs]
    else:
        return [Track(source, params, sink, config, clock)]
    for layer in layers:
        layer.layers = layers
    return layers
