"""SDP data model: the parsed offer, answer options, negotiated result, limits and URIs."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

MAX_SDP_BYTES = 64 * 1024
MAX_MEDIA_SECTIONS = 64

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
URI_VIDEO_ORIENTATION = "urn:3gpp:video-orientation"
URI_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

DEFAULT_EXTENSIONS: dict[str, frozenset[str]] = {
    "audio": frozenset({URI_MID, URI_AUDIO_LEVEL, URI_ABS_SEND_TIME, URI_TWCC}),
    "video": frozenset({URI_MID, URI_ABS_SEND_TIME, URI_TWCC, URI_VIDEO_ORIENTATION}),
}
# RFC 8852 stream ids: answered only with a simulcast publish (RFC 8853), where they name
# the layers; elsewhere they would name nothing.
_SIMULCAST_ONLY = frozenset({URI_RID, URI_REPAIRED_RID})
MAX_SIMULCAST_LAYERS = 4

AUX_CODECS = frozenset({"rtx", "red", "ulpfec", "flexfec", "flexfec-03"})
VIDEO_CODECS = ("VP8", "VP9", "H264", "AV1")
_KEPT_VIDEO_FBS = frozenset({"nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"})
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3551 §6 static payload types that offers may list without an rtpmap.
_STATIC_PTS = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1)}
# RFC 8845 §5.4: hash lengths in bytes of the fingerprint algorithms we can check.
_HASH_BYTES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}


class SdpError(ValueError):
    """The SDP is malformed or cannot be answered by this server."""


# ---------------------------------------------------------------- data model


@dataclass
class Codec:
    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str = ""
    rtcp_fbs: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, str]:
        """fmtp as a dict (keys lowercased; RFC 4855 parameter names are case-insensitive)."""
        out: dict[str, str] = {}
        for part in self.fmtp.split(";"):
            key, _, value = part.strip().partition("=")
            if key:
                out[key.lower()] = value.strip()
        return out

    @property
    def key(self) -> str:
        """Codec identity used to map payload types between publisher and viewer."""
        lower = self.name.lower()
        if lower == "opus":
            return "opus"
        if lower == "h264":
            p = self.params
            # RFC 6184 §8.1: absent profile-level-id means 420010, absent packetization-mode 0.
            plid = p.get("profile-level-id", "420010").lower()
            return f"H264/{plid}/{p.get('packetization-mode', '0')}"
        return self.name.upper()


@dataclass
class MediaSection:
    kind: str
    port: int
    protocol: str
    formats: list[int]
    mid: str
    direction: str = "sendrecv"
    codecs: list[Codec] = field(default_factory=list)
    aux_codecs: list[Codec] = field(default_factory=list)
    rtx: dict[int, int] = field(default_factory=dict)
    extmaps: dict[int, str] = field(default_factory=dict)
    ssrcs: dict[int, dict[str, str]] = field(default_factory=dict)
    ssrc_groups: list[tuple[str, list[int]]] = field(default_factory=list)
    rids: list[tuple[str, str, str]] = field(default_factory=list)
    simulcast: str | None = None
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: str | None = None
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str | None = None
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    msid: str | None = None
    candidates: list[str] = field(default_factory=list)
    extmap_allow_mixed: bool = False
    bundle_only: bool = False
    raw_formats: list[str] = field(default_factory=list)  # the m= line's fmt tokens as written

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.protocol


@dataclass
class SessionDescription:
    origin: str
    media: list[MediaSection]
    bundle: list[list[str]] = field(default_factory=list)
    ice_lite: bool = False
    extmap_allow_mixed: bool = False


@dataclass
class SendTrack:
    """What the server will send into one viewer m-line."""

    ssrc: int
    cname: str
    stream_id: str
    track_id: str


@dataclass
class AnswerOptions:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: tuple[str, str]  # ("sha-256", "AB:CD:...")
    candidates: list[tuple[str, int]]  # UDP host (ip, port)
    role: str  # "publish" | "view"
    session_id: int | None = None  # o= line session id; None: a random 62-bit number
    video_codec: str | None = None  # publish: "h264" | "vp8" | "vp9" | "av1" | ...
    send_tracks: dict[str, SendTrack] = field(default_factory=dict)  # view: viewer mid -> track
    supported_extensions: AbstractSet[str] | None = None  # None: DEFAULT_EXTENSIONS per kind
    tcp_candidates: list[tuple[str, int]] = field(default_factory=list)  # ICE-TCP passive


@dataclass
class Negotiated:
    mid: str
    kind: str
    index: int
    direction: str  # our direction in the answer
    codecs: list[Codec]
    ext_ids: dict[str, int]
    ssrcs: list[int]
    rids: list[str]
    rejected: bool
    remote_ice_ufrag: str
    remote_ice_pwd: str
    remote_fingerprints: list[tuple[str, str]]
    rtx_payload_type: int = 0  # publish: RTX (RFC 4588) answered for the codec, else 0
    layer_ssrcs: list[int] = field(default_factory=list)  # publish: an SSRC-group SIM, in order
    repair_ssrcs: dict[int, int] = field(default_factory=dict)  # RTX SSRC -> media (FID)
