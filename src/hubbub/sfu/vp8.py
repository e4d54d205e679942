"""VP8 payload-descriptor munging for simulcast layer switches and temporal-layer dropping.

Each simulcast layer is its own VP8 encoding with its own PictureID and TL0PICIDX sequences
(RFC 7741 §4.2), so a viewer moved between layers would see them jump. `Vp8Munger` (one per
DownTrack) rewrites both so the viewer sees one continuous stream, and can drop the frames of
temporal layers above a cap while keeping the PictureIDs of the frames it does send contiguous.

Integration with the DownTrack (which owns seq numbers and RTP timestamps, see `_sync`):

* At every (re)bind, on the first forwarded packet (the keyframe of the new layer): parse its
  descriptor and call `Vp8Munger.rebase(desc)` before `munge`.
* Per packet, before `rtp.rewrite_packet` (whose output may have another header size):
  ``out = munger.munge(data, rtp.payload_offset(data))``. None: do not send it.
* A dropped packet must not leave a hole in the viewer's seq numbers: a receiver reads a gap as
  loss (RFC 3550 §A.1) and NACKs it (RFC 4585 §6.2.1), and the jitter buffer waits for it. So
  the DownTrack numbers its output with a `SeqGapCloser` instead of a plain offset:
  `rebase(seq)` where `_sync` sets seq_offset, `drop(seq)` for each packet munge refused, and
  `forward(seq)` (-1: do not send) for the output seq of each packet sent. In order and with no
  drops this is exactly ``in_seq + offset``; each dropped packet lowers the offset of the later
  ones by one (``out_seq = in_seq + offset - dropped_so_far``), while a late packet keeps the
  offset of its position in the input, so it can never collide with a seq already sent.

A layer switch alone needs no munger: with no frame dropped, PictureID and TL0PICIDX of
the new layer just need an offset each, which `shift_descriptor` (and the C fan-out, for a
DownState with `vp8_shift`) adds. The munger is for a temporal cap: the C fan-out cannot
drop frames, so a capped VP8 DownTrack stays on the Python path (`DownState.slow`), and
goes back to offsets at its next rebind once the cap is lifted.

Not handled here: KEYIDX is passed unchanged (libwebrtc does not send it), and a stream
without PictureIDs gets TL0PICIDX rewritten and per-packet temporal filtering only.
"""

from __future__ import annotations

# --- payload descriptor (RFC 7741 §4.2) ----------------------------------------------------
#
#        0 1 2 3 4 5 6 7
#       +-+-+-+-+-+-+-+-+
#       |X|R|N|S|R| PID | (REQUIRED)
#       +-+-+-+-+-+-+-+-+
#  X:   |I|L|T|K| RSV   | (OPTIONAL)
#       +-+-+-+-+-+-+-+-+
#  I:   |M| PictureID   | (OPTIONAL, 7 bits, or 15 with the M bit)
#       +-+-+-+-+-+-+-+-+
#       |   PictureID   |
#  L:   |   TL0PICIDX   | (OPTIONAL)
#       +-+-+-+-+-+-+-+-+
#  T/K: |TID|Y| KEYIDX  | (OPTIONAL)
#       +-+-+-+-+-+-+-+-+

Buffer = bytes | bytearray | memoryview


class Vp8Descriptor:
    """Result of `parse_descriptor`: reused across packets (no allocation per packet).

    Offsets are absolute positions in the parsed buffer; absent fields are -1."""

    __slots__ = ("size", "start", "partition", "non_reference", "picture_id", "picture_id_bits",
                 "picture_id_offset", "tl0picidx", "tl0picidx_offset", "tid", "layer_sync",
                 "keyidx", "keyframe")

    def __init__(self) -> None:
        self.size = 0  # descriptor length in bytes; 0 = could not parse
        self.start = False  # S: first packet of a VP8 partition
        self.partition = 0  # PID: partition index
        self.non_reference = False  # N
        self.picture_id = -1
        self.picture_id_bits = 0  # 7 or 15 (M bit); 0 when absent
        self.picture_id_offset = -1
        self.tl0picidx = -1
        self.tl0picidx_offset = -1
        self.tid = -1  # temporal layer index (T bit)
        self.layer_sync = False  # Y: depends only on the base layer (TL0)
        self.keyidx = -1  # K bit
        self.keyframe = False  # S, PID 0 and the VP8 payload header's P bit 0 (RFC 7741 §4.3)

    def __repr__(self) -> str:
        return (f"Vp8Descriptor(size={self.size}, start={self.start}, "
                f"picture_id={self.picture_id}/{self.picture_id_bits}, "
                f"tl0picidx={self.tl0picidx}, tid={self.tid}, y={self.layer_sync}, "
                f"keyframe={self.keyframe})")


