"""SDP for an ICE-lite, BUNDLE-only, rtcp-mux-only SFU that answers offers and never offers.

`parse(text)` reads an offer (Chromium, Millicast SDK, aiortc shapes) into dataclasses;
`build_answer(offer, opts)` writes the answer and returns what was negotiated per m-line;
`remote_credentials(offer)` returns the one ICE/DTLS transport of the BUNDLE group.

Everything wrong with the input raises `SdpError` (a `ValueError`) with a message that names the
SDP line or the m-line ("SDP line 7: bad m= line", "m-line 2 (mid 1) has no ice-ufrag").
m-lines are numbered from 1 in messages; `Negotiated.index` counts from 0.

Answer rules (RFC 8829 JSEP §5.3, RFC 8843 BUNDLE, RFC 8839 ICE SDP, RFC 5763 DTLS-SRTP):
ICE-lite, one BUNDLE group, `a=setup:passive` (the server is the DTLS server), rtcp-mux required,
opus only for audio, VP8/VP9/H264/AV1 for video, no rtx/red/fec (NACKs are answered from a packet
cache with the original packet, so RFC 4588 is not needed), only supported header extensions.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
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
# RFC 8851 simulcast is not answered yet: answering rid would make the browser send layers
# the SFU cannot select between.
_NEVER_ANSWERED = frozenset({URI_RID, URI_REPAIRED_RID})

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
    candidates: list[tuple[str, int]]  # host (ip, port)
    role: str  # "publish" | "view"
    session_id: int | None = None  # o= line session id; None: a random 62-bit number
    video_codec: str | None = None  # publish: "h264" | "vp8" | "vp9" | "av1" | ...
    send_tracks: dict[str, SendTrack] = field(default_factory=dict)  # view: viewer mid -> track
    supported_extensions: AbstractSet[str] | None = None  # None: DEFAULT_EXTENSIONS per kind


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


# ---------------------------------------------------------------- parsing

_INT = re.compile(r"[0-9]{1,10}")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 4566 §9 token
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")  # RFC 8839 §5.4 ice-char
_VISIBLE = re.compile(r"[\x21-\x7e]+")
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_M_LINE = re.compile(r"([a-z]+) ([0-9]{1,5})(?:/[0-9]{1,5})? ([A-Za-z0-9/_.-]+)((?: \S+)+)")
_RTPMAP = re.compile(r"([0-9]{1,3}) ([A-Za-z0-9_.-]+)/([0-9]{1,9})(?:/([0-9]{1,2}))?")
_FINGERPRINT = re.compile(r"([A-Za-z0-9-]+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*)")


def _uint(text: str, limit: int) -> int | None:
    """Strict decimal (no sign, spaces or non-ASCII digits) no larger than limit."""
    if not _INT.fullmatch(text):
        return None
    value = int(text)
    return value if value <= limit else None


class _Parser:
    def __init__(self) -> None:
        self.lineno = 0
        self.session = SessionDescription(origin="", media=[])
        self.media: MediaSection | None = None
        self.fmtp: dict[int, str] = {}
        self.fbs: dict[int, list[str]] = {}
        self.maps: dict[int, tuple[str, int, int | None]] = {}
        self.session_extmaps: dict[int, str] = {}
        self.s_ufrag: str | None = None
        self.s_pwd: str | None = None
        self.s_options: str | None = None
        self.s_setup: str | None = None
        self.s_fingerprints: list[tuple[str, str]] = []

    def fail(self, what: str) -> SdpError:
        return SdpError(f"SDP line {self.lineno}: {what}")

    def run(self, text: str) -> SessionDescription:
        if len(text) > MAX_SDP_BYTES or len(text.encode("utf-8", "replace")) > MAX_SDP_BYTES:
            raise SdpError("SDP is larger than 64 KiB")
        seen_version = False
        for self.lineno, raw in enumerate(text.split("\n"), start=1):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            if _CONTROL.search(line):
                raise self.fail("control character in line")
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise self.fail("expected <type>=<value>")
            kind, value = line[0], line[2:]
            if not seen_version:
                if kind != "v" or value != "0":
                    raise self.fail("expected v=0")
                seen_version = True
            elif kind == "o":
                if self.media is not None:
                    raise self.fail("o= inside a media section")
                self.session.origin = value
            elif kind == "m":
                self.start_media(value)
            elif kind == "a":
                self.attribute(value)
        self.finish_media()
        return self.validate()

    def start_media(self, value: str) -> None:
        self.finish_media()
        if len(self.session.media) >= MAX_MEDIA_SECTIONS:
            raise SdpError(f"SDP has more than {MAX_MEDIA_SECTIONS} m-lines")
        m = _M_LINE.fullmatch(value)
        port = _uint(m.group(2), 65535) if m else None
        if m is None or port is None:
            raise self.fail("bad m= line")
        raw_formats = m.group(4).split()
        if not all(_VISIBLE.fullmatch(f) for f in raw_formats):
            raise self.fail("bad m= line")
        formats: list[int] = []
        if "RTP/" in m.group(3):
            for token in raw_formats:
                pt = _uint(token, 127)
                if pt is None:
                    raise self.fail("bad m= line")
                formats.append(pt)
        self.media = MediaSection(
            kind=m.group(1),
            port=port,
            protocol=m.group(3),
            formats=formats,
            mid="",
            raw_formats=raw_formats,
        )
        self.fmtp, self.fbs, self.maps = {}, {}, {}

    def finish_media(self) -> None:
        m = self.media
        if m is None:
            return
        wildcard_fbs = self.fbs.get(-1, [])
        for pt in m.formats:
            entry = self.maps.get(pt) or _STATIC_PTS.get(pt)
            if entry is None:
                continue  # a dynamic payload type without rtpmap is not a usable codec
            name, rate, channels = entry
            fbs = self.fbs.get(pt, []) + [f for f in wildcard_fbs if f not in self.fbs.get(pt, [])]
            codec = Codec(pt, name, rate, channels, self.fmtp.get(pt, ""), fbs)
            if name.lower() in AUX_CODECS:
                m.aux_codecs.append(codec)
                apt = _uint(codec.params.get("apt", ""), 127)
                if name.lower() == "rtx" and apt is not None:
                    m.rtx[apt] = pt
            else:
                m.codecs.append(codec)
        for ext_id, uri in self.session_extmaps.items():
            m.extmaps.setdefault(ext_id, uri)
        self.session.media.append(m)
        self.media = None

    def attribute(self, value: str) -> None:
        name, has_value, arg = value.partition(":")
        m = self.media
        if name == "group":
            semantics, *mids = arg.split() or [""]
            if semantics == "BUNDLE" and mids:
                if not all(_TOKEN.fullmatch(x) for x in mids):
                    raise self.fail("bad group")
                self.session.bundle.append(mids)
        elif name == "ice-lite":
            self.session.ice_lite = True
        elif name == "extmap-allow-mixed":
            if m is None:
                self.session.extmap_allow_mixed = True
            else:
                m.extmap_allow_mixed = True
        elif name in ("ice-ufrag", "ice-pwd"):
            lo = 4 if name == "ice-ufrag" else 22  # RFC 8839 §5.4
            if not (lo <= len(arg) <= 256 and _ICE_CHARS.fullmatch(arg)):
                raise self.fail(f"bad {name}")
            if m is None:
                self.s_ufrag, self.s_pwd = (
                    (arg, self.s_pwd) if name == "ice-ufrag" else (self.s_ufrag, arg)
                )
            elif name == "ice-ufrag":
                m.ice_ufrag = arg
            else:
                m.ice_pwd = arg
        elif name == "ice-options":
            if m is None:
                self.s_options = arg
            else:
                m.ice_options = arg
        elif name == "fingerprint":
            fp = self.fingerprint(arg)
            (self.s_fingerprints if m is None else m.fingerprints).append(fp)
        elif name == "setup":
            if arg not in ("actpass", "active", "passive", "holdconn"):
                raise self.fail("bad setup")
            if m is None:
                self.s_setup = arg
            else:
                m.setup = arg
        elif name == "extmap":
            self.extmap(arg, m)
        elif m is None:
            return  # other session-level attributes (msid-semantic, ...) are not needed
        elif name in _DIRECTIONS and not has_value:
            m.direction = name
        elif name == "mid":
            # RFC 8843 §5: identification-tag is a token; Chromium refuses more than 16 chars
            # because the MID must fit a one-byte RTP header extension element (RFC 8285 §4.2).
            if not (_TOKEN.fullmatch(arg) and len(arg) <= 16):
                raise self.fail("bad mid")
            m.mid = arg
        elif name == "rtpmap":
            r = _RTPMAP.fullmatch(arg)
            pt = _uint(r.group(1), 127) if r else None
            rate = _uint(r.group(3), 10**9) if r else None
            if r is None or pt is None or rate is None or rate == 0:
                raise self.fail("bad rtpmap")
            channels = int(r.group(4)) if r.group(4) else None
            self.maps[pt] = (r.group(2), rate, channels)
        elif name == "fmtp":
            pt_text, _, params = arg.partition(" ")
            pt = _uint(pt_text, 127)
            # Browsers' munged offers (e.g. "useinbandfec=1; usedtx=1" from the Millicast SDK)
            # put spaces after ';': accept printable text and store it normalized.
            if pt is None or not _PRINTABLE.fullmatch(params.strip() or "x"):
                raise self.fail("bad fmtp")
            self.fmtp[pt] = ";".join(p.strip() for p in params.split(";") if p.strip())
        elif name == "rtcp-fb":
            pt_text, _, fb = arg.partition(" ")
            pt = -1 if pt_text == "*" else _uint(pt_text, 127)
            fb = " ".join(fb.split())
            if pt is None or not fb or not all(_VISIBLE.fullmatch(w) for w in fb.split()):
                raise self.fail("bad rtcp-fb")
            self.fbs.setdefault(pt, []).append(fb)
        elif name == "ssrc":
            ssrc_text, _, attr = arg.partition(" ")
            ssrc = _uint(ssrc_text, 0xFFFFFFFF)
            attr_name, _, attr_value = attr.partition(":")
            if ssrc is None or not _TOKEN.fullmatch(attr_name):
                raise self.fail("bad ssrc")
            m.ssrcs.setdefault(ssrc, {})[attr_name] = attr_value
        elif name == "ssrc-group":
            semantics, *ssrc_texts = arg.split() or [""]
            ssrcs = [_uint(s, 0xFFFFFFFF) for s in ssrc_texts]
            if not _TOKEN.fullmatch(semantics) or not ssrcs or None in ssrcs:
                raise self.fail("bad ssrc-group")
            m.ssrc_groups.append((semantics, [s for s in ssrcs if s is not None]))
        elif name == "rid":
            parts = arg.split(" ", 2)
            if (
                len(parts) < 2
                or not _TOKEN.fullmatch(parts[0])
                or parts[1]
                not in (
                    "send",
                    "recv",
                )
            ):
                raise self.fail("bad rid")
            m.rids.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
        elif name == "simulcast":
            m.simulcast = arg
        elif name == "rtcp-mux":
            m.rtcp_mux = True
        elif name == "rtcp-rsize":
            m.rtcp_rsize = True
        elif name == "bundle-only":
            m.bundle_only = True
        elif name == "msid":
            m.msid = arg
        elif name == "candidate":
            m.candidates.append(arg)

    def fingerprint(self, arg: str) -> tuple[str, str]:
        f = _FINGERPRINT.fullmatch(arg)
        if f is None:
            raise self.fail("bad fingerprint")
        alg, value = f.group(1).lower(), f.group(2).upper()
        expected = _HASH_BYTES.get(alg)
        if expected is not None and len(value) != expected * 3 - 1:
            raise self.fail(f"bad fingerprint length for {alg}")
        return alg, value

    def extmap(self, arg: str, m: MediaSection | None) -> None:
        head, _, rest = arg.partition(" ")
        ext_id = _uint(head.partition("/")[0], 255)
        uri = rest.split(" ", 1)[0]
        # RFC 8285 §5: ids 1-14 (one-byte) and 1-255 (two-byte); 0 is padding.
        if ext_id is None or ext_id == 0 or not _VISIBLE.fullmatch(uri or " "):
            raise self.fail("bad extmap")
        table = self.session_extmaps if m is None else m.extmaps
        if ext_id in table:
            raise self.fail(f"duplicate extmap id {ext_id}")
        table[ext_id] = uri

    def validate(self) -> SessionDescription:
        s = self.session
        if not s.origin:
            raise SdpError("SDP has no o= line")
        if not s.media:
            raise SdpError("SDP has no media sections")
        seen: set[str] = set()
        for i, m in enumerate(s.media, start=1):
            if not m.mid:
                raise SdpError(f"m-line {i} has no a=mid")
            if m.mid in seen:
                raise SdpError(f"m-line {i} repeats mid {m.mid}")
            seen.add(m.mid)
            # RFC 8839 §5.4 / RFC 8122 §5: session-level values apply to m-lines without their own.
            m.ice_ufrag = m.ice_ufrag or self.s_ufrag
            m.ice_pwd = m.ice_pwd or self.s_pwd
            m.ice_options = m.ice_options or self.s_options
            m.setup = m.setup or self.s_setup
            m.fingerprints = m.fingerprints or list(self.s_fingerprints)
            m.extmap_allow_mixed = m.extmap_allow_mixed or s.extmap_allow_mixed
        for group in s.bundle:
            for mid in group:
                if mid not in seen:
                    raise SdpError(f"BUNDLE group names unknown mid {mid}")
        return s


def parse(text: str) -> SessionDescription:
    """Parse an SDP offer. CRLF or LF line endings; SdpError on anything malformed."""
    return _Parser().run(text)


# ---------------------------------------------------------------- transport


def _label(m: MediaSection, index: int) -> str:
    return f"m-line {index + 1} (mid {m.mid})"


def _transport_indexes(offer: SessionDescription) -> list[int]:
    """m-lines sharing the single transport: the first BUNDLE group, else every live m-line.

    RFC 8843 §7.3.3: m-lines outside the group (or port 0 without bundle-only) are rejected.
    """
    live = [i for i, m in enumerate(offer.media) if m.port != 0 or m.bundle_only]
    if not offer.bundle:
        return live
    group = offer.bundle[0]
    return [i for i in live if offer.media[i].mid in group]


def remote_credentials(offer: SessionDescription) -> tuple[str, str, list[tuple[str, str]]]:
    """(ufrag, pwd, fingerprints) of the BUNDLE transport; SdpError when absent or inconsistent.

    RFC 8843 §7.1: every m-line of a BUNDLE group uses one transport, so one set of credentials.
    """
    indexes = _transport_indexes(offer)
    if not indexes:
        raise SdpError("SDP has no usable media sections")
    first: tuple[str, str, list[tuple[str, str]]] | None = None
    for i in indexes:
        m = offer.media[i]
        for attr, val in (("ice-ufrag", m.ice_ufrag), ("ice-pwd", m.ice_pwd)):
            if not val:
                raise SdpError(f"{_label(m, i)} has no {attr}")
        if not m.fingerprints:
            raise SdpError(f"{_label(m, i)} has no fingerprint")
        assert m.ice_ufrag is not None and m.ice_pwd is not None
        creds = (m.ice_ufrag, m.ice_pwd, m.fingerprints)
        if first is None:
            first = creds
        elif creds != first:
            raise SdpError(f"{_label(m, i)} has other ICE/DTLS credentials than the BUNDLE group")
    assert first is not None
    return first[0], first[1], list(first[2])


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


# ---------------------------------------------------------------- answer


def _candidate_lines(candidates: list[tuple[str, int]]) -> list[str]:
    lines = []
    for i, (ip, port) in enumerate(candidates):
        # RFC 8445 §5.1.2.1: (2^24)*type_pref + (2^8)*local_pref + (256 - component);
        # host type preference 126, local preference decreasing with the candidate's rank.
        priority = (126 << 24) | ((65535 - i) << 8) | (256 - 1)
        lines.append(f"a=candidate:{i + 1} 1 udp {priority} {ip} {port} typ host")
    lines.append("a=end-of-candidates")
    return lines


def _check_options(opts: AnswerOptions) -> None:
    if opts.role not in ("publish", "view"):
        raise SdpError(f"unknown role {opts.role!r}")
    if not (4 <= len(opts.ice_ufrag) <= 256 and _ICE_CHARS.fullmatch(opts.ice_ufrag)):
        raise SdpError("local ice-ufrag must be 4-256 ice-chars")
    if not (22 <= len(opts.ice_pwd) <= 256 and _ICE_CHARS.fullmatch(opts.ice_pwd)):
        raise SdpError("local ice-pwd must be 22-256 ice-chars")
    if not _FINGERPRINT.fullmatch(f"{opts.fingerprint[0]} {opts.fingerprint[1]}"):
        raise SdpError("local fingerprint is malformed")
    if opts.session_id is not None and not 0 <= opts.session_id < 2**63:
        raise SdpError("session_id must fit in 63 bits")
    for ip, port in opts.candidates:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise SdpError(f"candidate address {ip!r} is not an IP address") from None
        if not 0 < port < 65536:
            raise SdpError(f"candidate port {port} is out of range")
    for track in opts.send_tracks.values():
        for text in (track.cname, track.stream_id, track.track_id):
            if not _VISIBLE.fullmatch(text):
                raise SdpError(f"send track field {text!r} must be visible ASCII without spaces")
        if not 0 <= track.ssrc <= 0xFFFFFFFF:
            raise SdpError(f"send track ssrc {track.ssrc} is out of range")


def _direction(role: str, offered: str) -> str | None:
    if role == "publish":
        return "recvonly" if offered in ("sendrecv", "sendonly") else None
    return "sendonly" if offered in ("sendrecv", "recvonly") else None


def _primary_ssrcs(m: MediaSection) -> list[int]:
    """Offered media SSRCs without the repair streams of FID/FEC-FR groups (RFC 5576 §4)."""
    repair = {g[1][1] for g in m.ssrc_groups if g[0] in ("FID", "FEC-FR") and len(g[1]) > 1}
    return [s for s in m.ssrcs if s not in repair]


def build_answer(offer: SessionDescription, opts: AnswerOptions) -> tuple[str, list[Negotiated]]:
    """Answer `offer` as the SFU. Returns the SDP text (CRLF) and one Negotiated per m-line."""
    _check_options(opts)
    ufrag, pwd, fingerprints = remote_credentials(offer)
    transport = set(_transport_indexes(offer))
    if opts.candidates:
        ip, port = opts.candidates[0]
        ip_family = "IP6" if ":" in ip else "IP4"
    else:
        ip, port, ip_family = "0.0.0.0", 9, "IP4"

    sections: list[list[str]] = []
    negotiated: list[Negotiated] = []
    accepted: list[str] = []
    for index, m in enumerate(offer.media):
        direction = _direction(opts.role, m.direction)
        codecs: list[Codec] = []
        ext_ids: dict[str, int] = {}
        usable = (
            index in transport
            and m.kind in ("audio", "video")
            and m.is_rtp
            and "SAVP" in m.protocol
            and direction is not None
        )
        if usable:
            if not m.rtcp_mux:
                raise SdpError(f"{_label(m, index)}: rtcp-mux is required")
            if m.setup == "passive":
                raise SdpError(
                    f"{_label(m, index)}: offer has a=setup:passive but the server is passive"
                )
            supported = opts.supported_extensions or DEFAULT_EXTENSIONS[m.kind]
            if m.kind == "audio":
                supported = supported | {URI_AUDIO_LEVEL}
            else:
                supported = supported - {URI_AUDIO_LEVEL}
            for ext_id, uri in sorted(m.extmaps.items()):
                if uri in supported and uri not in _NEVER_ANSWERED and uri not in ext_ids:
                    ext_ids[uri] = ext_id
            if m.kind == "audio":
                chosen = [c for c in m.codecs if c.name.lower() == "opus"][:1]
            elif opts.role == "publish":
                chosen = _choose_publish_video(m, opts.video_codec)
            else:
                chosen = _choose_view_video(m)
            codecs = [_answer_codec(c, m.kind, set(ext_ids)) for c in chosen]
        if not codecs:
            sections.append(_rejected_section(m))
            negotiated.append(
                Negotiated(
                    m.mid, m.kind, index, "inactive", [], {}, [], [], True, ufrag, pwd, fingerprints
                )
            )
            continue
        assert direction is not None
        accepted.append(m.mid)
        lines = [
            f"m={m.kind} {port} {m.protocol} {' '.join(str(c.payload_type) for c in codecs)}",
            f"c=IN {ip_family} {ip}",
            f"a=ice-ufrag:{opts.ice_ufrag}",
            f"a=ice-pwd:{opts.ice_pwd}",
            f"a=fingerprint:{opts.fingerprint[0].lower()} {opts.fingerprint[1].upper()}",
            "a=setup:passive",  # RFC 5763 §5: the answerer picks; the server is the DTLS server
            f"a=mid:{m.mid}",
        ]
        lines += [f"a=extmap:{ext_id} {uri}" for uri, ext_id in ext_ids.items()]
        if m.extmap_allow_mixed and not offer.extmap_allow_mixed:
            lines.append("a=extmap-allow-mixed")  # RFC 8285 §6: media level only if offered so
        lines.append(f"a={direction}")
        ssrcs: list[int] = []
        track = opts.send_tracks.get(m.mid) if opts.role == "view" else None
        if track is not None:
            lines.append(f"a=msid:{track.stream_id} {track.track_id}")
        lines.append("a=rtcp-mux")
        if m.rtcp_rsize:
            lines.append("a=rtcp-rsize")
        for c in codecs:
            channels = f"/{c.channels}" if c.channels else ""
            lines.append(f"a=rtpmap:{c.payload_type} {c.name}/{c.clock_rate}{channels}")
            lines += [f"a=rtcp-fb:{c.payload_type} {fb}" for fb in c.rtcp_fbs]
            if c.fmtp:
                lines.append(f"a=fmtp:{c.payload_type} {c.fmtp}")
        if track is not None:
            ssrcs = [track.ssrc]
            lines.append(f"a=ssrc:{track.ssrc} cname:{track.cname}")
            lines.append(f"a=ssrc:{track.ssrc} msid:{track.stream_id} {track.track_id}")
        elif opts.role == "publish":
            ssrcs = _primary_ssrcs(m)
        lines += _candidate_lines(opts.candidates)
        sections.append(lines)
        negotiated.append(
            Negotiated(
                m.mid,
                m.kind,
                index,
                direction,
                codecs,
                ext_ids,
                ssrcs,
                [],
                False,
                ufrag,
                pwd,
                fingerprints,
            )
        )

    if not accepted:
        raise SdpError("no media section of the offer can be accepted")
    session_id = secrets.randbits(62) if opts.session_id is None else opts.session_id
    head = [
        "v=0",
        f"o=- {session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=ice-lite",  # RFC 8445 §2.5: the server only answers connectivity checks
        f"a=group:BUNDLE {' '.join(accepted)}",
        "a=msid-semantic: WMS *",
    ]
    if offer.extmap_allow_mixed:
        head.append("a=extmap-allow-mixed")
    lines = head + [line for section in sections for line in section]
    return "\r\n".join(lines) + "\r\n", negotiated


def _rejected_section(m: MediaSection) -> list[str]:
    # RFC 8829 §5.3.1 / RFC 3264 §6: a rejected m-line keeps kind, protocol and a format, port 0.
    fmt = m.raw_formats[0] if m.raw_formats else "0"
    return [f"m={m.kind} 0 {m.protocol} {fmt}", "c=IN IP4 0.0.0.0", f"a=mid:{m.mid}", "a=inactive"]
