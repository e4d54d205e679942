"""Keyframe detection on RTP payloads, without depacketizing or decoding.

Each detector looks only at the payload descriptor / NAL headers of one packet and answers
"does this packet start (or carry the start of) a keyframe". Short or garbage payloads are not
keyframes: nothing here raises.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["is_keyframe"]


def _vp8(p: bytes) -> bool:
    # RFC 7741 §4.2 payload descriptor: |X|R|N|S|R|PID| then, if X, |I|L|T|K|RSV|.
    n = len(p)
    if n < 1:
        return False
    b = p[0]
    if not b & 0x10 or b & 0x07:  # keyframe header only in the first packet of partition 0
        return False
    i = 1
    if b & 0x80:
        if n < 2:
            return False
        x = p[1]
        i = 2
        if x & 0x80:  # I: PictureID, 15 bits when M is set
            if n <= i:
                return False
            i += 2 if p[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX byte
            i += 1
    # RFC 7741 §4.3 payload header: |Size0|H|VER|P|, P == 0 means key frame.
    return n > i and not p[i] & 0x01


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