def parse_descriptor(desc: Vp8Descriptor, data: Buffer, offset: int, end: int = -1) -> bool:
    """Fill `desc` from the descriptor at data[offset:end] (end -1: len(data)).

    False ("cannot parse", desc.size 0) when the input is too short for the fields its flags
    announce or leaves no VP8 payload after the descriptor; never raises on any byte content."""
    n = len(data)
    if end < 0 or end > n:
        end = n
    desc.size = 0
    if offset < 0 or offset >= end:
        return False
    b = data[offset]
    pos = offset + 1
    pid = pid_ofs = tl0 = tl0_ofs = tid = keyidx = -1
    bits = 0
    sync = False
    if b & 0x80:  # X
        if pos >= end:
            return False
        x = data[pos]
        pos += 1
        if x & 0x80:  # I
            if pos >= end:
                return False
            p = data[pos]
            pid_ofs = pos
            if p & 0x80:  # M: 15-bit PictureID
                if pos + 1 >= end:
                    return False
                pid = ((p & 0x7F) << 8) | data[pos + 1]
                bits = 15
                pos += 2
            else:
                pid = p
                bits = 7
                pos += 1
        if x & 0x40:  # L
            if pos >= end:
                return False
            tl0 = data[pos]
            tl0_ofs = pos
            pos += 1
        if x & 0x30:  # T or K: one shared octet
            if pos >= end:
                return False
            t = data[pos]
            pos += 1
            if x & 0x20:
                tid = t >> 6
                sync = bool(t & 0x20)
            if x & 0x10:
                keyidx = t & 0x1F
    if pos >= end:
        return False  # a VP8 payload holds at least its payload header
    desc.size = pos - offset
    desc.start = bool(b & 0x10)
    desc.partition = b & 0x07
    desc.non_reference = bool(b & 0x20)
    desc.picture_id = pid
    desc.picture_id_bits = bits
    desc.picture_id_offset = pid_ofs
    desc.tl0picidx = tl0
    desc.tl0picidx_offset = tl0_ofs
    desc.tid = tid
    desc.layer_sync = sync
    desc.keyidx = keyidx
    desc.keyframe = desc.start and desc.partition == 0 and not data[pos] & 0x01
    return True


def parse(data: Buffer, offset: int = 0, end: int = -1) -> Vp8Descriptor | None:
    """Convenience form of `parse_descriptor` (allocates): the descriptor, or None."""
    desc = Vp8Descriptor()
    return desc if parse_descriptor(desc, data, offset, end) else None


# --- gap-free renumbering --------------------------------------------------------------------

SENT_DROPPED = -1  # `_Renumber.map`: dropped now (a new unit, or a late one settled)
DROPPED_BEFORE = -2  # a repeat of a unit dropped earlier
UNKNOWN = -3  # before the rebase point or older than the window: no output exists

_MISSING = 1 << 20  # slot flag: unit not seen yet; the value is its provisional output
_DROPPED = 1 << 21  # slot flag: unit seen and dropped
_RESYNC_RUN = 16  # this many unknown inputs in a row, each +0/+1 on the last: a new numbering


