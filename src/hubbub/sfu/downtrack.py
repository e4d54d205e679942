"""DownTrack: one viewer m-line — rewrites a Track's packets into the viewer's stream."""

from __future__ import annotations

from typing import Any

from hubbub.media import rtp
from hubbub.sfu import rtcp_io
from hubbub.sfu.config import SfuConfig
from hubbub.sfu.mapping import extension_map, viewer_payload_type
from hubbub.sfu.packet_cache import PacketCache
from hubbub.sfu.track import Track
from hubbub.sfu.types import DownTrackParams, RtpSink
from hubbub.sfu.vp8 import (
    SeqGapCloser,
    Vp8Descriptor,
    Vp8Munger,
    parse_descriptor,
    shift_descriptor,
)

_NO_EXTENSIONS = bytes(256)
PADDING_BYTES = 224  # per padding-only packet (at most 255: one octet counts them)
# V=2, P=1, PT and the rest filled by rewrite_packet: a header to rewrite, then the padding.
_PADDING_HEADER = bytes((0xA0, 0)) + bytes(10)
# Packets this far past the sync point can no longer be confused with ones from before it.
_GUARD_SPAN = 0x1000
_LOOKBACK = 16  # sent packets searched for the last VP8 descriptor (padding is not cached)
TEMPORAL_RAISE_WAIT = 1.0  # seconds a temporal-layer raise waits for a sync frame


_SHARED: dict[bytes, bytes] = {}


def _shared(value: bytes) -> bytes:
    """One object per distinct ext_map / MID value, so the C fan-out over thousands of
    DownTracks reads a few hot cache lines instead of one copy per viewer."""
    if len(_SHARED) > 4096:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)


class DownState:
    """The per-packet state of a DownTrack (pure-Python twin of `hubbub._speedups.DownState`,
    which `Track`'s C fan-out reads and writes; DownTrack's own code works on either)."""

    __slots__ = ("pt", "ssrc", "seq_offset", "ts_offset", "last_seq", "last_ts", "sync_seq",
                 "packets_sent", "octets_sent", "dropped_old", "dropped_malformed", "mid_id",
                 "twcc_id", "vp8_pid_offset", "vp8_tl0_offset", "vp8_shift", "last_time",
                 "guard", "slow", "mid", "ext_map", "cache", "target", "sink_send", "owner")

    def __init__(self) -> None:
        self.pt = -1
        self.ssrc = self.seq_offset = self.ts_offset = self.last_seq = self.last_ts = 0
        self.sync_seq = self.packets_sent = self.octets_sent = self.dropped_old = 0
        self.dropped_malformed = self.mid_id = self.twcc_id = 0
        self.vp8_pid_offset = self.vp8_tl0_offset = 0
        self.vp8_shift = False  # add the offsets to each VP8 PictureID / TL0PICIDX
        self.last_time = float("-inf")
        self.guard = False
        self.slow = True  # the next packet needs DownTrack.forward (always, in pure Python)
        self.mid = b""
        self.ext_map = _NO_EXTENSIONS
        self.cache: Any = None
        self.target: Any = None
        self.sink_send: Any = None
        self.owner: Any = None


