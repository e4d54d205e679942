"""RTP payloads → codec frames, as a muxer takes them (see the package docstring for why this
is written here).

Packets come in sequence order (`jitter.ReorderBuffer`), each with `gap_before` when packets
were lost just before it. A `FrameAssembler` gathers one frame per RTP timestamp and gives it
out at the marker bit (or when the next timestamp starts). A frame that lost a packet, or whose
first packet is missing, is dropped; for video, every frame after a loss is dropped until the
next keyframe (a decoder cannot use a delta frame whose reference is gone), and
`needs_keyframe` tells the caller to ask the publisher for one.

Payload formats: VP8 RFC 7741 §4.2, VP9 RFC 9628 §4.2, H.264 RFC 6184 §5.6-5.8 (single NAL
unit, STAP-A, FU-A; written out as Annex B byte stream), Opus RFC 7587 (one packet = one
frame). Malformed payloads are dropped like lost packets: nothing here raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.media.codecs import vp8_descriptor_length

START_CODE = b"\x00\x00\x00\x01"


@dataclass(slots=True)
class Frame:
    timestamp: int  # unwrapped RTP timestamp
    data: bytes
    keyframe: bool


class PayloadFormat:
    """How one codec's RTP payload maps to frame bytes."""

    video = True

    def unpack(self, payload: bytes) -> tuple[bool, bytes] | None:
        """(starts a frame, bytes to append), or None if malformed."""
        raise NotImplementedError

    def is_keyframe(self, frame: bytes) -> bool:
        raise NotImplementedError


class Vp8Format(PayloadFormat):
    def unpack(self, p: bytes) -> tuple[bool, bytes] | None:
        i = vp8_descriptor_length(p)
        if i < 0:
            return None
        b = p[0]  # S set and PID 0: the first packet of the frame
        return bool(b & 0x10) and not b & 0x07, p[i:]

    def is_keyframe(self, frame: bytes) -> bool:
        # RFC 6386 §9.1 frame tag: P (bit 0 of the first byte) == 0 for a key frame.
        return bool(frame) and not frame[0] & 0x01


class Vp9Format(PayloadFormat):
    def unpack(self, p: bytes) -> tuple[bool, bytes] | None:
        # |I|P|L|F|B|E|V|Z| [PictureID] [layer idx [TL0PICIDX]] [P_DIFF...] [SS]
        n = len(p)
        if n < 1:
            return None
        b = p[0]
        i = 1
        try:
            if b & 0x80:
                i += 2 if p[i] & 0x80 else 1
            if b & 0x20:
                i += 1 if b & 0x10 else 2  # flexible mode has no TL0PICIDX
            if b & 0x10 and b & 0x40:
                while p[i] & 0x01:  # N: another P_DIFF follows
                    i += 1
                i += 1
            if b & 0x02:
                ss = p[i]
                i += 1
                if ss & 0x10:  # Y: width and height per spatial layer
                    i += 4 * ((ss >> 5) + 1)
                if ss & 0x08:  # G: picture group description
                    groups = p[i]
                    i += 1
                    for _ in range(groups):
                        i += 1 + ((p[i] >> 2) & 0x03)
        except IndexError:
            return None
        if i >= n:
            return None
        return bool(b & 0x08), p[i:]

    def is_keyframe(self, frame: bytes) -> bool:
        # VP9 uncompressed header: frame_marker(2) profile(2) [reserved] show_existing(1)
        # frame_type(1), 0 = KEY_FRAME.
        if not frame:
            return False
        h = frame[0]
        profile = ((h >> 5) & 1) | ((h >> 3) & 2)
        bit = 3 if profile < 3 else 2  # profile 3 has one reserved bit more
        if (h >> bit) & 1:  # show_existing_frame
            return False
        return not (h >> (bit - 1)) & 1