class _Renumber:
    """Maps input numbers (seq numbers, PictureIDs) to output numbers that continue across
    rebases and skip dropped units, so the output has holes only where the input had them.

    A new unit `d` ahead of the highest input gets the next free output plus `d - 1`: the units
    skipped in the input (lost or late) keep provisional outputs in between, so a late one
    fits its place. A ring of the last `window` inputs remembers each unit's output (or that
    it was dropped), so repeats and retransmissions map as they did the first time."""

    __slots__ = ("_out_mask", "_ring_mask", "_in_mask", "_half", "_window", "_keys", "_vals",
                 "_hi", "_next", "started", "_stale", "_stale_last")

    def __init__(self, out_bits: int, ring_size: int) -> None:
        if ring_size <= 1 or ring_size & (ring_size - 1):
            raise ValueError(f"ring size must be a power of two, got {ring_size}")
        self._out_mask = (1 << out_bits) - 1
        self._ring_mask = ring_size - 1
        self._in_mask = self._out_mask
        self._half = self._window = 1
        self._keys = [-1] * ring_size
        self._vals = [0] * ring_size
        self._hi = -1  # highest input seen; -1 = not reset yet
        self._next = 0  # output of the next new unit sent
        self.started = False
        self._stale = 0
        self._stale_last = -1

    def reset(self, value: int, in_bits: int) -> None:
        """A new input numbering starts at `value`; output continues at the next free number
        (or equals the input, the first time)."""
        self._in_mask = (1 << in_bits) - 1
        self._half = 1 << (in_bits - 1)
        self._window = min(self._ring_mask + 1, self._half)
        self._keys = [-1] * (self._ring_mask + 1)
        if not self.started:
            self._next = value & self._out_mask
            self.started = True
        self._hi = (value - 1) & self._in_mask
        self._stale = 0

    def follow(self, value: int, out: int, in_bits: int) -> None:
        """Input `value` was the last unit sent, as output `out` (numbered by someone else
        until now): go on from there, so the next input maps to `out` + its distance."""
        self.started = True
        self._next = out & self._out_mask
        self.reset(value, in_bits)
        self.map(value, True)

    def skip(self, count: int) -> int:
        """Take `count` output numbers for units sent outside this mapping (padding);
        returns the first."""
        first = self._next
        self._next = (first + count) & self._out_mask
        return first

    def provisional(self, value: int) -> int:
        """The output reserved for `value`, skipped in the input and not seen yet; else -1."""
        i = value & self._ring_mask
        if (self._hi - value) & self._in_mask < self._window and self._keys[i] == value:
            val = self._vals[i]
            if val & _MISSING:
                return val & self._out_mask
        return -1

    def is_new(self, value: int) -> bool:
        """`value` is ahead of every input seen since the reset."""
        return 0 < (value - self._hi) & self._in_mask < self._half

    def map(self, value: int, send: bool) -> int:
        """Output number of `value`, or SENT_DROPPED / DROPPED_BEFORE / UNKNOWN.

        `send` decides a unit seen for the first time; a repeat keeps the first decision."""
        mask = self._in_mask
        hi = self._hi
        keys = self._keys
        vals = self._vals
        rm = self._ring_mask
        om = self._out_mask
        d = (value - hi) & mask
        if 0 < d < self._half:
            self._stale = 0
            nxt = self._next
            for k in range(max(1, d - self._window + 1), d):  # skipped inputs, newest window
                u = (hi + k) & mask
                keys[u & rm] = u
                vals[u & rm] = ((nxt + k - 1) & om) | _MISSING
            out = (nxt + d - 1) & om
            i = value & rm
            keys[i] = value
            self._hi = value
            if send:
                vals[i] = out
                self._next = (out + 1) & om
                return out
            vals[i] = out | _DROPPED
            self._next = out  # the dropped unit takes no output number
            return SENT_DROPPED
        i = value & rm
        if (hi - value) & mask < self._window and keys[i] == value:
            self._stale = 0
            val = vals[i]
            if val & _MISSING:  # late: takes its provisional place, or leaves it a hole
                out = val & om
                vals[i] = out if send else out | _DROPPED
                return out if send else SENT_DROPPED
            return DROPPED_BEFORE if val & _DROPPED else val
        # Unknown. A run of them counting up is a new numbering (a source restarted without a
        # rebase): follow it rather than refuse everything from now on.
        if self._stale and (value - self._stale_last) & mask <= 1:
            self._stale += 1
        else:
            self._stale = 1
        self._stale_last = value
        if self._stale >= _RESYNC_RUN:
            self.reset(value, mask.bit_length())
            return self.map(value, send)
        return UNKNOWN