class DownTrack:
    """Outgoing RTP stream to one viewer m-line, bound to at most one Track at a time.

    The outgoing SSRC never changes. On every (re)bind the next forwarded packet re-bases the
    offsets (mediasoup SeqManager / LiveKit rtpmunger idea): seq continues at last sent + 1 and
    the timestamp advances by the wall-clock gap (at least one frame), so the viewer's jitter
    buffer and libsrtp's ROC guess (RFC 3711 §3.3.1) see one continuous stream. A video DownTrack
    drops packets after a bind until a keyframe, so the decoder never starts on a delta frame.
    """

    def __init__(self, params: DownTrackParams, sink: RtpSink, config: SfuConfig) -> None:
        self.params = params
        self.kind = params.kind
        self.mid = params.mid
        self.ssrc = params.ssrc
        self.sink = sink
        self.track: Track | None = None
        size = config.video_cache_size if params.kind == "video" else config.audio_cache_size
        c = rtp.speedups()
        # Seq/ts offsets, counters and the cache live in one state object that Track.on_rtp's
        # C fan-out updates directly; this class handles what is rare (binds, re-basing,
        # keyframe waits) and is the whole path in pure Python.
        st: Any = c.DownState() if c is not None else DownState()
        # Without negotiated NACK nobody can ask for a resend (RFC 4585 §4.2): no cache, which
        # spares a bytes object and a cache slot per forwarded packet (all audio today).
        if not params.nack:
            st.cache = None
        else:
            st.cache = c.PacketCache(size) if c is not None else PacketCache(size)
        st.ssrc = params.ssrc
        st.mid = _shared(params.mid.encode())
        st.mid_id = params.ext_ids.get(rtp.SDES_MID, 0)
        st.ext_map = _NO_EXTENSIONS
        st.target = getattr(sink, "c_target", None) if c is not None else None
        st.sink_send = sink.send_rtp
        st.owner = self
        self._st = st
        self.cache: PacketCache | None = st.cache
        self.last_clock_rate = 0
        self.binds = 0
        self.dropped_no_codec = 0
        self.dropped_waiting_keyframe = 0
        self.nacks_received = 0
        self.packets_resent = 0
        self.nacks_ignored = 0  # NACKed seqs from before the current binding (see on_nack)
        self._bind_start = -1  # output seq of the current binding's first packet
        self.keyframe_requests = 0
        # From the viewer's receiver reports (RFC 3550 §6.4.1), for stats.
        self.fraction_lost = 0
        self.cumulative_lost = 0
        self.jitter = 0
        self.rtt = -1.0
        self.sr_due = float("-inf")
        self._resync = True
        self._waiting_keyframe = False
        self.pending: Track | None = None  # the simulcast layer we move to at its keyframe
        self.switches = 0
        self.padding_sent = 0  # probe packets (send_padding)
        # VP8 across a rebind (a simulcast layer switch, a replaced source): PictureID and
        # TL0PICIDX continue what the viewer saw, by offsets the C fan-out adds (DownState
        # vp8_shift). Dropping temporal layers needs the full munger (sfu/vp8.py), which
        # also closes the seq holes; it runs on the Python path while a cap is set.
        self._vp8_follow = False  # compute the offsets at the next sync
        self.vp8: Vp8Munger | None = None
        self._seqs: SeqGapCloser | None = None
        self._desc = Vp8Descriptor()
        self.max_temporal_layer: int | None = None  # asked for (select, or automatic)
        self._raise_asked_at = -1.0  # when a pending temporal raise was first seen
        self._nack_guard = config.nack_resend_guard
        # Our SSRC's CNAME chunk never changes; the Viewer puts it in its aggregated SDES.
        self.sdes_chunk = rtcp_io.cname_chunk(params.ssrc, config.cname)
        self._sr_sent: dict[int, float] = {}  # LSR (middle 32 NTP bits) -> local send time

    def send_padding(self, count: int) -> int:
        """Send `count` padding-only packets (RFC 3550 §5.1 P bit, PADDING_BYTES each) in this
        DownTrack's stream, for bandwidth probing; returns the bytes sent. They take the next
        sequence numbers, so later media is shifted by as many: no gap the viewer would NACK.
        Nothing is sent while idle or before the first media packet."""
        st = self._st
        if self.track is None or st.pt < 0 or st.packets_sent == 0 or self._resync:
            return 0
        first = self._seqs.take(count) if self._seqs is not None else (st.last_seq + 1)
        sent = 0
        for n in range(count):
            seq = (first + n) & 0xFFFF
            sent += self._send_padding_at(seq)
            st.last_seq = seq
            if self._seqs is None:
                st.seq_offset = (st.seq_offset + 1) & 0xFFFF
        self.padding_sent += count
        return sent

    def _send_padding_at(self, seq: int) -> int:
        st = self._st
        body = _PADDING_HEADER + bytes(PADDING_BYTES - 1) + bytes((PADDING_BYTES,))
        out = rtp.rewrite_packet(body, st.pt, seq, st.last_ts, st.ssrc, _NO_EXTENSIONS,
                                 st.mid_id, st.mid, st.twcc_id)
        self.sink.send_rtp(out)
        return len(out)

    def stamp_transport_seq(self, ext_id: int) -> None:
        """Reserve the viewer's transport-wide seq element (`ext_id`) in every packet; the
        transport writes the number (send-side bandwidth estimation)."""
        self._st.twcc_id = ext_id

    @property
    def waiting_keyframe(self) -> bool:
        return self._waiting_keyframe

    @property
    def payload_type(self) -> int:
        """Viewer PT for the bound Track's codec; -1 when idle or the codec is not negotiated."""
        pt: int = self._st.pt
        return pt

    # Counters and the last forwarded packet, kept in the state object (see __init__).
    @property
    def packets_sent(self) -> int:
        value: int = self._st.packets_sent
        return value

    @property
    def octets_sent(self) -> int:
        """Payload octets, as the SR counts them (RFC 3550 §6.4.1)."""
        value: int = self._st.octets_sent
        return value

    @property
    def last_seq(self) -> int:
        value: int = self._st.last_seq
        return value

    @property
    def last_ts(self) -> int:
        value: int = self._st.last_ts
        return value

    @property
    def last_time(self) -> float:
        value: float = self._st.last_time
        return value

    @property
    def dropped_old(self) -> int:
        value: int = self._st.dropped_old
        return value

    @property
    def dropped_malformed(self) -> int:
        value: int = self._st.dropped_malformed
        return value

    def _update_slow(self) -> None:
        # The C fan-out handles a packet only when none of these needs DownTrack.forward.
        st = self._st
        st.slow = (st.pt < 0 or self._resync or self._waiting_keyframe
                   or self.vp8 is not None or type(st) is DownState)

    def bind(self, track: Track | None, at_keyframe: bool = False) -> None:
        """Forward `track` from now on (None = idle). Rebinding keeps SSRC and continuity.

        `at_keyframe`: the packet being fanned out starts a keyframe of `track`, so a video
        DownTrack need not wait for one."""
        if self.pending is not None and self.pending is not track:
            self.cancel_switch()
        old = self.track
        if old is track:
            return
        if track is not None and track.kind != self.kind:
            raise ValueError(f"cannot bind a {track.kind} track to a {self.kind} DownTrack")
        st = self._st
        vp8 = track is not None and track.codec.upper() == "VP8"
        if self.vp8 is not None and (not vp8 or self.max_temporal_layer is None):
            self.vp8 = self._seqs = None  # the next sync re-bases plain offsets on last_seq
        st.vp8_shift = False
        self._vp8_follow = vp8 and st.packets_sent > 0
        if vp8 and self.vp8 is None and self.max_temporal_layer is not None:
            self._start_munging()
            assert self.vp8 is not None
            self.vp8.set_max_temporal_layer(self.max_temporal_layer)
        if old is not None:
            old.down_tracks.remove(self)
            old.down_states.remove(st)
            if self._waiting_keyframe:
                old.remove_keyframe_waiter()
        self._waiting_keyframe = False
        self._resync = True
        st.slow = True
        self.track = track
        if track is None:
            st.pt = -1
            st.ext_map = _NO_EXTENSIONS
            return
        self.binds += 1
        st.pt = viewer_payload_type(track.params, self.params)
        st.ext_map = _shared(extension_map(track.params.ext_ids, self.params.ext_ids))
        track.down_tracks.append(self)
        track.down_states.append(st)
        if self.kind == "video" and st.pt >= 0 and not at_keyframe:
            self._waiting_keyframe = True
            track.add_keyframe_waiter()
            track.request_keyframe()

    # --- simulcast layer switches ---------------------------------------------------------

    def switch_to(self, track: Track) -> None:
        """Move to another layer (`track`) of the same m-line without a freeze: keep forwarding
        the current layer until `track`'s next keyframe (requested now), then rebind there.
        With nothing shown yet (idle, or still waiting for a first keyframe), bind at once."""
        if track is self.track:
            self.cancel_switch()
            return
        if self.track is None or self._waiting_keyframe:
            self.bind(track)
            return
        if self.pending is track:
            track.request_keyframe()  # rate-limited at the Track: a lost PLI gets a retry
            return
        self.cancel_switch()
        self.pending = track
        track.add_switcher(self)

    def complete_switch(self, track: Track) -> None:
        """Called by `track` on the keyframe this DownTrack waited for (before fan-out)."""
        self.pending = None
        self.switches += 1
        self.bind(track, at_keyframe=True)

    def set_max_temporal_layer(self, tid: int | None, now: float = 0.0) -> None:
        """Forward VP8 temporal layers up to `tid` only (None: all), RFC 7741 §4.2 TID.

        Called again (`now` ticking), it checks a raise: libwebrtc marks few frames as
        layer sync (Y), so a raise still pending after TEMPORAL_RAISE_WAIT asks for a
        keyframe, where every layer can start."""
        if tid == self.max_temporal_layer:
            vp8 = self.vp8
            if vp8 is not None and vp8.raise_pending:
                if self._raise_asked_at < 0:
                    self._raise_asked_at = now
                elif now - self._raise_asked_at >= TEMPORAL_RAISE_WAIT:
                    self._raise_asked_at = now
                    self.request_keyframe()
            else:
                self._raise_asked_at = -1.0
            return
        self.max_temporal_layer = tid
        self._raise_asked_at = -1.0
        if self.vp8 is None:
            if tid is None or self.track is None or self.track.codec.upper() != "VP8":
                return  # applied at the next bind to a VP8 layer
            self._start_munging()
        assert self.vp8 is not None
        self.vp8.set_max_temporal_layer(tid)

    def _start_munging(self) -> None:
        """Hand the stream over from the C fan-out's plain offsets to `Vp8Munger` and
        `SeqGapCloser`, continuing both numberings from the last packet sent."""
        if self.vp8 is not None:
            return
        st = self._st
        self.vp8 = Vp8Munger()
        self._seqs = SeqGapCloser()
        st.slow = True
        shifted = st.vp8_shift
        st.vp8_shift = False
        if st.packets_sent == 0 or self.track is None:
            return  # nothing sent yet: nothing to continue
        self._seqs.follow((st.last_seq - st.seq_offset) & 0xFFFF, st.last_seq)
        if self._last_sent_descriptor():
            self.vp8.follow(self._desc, st.vp8_pid_offset if shifted else 0,
                            st.vp8_tl0_offset if shifted else 0)

    def _last_sent_descriptor(self) -> bool:
        """Parse the VP8 descriptor of the last media packet sent (as sent: from the resend
        cache, padding is not in it) into `_desc`; False if there is none to find."""
        st = self._st
        cache = st.cache
        for back in range(_LOOKBACK if cache is not None else 0):
            packet = cache.get((st.last_seq - back) & 0xFFFF)
            if packet is None:
                continue
            try:
                offset = rtp.payload_offset(packet)
            except ValueError:
                continue
            if parse_descriptor(self._desc, packet, offset) and self._desc.size:
                return True
        return False

    def _follow_vp8(self, data: bytes) -> None:
        """The first packet after a rebind (a keyframe of the new layer or source): offsets
        that make its PictureID and TL0PICIDX follow the last ones the viewer got."""
        self._vp8_follow = False
        st = self._st
        if not self._last_sent_descriptor():
            return
        last_pid, last_tl0 = self._desc.picture_id, self._desc.tl0picidx
        try:
            offset = rtp.payload_offset(data)
        except ValueError:
            return
        d = self._desc
        if not parse_descriptor(d, data, offset):
            return
        pid_offset = tl0_offset = 0
        if d.picture_id >= 0 and last_pid >= 0:
            pid_offset = (last_pid + 1 - d.picture_id) % (1 << d.picture_id_bits)
        if d.tl0picidx >= 0 and last_tl0 >= 0:
            tl0_offset = (last_tl0 + 1 - d.tl0picidx) & 0xFF
        st.vp8_pid_offset, st.vp8_tl0_offset = pid_offset, tl0_offset
        st.vp8_shift = bool(pid_offset or tl0_offset)

    def cancel_switch(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.remove_switcher(self)

    def forward(self, data: bytes, seq: int, ts: int, length: int, keyframe: bool,
                now: float) -> None:
        """Rewrite and send one packet of the bound Track (hot path in pure Python; with the
        C extension only packets the state marks `slow` come here).

        `length` is the payload size (for the SR octet count); `keyframe` whether the packet
        starts a keyframe (only computed while some DownTrack waits for one).
        """
        st = self._st
        pt = st.pt
        if pt < 0:
            self.dropped_no_codec += 1
            return
        if self._waiting_keyframe:
            track = self.track
            assert track is not None
            if not keyframe:
                self.dropped_waiting_keyframe += 1
                track.request_keyframe()
                return
            self._waiting_keyframe = False
            track.remove_keyframe_waiter()
        if self.vp8 is not None:
            self._forward_munged(data, seq, ts, length, now)
            return
        if self._resync:
            self._sync(seq, ts, now)
            if self._vp8_follow:
                self._follow_vp8(data)
            self._update_slow()
            if self.kind == "video":
                self._bind_start = (seq + st.seq_offset) & 0xFFFF
        elif st.guard:
            # Older than the packet we re-based on: its output seq would collide with packets
            # already sent from the previous binding.
            d = (seq - st.sync_seq) & 0xFFFF
            if d >= 0x8000:
                st.dropped_old += 1
                return
            if d >= _GUARD_SPAN:
                st.guard = False
        out_seq = (seq + st.seq_offset) & 0xFFFF
        out_ts = (ts + st.ts_offset) & 0xFFFFFFFF
        try:
            out = rtp.rewrite_packet(
                data, pt, out_seq, out_ts, st.ssrc, st.ext_map, st.mid_id, st.mid, st.twcc_id
            )
        except ValueError:
            st.dropped_malformed += 1
            return
        if st.vp8_shift:
            out = shift_descriptor(out, st.vp8_pid_offset, st.vp8_tl0_offset)
        self._send(out, out_seq, out_ts, length, now)

    def _send(self, out: bytes, out_seq: int, out_ts: int, length: int, now: float) -> None:
        """Count, cache (for NACKs) and send one rewritten packet (the C fan-out's tail)."""
        st = self._st
        if (out_seq - st.last_seq) & 0xFFFF < 0x8000:
            st.last_seq = out_seq
            st.last_ts = out_ts
            st.last_time = now
        if st.cache is not None:
            st.cache.put(out_seq, out, now)
        st.packets_sent += 1
        st.octets_sent += length
        self.sink.send_rtp(out)

    def _forward_munged(self, data: bytes, seq: int, ts: int, length: int, now: float) -> None:
        st = self._st
        vp8 = self.vp8
        seqs = self._seqs
        assert vp8 is not None and seqs is not None
        try:
            offset = rtp.payload_offset(data)
        except ValueError:
            st.dropped_malformed += 1
            return
        resynced = self._resync
        if resynced:
            self._sync(seq, ts, now)
            self._vp8_follow = False  # the munger's rebase continues the numbering
            self._update_slow()
            desc = self._desc
            vp8.rebase(desc if parse_descriptor(desc, data, offset) else None)
            seqs.rebase(seq)
        munged = vp8.munge(data, offset)
        if munged is None:
            hole = seqs.drop(seq)
            if hole >= 0:
                # A late packet of a dropped frame: its seq was reserved; fill it so the
                # viewer does not NACK a packet that will never come (RFC 3550 §5.1).
                self._send_padding_at(hole)
            return
        out_seq = seqs.forward(seq)
        if out_seq < 0:
            st.dropped_old += 1
            return
        if resynced and self.kind == "video":
            self._bind_start = out_seq
        out_ts = (ts + st.ts_offset) & 0xFFFFFFFF
        try:
            out = rtp.rewrite_packet(munged, st.pt, out_seq, out_ts, st.ssrc, st.ext_map,
                                     st.mid_id, st.mid, st.twcc_id)
        except ValueError:
            st.dropped_malformed += 1
            return
        self._send(out, out_seq, out_ts, length, now)

    def _sync(self, seq: int, ts: int, now: float) -> None:
        track = self.track
        assert track is not None
        st = self._st
        self._resync = False
        st.sync_seq = seq
        st.guard = True
        rate = track.clock_rate
        if st.packets_sent == 0:
            st.seq_offset = 0
            st.ts_offset = 0
        else:
            st.seq_offset = (st.last_seq + 1 - seq) & 0xFFFF
            frame = rate // 50 if self.kind == "audio" else rate // 30  # 20 ms / 30 fps
            step = max(round((now - st.last_time) * rate), frame, 1)
            st.ts_offset = (st.last_ts + step - ts) & 0xFFFFFFFF
        st.last_seq = (seq + st.seq_offset - 1) & 0xFFFF
        self.last_clock_rate = rate

    def on_nack(self, seqs: list[int], now: float) -> int:
        """Resend cached packets for NACKed outgoing seqs (RFC 4585 §6.2.1); returns the count.

        Not those sent before the current binding's first packet (a keyframe, for video): the
        decoder starts over there, and after a move to a smaller layer because the path got
        narrower, resending the larger one's losses would only flood it further."""
        self.nacks_received += 1
        sent = 0
        if self._st.cache is None:
            return 0  # NACK not negotiated: nothing kept to resend
        start = self._bind_start
        for seq in seqs:
            if start >= 0 and 0 < (start - seq) & 0xFFFF < 0x8000:
                self.nacks_ignored += 1
                continue
            packet = self._st.cache.take_for_resend(seq, now, self._nack_guard)
            if packet is not None:
                self.sink.send_rtp(packet)
                sent += 1
        self.packets_resent += sent
        return sent

    def request_keyframe(self) -> bool:
        """PLI/FIR from the viewer: ask the bound Track's publisher (rate-limited there)."""
        self.keyframe_requests += 1
        return self.track.request_keyframe() if self.track is not None else False

    def on_report_block(self, fraction_lost: int, cumulative_lost: int, jitter: int, lsr: int,
                        dlsr: int, now: float) -> None:
        """A viewer report block about our SSRC; RTT from LSR/DLSR (RFC 3550 §6.4.1)."""
        self.fraction_lost = fraction_lost
        self.cumulative_lost = cumulative_lost
        self.jitter = jitter
        sent = self._sr_sent.get(lsr) if lsr else None
        if sent is not None:
            self.rtt = max(0.0, now - sent - dlsr / 65536.0)

    def sr_packet(self, now: float, ntp_now: int) -> bytes | None:
        """This DownTrack's SR (no report blocks), or None while idle, resyncing after a bind,
        or before the first packet. Remembers its LSR for the RTT (`on_report_block`).

        The NTP/RTP pair is the publisher's SR translated by our timestamp offset when the
        Track has one (so audio and video of one publisher stay lip-synced in the browser),
        else extrapolated from the last forwarded packet at `ntp_now`.
        """
        track = self.track
        st = self._st
        if track is None or self._resync or st.packets_sent == 0:
            return None
        if track.sr_ntp >= 0:
            # Both halves of the publisher's pair advance by the same wall time, so the mapping
            # is unchanged and the SR still carries a current NTP time.
            elapsed = max(0.0, now - track.sr_arrival)
            ntp = track.sr_ntp + int(elapsed * 4294967296.0)
            rtp_ts = track.sr_rtp + st.ts_offset + int(elapsed * track.clock_rate)
        else:
            ntp = ntp_now
            elapsed = max(0.0, now - st.last_time)
            rtp_ts = st.last_ts + int(elapsed * self.last_clock_rate)
        sent = self._sr_sent
        if len(sent) >= 8:
            sent.pop(next(iter(sent)))
        sent[(ntp >> 16) & 0xFFFFFFFF] = now  # LSR: middle 32 bits of the NTP time (§6.4.1)
        return rtcp_io.sr_packet(self.ssrc, ntp, rtp_ts, st.packets_sent, st.octets_sent)

    def build_sender_report(self, now: float, ntp_now: int) -> bytes | None:
        """SR + SDES CNAME compound of this DownTrack alone (see `sr_packet`), or None.

        A Viewer aggregates the SRs of all its DownTracks instead (`Viewer.tick`)."""
        report = self.sr_packet(now, ntp_now)
        if report is None:
            return None
        return report + rtcp_io.sdes((self.sdes_chunk,))

    def tick(self, now: float, ntp_now: int, interval: float) -> None:
        """Send `build_sender_report` every `interval`, for a DownTrack used without a Viewer."""
        if now < self.sr_due:
            return
        self.sr_due = now + interval
        report = self.build_sender_report(now, ntp_now)
        if report is not None:
            self.sink.send_rtcp(report)
