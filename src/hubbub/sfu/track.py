"""Track: one publisher m-line — receive state, keyframe requests and its DownTracks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hubbub.media import codecs, rtp
from hubbub.sfu import rtcp_io
from hubbub.sfu.activity import ActivityMeter
from hubbub.sfu.config import SfuConfig
from hubbub.sfu.keyframe import KeyframeLimiter
from hubbub.sfu.mapping import codec_key
from hubbub.sfu.nack import NackGenerator
from hubbub.sfu.receive_stats import ReceiveStats
from hubbub.sfu.types import Clock, RtpSink, TrackParams

if TYPE_CHECKING:
    from hubbub.sfu.downtrack import DownTrack
    from hubbub.sfu.source import Source


class Track:
    """Receive side of one publisher m-line; fans each packet out to its DownTracks.

    Keeps what viewers and reports need: counts, last seq/ts/arrival, RFC 6464 audio level,
    keyframe state, the publisher's last SR (NTP <-> RTP mapping, for lip sync) and RFC 3550
    reception statistics for the RR.
    """

    def __init__(
        self, source: Source, params: TrackParams, sink: RtpSink, config: SfuConfig, clock: Clock,
        rid: str | None = None,
    ) -> None:
        self.source = source
        self.params = params
        # Simulcast: one Track per encoding of the m-line, all sharing `layers` (Source sets
        # it); `rid` names the encoding (RFC 8852), None for SSRC-group layers and plain tracks.
        self.rid = rid
        self.layers: list[Track] = [self]
        self.bitrate = 0  # bit/s over the last measuring window (Stream.tick)
        self.width = self.height = 0  # of the last keyframe, where the codec says
        self._measured_bytes = 0
        self.padding_bytes = 0  # padding-only packets (the publisher's probes): not bitrate
        self._measured_at = float("-inf")
        self._switchers: list[DownTrack] = []  # DownTracks moving here at our next keyframe
        self.kind = params.kind
        self.mid = params.mid
        self.codec = params.codec
        self.clock_rate = params.clock_rate
        self.codec_key = codec_key(params)
        self.media_ssrc = params.ssrcs[0] if params.ssrcs else 0
        self.down_tracks: list[DownTrack] = []
        # Their per-packet state objects, in the same order (kept by DownTrack.bind), for the
        # C fan-out: one call rewrites, caches, protects and sends to every bound viewer.
        self.down_states: list[Any] = []
        c = rtp.speedups()
        self._fanout: Callable[..., Any] | None = c.fanout if c is not None else None
        self.packets = 0
        self.bytes = 0
        self.last_seq = -1
        self.last_ts = -1
        self.last_arrival = float("-inf")
        self.audio_level = 127  # RFC 6464: 127 = silence
        self.audio_level_time = float("-inf")
        self.activity = ActivityMeter(config.multiplexer)
        # Set by the Stream on audio Tracks: called when a packet starts speech, before that
        # packet fans out, so a slot the multiplexer binds right away already carries it.
        self.on_speech: Callable[[Track], None] | None = None
        self.keyframe_seen = False
        self.last_keyframe_time = float("-inf")
        self.sr_ntp = -1  # 64-bit NTP of the publisher's last SR; -1 = none yet
        self.sr_rtp = 0
        self.sr_arrival = float("-inf")
        self.receive = ReceiveStats()
        self.keyframes = KeyframeLimiter(config.keyframe_min_interval)
        self.rr_due = float("-inf")
        self._video = params.kind == "video"
        self._level_id = params.ext_ids.get(rtp.AUDIO_LEVEL, 0) if params.kind == "audio" else 0
        self._keyframe_waiters = 0
        self._sink = sink
        self._server_ssrc = config.server_ssrc
        self._cname = config.cname
        self._clock = clock
        # Ask the publisher again for lost video packets when it negotiated generic NACK.
        self.nacks: NackGenerator | None = (
            NackGenerator(config.nack) if self._video and "nack" in params.rtcp_fbs else None
        )

    def on_rtp(self, data: bytes, seq: int, ts: int, ssrc: int, offset: int, length: int,
               now: float) -> None:
        """One accepted media packet; `offset`/`length` locate its payload (hot path)."""
        self.media_ssrc = ssrc
        self.packets += 1
        self.bytes += len(data)
        if not length:
            self.padding_bytes += len(data)
        self.last_seq = seq
        self.last_ts = ts
        self.last_arrival = now
        self.receive.update(seq, ts, now, self.clock_rate)
        if self.nacks is not None:
            lost = self.nacks.on_seq(seq, now)
            if lost:
                self._sink.send_rtcp(rtcp_io.nack(self._server_ssrc, ssrc, lost))
        if self._level_id:
            level = rtp.audio_level(data, self._level_id)
            if level >= 0:
                self.audio_level = level
                self.audio_level_time = now
                if self.activity.update(level, now) and self.on_speech is not None:
                    self.on_speech(self)
        keyframe = False
        if self._video and (self._keyframe_waiters or not self.keyframe_seen
                            or (len(self.layers) > 1  # layer sizes come from keyframes
                                and codecs.may_start_keyframe(self.codec, data, offset))):
            payload = data[offset:offset + length]
            keyframe = codecs.is_keyframe(self.codec, payload)
            if keyframe:
                self.keyframe_seen = True
                self.last_keyframe_time = now
                size = codecs.keyframe_size(self.codec, payload)
                if size is not None:
                    self.width, self.height = size
                if self._switchers:
                    # Layer switches wait for this: the viewer's decoder starts cleanly here.
                    switchers, self._switchers = self._switchers, []
                    for down in switchers:
                        self._keyframe_waiters -= 1
                        down.complete_switch(self)
        fanout = self._fanout
        if fanout is None:
            for down in self.down_tracks:
                down.forward(data, seq, ts, length, keyframe, now)
            return
        if not self.down_states:
            return
        result = fanout(self.down_states, data, seq, ts, length, now)
        if result is not None:
            # DownTracks the C path left alone (just bound, waiting for a keyframe, two-byte
            # extension form) and datagrams the kernel refused (socket buffer full).
            slow, leftovers = result
            if slow is not None:
                for down in slow:
                    down.forward(data, seq, ts, length, keyframe, now)
            if leftovers is not None:
                for packet, target in leftovers:
                    target.send_raw(packet)

    def send_due_nacks(self, now: float) -> None:
        """Retry requests for packets still missing (called from the ticker)."""
        if self.nacks is not None and self.media_ssrc and not self.source.closed:
            lost = self.nacks.due(now)
            if lost:
                self._sink.send_rtcp(rtcp_io.nack(self._server_ssrc, self.media_ssrc, lost))

    def on_sender_report(self, ntp: int, rtp_ts: int, now: float) -> None:
        """The publisher's SR for our media SSRC (RFC 3550 §6.4.1)."""
        self.sr_ntp = ntp
        self.sr_rtp = rtp_ts
        self.sr_arrival = now

    def request_keyframe(self) -> bool:
        """Send a PLI to the publisher unless one went out within the configured interval."""
        if not self._video or not self.media_ssrc or self.source.closed:
            return False
        if not self.keyframes.allow(self._clock()):
            return False
        self._sink.send_rtcp(rtcp_io.pli(self._server_ssrc, self.media_ssrc))
        return True

    def build_receiver_report(self, now: float) -> bytes | None:
        """RR with one report block for this track, or None before the first packet."""
        if not self.receive.started:
            return None
        values = self.receive.report()
        if self.sr_ntp < 0:
            lsr = dlsr = 0
        else:
            # RFC 3550 §6.4.1: LSR = middle 32 bits of the SR's NTP timestamp, DLSR in 1/65536 s.
            lsr = (self.sr_ntp >> 16) & 0xFFFFFFFF
            dlsr = min(0xFFFFFFFF, int((now - self.sr_arrival) * 65536))
        return rtcp_io.receiver_report(
            self._server_ssrc, self.media_ssrc, values, lsr, dlsr, self._cname
        )

    @property
    def keyframe_waiters(self) -> int:
        """Bound DownTracks still waiting for a keyframe (keyframe detection runs meanwhile)."""
        return self._keyframe_waiters

    def add_keyframe_waiter(self) -> None:
        self._keyframe_waiters += 1

    def remove_keyframe_waiter(self) -> None:
        self._keyframe_waiters -= 1

    # --- simulcast ------------------------------------------------------------------------

    @property
    def simulcast(self) -> bool:
        return len(self.layers) > 1

    @property
    def encoding_id(self) -> str:
        """The layer's name in `layers` events and `select`: its RID, else its index in the
        SSRC group."""
        return self.rid if self.rid is not None else str(self.layers.index(self))

    def active(self, now: float, within: float = 1.0) -> bool:
        return now - self.last_arrival < within

    def measure(self, now: float) -> None:
        """Update `bitrate` from the bytes since the last call (called about once a second)."""
        elapsed = now - self._measured_at
        if elapsed > 0 and self._measured_at > float("-inf"):
            media = self.bytes - self.padding_bytes
            self.bitrate = int((media - self._measured_bytes) * 8 / elapsed)
        self._measured_bytes = self.bytes - self.padding_bytes
        self._measured_at = now

    def add_switcher(self, down: DownTrack) -> None:
        """`down` moves to this layer at its next keyframe (asked for now)."""
        if down not in self._switchers:
            self._switchers.append(down)
            self._keyframe_waiters += 1
        self.request_keyframe()

    def remove_switcher(self, down: DownTrack) -> None:
        if down in self._switchers:
            self._switchers.remove(down)
            self._keyframe_waiters -= 1

    @property
    def switchers(self) -> list[DownTrack]:
        return list(self._switchers)

    def detach_all(self) -> list[DownTrack]:
        """Unbind every DownTrack (the Source is going away) and return them."""
        for down in list(self._switchers):
            down.cancel_switch()
        downs = list(self.down_tracks)
        for down in downs:
            down.bind(None)
        return downs