class SeqGapCloser:
    """Output RTP seq numbers for a DownTrack that drops packets (see the module docstring).

    NACKs need no reverse mapping: the DownTrack's PacketCache is keyed by the output seq and
    holds the exact bytes sent, and the viewer only ever NACKs output seqs. A dropped packet
    has no output seq, so nobody can ask for it; a provisional seq of a packet still missing
    upstream is answered once that packet arrives and is sent (and cached) under it."""

    __slots__ = ("_ren", "packets_dropped", "holes")

    def __init__(self, ring_size: int = 512) -> None:
        self._ren = _Renumber(16, ring_size)
        self.packets_dropped = 0
        self.holes = 0

    def rebase(self, seq: int) -> None:
        """From input `seq` on (a bind's first packet), continue at the last output + 1."""
        self._ren.reset(seq, 16)

    def follow(self, seq: int, out_seq: int) -> None:
        """Take over a stream numbered by a plain offset so far: input `seq` was the last
        packet sent, as `out_seq`."""
        self._ren.follow(seq, out_seq, 16)

    def take(self, count: int) -> int:
        """Reserve `count` output seqs for packets sent outside the mapping (padding probes,
        RFC 3550 §5.1); returns the first."""
        if not self._ren.started:
            raise ValueError("take() before the first packet")
        return self._ren.skip(count)

    def forward(self, seq: int) -> int:
        """Output seq of the packet `seq` about to be sent, or -1 when it must not be sent
        (from before the rebase point or the window, or a repeat of a dropped packet)."""
        ren = self._ren
        if not ren.started:
            ren.reset(seq, 16)
        out = ren.map(seq, True)
        return out if out >= 0 else -1

    def drop(self, seq: int) -> int:
        """Record that packet `seq` is not sent. Returns -1, or the output seq it leaves as a
        hole: a late packet (sent after later ones) had its seq reserved already. The
        DownTrack may send a padding-only packet there (RFC 3550 §5.1), or let it be NACKed."""
        ren = self._ren
        if not ren.started:
            ren.reset(seq, 16)
        self.packets_dropped += 1
        hole = ren.provisional(seq)
        ren.map(seq, False)
        if hole >= 0:
            self.holes += 1
        return hole


def shift_descriptor(packet: bytes, pid_offset: int, tl0_offset: int) -> bytes:
    """`packet` (RTP) with `pid_offset` added to its PictureID and `tl0_offset` to its
    TL0PICIDX (modulo their widths): all a layer switch needs while no frame is dropped, and
    what the C fan-out does for a DownState with `vp8_shift` (the pure-Python twin)."""
    n = len(packet)
    i = 12
    if packet[0] & 0x10:
        i += 4 + (((packet[14] << 8) | packet[15]) << 2)
    end = n - packet[-1] if packet[0] & 0x20 else n
    if i + 1 >= end or not packet[i] & 0x80:
        return packet
    x = packet[i + 1]
    i += 2
    buf = bytearray(packet)
    if x & 0x80:
        if i >= end:
            return packet
        if buf[i] & 0x80:
            if i + 1 >= end:
                return packet
            pid = ((((buf[i] & 0x7F) << 8) | buf[i + 1]) + pid_offset) & 0x7FFF
            buf[i] = 0x80 | (pid >> 8)
            buf[i + 1] = pid & 0xFF
            i += 2
        else:
            buf[i] = (buf[i] + pid_offset) & 0x7F
            i += 1
    if x & 0x40 and i < end:
        buf[i] = (buf[i] + tl0_offset) & 0xFF
    return bytes(buf)


# --- the munger -------------------------------------------------------------------------------

_ALL_LAYERS = 3  # TID is two bits


