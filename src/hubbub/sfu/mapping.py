"""Bind-time tables: the viewer payload type for a Track's codec, and the extension-id map."""

from __future__ import annotations

from hubbub.media.rtp import REPAIRED_RID, RID, SDES_MID, TRANSPORT_CC
from hubbub.sfu.types import DownTrackParams, TrackParams

# Never copied from publisher to viewer: MID is written separately with the viewer's value,
# RIDs name the publisher's encodings, and transport-wide seq numbers belong to one transport.
NOT_FORWARDED = frozenset({SDES_MID, RID, REPAIRED_RID, TRANSPORT_CC})

# RFC 6184 §8.1: profile-level-id defaults to 42000A (baseline) and packetization-mode to 0.
_H264_DEFAULT_PROFILE = "42000a"
# Constrained baseline and baseline decode each other's streams in practice.
_BASELINE_FAMILY = frozenset({"42e0", "42c0", "4200"})


def _fmtp_params(fmtp: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in fmtp.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def h264_key(fmtp: str) -> str:
    """Codec key "H264/<profile-level-id>/<packetization-mode>" of an H264 fmtp line."""
    params = _fmtp_params(fmtp)
    profile = params.get("profile-level-id", _H264_DEFAULT_PROFILE).lower()
    return f"H264/{profile}/{params.get('packetization-mode', '0')}"


def codec_key(params: TrackParams) -> str:
    """The key a viewer's `payload_types` uses for this Track's codec."""
    if params.codec.upper() == "H264":
        return h264_key(params.fmtp)
    return params.codec


def _profile_family(profile_level_id: str) -> str:
    head = profile_level_id[:4].lower()
    return "42" if head in _BASELINE_FAMILY else head


def viewer_payload_type(track: TrackParams, down: DownTrackParams) -> int:
    """Viewer PT for the Track's codec, or -1 when the viewer did not negotiate it.

    H264 matches by profile (first two bytes of profile-level-id, baseline family folded) and
    packetization mode; a viewer key without a mode matches any mode. The level is ignored:
    the viewer's decoder negotiates its own ceiling and browsers decode higher levels anyway.
    """
    if track.codec.upper() != "H264":
        wanted = track.codec.lower()
        for key, pt in down.payload_types.items():
            if key.lower() == wanted:
                return pt
        return -1
    _, profile, mode = h264_key(track.fmtp).split("/")
    family = _profile_family(profile)
    best = -1
    for key in sorted(down.payload_types):
        parts = key.split("/")
        if parts[0].upper() != "H264":
            continue
        their_profile = parts[1].lower() if len(parts) > 1 else _H264_DEFAULT_PROFILE
        their_mode = parts[2] if len(parts) > 2 else mode
        if their_mode != mode or _profile_family(their_profile) != family:
            continue
        if their_profile[:4] == profile[:4]:
            return down.payload_types[key]
        if best < 0:
            best = down.payload_types[key]
    return best


def extension_map(incoming: dict[str, int], outgoing: dict[str, int]) -> bytes:
    """256-byte table: incoming extension id -> viewer id (0 = drop), for `rtp.rewrite_packet`."""
    table = bytearray(256)
    for uri, in_id in incoming.items():
        out_id = outgoing.get(uri, 0)
        if uri in NOT_FORWARDED or not 0 < in_id < 256 or not 0 < out_id < 256:
            continue
        table[in_id] = out_id
    return bytes(table)
