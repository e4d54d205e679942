"""Keyframe detection on RTP payloads, without depacketizing or decoding.

Each detector looks only at the payload descriptor / NAL headers of one packet and answers
"does this packet start (or carry the start of) a keyframe". Short or garbage payloads are not
keyframes: nothing here raises.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["h264_sps_size", "is_keyframe", "keyframe_size", "may_start_keyframe",
           "vp8_descriptor_length"]


def vp8_descriptor_length(p: bytes) -> int:
    """Bytes of the RFC 7741 §4.2 payload descriptor that starts `p`, or -1 when `p` is cut
    short before any payload follows it."""
    # |X|R|N|S|R|PID| then, if X, |I|L|T|K|RSV| [PictureID 1-2] [TL0PICIDX] [TID|Y|KEYIDX].
    n = len(p)
    if n < 1:
        return -1
    i = 1
    if p[0] & 0x80:
        if n < 2:
            return -1
        x = p[1]
        i = 2
        if x & 0x80:  # I: PictureID, 15 bits when M is set
            if n <= i:
                return -1
            i += 2 if p[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX byte
            i += 1
    return i if n > i else -1


def _vp8_header(p: bytes) -> int:
    """Offset of the VP8 payload header in the first packet of partition 0, else -1."""
    if not p or not p[0] & 0x10 or p[0] & 0x07:  # only the first packet of partition 0
        return -1
    return vp8_descriptor_length(p)


def _vp8(p: bytes) -> bool:
    i = _vp8_header(p)
    # RFC 7741 §4.3 payload header: |Size0|H|VER|P|, P == 0 means key frame.
    return i >= 0 and not p[i] & 0x01


def _vp8_size(p: bytes) -> tuple[int, int] | None:
    # RFC 6386 §9.1: a key frame's 3-byte frame tag, the start code 9d 01 2a, then width and
    # height as 14-bit little-endian values (the top 2 bits are the scaling mode).
    i = _vp8_header(p)
    if i < 0 or p[i] & 0x01 or len(p) < i + 10 or p[i + 3:i + 6] != b"\x9d\x01\x2a":
        return None
    width = (p[i + 6] | p[i + 7] << 8) & 0x3FFF
    height = (p[i + 8] | p[i + 9] << 8) & 0x3FFF
    return (width, height) if width and height else None


def _vp9(p: bytes) -> bool:
    # draft-ietf-payload-vp9 §4.2: |I|P|L|F|B|E|V|Z|. A keyframe starts with B set and P clear
    # on spatial layer 0 (upper layers of a keyframe may predict from the layer below).
    n = len(p)
    if n < 1:
        return False
    b = p[0]
    if not b & 0x08 or b & 0x40:
        return False
    i = 1
    if b & 0x80:  # I: PictureID, 15 bits when M is set
        if n <= i:
            return False
        i += 2 if p[i] & 0x80 else 1
    if b & 0x20:  # L: layer indices |TID|U|SID|D| (+ TL0PICIDX in non-flexible mode)
        if n <= i:
            return False
        if (p[i] >> 1) & 0x07:  # SID != 0
            return False
        i += 1 if b & 0x10 else 2
    # With P clear there are no P_DIFF bytes in flexible mode; the scalability structure (V)
    # may follow. Require at least one byte after the fixed part of the descriptor.
    return n > i


def _h264_nal_is_key(nal_type: int) -> bool:
    return nal_type == 5 or nal_type == 7  # IDR slice or SPS (RFC 6184 §1.3, H.264 Table 7-1)


def _h264(p: bytes) -> bool:
    # RFC 6184 §5.2: the NAL unit type in the first byte selects the packetization mode.
    n = len(p)
    if n < 1:
        return False
    t = p[0] & 0x1F
    if 1 <= t <= 23:  # single NAL unit packet
        return _h264_nal_is_key(t)
    if t == 24:  # STAP-A (§5.7.1): [size16 | NAL unit] ...
        i = 1
        while i + 2 < n:
            size = (p[i] << 8) | p[i + 1]
            i += 2
            if size == 0 or i + size > n:
                return False
            if _h264_nal_is_key(p[i] & 0x1F):
                return True
            i += size
        return False
    if t == 28:  # FU-A (§5.8): |S|E|R|Type| header, key only in the start fragment
        return n >= 2 and bool(p[1] & 0x80) and _h264_nal_is_key(p[1] & 0x1F)
    return False


def _av1(p: bytes) -> bool:
    # AV1 RTP spec §4.4 aggregation header |Z|Y|W|N|-|-|-|: N = first packet of a coded
    # video sequence, i.e. a keyframe with a sequence header.
    return len(p) >= 1 and bool(p[0] & 0x08)


def _never(p: bytes) -> bool:
    return False


_DETECTORS: dict[str, Callable[[bytes], bool]] = {
    "opus": _never,
    "OPUS": _never,
    "VP8": _vp8,
    "VP9": _vp9,
    "H264": _h264,
    "AV1": _av1,
}


class _Bits:
    """MSB-first reader of an H.264 RBSP (emulation prevention bytes removed, §7.4.1)."""

    def __init__(self, data: bytes) -> None:
        self.data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("SPS truncated")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        """Exp-Golomb unsigned (§9.1)."""
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def h264_sps_size(sps: bytes) -> tuple[int, int] | None:
    """(width, height) of an H.264 sequence parameter set NAL unit (ITU-T H.264 §7.3.2.1.1,
    the cropped frame size), None if it is not one or cannot be read."""
    if len(sps) < 4 or sps[0] & 0x1F != 7:
        return None
    try:
        r = _Bits(sps[1:])
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        chroma = 1
        if profile in _HIGH_PROFILES:
            chroma = r.ue()
            if chroma == 3:
                r.bit()  # separate_colour_plane_flag
            r.ue()
            r.ue()  # bit depths
            r.bit()  # qpprime_y_zero_transform_bypass_flag
            if r.bit():  # seq_scaling_matrix_present_flag: skip the lists (§7.3.2.1.1.1)
                for i in range(8 if chroma != 3 else 12):
                    if r.bit():
                        last = nxt = 8
                        for _ in range(16 if i < 6 else 64):
                            if nxt:
                                nxt = (last + r.se() + 256) % 256
                            last = nxt or last
        r.ue()  # log2_max_frame_num_minus4
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = r.ue() + 1
        height_units = r.ue() + 1
        frame_mbs_only = r.bit()
        if not frame_mbs_only:
            r.bit()  # mb_adaptive_frame_field_flag
        r.bit()  # direct_8x8_inference_flag
        crop = (0, 0, 0, 0)
        if r.bit():
            crop = (r.ue(), r.ue(), r.ue(), r.ue())
    except ValueError:
        return None
    # Crop units (§7.4.2.1.1, Table 6-1): 4:2:0 crops in 2x2 samples, 4:2:2 in 2x1.
    unit_x = 1 if chroma in (0, 3) else 2
    unit_y = (1 if chroma in (0, 2, 3) else 2) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    return (width, height) if width > 0 and height > 0 else None


def _h264_size(p: bytes) -> tuple[int, int] | None:
    # The SPS travels before each IDR: alone (single NAL unit packet) or in a STAP-A.
    if not p:
        return None
    t = p[0] & 0x1F
    if t == 7:
        return h264_sps_size(p)
    if t == 24:
        i = 1
        while i + 2 < len(p):
            size = (p[i] << 8) | p[i + 1]
            i += 2
            if size == 0 or i + size > len(p):
                return None
            if p[i] & 0x1F == 7:
                return h264_sps_size(p[i:i + size])
            i += size
    return None


_SIZES: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    "VP8": _vp8_size, "H264": _h264_size}


def keyframe_size(codec_name: str, payload: bytes) -> tuple[int, int] | None:
    """(width, height) from a packet that starts a keyframe: VP8's keyframe header, H.264's
    SPS (sent before each IDR); None for other codecs or when the packet does not say."""
    size = _SIZES.get(codec_name.upper())
    return size(payload) if size is not None else None


def is_keyframe(codec_name: str, payload: bytes) -> bool:
    """True if this RTP payload starts a keyframe of codec `codec_name` (case-insensitive; "VP8",
    "vp9", "H264", "H264/42e01f" and "video/AV1" all work); False for audio, unknown codecs and
    malformed input."""
    detect = _DETECTORS.get(codec_name)
    if detect is None:
        for part in codec_name.upper().split("/"):
            detect = _DETECTORS.get(part)
            if detect is not None:
                break
        else:
            return False
    return detect(payload)


def may_start_keyframe(codec_name: str, data: bytes, offset: int) -> bool:
    """A cheap filter on the payload's first bytes, in place (no slice): False when the packet
    cannot start a keyframe (VP8: not the start of partition 0; H.264: a non-IDR slice or an
    FU-A continuation), so a caller that looks at every packet (simulcast layers) slices
    and parses only the candidates. True when unsure."""
    if offset >= len(data):
        return False
    b = data[offset]
    name = codec_name.upper()
    if name == "VP8":
        return bool(b & 0x10) and not b & 0x07
    if name == "H264":
        t = b & 0x1F
        if t == 28:  # FU-A: only its start fragment may begin an IDR
            return offset + 1 < len(data) and bool(data[offset + 1] & 0x80)
        return t in (5, 7, 24)
    return True