class H264Format(PayloadFormat):
    def unpack(self, p: bytes) -> tuple[bool, bytes] | None:
        if not p:
            return None
        t = p[0] & 0x1F
        if 1 <= t <= 23:  # single NAL unit packet
            return True, START_CODE + p
        if t == 24:  # STAP-A: (16-bit size, NAL unit)*
            parts: list[bytes] = []
            i = 1
            while i + 2 <= len(p):
                size = (p[i] << 8) | p[i + 1]
                i += 2
                if size == 0 or i + size > len(p):
                    return None
                parts.append(START_CODE)
                parts.append(p[i:i + size])
                i += size
            return (True, b"".join(parts)) if parts else None
        if t == 28:  # FU-A: indicator, |S|E|R|type|, fragment
            if len(p) < 3:
                return None
            fu = p[1]
            if fu & 0x80:
                return True, START_CODE + bytes(((p[0] & 0xE0) | (fu & 0x1F),)) + p[2:]
            return False, p[2:]
        return None  # STAP-B, MTAP, FU-B: not in WebRTC's packetization-mode 0/1

    def is_keyframe(self, frame: bytes) -> bool:
        return 5 in nal_types(frame)


class OpusFormat(PayloadFormat):
    video = False

    def unpack(self, p: bytes) -> tuple[bool, bytes] | None:
        return (True, p) if p else None

    def is_keyframe(self, frame: bytes) -> bool:
        return True


def nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes), without them."""
    out: list[bytes] = []
    starts: list[int] = []
    i = annexb.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = annexb.find(b"\x00\x00\x01", i + 3)
    for n, begin in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(annexb)
        unit = annexb[begin:end].rstrip(b"\x00") if n + 1 < len(starts) else annexb[begin:end]
        if unit:
            out.append(unit)
    return out


def nal_types(annexb: bytes) -> list[int]:
    """Types of the NAL units of an Annex B frame."""
    return [unit[0] & 0x1F for unit in nal_units(annexb)]


FORMATS: dict[str, type[PayloadFormat]] = {
    "vp8": Vp8Format, "vp9": Vp9Format, "h264": H264Format, "opus": OpusFormat}


def payload_format(codec: str) -> PayloadFormat | None:
    """The format for a Track's codec name (case-insensitive), None if we cannot record it."""
    cls = FORMATS.get(codec.lower())
    return cls() if cls is not None else None


class FrameAssembler:
    """In-order packets of one Track → complete frames (see the module docstring)."""

    def __init__(self, fmt: PayloadFormat) -> None:
        self.fmt = fmt
        self._ts = -1
        self._parts: list[bytes] = []
        self._broken = True  # current frame lost its start or a packet
        self.needs_keyframe = fmt.video  # video starts at a keyframe
        self.frames = 0
        self.dropped = 0  # frames not given out (incomplete, or waiting for a keyframe)

    def push(self, ts: int, marker: bool, payload: bytes, gap_before: bool) -> list[Frame]:
        """One packet (`ts` unwrapped); returns the frames it completes: the previous one when
        its marker was lost and the timestamp moved on, and this one at its marker."""
        out: list[Frame] = []
        if ts != self._ts:
            if self._parts:
                self._finish(out)
            self._ts = ts
            self._parts = []
            self._broken = False
        if gap_before and self.fmt.video:  # (an audio packet is whole: loss just skips)
            self._broken = True
            self.needs_keyframe = True
        unpacked = self.fmt.unpack(payload)
        if unpacked is None:
            self._broken = True
        else:
            start, body = unpacked
            if not self._parts and not start:
                self._broken = True  # the frame's first packet is missing
            self._parts.append(body)
        if marker or not self.fmt.video:  # an audio packet is a whole frame
            if self._parts:
                self._finish(out)
            self._ts = -1
        return out

    def flush(self) -> list[Frame]:
        """The frame held at the end of the recording, if complete (its marker never came)."""
        out: list[Frame] = []
        if self._parts:
            self._finish(out)
        return out

    def _finish(self, out: list[Frame]) -> None:
        broken = self._broken
        data = b"".join(self._parts)
        self._parts = []
        if broken or not data:
            self.dropped += 1
            if self.fmt.video:
                self.needs_keyframe = True
            return
        key = self.fmt.is_keyframe(data)
        if self.needs_keyframe:
            if not key:
                self.dropped += 1
                return
            self.needs_keyframe = False
        self.frames += 1
        out.append(Frame(self._ts, data, key))