class Vp8Munger:
    """Rewrites PictureID and TL0PICIDX of one DownTrack's VP8 stream (RFC 7741 §4.2).

    PictureID: the output is a 15-bit counter that continues across `rebase` and skips
    frames dropped for their temporal layer (frames are counted, not input IDs; gaps in the
    input stay gaps, so the decoder still sees real loss). The descriptor size never changes:
    a 15-bit input ID gets the 15-bit counter, a 7-bit one its low 7 bits, which still count
    up by one per frame modulo 2^7. A layer mixing widths without a rebase is refused.
    TL0PICIDX: input + offset (mod 2^8), the offset set at `rebase` so the new layer's first
    value follows the last one sent; TL0 frames are never dropped, so it needs no more.

    A frame's fate (its output ID, or dropped) is decided at its first packet seen and kept
    for `ring_size` frames, so its other packets and retransmissions map the same way. A frame
    missing upstream keeps a reserved ID; if it arrives late and is above the cap, that ID
    stays a gap (nothing sent since can be renumbered).
    """

    __slots__ = ("_desc", "_pids", "_pid_bits", "_pid_reset", "_tl0_offset", "_tl0_last",
                 "_tl0_reset", "_tl0_started", "_cap", "_target", "_top", "packets_munged",
                 "frames_dropped_temporal", "packets_dropped_temporal", "dropped_malformed",
                 "dropped_old", "packets_passed_empty")

    def __init__(self, ring_size: int = 128) -> None:
        self._desc = Vp8Descriptor()
        self._pids = _Renumber(15, ring_size)
        self._pid_bits = 0
        self._pid_reset = True  # the first packet with a PictureID starts the numbering
        self._tl0_offset = 0
        self._tl0_last = 0
        self._tl0_reset = True
        self._tl0_started = False
        self._cap = _ALL_LAYERS  # temporal layers forwarded now
        self._target = _ALL_LAYERS  # ... and once the decoder can follow
        self._top = 0  # highest TID seen
        self.packets_munged = 0
        self.frames_dropped_temporal = 0
        self.packets_dropped_temporal = 0
        self.dropped_malformed = 0
        self.dropped_old = 0  # before the rebase point, outside the window, or width changed
        self.packets_passed_empty = 0  # padding only: no descriptor, passed unchanged

    @property
    def max_temporal_layer(self) -> int | None:
        """Highest TID forwarded now (None: all, also once every layer seen is)."""
        cap = self._cap
        if cap >= _ALL_LAYERS or (self._target >= _ALL_LAYERS and cap >= self._top):
            return None
        return cap

    @property
    def raise_pending(self) -> bool:
        """A higher cap was asked for and a temporal layer seen is still held back."""
        return self._cap < min(self._target, self._top)

    @property
    def target_temporal_layer(self) -> int | None:
        return None if self._target >= _ALL_LAYERS else self._target

    def set_max_temporal_layer(self, tid: int | None) -> None:
        """Forward TIDs up to `tid` (None: all), from a point where that is safe.

        Lowering takes effect at the next new frame: a layer never references a higher one,
        so the rest decodes. Raising enables layer cap+1 at its next frame with the Y bit
        (RFC 7741 §4.2: depends only on the base layer), one layer at a time, or all at a
        keyframe. A TL0 frame alone is no such point: a later Y=0 frame may still reference a
        frame of its own layer from before it, which we dropped."""
        target = _ALL_LAYERS if tid is None else max(0, min(tid, _ALL_LAYERS))
        self._target = target
        if target < self._cap:
            self._cap = target

    def follow(self, desc: Vp8Descriptor, pid_offset: int = 0, tl0_offset: int = 0) -> None:
        """Take over a stream forwarded so far with plain offsets (`shift_descriptor`), whose
        last packet sent had `desc` (as sent): its numbering goes on unchanged until a
        `rebase` (which then continues from it)."""
        if desc.picture_id >= 0:
            self._pid_reset = False
            bits = self._pid_bits = desc.picture_id_bits
            out = desc.picture_id
            self._pids.follow((out - pid_offset) & ((1 << bits) - 1), out, bits)
        if desc.tl0picidx >= 0:
            self._tl0_reset = False
            self._tl0_started = True
            self._tl0_offset = tl0_offset & 0xFF
            self._tl0_last = desc.tl0picidx
        if desc.tid > self._top:
            self._top = desc.tid

    def rebase(self, desc: Vp8Descriptor | None = None) -> None:
        """The DownTrack starts forwarding a new layer at its keyframe, whose first packet's
        descriptor is `desc`: its PictureID follows the last one sent, its TL0PICIDX the last
        one + 1. A field `desc` lacks is rebased at the first packet carrying it."""
        self._pid_reset = True
        self._tl0_reset = True
        self._cap = self._target  # a keyframe references nothing: every layer is safe
        if desc is not None and desc.size:
            if desc.picture_id >= 0:
                self._rebase_pid(desc)
            if desc.tl0picidx >= 0:
                self._rebase_tl0(desc.tl0picidx)

    def _rebase_pid(self, desc: Vp8Descriptor) -> None:
        self._pid_reset = False
        self._pid_bits = desc.picture_id_bits
        self._pids.reset(desc.picture_id, desc.picture_id_bits)

    def _rebase_tl0(self, tl0: int) -> None:
        self._tl0_reset = False
        if self._tl0_started:
            self._tl0_offset = (self._tl0_last + 1 - tl0) & 0xFF
        else:
            self._tl0_offset = 0
            self._tl0_last = (tl0 - 1) & 0xFF
            self._tl0_started = True

    def munge(self, packet: bytes | bytearray, payload_offset: int) -> bytes | None:
        """The RTP `packet` with PictureID/TL0PICIDX rewritten in place (same length), or None
        when it must not be sent (temporal layer above the cap, malformed, from before the
        rebase). `packet` itself is never modified: a Track shares it among DownTracks."""
        n = len(packet)
        if n < 12 or not 12 <= payload_offset <= n:
            self.dropped_malformed += 1
            return None
        end = n - packet[-1] if packet[0] & 0x20 else n  # RFC 3550 §5.1 padding
        if end <= payload_offset:
            if end == payload_offset:
                self.packets_passed_empty += 1
                return bytes(packet)
            self.dropped_malformed += 1
            return None
        d = self._desc
        if not parse_descriptor(d, packet, payload_offset, end):
            self.dropped_malformed += 1
            return None
        pid = d.picture_id
        tid = d.tid if d.tid > 0 else 0
        if tid > self._top:
            self._top = tid
        if pid >= 0:
            if self._pid_reset:
                self._rebase_pid(d)
            elif d.picture_id_bits != self._pid_bits:
                self.dropped_old += 1
                return None
            new_frame = self._pids.is_new(pid)
        else:
            new_frame = d.start and d.partition == 0
        if new_frame and self._cap < self._target:
            if d.keyframe:
                self._cap = self._target
            elif d.layer_sync and tid == self._cap + 1:
                self._cap = tid
        send = tid <= self._cap
        out_pid = -1
        if pid >= 0:
            out_pid = self._pids.map(pid, send)
            if out_pid < 0:
                if out_pid == UNKNOWN:
                    self.dropped_old += 1
                    return None
                if out_pid == SENT_DROPPED:
                    self.frames_dropped_temporal += 1
                self.packets_dropped_temporal += 1
                return None
        elif not send:
            if new_frame:
                self.frames_dropped_temporal += 1
            self.packets_dropped_temporal += 1
            return None
        buf: bytearray | None = None
        if out_pid >= 0:
            o = d.picture_id_offset
            if self._pid_bits == 15:
                if out_pid != pid:
                    buf = bytearray(packet)
                    buf[o] = 0x80 | (out_pid >> 8)
                    buf[o + 1] = out_pid & 0xFF
            elif out_pid & 0x7F != pid:
                buf = bytearray(packet)
                buf[o] = out_pid & 0x7F
        tl0 = d.tl0picidx
        if tl0 >= 0:
            if self._tl0_reset:
                self._rebase_tl0(tl0)
            out_tl0 = (tl0 + self._tl0_offset) & 0xFF
            if 0 < (out_tl0 - self._tl0_last) & 0xFF < 0x80:
                self._tl0_last = out_tl0
            if out_tl0 != tl0:
                if buf is None:
                    buf = bytearray(packet)
                buf[d.tl0picidx_offset] = out_tl0
        self.packets_munged += 1
        return bytes(buf) if buf is not None else bytes(packet)
