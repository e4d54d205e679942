"""Codec identity (H264 profiles), compatibility and which offered codecs to answer."""

from __future__ import annotations

import re

from hubbub.media.sdp.model import _KEPT_VIDEO_FBS, URI_TWCC, VIDEO_CODECS, Codec, MediaSection

# ---------------------------------------------------------------- codec choice

# libwebrtc's reading of RFC 6184 §8.1 profile-level-id: profile_idc, then profile-iop bits
# (constraint_set0..5 flags) as (mask, value); the first match wins.
_H264_PROFILES = (
    (0x42, 0b01001111, 0b01000000, "constrained-baseline"),
    (0x4D, 0b10001111, 0b10000000, "constrained-baseline"),
    (0x58, 0b11001111, 0b11000000, "constrained-baseline"),
    (0x42, 0b01001111, 0b00000000, "baseline"),
    (0x58, 0b11001111, 0b10000000, "baseline"),
    (0x4D, 0b10101111, 0b00000000, "main"),
    (0x64, 0b11111111, 0b00000000, "high"),
    (0x64, 0b11111111, 0b00001100, "constrained-high"),
    (0xF4, 0b11111111, 0b00000000, "high-444"),
)


def h264_profile(profile_level_id: str) -> str | None:
    """Profile name of a 6-hex-digit profile-level-id, None when malformed or unknown."""
    if not re.fullmatch(r"[0-9a-fA-F]{6}", profile_level_id):
        return None
    idc, iop = int(profile_level_id[0:2], 16), int(profile_level_id[2:4], 16)
    for p_idc, mask, value, name in _H264_PROFILES:
        if idc == p_idc and iop & mask == value:
            return name
    return None


def same_codec(a: Codec, b: Codec) -> bool:
    """True when media encoded as codec a can be sent to a receiver that declared codec b.

    RFC 6184 §8.2.2: H264 configurations match on profile and packetization-mode; the level may
    differ (level-asymmetry-allowed). Constrained baseline is a subset of baseline (RFC 6184
    §8.1), so a constrained-baseline stream may go to a baseline receiver, not the reverse.
    VP9 and AV1 must agree on the profile.
    """
    name = a.name.lower()
    if name != b.name.lower():
        return False
    pa, pb = a.params, b.params
    if name == "h264":
        if pa.get("packetization-mode", "0") != pb.get("packetization-mode", "0"):
            return False
        sent = h264_profile(pa.get("profile-level-id", "420010"))
        accepted = h264_profile(pb.get("profile-level-id", "420010"))
        return sent is not None and (
            sent == accepted or (sent, accepted) == ("constrained-baseline", "baseline")
        )
    if name == "vp9":
        return pa.get("profile-id", "0") == pb.get("profile-id", "0")
    if name == "av1":
        return pa.get("profile", "0") == pb.get("profile", "0")
    return True


def _forwardable_video(codec: Codec) -> bool:
    name, p = codec.name.upper(), codec.params
    if name == "VP8":
        return True
    if name == "VP9":
        return p.get("profile-id", "0") == "0"
    if name == "AV1":
        return p.get("profile", "0") == "0"
    if name == "H264":
        return h264_profile(p.get("profile-level-id", "420010")) is not None
    return False


def _h264_rank(codec: Codec) -> tuple[int, int, int]:
    """Lower is better: packetization-mode 1, then constrained baseline, then exactly 42e01f."""
    p = codec.params
    plid = p.get("profile-level-id", "420010").lower()
    profile = h264_profile(plid)
    order = ("constrained-baseline", "baseline", "main", "constrained-high", "high", "high-444")
    return (
        0 if p.get("packetization-mode", "0") == "1" else 1,
        order.index(profile) if profile in order else len(order),
        0 if plid == "42e01f" else 1,
    )


def _choose_publish_video(m: MediaSection, wanted: str | None) -> list[Codec]:
    candidates = [c for c in m.codecs if _forwardable_video(c)]
    if not candidates:
        return []
    target = (wanted or "").upper()
    if target not in VIDEO_CODECS or not any(c.name.upper() == target for c in candidates):
        target = candidates[0].name.upper()
    same = [c for c in candidates if c.name.upper() == target]
    if target == "H264":
        same.sort(key=_h264_rank)  # stable: offer order breaks ties
    return [same[0]]


def _choose_view_video(m: MediaSection) -> list[Codec]:
    out: list[Codec] = []
    keys: set[str] = set()
    for c in m.codecs:
        if not _forwardable_video(c) or c.key in keys:
            continue
        if c.name.upper() == "H264" and c.params.get("packetization-mode", "0") != "1":
            continue
        keys.add(c.key)
        out.append(c)
    return out


def _answer_codec(c: Codec, kind: str, ext_uris: set[str]) -> Codec:
    allowed = {"transport-cc"} if kind == "audio" else _KEPT_VIDEO_FBS
    fbs = [f for f in dict.fromkeys(c.rtcp_fbs) if f in allowed]
    if URI_TWCC not in ext_uris:
        fbs = [f for f in fbs if f != "transport-cc"]
    # Encoding names are case-insensitive (RFC 4855 §3): answer the canonical spelling.
    name = "opus" if kind == "audio" else c.name.upper()
    return Codec(c.payload_type, name, c.clock_rate, c.channels, c.fmtp, fbs)
